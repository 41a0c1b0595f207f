"""Validation and defaulting: a subset of what kube-apiserver checks; enough to catch the mistakes a
manifest renderer makes."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Container, Iterable

from .objects import _clone, _meta, parse_quantity
from .resources import (CONFIGMAPS, JOBS, LOCALQUEUES, NAMESPACES, PODS, SECRETS, WORKLOADS, ApiError, Resource,
                        _bad_request)
from .selectors import _DNS_LABEL_RE, _DNS_SUBDOMAIN_RE, _label_key_error, _label_value_error


Err = tuple  # (field, cause reason, message)


def _required(field: str, detail: str = "") -> Err:
    return (field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def _invalid(field: str, value: Any, detail: str) -> Err:
    return (field, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {detail}")


def _unsupported(field: str, value: Any, supported: Iterable[str]) -> Err:
    return (field, "FieldValueNotSupported",
            f"Unsupported value: {json.dumps(value)}: supported values: " + ", ".join(f'"{s}"' for s in supported))


def _forbidden(field: str, detail: str) -> Err:
    return (field, "FieldValueForbidden", f"Forbidden: {detail}")


def _duplicate(field: str, value: Any) -> Err:
    return (field, "FieldValueDuplicate", f"Duplicate value: {json.dumps(value)}")


def _not_found(field: str, value: Any) -> Err:
    return (field, "FieldValueNotFound", f"Not found: {json.dumps(value)}")


def _too_long(field: str, limit: int) -> Err:
    return (field, "FieldValueTooLong", f"Too long: must have at most {limit} bytes")


_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                  "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
              "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_GPU_LIKE = re.compile(r"^[^/]+\.[^/]+/.+$")  # extended resources such as nvidia.com/gpu


def _name_errors(res: Resource, name: Any, field: str = "metadata.name") -> list[Err]:
    if not isinstance(name, str) or not name:
        return [_required(field, "name or generateName is required")]
    if res.name_rule == "path":
        if name in (".", "..") or "/" in name or "%" in name:
            return [_invalid(field, name, "may not contain '/' or '%' and may not be '.' or '..'")]
        return []
    if res.name_rule == "label" and res is NAMESPACES:
        if len(name) > 63 or not _DNS_LABEL_RE.match(name):
            return [_invalid(field, name, _LABEL_MSG)]
        return []
    errors = []
    if len(name) > 253 or not _DNS_SUBDOMAIN_RE.match(name):
        errors.append(_invalid(field, name, _SUBDOMAIN_MSG))
    if res.name_rule == "label" and len(name) > 63:  # Jobs: the name is also a label value
        errors.append(_invalid(field, name, "must be no more than 63 characters"))
    return errors


def _type_check(obj: dict, res: Resource) -> None:
    """JSON shapes the Go decoder would refuse (answered with 400, not 422)."""

    def fail(field: str, want: str, got: Any) -> ApiError:
        return _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: json: cannot '
                            f"unmarshal {type(got).__name__} into Go struct field {field} of type {want}")

    meta = obj.get("metadata", {})
    if not isinstance(meta, dict):
        raise fail("ObjectMeta.metadata", "v1.ObjectMeta", meta)
    for key in ("labels", "annotations"):
        for k, v in (meta.get(key) or {}).items():
            if not isinstance(v, str):
                raise fail(f"ObjectMeta.metadata.{key}", "string", v)
    if res in (CONFIGMAPS, SECRETS):
        for key in ("data", "stringData", "binaryData"):
            for k, v in (obj.get(key) or {}).items():
                if not isinstance(v, str):
                    raise fail(f"{res.kind}.{key}", "string", v)
    spec = None
    if res is JOBS:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
    elif res is PODS:
        spec = obj.get("spec")
    if isinstance(spec, dict):
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for key in ("command", "args"):
                v = c.get(key)
                if v is not None and (not isinstance(v, list) or not all(isinstance(a, str) for a in v)):
                    raise fail(f"Container.spec.containers.{key}", "string", v)
            for e in c.get("env") or []:
                if "value" in e and not isinstance(e["value"], str):
                    raise fail("EnvVar.spec.containers.env.value", "string", e["value"])
            for section in ("requests", "limits"):
                for r, q in ((c.get("resources") or {}).get(section) or {}).items():
                    try:
                        parse_quantity(q)
                    except ValueError as exc:
                        raise _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                                           f"quantities must match the regular expression "
                                           f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' ({r}: {q!r})") from exc


def _validate_meta(res: Resource, obj: dict) -> list[Err]:
    meta = obj.get("metadata") or {}
    errors = _name_errors(res, meta.get("name"))
    for k, v in (meta.get("labels") or {}).items():
        e = _label_key_error(k)
        if e:
            errors.append(_invalid("metadata.labels", k, e))
        e = _label_value_error(v)
        if e:
            errors.append(_invalid("metadata.labels", v, e))
    size = 0
    for k, v in (meta.get("annotations") or {}).items():
        e = _label_key_error(k)
        if e:
            errors.append(_invalid("metadata.annotations", k, e))
        size += len(k) + len(v)
    if size > 256 * 1024:
        errors.append(_too_long("metadata.annotations", 256 * 1024))
    return errors


def _default_container(c: dict) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    c.setdefault("imagePullPolicy", "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in tag
                 else "IfNotPresent")
    res = c.setdefault("resources", {})
    limits = res.get("limits") or {}
    if limits:
        req = res.setdefault("requests", {})
        for k, v in limits.items():
            req.setdefault(k, v)


def _default_pod_spec(spec: dict, restart: str = "Always") -> None:
    spec.setdefault("restartPolicy", restart)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if spec.get("serviceAccountName") is None:
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and len([k for k in v if k != "name"]) == 0:
            v["emptyDir"] = {}
        for kind in ("secret", "configMap"):
            if isinstance(v.get(kind), dict):
                v[kind].setdefault("defaultMode", 0o644)


def _check_member_name(field: str, name: Any, seen: Container[Any]) -> list[Err]:
    """A volume's or container's name: present, a DNS label, not used before in its list."""
    if not name:
        return [_required(field)]
    if not _DNS_LABEL_RE.match(name) or len(name) > 63:
        return [_invalid(field, name, _LABEL_MSG)]
    if name in seen:
        return [_duplicate(field, name)]
    return []


def _validate_pod_spec(spec: Any, p: str) -> list[Err]:
    if not isinstance(spec, dict):
        return [_required(p)]
    errors: list[Err] = []
    volumes = {}
    for i, v in enumerate(spec.get("volumes") or []):
        name = v.get("name")
        errors.extend(_check_member_name(f"{p}.volumes[{i}].name", name, volumes))
        volumes[name] = v
        if len([k for k in v if k != "name"]) > 1:
            errors.append(_forbidden(f"{p}.volumes[{i}]", "may not specify more than 1 volume type"))
        if "secret" in v and not (v["secret"] or {}).get("secretName"):
            errors.append(_required(f"{p}.volumes[{i}].secret.secretName"))
        if "configMap" in v and not (v["configMap"] or {}).get("name"):
            errors.append(_required(f"{p}.volumes[{i}].configMap.name"))
    containers = spec.get("containers")
    if not containers:
        errors.append(_required(f"{p}.containers"))
    names: set[str] = set()
    for i, c in enumerate(containers or []):
        cp = f"{p}.containers[{i}]"
        name = c.get("name")
        errors.extend(_check_member_name(f"{cp}.name", name, names))
        names.add(name)
        if not c.get("image"):
            errors.append(_required(f"{cp}.image"))
        for j, e in enumerate(c.get("env") or []):
            en = e.get("name")
            if not en:
                errors.append(_required(f"{cp}.env[{j}].name"))
            elif not _ENV_NAME_RE.match(en):
                errors.append(_invalid(f"{cp}.env[{j}].name", en, "a valid environment variable name must consist of "
                                       "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"))
            if "valueFrom" in e:
                if e.get("value"):
                    errors.append(_invalid(f"{cp}.env[{j}].valueFrom", "", "may not be specified when `value` is not empty"))
                srcs = [k for k in (e["valueFrom"] or {}) if k in ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")]
                if len(srcs) != 1:
                    errors.append(_invalid(f"{cp}.env[{j}].valueFrom", "", "must specify exactly one of: `fieldRef`, "
                                           "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
                for k in ("secretKeyRef", "configMapKeyRef"):
                    ref = (e["valueFrom"] or {}).get(k)
                    if isinstance(ref, dict):
                        if not ref.get("key"):
                            errors.append(_required(f"{cp}.env[{j}].valueFrom.{k}.key"))
                        if not ref.get("name"):
                            errors.append(_required(f"{cp}.env[{j}].valueFrom.{k}.name"))
        paths: set[str] = set()
        for j, m in enumerate(c.get("volumeMounts") or []):
            if m.get("name") not in volumes:
                errors.append(_not_found(f"{cp}.volumeMounts[{j}].name", m.get("name")))
            mp = m.get("mountPath")
            if not mp:
                errors.append(_required(f"{cp}.volumeMounts[{j}].mountPath"))
            elif mp in paths:
                errors.append(_invalid(f"{cp}.volumeMounts[{j}].mountPath", mp, "must be unique"))
            paths.add(mp or "")
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for r, q in requests.items():
            rp = f"{cp}.resources.requests[{r}]"
            if _GPU_LIKE.match(r) and not r.startswith("kubernetes.io/"):
                if parse_quantity(q) != int(parse_quantity(q)):
                    errors.append(_invalid(rp, q, "must be an integer"))
                if r not in limits:
                    errors.append(_forbidden(f"{cp}.resources.limits", "Limit must be set for non overcommitable resources"))
                elif parse_quantity(limits[r]) != parse_quantity(q):
                    errors.append(_invalid(rp, q, f"must be equal to {r} limit of {limits[r]}"))
            elif r in limits and parse_quantity(q) > parse_quantity(limits[r]):
                errors.append(_invalid(rp, q, f"must be less than or equal to {r} limit of {limits[r]}"))
    restart = spec.get("restartPolicy", "Always")
    if restart not in ("Always", "OnFailure", "Never"):
        errors.append(_unsupported(f"{p}.restartPolicy", restart, ("Always", "OnFailure", "Never")))
    return errors


def _validate_job(job: dict) -> list[Err]:
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    errors: list[Err] = []
    for key, lo in (("backoffLimit", 0), ("parallelism", 0), ("completions", 0), ("ttlSecondsAfterFinished", 0),
                    ("activeDeadlineSeconds", 1)):
        v = spec.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
            errors.append(_invalid(f"spec.{key}", v, f"must be greater than or equal to {lo}"))
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return errors + [_required("spec.template")]
    pod = template["spec"]
    errors += _validate_pod_spec(pod, "spec.template.spec")
    restart = pod.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        errors.append(_unsupported("spec.template.spec.restartPolicy", restart or "Always", ("OnFailure", "Never"))
                      if restart else _required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    pfp = spec.get("podFailurePolicy")
    if pfp is not None:
        if restart != "Never":
            errors.append(_invalid("spec.template.spec.restartPolicy", restart,
                                   'only "Never" is supported when podFailurePolicy is specified'))
        rules = (pfp or {}).get("rules")
        if not isinstance(rules, list):
            errors.append(_required("spec.podFailurePolicy.rules"))
            rules = []
        if len(rules) > 20:
            errors.append(("spec.podFailurePolicy.rules", "FieldValueTooMany", "Too many: must have at most 20 items"))
        containers = {c.get("name") for c in pod.get("containers") or []}
        for i, rule in enumerate(rules):
            rp = f"spec.podFailurePolicy.rules[{i}]"
            action = rule.get("action")
            if action not in ("Count", "FailJob", "Ignore"):
                errors.append(_unsupported(f"{rp}.action", action, ("Count", "FailJob", "Ignore")))
            codes, conds = rule.get("onExitCodes"), rule.get("onPodConditions")
            if (codes is None) == (conds is None):
                errors.append(_invalid(rp, "", "specifying one of OnExitCodes and OnPodConditions is required"))
            if codes is not None:
                op = codes.get("operator")
                if op not in ("In", "NotIn"):
                    errors.append(_unsupported(f"{rp}.onExitCodes.operator", op, ("In", "NotIn")))
                values = codes.get("values") or []
                if not values:
                    errors.append(_required(f"{rp}.onExitCodes.values"))
                for j, v in enumerate(values):
                    if not isinstance(v, int) or isinstance(v, bool):
                        errors.append(_invalid(f"{rp}.onExitCodes.values[{j}]", v, "must be an integer"))
                    elif op == "In" and v == 0:
                        errors.append(_invalid(f"{rp}.onExitCodes.values[{j}]", v, "must not be 0 for the In operator"))
                    elif j and isinstance(values[j - 1], int) and v <= values[j - 1]:
                        errors.append(_invalid(f"{rp}.onExitCodes.values[{j}]", v,
                                               "must be ordered" if v < values[j - 1] else "duplicate value"))
                cn = codes.get("containerName")
                if cn is not None and cn not in containers:
                    errors.append(_invalid(f"{rp}.onExitCodes.containerName", cn,
                                           "must be one of the container or initContainer names in the pod template"))
            for j, c in enumerate(conds or []):
                if not c.get("type"):
                    errors.append(_required(f"{rp}.onPodConditions[{j}].type"))
                if c.get("status") not in ("True", "False", "Unknown"):
                    errors.append(_unsupported(f"{rp}.onPodConditions[{j}].status", c.get("status"),
                                               ("True", "False", "Unknown")))
    return errors


def _validate_data(obj: dict, res: Resource) -> list[Err]:
    errors: list[Err] = []
    size = 0
    keys: set[str] = set()
    sections = ("data", "binaryData") if res is CONFIGMAPS else ("data",)
    for section in sections:
        for k, v in (obj.get(section) or {}).items():
            if len(k) > 253 or not _CONFIG_KEY_RE.match(k):
                errors.append(_invalid(f"{section}[{k}]", k, "a valid config key must consist of alphanumeric "
                                       "characters, '-', '_' or '.'"))
            if k in keys:
                errors.append(_invalid(f"{section}[{k}]", k, "duplicate of key present in data"))
            keys.add(k)
            size += len(v)
    if size > 1024 * 1024:
        errors.append(_too_long("data", 1024 * 1024))
    return errors


def _validate_workload(obj: dict) -> list[Err]:
    """The parts of Kueue's Workload CRD schema (kueue.x-k8s.io/v1beta1) a client can get wrong."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    errors: list[Err] = []
    pod_sets = spec.get("podSets")
    if not isinstance(pod_sets, list) or not pod_sets:
        errors.append(_required("spec.podSets"))
    elif len(pod_sets) > 8:
        errors.append(_too_long("spec.podSets", 8))
    else:
        for i, ps in enumerate(pod_sets):
            if not isinstance(ps, dict) or not isinstance(ps.get("template"), dict):
                errors.append(_required(f"spec.podSets[{i}].template"))
            elif not isinstance(ps.get("count", 1), int) or ps.get("count", 1) < 0:
                errors.append(_invalid(f"spec.podSets[{i}].count", ps.get("count"), "should be greater than or equal to 0"))
    queue = spec.get("queueName")
    if queue is not None and (not isinstance(queue, str) or len(queue) > 253):
        errors.append(_invalid("spec.queueName", queue, "must be a string of at most 253 characters"))
    return errors


def _validate(res: Resource, obj: dict, old: dict | None) -> list[Err]:
    errors = _validate_meta(res, obj)
    if res is JOBS:
        errors += _validate_job(obj)
        if old is not None:
            started = bool((old.get("status") or {}).get("startTime"))
            if old["spec"].get("selector") != obj["spec"].get("selector"):
                errors.append(_invalid("spec.selector", obj["spec"].get("selector"), "field is immutable"))
            if (old["spec"].get("template") != obj["spec"].get("template")
                    and (started or not obj["spec"].get("suspend"))):
                errors.append(_invalid("spec.template", obj["spec"].get("template"), "field is immutable"))
            if old["spec"].get("completionMode") != obj["spec"].get("completionMode"):
                errors.append(_invalid("spec.completionMode", obj["spec"].get("completionMode"), "field is immutable"))
    elif res is PODS:
        errors += _validate_pod_spec(obj.get("spec"), "spec")
        if old is not None:
            def mutable_blanked(spec: dict) -> dict:
                s = _clone(spec)
                for key in ("activeDeadlineSeconds", "tolerations", "nodeName"):
                    s.pop(key, None)
                for c in s.get("containers") or []:
                    c.pop("image", None)
                return s

            if mutable_blanked(old.get("spec") or {}) != mutable_blanked(obj.get("spec") or {}):
                errors.append(_forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`, "
                                         "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                                         "tolerations)"))
    elif res is WORKLOADS:
        errors += _validate_workload(obj)
    elif res is LOCALQUEUES:
        cq = (obj.get("spec") or {}).get("clusterQueue")
        if not isinstance(cq, str) or not cq:
            errors.append(_required("spec.clusterQueue"))
    elif res in (CONFIGMAPS, SECRETS):
        errors += _validate_data(obj, res)
        if old is not None and old.get("immutable"):
            for key in ("data", "binaryData", "immutable"):
                if old.get(key) != obj.get(key):
                    errors.append(_forbidden(key, "field is immutable when `immutable` is set"))
    return errors


def _prepare(res: Resource, obj: dict) -> None:
    """Defaulting and normalisation done on every write."""
    if res is SECRETS:
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if (obj.get("data") or string_data) else obj.get("data")
        for k, v in string_data.items():
            data[k] = base64.b64encode(v.encode()).decode()
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except ValueError:
                raise _bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at '
                                   f"input byte 0 (key {k!r})") from None
        obj.setdefault("type", "Opaque")
    elif res is JOBS:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
            template = spec.get("template")
            if isinstance(template, dict) and isinstance(template.get("spec"), dict):
                _default_pod_spec(template["spec"], restart=template["spec"].get("restartPolicy") or "Always")
        obj.setdefault("status", {})
    elif res is PODS:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            _default_pod_spec(spec)
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("priority", 0)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _qos_class(spec or {}))
    elif res is NAMESPACES:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        _meta(obj).setdefault("labels", {})["kubernetes.io/metadata.name"] = _meta(obj).get("name", "")


def _qos_class(spec: dict) -> str:
    containers = spec.get("containers") or []
    any_set, guaranteed = False, True
    for c in containers:
        r = c.get("resources") or {}
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        any_set = any_set or bool(req or lim)
        for k in ("cpu", "memory"):
            if k not in lim or parse_quantity(req.get(k, lim[k])) != parse_quantity(lim[k]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
