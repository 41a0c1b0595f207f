"""What a real API server checks before it stores an object, for tests/kube/apiserver/.

**Decoding** (:func:`decode`): the server decodes the request body into its Go types. A field the
type does not have is an *unknown field*: with ``fieldValidation=Strict`` the request fails (400
BadRequest, ``strict decoding error: unknown field "spec.x"``); with ``Warn`` (the default since
Kubernetes 1.23) or ``Ignore`` the field is silently dropped, with a ``Warning`` header under Warn.
A value of the wrong JSON type fails the request in every mode. The types come from the official
client's models (``kubernetes.client``: ``openapi_types`` and ``attribute_map``, generated from the
server's OpenAPI document), so a manifest with a misspelt field behaves here as on a cluster: the
field is gone, whatever the test kubelet would have made of it.

**Pod Security Admission** (:func:`pod_security_violations`): the checks of the ``baseline`` and
``restricted`` levels of the Pod Security Standards (the ``latest`` version), with the messages the
admission plugin writes, for a namespace labelled ``pod-security.kubernetes.io/enforce``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MODELS", "decode", "pod_security_violations"]

MODELS = {
    "Job": "V1Job", "Pod": "V1Pod", "ConfigMap": "V1ConfigMap", "Secret": "V1Secret",
    "ServiceAccount": "V1ServiceAccount", "Role": "V1Role", "RoleBinding": "V1RoleBinding",
    "NetworkPolicy": "V1NetworkPolicy", "Namespace": "V1Namespace", "Event": "CoreV1Event",
}
"""The kinds decoded against the client's models (custom resources such as Kueue's are not)."""

_QUANTITY_MAPS = ("limits", "requests", "capacity", "allocatable", "hard", "used")
"""Maps of resource.Quantity values, which decode from a JSON number as well as a string."""
_QUANTITIES = ("sizeLimit",)


def _model(name: str) -> Any:
    from kubernetes import client

    return getattr(client, name, None)


def _struct(model_name: str) -> str:
    """The Go struct's name, as the decoder's errors give it: V1EnvVar -> EnvVar."""
    return re.sub(r"^(?:[A-Z][a-z]+)?V\d+(?:alpha\d+|beta\d+)?", "", model_name)


def _without_indices(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", path)


def _go_type(kind: str) -> str:
    return {"str": "string", "int": "int64", "bool": "bool", "float": "float64", "datetime": "Time",
            "bytes": "[]byte"}.get(kind, kind)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def decode(kind: str, body: dict) -> tuple[dict, list[str], list[str]]:
    """``body`` as the server would store it: (the object without unknown fields, the unknown
    fields' paths, type errors in the Go decoder's words). Kinds without a model pass unchanged."""
    name = MODELS.get(kind)
    if name is None:
        return body, [], []
    unknown: list[str] = []
    errors: list[str] = []
    decoded = _decode_model(body, name, "", kind, unknown, errors)
    return decoded, unknown, errors


def _decode_model(value: Any, model_name: str, path: str, owner: str, unknown: list[str],
                  errors: list[str]) -> Any:
    model = _model(model_name)
    if model is None:
        return value
    if not isinstance(value, dict):
        errors.append(f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                      f"{owner}.{_without_indices(path)} of type v1.{_struct(model_name)}")
        return value
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    out: dict = {}
    for key, item in value.items():
        attr = by_json.get(key)
        where = f"{path}.{key}" if path else key
        if attr is None:
            unknown.append(where)
            continue
        if item is None:
            out[key] = None
            continue
        out[key] = _decode_value(item, model.openapi_types[attr], where, _struct(model_name), key, unknown, errors)
    return out


def _decode_value(value: Any, kind: str, path: str, owner: str, key: str, unknown: list[str],
                  errors: list[str]) -> Any:
    if value is None:  # Go decodes null as the zero value (and a merge patch's null removes the key)
        return None

    def wrong(want: str) -> Any:
        errors.append(f"json: cannot unmarshal {_json_type(value)} into Go struct field {owner}.{_without_indices(path)} "
                      f"of type {_go_type(want)}")
        return value

    if kind.startswith("List["):
        if not isinstance(value, list):
            return wrong("[]" + kind[5:-1])
        return [_decode_value(v, kind[5:-1], f"{path}[{i}]", owner, key, unknown, errors) for i, v in enumerate(value)]
    if kind.startswith("Dict[str, "):
        inner = kind[len("Dict[str, "):-1]
        if not isinstance(value, dict):
            return wrong(f"map[string]{_go_type(inner)}")
        quantity = key in _QUANTITY_MAPS
        return {k: v if quantity and isinstance(v, (int, float)) and not isinstance(v, bool)
                else _decode_value(v, inner, f"{path}[{k}]", owner, key, unknown, errors) for k, v in value.items()}
    if kind == "object":
        return value  # IntOrString, RawExtension and friends
    if kind in ("str", "datetime", "bytes"):
        if key in _QUANTITIES and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return value if isinstance(value, str) else wrong(kind)
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else wrong(kind)
    if kind == "float":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else wrong(kind)
    if kind == "bool":
        return value if isinstance(value, bool) else wrong(kind)
    return _decode_model(value, kind, path, owner, unknown, errors)


# --- Pod Security Admission ------------------------------------------------------------------

LEVELS = ("privileged", "baseline", "restricted")
_BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
_RESTRICTED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret")
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


def _containers(spec: dict) -> list[dict]:
    return [c for group in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(group) or []]


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _containers_phrase(names: list[str]) -> str:
    return f"container{'s' if len(names) > 1 else ''} {_quoted(names)}"


def _setters(pod: bool, containers: list[str]) -> list[str]:
    return (["pod"] if pod else []) + ([_containers_phrase(containers)] if containers else [])


def pod_security_violations(pod: dict, level: str) -> list[str]:
    """The Pod Security Standards checks ``pod`` fails at ``level`` (``latest``), each as the
    admission plugin words it, e.g. ``allowPrivilegeEscalation != false (container "c" must set
    securityContext.allowPrivilegeEscalation=false)``."""
    if level not in LEVELS[1:]:
        return []
    spec = pod.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    containers = _containers(spec)
    ctx = {c.get("name", ""): c.get("securityContext") or {} for c in containers}
    out: list[str] = []

    # baseline
    hosts = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        out.append(f"host namespaces ({', '.join(hosts)})")
    privileged = [n for n, c in ctx.items() if c.get("privileged")]
    if privileged:
        out.append(f"privileged ({_containers_phrase(privileged)} must not set securityContext.privileged=true)")
    added = {n: [a for a in (c.get("capabilities") or {}).get("add") or [] if a not in _BASELINE_CAPABILITIES]
             for n, c in ctx.items()}
    if level == "baseline" and any(added.values()):
        names = [n for n, a in added.items() if a]
        caps = sorted({a for a in added.values() for a in a})
        out.append(f"non-default capabilities ({_containers_phrase(names)} must not include {_quoted(caps)} in "
                   "securityContext.capabilities.add)")
    host_paths = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        out.append(f"hostPath volumes (volume{'s' if len(host_paths) > 1 else ''} {_quoted(host_paths)})")
    ports = [(c.get("name", ""), p["hostPort"]) for c in containers for p in c.get("ports") or [] if p.get("hostPort")]
    if ports:
        uses = ", ".join('container "%s" uses hostPort %s' % (n, p) for n, p in ports)
        out.append(f"hostPort ({uses})")
    apparmor = [n for n, c in ctx.items() if (c.get("appArmorProfile") or {}).get("type") == "Unconfined"]
    if (pod_ctx.get("appArmorProfile") or {}).get("type") == "Unconfined" or apparmor:
        out.append("appArmorProfile (pod or containers must not set appArmorProfile.type to \"Unconfined\")")
    selinux = [o for o in [pod_ctx.get("seLinuxOptions") or {}, *[c.get("seLinuxOptions") or {} for c in ctx.values()]]
               if o.get("type", "") not in _SELINUX_TYPES or o.get("user") or o.get("role")]
    if selinux:
        out.append("seLinuxOptions (pod or containers must not set seLinuxOptions.user, .role, or a type other than "
                   "container_t, container_init_t, container_kvm_t or container_engine_t)")
    proc = [n for n, c in ctx.items() if c.get("procMount", "Default") != "Default"]
    if proc:
        out.append(f"procMount ({_containers_phrase(proc)} must not set securityContext.procMount to \"Unmasked\")")
    unconfined = (pod_ctx.get("seccompProfile") or {}).get("type") == "Unconfined" or any(
        (c.get("seccompProfile") or {}).get("type") == "Unconfined" for c in ctx.values())
    if unconfined and level == "baseline":  # restricted's own seccomp check replaces this one
        out.append("seccompProfile (pod or containers must not set securityContext.seccompProfile.type to "
                   "\"Unconfined\")")
    sysctls = [s.get("name", "") for s in pod_ctx.get("sysctls") or [] if s.get("name") not in _SAFE_SYSCTLS]
    if sysctls:
        out.append(f"forbidden sysctls ({', '.join(sysctls)})")
    if level == "baseline":
        return out

    # restricted
    restricted = [(v.get("name", ""), next((k for k in v if k != "name"), "")) for v in spec.get("volumes") or []]
    restricted = [(n, t) for n, t in restricted if t not in _RESTRICTED_VOLUMES]
    if restricted:
        names = [n for n, _ in restricted]
        types = sorted({t for _, t in restricted})
        out.append(f"restricted volume types (volume{'s' if len(names) > 1 else ''} {_quoted(names)} use"
                   f"{'s' if len(names) == 1 else ''} restricted volume type{'s' if len(types) > 1 else ''} "
                   f"{_quoted(types)})")
    escalation = [n for n, c in ctx.items() if c.get("allowPrivilegeEscalation") is not False]
    if escalation:
        out.append(f"allowPrivilegeEscalation != false ({_containers_phrase(escalation)} must set "
                   "securityContext.allowPrivilegeEscalation=false)")
    caps_drop = [n for n, c in ctx.items() if "ALL" not in ((c.get("capabilities") or {}).get("drop") or [])]
    caps_add = [n for n, c in ctx.items()
                if any(a != "NET_BIND_SERVICE" for a in (c.get("capabilities") or {}).get("add") or [])]
    if caps_drop or caps_add:
        parts = []
        if caps_drop:
            parts.append(f'{_containers_phrase(caps_drop)} must set securityContext.capabilities.drop=["ALL"]')
        if caps_add:
            forbidden = sorted({a for n in caps_add for a in (ctx[n].get("capabilities") or {}).get("add") or []
                                if a != "NET_BIND_SERVICE"})
            parts.append(f"{_containers_phrase(caps_add)} must not include {_quoted(forbidden)} in "
                         "securityContext.capabilities.add")
        out.append(f"unrestricted capabilities ({'; '.join(parts)})")
    pod_non_root = pod_ctx.get("runAsNonRoot")
    explicit = _setters(pod_non_root is False, [n for n, c in ctx.items() if c.get("runAsNonRoot") is False])
    implicit = [] if pod_non_root is True else [n for n, c in ctx.items() if c.get("runAsNonRoot") is None]
    if explicit or implicit:
        parts = []
        if explicit:
            parts.append(f"{' and '.join(explicit)} must not set securityContext.runAsNonRoot=false")
        if implicit:
            parts.append(f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true")
        out.append(f"runAsNonRoot != true ({'; '.join(parts)})")
    root = _setters(pod_ctx.get("runAsUser") == 0, [n for n, c in ctx.items() if c.get("runAsUser") == 0])
    if root:
        out.append(f"runAsUser=0 ({' and '.join(root)} must not set runAsUser=0)")
    valid = ("RuntimeDefault", "Localhost")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    inherited = pod_seccomp if pod_seccomp in valid else None
    no_seccomp = [n for n, c in ctx.items() if ((c.get("seccompProfile") or {}).get("type") or inherited) not in valid]
    if no_seccomp or pod_seccomp not in (None, *valid):
        out.append(f"seccompProfile (pod or {_containers_phrase(no_seccomp or list(ctx))} must set "
                   "securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")")
    return out
