"""A small, real Kubernetes API server for tests: ``FakeCluster``.

It is an HTTP server (stdlib ``ThreadingHTTPServer``, JSON, chunked watch streams) on
127.0.0.1 that speaks the REST paths the official ``kubernetes`` Python client uses for the
objects xtrc's Kubernetes backend creates, plus a simulated Job controller, scheduler and
kubelet that run each pod's containers as local processes.

Resources (namespaced; objects may be created in any namespace, which need not exist):
batch/v1 Jobs; v1 Pods, ConfigMaps, Secrets, ServiceAccounts, Events;
rbac.authorization.k8s.io/v1 Roles, RoleBindings; networking.k8s.io/v1 NetworkPolicies; Kueue's
kueue.x-k8s.io/v1beta1 Workloads and LocalQueues (custom resources: their list items keep
``kind``/``apiVersion``). No Kueue controller runs: with ``kueue_webhook=True`` a Job created with
the ``kueue.x-k8s.io/queue-name`` label is suspended at creation (as Kueue's mutating webhook does),
and a test plays Kueue's controller by creating a Workload owned by the Job, writing its status
conditions and un-suspending the Job; plus cluster-scoped v1 Namespaces (default, kube-system and kube-public exist).

Verbs: create (POST), get, list (``labelSelector``, ``fieldSelector``, ``limit``/``continue`` with
the real paging semantics: every page shows the objects as of the first page's resourceVersion, a
compacted continue token is 410 Expired, ``remainingItemCount`` only without selectors;
``resourceVersion`` with ``resourceVersionMatch`` Exact/NotOlderThan, and the options a real server
refuses refused the same way),
watch (``watch=true``, ``resourceVersion``, ``labelSelector``, ``fieldSelector``,
``timeoutSeconds``, ``allowWatchBookmarks``), replace (PUT, optimistic concurrency on
``metadata.resourceVersion``), patch (JSON merge patch; strategic merge patch is applied as a
JSON merge patch; JSON patch), delete (``propagationPolicy``; ``gracePeriodSeconds`` is
ignored; ``Foreground`` keeps a Job, with ``deletionTimestamp`` and the ``foregroundDeletion``
finalizer, until its pods have terminated gracefully (SIGTERM, SIGKILL after the grace period);
other deletions remove objects at once), deletecollection, ``dryRun=All``, the ``status``
subresource of Jobs and Pods, pod ``log`` (``follow``, ``tailLines``, ``limitBytes``, ``container``) and pod
``eviction``. Failures are ``Status`` objects with the reason and code a real server uses
(NotFound 404, AlreadyExists 409, Conflict 409, Invalid 422, BadRequest 400, Forbidden 403,
Unauthorized 401, MethodNotAllowed 405, UnsupportedMediaType 415, Gone 410 in watches).

Admission, as a real server does it (tests/kube/admission.py): bodies of built-in kinds are decoded
against the official client's models, so an unknown field is dropped with a ``Warning`` header
(``fieldValidation`` Warn, the default, or Ignore) or refused with 400 (Strict), and a value of the
wrong JSON type is refused with 400; a pod in a namespace labelled
``pod-security.kubernetes.io/enforce`` (baseline or restricted) that breaks that Pod Security
Standard is refused with 403 ``violates PodSecurity "restricted:latest": ...`` (a Job's pods
then show as FailedCreate events); an unlabelled namespace is privileged, a cluster's default.

Things a real server does that this one mirrors on purpose, because client code gets them
wrong: deleting a batch/v1 Job *without* ``propagationPolicy`` orphans its pods (the real
default for Jobs; the response carries the same ``Warning`` header); list items carry no
``kind``/``apiVersion``; zero counters in Job status (``active``, ``succeeded``, ``failed``)
are omitted; a finished Job has ``SuccessCriteriaMet``/``FailureTarget`` conditions before
``Complete``/``Failed``; a Job pod whose ServiceAccount does not exist is refused (403) and the
Job controller keeps retrying with ``FailedCreate`` events.

Scheduling and execution (``_Simulator``, one background thread): the Job controller creates
``<job>-<5 random lowercase letters>`` pods from ``spec.template`` (with the ``controller-uid``,
``job-name`` and ``batch.kubernetes.io/*`` labels and a controller ownerReference), honouring
``suspend``, ``parallelism``/``completions``, ``backoffLimit``, ``activeDeadlineSeconds``,
``ttlSecondsAfterFinished`` and ``podFailurePolicy`` (rules in order; FailJob/Ignore/Count;
``onExitCodes`` In/NotIn with ``containerName``, exit code 0 never matches; ``onPodConditions``);
it writes Events (SuccessfulCreate, FailedCreate, Completed, BackoffLimitExceeded, ...). The
scheduler binds pods FIFO to one node whose only finite capacity is ``gpus`` of
``gpu_resource``; a pod that does not fit stays Pending with PodScheduled=False/Unschedulable
("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.") and is retried whenever anything
changes. The kubelet runs each container as a local process in its own process group:
``container.command`` (else the image entrypoint from ``entrypoints``/``default_entrypoint``)
followed by ``container.args``, with ``$(VAR)`` references expanded as Kubernetes does. The
environment is the test process's environment plus ``env``/``envFrom`` (values, Secret and
ConfigMap keys, a few fieldRefs) and ``HOSTNAME``; a missing Secret/ConfigMap keeps the pod
Pending (CreateContainerConfigError, or ContainerCreating for volumes) until it appears.
Volumes become directories under the cluster's temporary root (``FakeCluster.root``): Secret
and ConfigMap volumes hold one file per key (``items``, ``defaultMode`` honoured), everything
else (emptyDir, and any other volume type) is an empty directory; a missing ``subPath`` is
created. Where bubblewrap works (``FakeCluster.sandboxed``), each container runs **under its
pod's securityContext** (tests/kube/sandbox.py): this machine's root read-only when
``readOnlyRootFilesystem``, only the pod's volumes writable at their real ``mountPath``s (plus
the directories given to ``FakeCluster.share``), the pod's ``runAsUser``/``runAsGroup``, no
capabilities; ``runAsNonRoot`` with uid 0 keeps the pod Pending with CreateContainerConfigError
as a kubelet does. Without bubblewrap, processes run as the test user with a writable
filesystem and cannot see the real mount paths, so **paths are mapped**: every env value,
command element and argument that equals a volumeMount's ``mountPath`` or starts with
``mountPath + "/"`` has that prefix rewritten to the volume's directory (``subPath`` honoured,
longest mountPath wins); ``workingDir`` is mapped the same way, and otherwise the process runs
in a fresh temporary directory. Pods that do not set ``automountServiceAccountToken: false`` get ``KUBECONFIG``
pointing at this server with their ServiceAccount's own token (standing in for in-cluster
configuration), and what that token may do is decided by RBAC (tests/kube/rbac.py: the Roles bound
to the ServiceAccount; 403 Forbidden otherwise); the others have ``KUBECONFIG`` removed. Clients
holding the cluster's ``token`` are not restricted. stdout and stderr together are the container log. Pod phases go
Pending -> Running -> Succeeded/Failed with containerStatuses (waiting/running/terminated with
exitCode and reason; a signal N reads as exit code 128+N; an argv that cannot be executed is
exit code 128, reason StartError); restartPolicy Always/OnFailure containers restart after a
short CrashLoopBackOff. Deleting a pod (directly or by cascade) removes it at once and sends its
process group SIGTERM, then SIGKILL after the grace period. ``FakeCluster.evict`` and the pod
``eviction`` subresource mark the pod DisruptionTarget=True (EvictionByEvictionAPI), kill it
and leave it Failed (it is not deleted), so a Job's Ignore rule can be seen to work.

Not implemented: ClusterRoles and ClusterRoleBindings (a binding to a ClusterRole grants nothing),
admission beyond the ServiceAccount check and Pod Security Admission, NetworkPolicy enforcement, the securityContext fields sandbox.py lists
as not modelled (all of it without bubblewrap), CPU/memory accounting and OOM kills, init and sidecar
containers, probes and readiness gates, indexed Jobs (treated as NonIndexed),
backoffLimitPerIndex, successPolicy, the Job controller's delay between failed pods, graceful
deletion other than Foreground cascades, finalizers other than foregroundDeletion, garbage collection of
objects whose owner never existed, log ``timestamps``/``sinceSeconds``/``sinceTime``/``stream``,
periodic watch bookmarks (one is sent when a watch with ``allowWatchBookmarks`` ends),
``sendInitialEvents``, server-side apply, strategic-merge list semantics, protobuf, table
output, and cluster-scoped resources other than Namespaces (which are never enforced: objects
may be created in a namespace that does not exist).
"""

from __future__ import annotations

import atexit
import base64
import collections
import copy
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Container, Iterable
from urllib.parse import parse_qs, urlsplit

from tests.kube import admission, rbac
from tests.kube import sandbox as sandbox_module


__all__ = ["FakeCluster", "ApiError", "parse_label_selector", "parse_quantity"]

JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name")


# ----------------------------------------------------------------------------------------------
# small helpers

def _image_paths() -> list[str]:
    """The directories a container's command runs from here: the interpreter's prefixes, every
    import path and this checkout (the stand-in for what an image holds)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [sys.prefix, sys.base_prefix, here, *sys.path]
    return sorted({os.path.realpath(p) for p in candidates if p and os.path.isdir(p)})


def now_rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float:
    s = s.replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()


def _clone(obj: Any) -> Any:
    return copy.deepcopy(obj)


def _meta(obj: dict) -> dict:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = obj["metadata"] = {}
    return m


_QTY_SUFFIX = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QTY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$")


def parse_quantity(q: Any) -> float:
    """A Kubernetes resource quantity ("500m", "4Gi", 2, "1e3") as a float; ValueError if malformed."""
    if isinstance(q, bool):
        raise ValueError(q)
    if isinstance(q, (int, float)):
        return float(q)
    m = _QTY_RE.match(str(q).strip())
    if not m:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exp, suffix = m.groups()
    value = float(number)
    if exp:
        return value * 10 ** int(exp[1:])
    return value * _QTY_SUFFIX[suffix or ""]


# ----------------------------------------------------------------------------------------------
# errors as Status objects


class ApiError(Exception):
    """An error the server answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            s["details"] = self.details
        return s


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise _bad_request(f"invalid resource version: {text}")
    return value


def _invalid_list_options(errors: list[tuple[str, str, str]]) -> ApiError:
    texts = [f"{f}: {m}" for f, _, m in errors]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {summary}',
                    {"group": "meta.k8s.io", "kind": "ListOptions",
                     "causes": [{"reason": r, "message": m, "field": f} for f, r, m in errors]})


def _check_list_options(resource_version: str, match: str, continue_token: str) -> None:
    """What a real server refuses in a list's options (apimachinery's ListOptions validation and
    the storage layer's continue check)."""
    errors = []
    if match:
        if not resource_version:
            errors.append(("resourceVersionMatch", "FieldValueForbidden",
                           "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if continue_token:
            errors.append(("resourceVersionMatch", "FieldValueForbidden",
                           "Forbidden: resourceVersionMatch is forbidden when continue is provided"))
        if match not in ("Exact", "NotOlderThan"):
            errors.append(("resourceVersionMatch", "FieldValueNotSupported",
                           f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan", ""'))
        if match == "Exact" and resource_version == "0":
            errors.append(("resourceVersionMatch", "FieldValueForbidden",
                           'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if errors:
        raise _invalid_list_options(errors)
    if continue_token and resource_version not in ("", "0"):
        raise _bad_request("specifying resource version is not allowed when using continue")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    has_status: bool = False
    name_rule: str = "subdomain"  # subdomain | label | path
    custom: bool = False  # served from a CustomResourceDefinition

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:  # "jobs.batch", "pods"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:  # "Job.batch", "Pod"
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.group_resource} "{name}" not found',
                        {"name": name, "group": self.group, "kind": self.plural})

    def already_exists(self, name: str) -> ApiError:
        return ApiError(409, "AlreadyExists", f'{self.group_resource} "{name}" already exists',
                        {"name": name, "group": self.group, "kind": self.plural})

    def conflict(self, name: str) -> ApiError:
        return ApiError(409, "Conflict",
                        f'Operation cannot be fulfilled on {self.group_resource} "{name}": the object has been '
                        "modified; please apply your changes to the latest version and try again",
                        {"name": name, "group": self.group, "kind": self.plural})

    def invalid(self, name: str, errors: list[tuple[str, str, str]]) -> ApiError:
        """errors: (field, cause reason, message without the field)."""
        texts = [f"{f}: {m}" for f, _, m in errors]
        summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        return ApiError(422, "Invalid", f'{self.group_kind} "{name}" is invalid: {summary}',
                        {"name": name, "group": self.group, "kind": self.kind,
                         "causes": [{"reason": r, "message": m, "field": f} for f, r, m in errors]})


RESOURCES = [
    Resource("batch", "v1", "jobs", "Job", has_status=True, name_rule="label"),
    Resource("", "v1", "pods", "Pod", has_status=True),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "events", "Event"),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, name_rule="label"),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", name_rule="path"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", name_rule="path"),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    Resource("kueue.x-k8s.io", "v1beta1", "workloads", "Workload", has_status=True, custom=True),
    Resource("kueue.x-k8s.io", "v1beta1", "localqueues", "LocalQueue", has_status=True, custom=True),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_PLURAL = {r.plural: r for r in RESOURCES}
JOBS, PODS, SECRETS, CONFIGMAPS, SERVICEACCOUNTS, EVENTS, NAMESPACES, WORKLOADS, LOCALQUEUES = (
    BY_PLURAL[p] for p in ("jobs", "pods", "secrets", "configmaps", "serviceaccounts", "events", "namespaces",
                           "workloads", "localqueues"))
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


# ----------------------------------------------------------------------------------------------
# selectors

_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_NAME_RE = re.compile(rf"^{_LABEL_NAME}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), with at most 63 characters")
    return None


def _label_value_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME_RE.match(value)):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character, with at most 63 characters")
    return None


_SEL_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=<>]+|<|>)")


def parse_label_selector(text: str) -> Callable[[dict], bool]:
    """A label selector string as a predicate over a label dict. Raises ApiError(400) if malformed."""
    tokens: list[str] = []
    pos = 0
    text = text or ""
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _SEL_TOKEN.match(text, pos)
        if not m:
            raise _bad_request(f"unable to parse requirement: invalid label selector {text!r}")
        tokens.append(m.group(1))
        pos = m.end()
    reqs: list[Callable[[dict], bool]] = []
    i = 0

    def fail(msg: str) -> ApiError:
        return _bad_request(f"unable to parse requirement: {msg} in label selector {text!r}")

    def key_at(j: int) -> str:
        if j >= len(tokens) or tokens[j] in ("(", ")", ",", "=", "==", "!=", "!", "<", ">"):
            raise fail("expected a key")
        err = _label_key_error(tokens[j])
        if err:
            raise fail(f"invalid label key {tokens[j]!r}: {err}")
        return tokens[j]

    while i < len(tokens):
        if tokens[i] == "!":
            k = key_at(i + 1)
            reqs.append(lambda lb, k=k: k not in lb)
            i += 2
        else:
            k = key_at(i)
            i += 1
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                reqs.append(lambda lb, k=k: k in lb)
            elif op in ("=", "==", "!="):
                i += 1
                v = tokens[i] if i < len(tokens) and tokens[i] not in (",", "(", ")") else ""
                if v:
                    i += 1
                if _label_value_error(v):
                    raise fail(f"invalid label value {v!r}")
                if op == "!=":
                    reqs.append(lambda lb, k=k, v=v: lb.get(k) != v)
                else:
                    reqs.append(lambda lb, k=k, v=v: k in lb and lb[k] == v)
            elif op in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail("expected '('")
                i += 1
                values: set[str] = set()
                while True:
                    if i >= len(tokens):
                        raise fail("expected ')'")
                    t = tokens[i]
                    if t == ")":
                        i += 1
                        break
                    if t == ",":
                        i += 1
                        continue
                    values.add(t)
                    i += 1
                if op == "in":
                    if not values:
                        raise fail("for 'in', 'notin' operators, values set can't be empty")
                    reqs.append(lambda lb, k=k, vs=values: lb.get(k) in vs)
                else:
                    reqs.append(lambda lb, k=k, vs=values: lb.get(k) not in vs)
            elif op in ("<", ">"):
                i += 1
                try:
                    n = int(tokens[i])
                except (IndexError, ValueError):
                    raise fail("for 'Gt', 'Lt' operators, the value must be an integer") from None
                i += 1

                def cmp(lb: dict, k: str = k, n: int = n, op: str = op) -> bool:
                    try:
                        x = int(lb[k])
                    except (KeyError, ValueError):
                        return False
                    return x > n if op == ">" else x < n

                reqs.append(cmp)
            else:
                raise fail(f"found '{op}', expected: '=', '!=', '==', 'in', notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise fail("found 'end of string', expected: identifier")
    return lambda labels: all(r(labels or {}) for r in reqs)


_FIELDS = {
    None: {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")},
    "pods": {"status.phase": ("status", "phase"), "spec.nodeName": ("spec", "nodeName"),
             "spec.restartPolicy": ("spec", "restartPolicy"), "spec.serviceAccountName": ("spec", "serviceAccountName")},
    "jobs": {"status.successful": ("status", "succeeded")},
    "secrets": {"type": ("type",)},
    "events": {"involvedObject.name": ("involvedObject", "name"), "involvedObject.kind": ("involvedObject", "kind"),
               "involvedObject.uid": ("involvedObject", "uid"), "reason": ("reason",), "type": ("type",)},
}


def parse_field_selector(text: str, res: Resource) -> Callable[[dict], bool]:
    reqs = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise _bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        path = _FIELDS[None].get(field) or _FIELDS.get(res.plural, {}).get(field)
        if path is None:
            raise _bad_request(f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"')

        def get(obj: dict, path: tuple = path) -> str:
            cur: Any = obj
            for p in path:
                cur = cur.get(p) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        if op == "!=":
            reqs.append(lambda o, g=get, v=value: g(o) != v)
        else:
            reqs.append(lambda o, g=get, v=value: g(o) == v)
    return lambda obj: all(r(obj) for r in reqs)


# ----------------------------------------------------------------------------------------------
# patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return _clone(patch)
    result = _clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise _bad_request("json patch must be a list of operations")
    doc = _clone(doc)

    def parent(d: Any, parts: list[str]) -> tuple[Any, str]:
        if not parts:
            raise _bad_request("cannot operate on the document root")
        cur = d
        for p in parts[:-1]:
            try:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None
        return cur, parts[-1]

    def get(d: Any, parts: list[str]) -> Any:
        cur = d
        for p in parts:
            try:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None
        return cur

    def remove(d: Any, parts: list[str]) -> Any:
        c, k = parent(d, parts)
        try:
            return c.pop(int(k)) if isinstance(c, list) else c.pop(k)
        except (KeyError, IndexError, ValueError):
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None

    def add(d: Any, parts: list[str], value: Any) -> None:
        c, k = parent(d, parts)
        if isinstance(c, list):
            c.insert(len(c) if k == "-" else int(k), value)
        elif isinstance(c, dict):
            c[k] = value
        else:
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}")

    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            add(doc, parts, _clone(op.get("value")))
        elif kind == "remove":
            remove(doc, parts)
        elif kind == "replace":
            remove(doc, parts)
            add(doc, parts, _clone(op.get("value")))
        elif kind == "move":
            add(doc, parts, remove(doc, _pointer(op.get("from", ""))))
        elif kind == "copy":
            add(doc, parts, _clone(get(doc, _pointer(op.get("from", "")))))
        elif kind == "test":
            if get(doc, parts) != op.get("value"):
                raise ApiError(422, "Invalid", f"testing value /{'/'.join(parts)} failed")
        else:
            raise _bad_request(f"Unexpected kind: {kind}")
    return doc


# ----------------------------------------------------------------------------------------------
# validation and defaulting (a subset of what kube-apiserver checks; enough to catch the
# mistakes a manifest renderer makes)

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


# ----------------------------------------------------------------------------------------------
# storage: one ordered map per resource, a global resourceVersion and the event history


def _random_suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or [])


PSA_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
"""A namespace's Pod Security Admission level (privileged, baseline, restricted); without it,
privileged, as on a cluster without an admission configuration."""


class Store:
    """Objects, resourceVersions and watch events. All public methods raise ApiError."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r.plural: {} for r in RESOURCES}
        self.rv = 100
        self.events: list[tuple[int, str, str, dict, dict | None]] = []  # (rv, type, plural, object, old object)
        self.compacted_rv = 0
        self.max_events = 200_000
        self.created: dict[str, int] = {}  # uid -> resourceVersion at creation (creation order)
        # called under the lock after every change: (event type, resource, object, old object)
        self.listeners: list[Callable[[str, Resource, dict, dict | None], None]] = []
        self.closed = False
        self.kueue_webhook = False  # FakeCluster(kueue_webhook=True)

    # -- internals ------------------------------------------------------------------------------

    def _emit(self, etype: str, res: Resource, obj: dict, old: dict | None) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), etype, res.plural, obj, old))
        if len(self.events) > self.max_events:  # keep the newest half; older resourceVersions get 410 Expired
            drop = len(self.events) // 2
            self.compacted_rv = self.events[drop - 1][0]
            del self.events[:drop]
        for listener in self.listeners:
            listener(etype, res, obj, old)
        self.cond.notify_all()

    def _key(self, res: Resource, ns: str | None, name: str) -> tuple[str, str]:
        return ((ns or "") if res.namespaced else "", name)

    def _current(self, res: Resource, ns: str | None, name: str) -> dict:
        obj = self.objects[res.plural].get(self._key(res, ns, name))
        if obj is None:
            raise res.not_found(name)
        return obj

    def _commit(self, res: Resource, obj: dict, old: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[res.plural][self._key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        if old is None:
            self.created[obj["metadata"]["uid"]] = self.rv
        self._emit("ADDED" if old is None else "MODIFIED", res, obj, old)
        return _clone(obj)

    # -- verbs ----------------------------------------------------------------------------------

    def create(self, res: Resource, ns: str | None, body: Any, dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                               "the body is not a JSON object")
        obj = _clone(body)
        if obj.get("kind") not in (None, "", res.kind):
            raise _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                               f"the kind in the body ({obj.get('kind')}) is not {res.kind}")
        meta = _meta(obj)
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        _type_check(obj, res)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "selfLink"):
            meta.pop(k, None)
        if res.has_status:
            obj["status"] = {}
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                base = meta["generateName"][:58]
                for _ in range(100):
                    meta["name"] = base + _random_suffix()
                    if self._key(res, ns, meta["name"]) not in self.objects[res.plural]:
                        break
            _prepare(res, obj)
            if res is JOBS and self.kueue_webhook and KUEUE_QUEUE_LABEL in (meta.get("labels") or {}):
                obj["spec"]["suspend"] = True  # as Kueue's mutating webhook does: it admits the Job later
            meta["uid"] = str(uuid.uuid4())
            errors = _validate(res, obj, None)
            if res is JOBS and not errors:
                errors = self._job_selector(obj)
            if errors:
                raise res.invalid(meta.get("name") or "", errors)
            if self._key(res, ns, meta["name"]) in self.objects[res.plural]:
                raise res.already_exists(meta["name"])
            if res is PODS:
                self._admit_pod(obj)
            meta["creationTimestamp"] = now_rfc3339()
            if isinstance(obj.get("spec"), dict):
                meta["generation"] = 1
            if dry_run:
                return _clone(obj)
            return self._commit(res, obj, None)

    def _job_selector(self, job: dict) -> list[Err]:
        meta, spec = job["metadata"], job["spec"]
        if spec.get("manualSelector"):
            if not spec.get("selector"):
                return [_required("spec.selector")]
            return []
        if spec.get("selector"):
            return [_invalid("spec.selector", spec["selector"], "`selector` will be auto-generated")]
        uid, name = meta["uid"], meta["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template_meta = spec["template"].setdefault("metadata", {})
        labels = template_meta.setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
        return []

    def rules_for(self, ns: str, sa_ns: str, sa: str) -> list[dict]:
        """The rules of every Role in ``ns`` bound to the ServiceAccount ``sa_ns/sa``."""
        with self.lock:
            rules: list[dict] = []
            for (binding_ns, _), binding in self.objects["rolebindings"].items():
                if binding_ns != ns or not any(
                        s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == sa_ns
                        for s in binding.get("subjects") or []):
                    continue
                ref = binding.get("roleRef") or {}
                role = self.objects["roles"].get((ns, ref.get("name", ""))) if ref.get("kind") == "Role" else None
                rules += (role or {}).get("rules") or []
            return rules

    def _admit_pod(self, pod: dict) -> None:
        sa = pod["spec"].get("serviceAccountName") or "default"
        ns = pod["metadata"]["namespace"]
        namespace = self.objects["namespaces"].get(("", ns))
        level = ((namespace or {}).get("metadata", {}).get("labels") or {}).get(PSA_ENFORCE_LABEL, "privileged")
        violations = admission.pod_security_violations(pod, level)
        if violations:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"]["name"]}" is forbidden: violates PodSecurity '
                           f'"{level}:latest": {", ".join(violations)}', {"name": pod["metadata"]["name"], "kind": "pods"})
        if sa != "default" and (ns, sa) not in self.objects["serviceaccounts"]:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"]["name"]}" is forbidden: error looking up service '
                           f'account {ns}/{sa}: serviceaccount "{sa}" not found',
                           {"name": pod["metadata"]["name"], "kind": "pods"})

    def get(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            return _clone(self._current(res, ns, name))

    def list(self, res: Resource, ns: str | None, label_selector: str = "", field_selector: str = "",
             limit: int = 0, continue_token: str = "", resource_version: str = "",
             resource_version_match: str = "") -> tuple[list[dict], dict]:
        """A list as a real server answers it: every page of a paginated list (``limit``, then the
        ``continue`` token) shows the objects as they were at the first page's resourceVersion (an
        etcd snapshot), and a token whose resourceVersion was compacted away is 410 Expired."""
        lmatch = parse_label_selector(label_selector)
        fmatch = parse_field_selector(field_selector, res)
        _check_list_options(resource_version, resource_version_match, continue_token)
        if limit < 0:
            raise _invalid_list_options([_invalid("limit", limit, "must be greater than or equal to 0")])
        start: tuple[str, str] | None = None
        with self.lock:
            if continue_token:
                snapshot, start = self._decode_continue(continue_token)
                if snapshot < self.compacted_rv:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                   "list result. You can start a new list without the continue parameter.")
            elif resource_version_match == "Exact":
                snapshot = _parse_rv(resource_version)
                if snapshot < self.compacted_rv:
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
                if snapshot > self.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {snapshot}, current: {self.rv}")
            else:
                if resource_version not in ("", "0") and _parse_rv(resource_version) > self.rv:
                    raise ApiError(504, "Timeout",
                                   f"Too large resource version: {resource_version}, current: {self.rv}")
                snapshot = self.rv
            objects = self._objects_at(res, snapshot)
            items = [o for k, o in sorted(objects.items())
                     if (ns is None or not res.namespaced or k[0] == ns) and (start is None or k > start)
                     and lmatch(o["metadata"].get("labels") or {}) and fmatch(o)]
            meta: dict[str, Any] = {"resourceVersion": str(snapshot)}
            if limit and len(items) > limit:
                last = items[limit - 1]["metadata"]
                meta["continue"] = base64.b64encode(json.dumps(
                    {"v": "meta.k8s.io/v1", "rv": snapshot,
                     "start": [last.get("namespace", "") if res.namespaced else "", last["name"]]}).encode()).decode()
                if not label_selector and not field_selector:  # a real server cannot count what a selector keeps
                    meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            out = []
            for o in items:
                o = _clone(o)
                if not res.custom:  # built-in list items carry no kind/apiVersion; custom resources keep theirs
                    o.pop("kind", None)
                    o.pop("apiVersion", None)
                out.append(o)
            return out, meta

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
        try:
            decoded = json.loads(base64.b64decode(token, validate=True))
            return int(decoded["rv"]), (str(decoded["start"][0]), str(decoded["start"][1]))
        except (ValueError, KeyError, TypeError, IndexError):
            raise _bad_request("invalid continue token: continue key is not valid: incorrect encoded start "
                               "resourceVersion (version meta.k8s.io/v1)") from None

    def _objects_at(self, res: Resource, rv: int) -> dict[tuple[str, str], dict]:
        """The objects of ``res`` as they were at resourceVersion ``rv`` (the current ones undone
        event by event, newest first); call under the lock, with ``rv`` not compacted."""
        current = self.objects[res.plural]
        if rv >= self.rv:
            return current
        objects = dict(current)
        for _, etype, plural, obj, old in reversed(self.events_after(rv)):
            if plural != res.plural:
                continue
            key = self._key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if etype == "ADDED":
                objects.pop(key, None)
            elif old is not None:
                objects[key] = old
        return objects

    def replace(self, res: Resource, ns: str | None, name: str, body: Any, subresource: str | None = None,
                dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise _bad_request("the body is not a JSON object")
        obj = _clone(body)
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise _bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if res.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        _type_check(obj, res)
        with self.lock:
            old = self._current(res, ns, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise res.conflict(name)
            return self._update(res, old, obj, subresource, dry_run)

    def patch(self, res: Resource, ns: str | None, name: str, content_type: str, patch: Any,
              subresource: str | None = None, dry_run: bool = False) -> dict:
        ctype = (content_type or "").split(";")[0].strip()
        with self.lock:
            old = self._current(res, ns, name)
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(patch, dict):
                    raise _bad_request("the body of a merge patch must be a JSON object")
                new = merge_patch(old, patch)
            elif ctype == "application/json-patch+json":
                new = json_patch(old, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/strategic-merge-patch+json")
            _type_check(new, res)
            meta = _meta(new)
            if meta.get("name") != name:
                raise _bad_request("metadata.name: the name of the object cannot be changed by a patch")
            if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise res.conflict(name)
            return self._update(res, old, new, subresource, dry_run)

    def _update(self, res: Resource, old: dict, obj: dict, subresource: str | None, dry_run: bool) -> dict:
        if subresource == "status":
            new = _clone(old)
            new["status"] = obj.get("status") or {}
        else:
            new = obj
            meta, old_meta = _meta(new), old["metadata"]
            for k in ("uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            if res.has_status:
                new["status"] = _clone(old.get("status") or {})
            if res is SECRETS or res is NAMESPACES:
                _prepare(res, new)
            elif res is JOBS and isinstance(new.get("spec"), dict):
                _prepare(res, new)
            elif res is PODS and isinstance(new.get("spec"), dict):
                _default_pod_spec(new["spec"])
            if isinstance(new.get("spec"), dict) and new.get("spec") != old.get("spec"):
                meta["generation"] = int(old_meta.get("generation") or 0) + 1
        errors = _validate(res, new, old)
        if errors:
            raise res.invalid(new["metadata"]["name"], errors)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old or dry_run:
            return _clone(new)
        return self._commit(res, new, old)

    def delete(self, res: Resource, ns: str | None, name: str, propagation: str | None = None,
               dry_run: bool = False, preconditions: dict | None = None) -> tuple[dict, list[str]]:
        """Delete at once. Returns (the deleted object, warnings)."""
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise _bad_request(f'Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"')
        warnings = []
        if propagation is None and res is JOBS:
            propagation = "Orphan"  # the real default for batch/v1 Jobs
            warnings.append("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                            "to remove them or set propagationPolicy=Orphan to suppress this warning")
        with self.lock:
            obj = self._current(res, ns, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                               f"meta: {obj['metadata']['uid']}", {"name": name, "group": res.group, "kind": res.plural})
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: "
                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                               f"{obj['metadata']['resourceVersion']}", {"name": name, "group": res.group, "kind": res.plural})
            if dry_run:
                out = _clone(obj)
                out["metadata"]["deletionTimestamp"] = now_rfc3339()
                return out, warnings
            if obj["metadata"].get("deletionTimestamp"):
                return _clone(obj), warnings  # already being deleted (Foreground): it goes when that ends
            return self._delete(res, obj, propagation or "Background"), warnings

    def _delete_foreground(self, res: Resource, obj: dict) -> dict | None:
        """Foreground deletion of an owner: it stays, with a deletionTimestamp and the foregroundDeletion
        finalizer, while its pods terminate gracefully (each stays, marked, until its processes have
        exited: _Simulator._finish_deletions); then it goes. None when it owns nothing (it goes at once)."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        owned = [(dres, dep) for dres in RESOURCES if dres.namespaced
                 for dkey, dep in list(self.objects[dres.plural].items())
                 if dkey[0] == ns and _owned_by(dep, meta["uid"])]
        if not owned:
            return None
        marked = _clone(obj)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
        self._commit(res, marked, obj)
        for dres, dep in owned:
            if dres is PODS and not dep["metadata"].get("deletionTimestamp"):
                terminating = _clone(dep)
                terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
                self._commit(PODS, terminating, dep)
            elif dres is not PODS:
                self._delete(dres, dep, "Background")
        return _clone(marked)

    def _delete(self, res: Resource, obj: dict, propagation: str) -> dict:
        meta = obj["metadata"]
        key = self._key(res, meta.get("namespace"), meta["name"])
        if self.objects[res.plural].get(key) is not obj:
            return _clone(obj)  # already gone (cascades can meet the same object twice)
        if propagation == "Foreground" and res is not PODS:
            marked = self._delete_foreground(res, obj)
            if marked is not None:
                return marked
        del self.objects[res.plural][key]
        self.rv += 1
        gone = _clone(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        gone["metadata"].setdefault("deletionTimestamp", now_rfc3339())
        self.created.pop(meta["uid"], None)
        self._emit("DELETED", res, gone, obj)
        uid, ns = meta["uid"], meta.get("namespace")
        for dres in RESOURCES:
            for dkey, dep in list(self.objects[dres.plural].items()):
                if res is NAMESPACES and dres.namespaced and dkey[0] == meta["name"]:
                    self._delete(dres, dep, "Background")
                elif dres.namespaced and dkey[0] == (ns or "") and _owned_by(dep, uid):
                    if propagation == "Orphan":
                        new = _clone(dep)
                        refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
                        if refs:
                            new["metadata"]["ownerReferences"] = refs
                        else:
                            del new["metadata"]["ownerReferences"]
                        self._commit(dres, new, dep)
                    else:
                        self._delete(dres, dep, "Background")
        return gone

    def delete_collection(self, res: Resource, ns: str | None, label_selector: str = "", field_selector: str = "",
                          propagation: str | None = None, dry_run: bool = False) -> tuple[list[dict], list[str]]:
        items, _ = self.list(res, ns, label_selector, field_selector)
        out, warnings = [], []
        for item in items:
            try:
                gone, w = self.delete(res, item["metadata"].get("namespace"), item["metadata"]["name"], propagation, dry_run)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            out.append(gone)
            warnings = w
        return out, warnings

    # -- for the simulated controllers (no validation, no dry run) -------------------------------

    def mutate(self, res: Resource, ns: str | None, name: str, fn: Callable[[dict], None]) -> dict | None:
        """Apply fn to a copy of the object and store it if it changed; None if the object is gone."""
        with self.lock:
            old = self.objects[res.plural].get(self._key(res, ns, name))
            if old is None:
                return None
            new = _clone(old)
            fn(new)
            if new == old:
                return old
            self._commit(res, new, old)
            return self.objects[res.plural][self._key(res, ns, name)]

    def all(self, res: Resource, ns: str | None = None) -> list[dict]:
        """The stored objects themselves (never mutate them), oldest first."""
        with self.lock:
            objs = [o for k, o in self.objects[res.plural].items() if ns is None or k[0] == ns]
        return sorted(objs, key=lambda o: self.created.get(o["metadata"]["uid"], 0))

    def events_after(self, rv: int) -> list[tuple[int, str, str, dict, dict | None]]:
        import bisect
        i = bisect.bisect_right(self.events, rv, key=lambda e: e[0])
        return self.events[i:]


# ----------------------------------------------------------------------------------------------
# HTTP

KUBE_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
                "compiler": "gc", "platform": "linux/amd64"}
MAX_BODY = 3 * 1024 * 1024
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _group_versions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def _api_resource_list(group: str, version: str) -> dict | None:
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rs:
        return None
    resources = []
    for r in rs:
        resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                          "kind": r.kind, "verbs": _VERBS})
        if r.has_status:
            resources.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": ["get", "patch", "update"]})
    if group == "" and version == "v1":
        resources += [{"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
                      {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                       "version": "v1", "kind": "Eviction", "verbs": ["create"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, cluster: "FakeCluster") -> None:
        self.cluster = cluster
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.conn_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request):  # type: ignore[override]
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1.31"
    server: _HTTPServer
    service_account: tuple[str, str] | None = None  # the request's ServiceAccount (namespace, name), if any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        self.server.cluster.request_log.append(format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    break
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
            data = self.rfile.read(length) if length else b""
        if len(data) > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
        return data

    def send_json(self, code: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.server.cluster._count_bytes(len(data))

    def send_text(self, code: int, text: str | bytes, ctype: str = "text/plain") -> None:
        data = text.encode() if isinstance(text, str) else text
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.cluster._count_bytes(len(data))

    def start_chunked(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            self.server.cluster._count_bytes(len(data))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _handle(self, method: str) -> None:
        cluster = self.server.cluster
        cluster._count_request(method, self.path)
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            body = self._read_body()
            public = url.path.rstrip("/") in ("/version", "/healthz", "/livez", "/readyz")
            auth = self.headers.get("Authorization") or ""
            self.service_account = cluster.service_account_tokens.get(auth[len("Bearer "):]) \
                if auth.startswith("Bearer ") else None
            if self.service_account is None and cluster.token and not public and auth != f"Bearer {cluster.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._route(method, url.path, query, body)
        except ApiError as exc:
            self._safe_error(exc)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: answer 500 and keep it visible to the test
            import traceback

            cluster.errors.append(traceback.format_exc())
            self._safe_error(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}"))

    def _safe_error(self, exc: ApiError) -> None:
        try:
            self.send_json(exc.code, exc.status())
        except OSError:
            self.close_connection = True

    def _json_body(self, body: bytes) -> Any:
        if not body:
            raise _bad_request("the request body is empty")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise _bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None

    # -- routing --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict[str, str], body: bytes) -> None:
        cluster = self.server.cluster
        store = cluster.store
        parts = [p for p in path.split("/") if p]
        not_found = ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if method == "GET":
            if parts == ["version"]:
                return self.send_json(200, KUBE_VERSION)
            if parts in (["healthz"], ["livez"], ["readyz"]):
                return self.send_text(200, "ok")
            if parts == ["api"]:
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{cluster.port}"}]})
            if parts == ["apis"]:
                return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                     "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                    for g, vs in _group_versions().items()]})
            if len(parts) == 2 and parts[0] == "apis" and parts[1] in _group_versions():
                vs = _group_versions()[parts[1]]
                return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                            "versions": [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in vs],
                                            "preferredVersion": {"groupVersion": f"{parts[1]}/{vs[0]}", "version": vs[0]}})
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found
        if not rest:
            listing = _api_resource_list(group, version)
            if listing is None or method != "GET":
                raise not_found
            return self.send_json(200, listing)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        res = BY_PATH.get((group, version, rest[0]))
        if res is None or (ns is not None and not res.namespaced):
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if res.namespaced and ns is None and (name is not None or method not in ("GET",)):
            raise not_found
        dry_run = self._dry_run(q, body if method == "DELETE" else b"")
        watching = watch_path or (method == "GET" and name is None and q.get("watch") in ("true", "1"))
        if self.service_account is not None:
            self._authorize(res, ns, name, sub, rbac.verb_of(method, name, watching))
        if watching:
            if method != "GET" or sub is not None:
                raise not_found
            if name is not None:
                q = dict(q, fieldSelector=",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={name}"])))
            return self._watch(res, ns, q)
        if name is None:
            if method == "GET":
                try:
                    limit = int(q.get("limit") or 0)
                except ValueError:
                    raise _bad_request(f"limit: invalid value {q['limit']!r}") from None
                items, meta = store.list(res, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""), limit,
                                         q.get("continue", ""), q.get("resourceVersion", ""),
                                         q.get("resourceVersionMatch", ""))
                return self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                            "metadata": meta, "items": items})
            if method == "POST":
                decoded, warnings = self._decode(res, self._json_body(body), q)
                obj = store.create(res, ns, decoded, dry_run)
                return self.send_json(201, obj, self._warning_headers(warnings))
            if method == "DELETE":
                opts = self._delete_options(q, body)
                gone, warnings = store.delete_collection(res, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""),
                                                         opts.get("propagationPolicy"), dry_run)
                return self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                            "metadata": {"resourceVersion": str(store.rv)}, "items": gone},
                                      self._warning_headers(warnings))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if sub is None or (sub == "status" and res.has_status):
            if method == "GET":
                return self.send_json(200, store.get(res, ns, name))
            if method == "PUT":
                decoded, warnings = self._decode(res, self._json_body(body), q)
                return self.send_json(200, store.replace(res, ns, name, decoded, sub, dry_run),
                                      self._warning_headers(warnings))
            if method == "PATCH":
                patch, warnings = self._json_body(body), []
                if isinstance(patch, dict):  # a merge patch is a partial object of the kind
                    patch, warnings = self._decode(res, patch, q)
                return self.send_json(200, store.patch(res, ns, name, self.headers.get("Content-Type", ""),
                                                       patch, sub, dry_run), self._warning_headers(warnings))
            if method == "DELETE" and sub is None:
                opts = self._delete_options(q, body)
                gone, warnings = store.delete(res, ns, name, opts.get("propagationPolicy"), dry_run,
                                              opts.get("preconditions"))
                if res is PODS:
                    return self.send_json(200, gone, self._warning_headers(warnings))
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                            "details": {"name": name, "group": res.group, "kind": res.plural,
                                                        "uid": gone["metadata"]["uid"]}},
                                      self._warning_headers(warnings))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if res is PODS and sub == "log" and method == "GET":
            return cluster._serve_log(self, ns or "", name, q)
        if res is PODS and sub == "eviction" and method == "POST":
            store.get(res, ns, name)
            cluster._evict(ns or "", name, wait=False)
            return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "code": 201})
        raise not_found

    def _authorize(self, res: Resource, ns: str | None, name: str | None, sub: str | None, verb: str) -> None:
        """A ServiceAccount's request is allowed only by the rules of the Roles bound to it (RBAC)."""
        sa_ns, sa = self.service_account
        resource = f"{res.plural}/{sub}" if sub else res.plural
        rules = self.server.cluster.store.rules_for(ns, sa_ns, sa) if ns is not None else []
        if not rbac.permits(rules, verb, res.group, resource, name):
            raise ApiError(403, "Forbidden", rbac.forbidden_message(
                f"system:serviceaccount:{sa_ns}:{sa}", verb, res.group, resource, name, ns, res.plural),
                {"name": name or "", "group": res.group, "kind": res.plural})

    @staticmethod
    def _decode(res: Resource, body: Any, q: dict[str, str]) -> tuple[Any, list[str]]:
        """The body as the server's decoder leaves it: wrong JSON types refused; unknown fields refused
        under ``fieldValidation=Strict``, else dropped (with a warning under Warn, the default)."""
        mode = q.get("fieldValidation") or "Warn"
        if mode not in ("Ignore", "Warn", "Strict"):
            raise _bad_request(f'fieldValidation parameter unsupported: "{mode}"; supported values: '
                               '"Ignore", "Warn", "Strict"')
        if not isinstance(body, dict):
            return body, []
        decoded, unknown, errors = admission.decode(res.kind, body)
        handled = f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
        if errors:
            raise _bad_request(handled + errors[0])
        if unknown and mode == "Strict":
            raise _bad_request(handled + "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        return decoded, [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []

    @staticmethod
    def _warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
        def quoted(text: str) -> str:  # an RFC 7230 quoted-string, as the server writes it
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return [("Warning", f"299 - {quoted(w)}") for w in warnings]

    def _dry_run(self, q: dict[str, str], body: bytes) -> bool:
        values = [q["dryRun"]] if "dryRun" in q else []
        if body:
            try:
                values += json.loads(body).get("dryRun") or []
            except (ValueError, AttributeError):
                pass
        for v in values:
            if v != "All":
                raise _bad_request(f'Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def _delete_options(self, q: dict[str, str], body: bytes) -> dict:
        opts: dict = {}
        if body:
            try:
                opts = json.loads(body) or {}
            except ValueError:
                raise _bad_request("the body of a DeleteOptions request could not be decoded") from None
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        orphan = q.get("orphanDependents", opts.get("orphanDependents"))
        if orphan is not None and not opts.get("propagationPolicy"):
            opts["propagationPolicy"] = "Orphan" if str(orphan).lower() == "true" else "Background"
        return opts

    # -- watch ----------------------------------------------------------------------------------

    def _watch(self, res: Resource, ns: str | None, q: dict[str, str]) -> None:
        cluster = self.server.cluster
        store = cluster.store
        lmatch = parse_label_selector(q.get("labelSelector", ""))
        fmatch = parse_field_selector(q.get("fieldSelector", ""), res)
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else random.uniform(1800, 3600)
        deadline = time.monotonic() + timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv_param = q.get("resourceVersion", "")

        def matches(o: dict | None) -> bool:
            if o is None:
                return False
            m = o["metadata"]
            return ((ns is None or m.get("namespace") == ns) and lmatch(m.get("labels") or {}) and fmatch(o))

        expired = False
        with store.lock:
            if rv_param in ("", "0"):
                initial = [o for _, o in sorted(store.objects[res.plural].items()) if matches(o)]
                cursor = store.rv
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    raise _bad_request(f"invalid resource version: {rv_param}") from None
                initial = []
                expired = cursor < store.compacted_rv
        self.close_connection = True
        self.start_chunked("application/json")

        def send(etype: str, obj: dict) -> None:
            self.chunk(json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n")

        try:
            if expired:
                send("ERROR", ApiError(410, "Expired", f"too old resource version: {cursor} ({store.compacted_rv})").status())
                return self.end_chunked()
            for o in initial:
                send("ADDED", o)
            while not store.closed and not cluster._stopping:
                with store.cond:
                    events = store.events_after(cursor)
                    if not events:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.cond.wait(min(remaining, 0.5))
                        events = store.events_after(cursor)
                for rv, etype, plural, obj, old in events:
                    cursor = rv
                    if plural != res.plural:
                        continue
                    if etype == "ADDED" and matches(obj):
                        send("ADDED", obj)
                    elif etype == "MODIFIED":
                        now_m, was_m = matches(obj), matches(old)
                        if now_m:
                            send("MODIFIED" if was_m else "ADDED", obj)
                        elif was_m:
                            send("DELETED", obj)
                    elif etype == "DELETED" and matches(obj):
                        send("DELETED", obj)
                if time.monotonic() >= deadline:
                    break
            if bookmarks:
                send("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": str(cursor)}})
            self.end_chunked()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# the cluster


class FakeCluster:
    """A Kubernetes API server on 127.0.0.1 with a simulated Job controller, scheduler and kubelet.

    ``FakeCluster(gpus=0, gpu_resource="nvidia.com/gpu", entrypoints=None, default_entrypoint=None,
    token="fake-token", node_name="fake-node", node_labels=None, max_grace_seconds=5.0,
    restart_backoff=0.2, tick=0.05)``

    - ``gpus`` / ``gpu_resource``: the one node's capacity of that extended resource (any other
      extended resource has capacity 0); CPU and memory are unlimited.
    - ``entrypoints``: image -> argv used when a container has no ``command``;
      ``default_entrypoint`` for images not in it. Without either, ``args`` alone is the argv.
    - ``token``: the bearer token clients must send (None: no authentication).
    - ``node_labels``: when a dict, a pod's ``nodeSelector`` must match it; when None, nodeSelector,
      affinity and tolerations are ignored.
    - ``max_grace_seconds``: cap on ``terminationGracePeriodSeconds`` between SIGTERM and SIGKILL.
    - ``restart_backoff``: first CrashLoopBackOff delay for restartPolicy Always/OnFailure
      containers (doubling per restart, capped at 10 s; a real kubelet starts at 10 s).
    - ``tick``: how often the controllers poll (they also wake on every change).
    - ``kueue_webhook``: suspend Jobs that carry a Kueue queue label when they are created.
    - ``sandbox``: run each container under its pod's securityContext with bubblewrap
      (tests/kube/sandbox.py); None: when this machine can (``sandboxed`` says whether it does,
      ``sandbox_unavailable`` why not), True: required, False: plain processes with mapped paths.
    """

    def __init__(self, gpus: int = 0, gpu_resource: str = "nvidia.com/gpu",
                 entrypoints: dict[str, list[str]] | None = None, default_entrypoint: list[str] | None = None,
                 token: str | None = "fake-token", node_name: str = "fake-node",
                 node_labels: dict[str, str] | None = None, max_grace_seconds: float = 5.0,
                 restart_backoff: float = 0.2, tick: float = 0.05, kueue_webhook: bool = False,
                 sandbox: bool | None = None) -> None:
        self.gpus = gpus
        self.gpu_resource = gpu_resource
        self.entrypoints = dict(entrypoints or {})
        self.default_entrypoint = list(default_entrypoint) if default_entrypoint else None
        self.token = token
        self.node_name = node_name
        self.node_labels = node_labels
        self.max_grace_seconds = max_grace_seconds
        self.restart_backoff = restart_backoff
        self.tick = tick
        why_not = sandbox_module.unavailable() if sandbox is not False else "turned off"
        if sandbox and why_not:
            raise RuntimeError(f"FakeCluster(sandbox=True): {why_not}")
        self.sandboxed = why_not is None
        self.sandbox_unavailable = why_not
        self.shared: list[str] = []
        self.service_account_tokens: dict[str, tuple[str, str]] = {}  # token -> (namespace, name)
        self.store = Store()
        self.store.kueue_webhook = kueue_webhook
        for ns in ("default", "kube-system", "kube-public"):
            self.store.create(NAMESPACES, None, {"metadata": {"name": ns}})
        self.request_log: collections.deque[str] = collections.deque(maxlen=10_000)  # access log lines
        self.errors: list[str] = []  # tracebacks of bugs in this fake (answered 500); tests may assert it is empty
        self.traffic: collections.Counter[str] = collections.Counter()  # requests by verb, bytes of bodies sent
        self._traffic_lock = threading.Lock()
        self._accounts_lock = threading.Lock()  # ServiceAccount tokens and their kubeconfigs
        self.root: str | None = None
        self.port = 0
        self._server: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._wake = threading.Event()
        self._sim: Any = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeCluster":
        if self._server is not None:
            return self
        self.root = tempfile.mkdtemp(prefix="fakekube-")
        self._server = _HTTPServer(self)
        self.port = self._server.server_address[1]
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="fakekube-http", daemon=True)
        t.start()
        self._threads.append(t)
        self._start_sim()
        atexit.register(self.stop)
        return self

    def _start_sim(self) -> None:
        self._sim = _Simulator(self)
        self._sim.start()

    def _stop_sim(self) -> None:
        if self._sim is not None:
            self._sim.stop()

    def stop(self) -> None:
        """Stop serving, kill every pod process (SIGKILL) and remove the temporary root."""
        if self._server is None:
            return
        atexit.unregister(self.stop)
        self._stopping = True
        self._wake.set()
        with self.store.lock:
            self.store.closed = True
            self.store.cond.notify_all()
        self._stop_sim()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._server = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FakeCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- traffic --------------------------------------------------------------------------------

    def _count_request(self, method: str, path: str) -> None:
        query = urlsplit(path).query
        verb = "watch" if "watch=true" in query or "/watch/" in path else method.lower()
        with self._traffic_lock:
            self.traffic["requests"] += 1
            self.traffic[verb] += 1

    def _count_bytes(self, n: int) -> None:
        with self._traffic_lock:
            self.traffic["bytes"] += n

    def reset_traffic(self) -> collections.Counter[str]:
        """The traffic counted since the last reset (requests, per verb, and response body bytes)."""
        with self._traffic_lock:
            seen, self.traffic = self.traffic, collections.Counter()
        return seen

    def share(self, path: str | os.PathLike) -> str:
        """Make ``path`` (created if missing) a node directory every pod sees, writable, at the same
        path: a shared filesystem, as a single-node cluster's hostPath would give. Returns it."""
        path = os.path.realpath(path)
        os.makedirs(path, exist_ok=True)
        if path not in self.shared:
            self.shared.append(path)
        return path

    # -- clients --------------------------------------------------------------------------------

    def service_account_kubeconfig(self, namespace: str, name: str) -> str:
        """A kubeconfig holding the ServiceAccount ``namespace/name``'s own token (what a pod gets):
        its requests are authorized by RBAC, the Roles bound to it."""
        assert self.root
        path = os.path.join(self.root, "serviceaccounts", f"{namespace}.{name}.kubeconfig")
        with self._accounts_lock:
            if not os.path.exists(path):
                token = f"sa-{uuid.uuid4().hex}"
                self.service_account_tokens[token] = (namespace, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self.kubeconfig(path, namespace, token=token)
        return path

    def kubeconfig(self, path: str | os.PathLike, namespace: str = "default", token: str | None = None) -> str:
        """Write a kubeconfig for this server (context ``fake``) and return its path."""
        token = token or self.token
        user: dict = {"token": token} if token else {}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path = os.fspath(path)
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        return path

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured for this server."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        if self.token:
            cfg.api_key = {"BearerToken": f"Bearer {self.token}"}
        return client.ApiClient(cfg)

    # -- test hooks -----------------------------------------------------------------------------

    def pods(self, namespace: str = "default", label_selector: str | None = None) -> list[dict]:
        """Pods in a namespace (oldest first) as dicts, optionally filtered by a label selector."""
        match = parse_label_selector(label_selector or "")
        return [_clone(p) for p in self.store.all(PODS, namespace) if match(p["metadata"].get("labels") or {})]

    def jobs(self, namespace: str = "default", label_selector: str | None = None) -> list[dict]:
        match = parse_label_selector(label_selector or "")
        return [_clone(j) for j in self.store.all(JOBS, namespace) if match(j["metadata"].get("labels") or {})]

    def get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        """One stored object as a dict (``plural``: "jobs", "pods", ...), or None."""
        try:
            return self.store.get(BY_PLURAL[plural], namespace, name)
        except ApiError:
            return None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``predicate`` until it returns something truthy (returned); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)

    def compact(self) -> None:
        """Forget the event history: watches from an older resourceVersion get 410 Expired."""
        with self.store.lock:
            self.store.compacted_rv = self.store.rv
            self.store.events.clear()

    def evict(self, pod_name: str, namespace: str = "default", wait: bool = True) -> None:
        """Evict a pod as the Eviction API or a preemption would: condition DisruptionTarget=True
        (reason EvictionByEvictionAPI), SIGTERM (SIGKILL after the grace period), phase Failed.
        With ``wait``, return once the pod is Failed."""
        self._evict(namespace, pod_name, wait)

    def set_gpus(self, n: int) -> None:
        """Change the node's GPU capacity; Pending pods are scheduled again at once."""
        with self.store.lock:
            self.gpus = n
        self._wake.set()

    def free_gpus(self) -> int:
        with self.store.lock:
            return self.gpus - self._sim.allocated_gpus()

    def pid(self, pod_name: str, namespace: str = "default", container: str | None = None) -> int | None:
        """The process id of a pod's (first) container while it runs, else None."""
        return self._sim.pid(namespace, pod_name, container)

    def _serve_log(self, handler: _Handler, ns: str, name: str, q: dict[str, str]) -> None:
        self._sim.serve_log(handler, ns, name, q)

    def _evict(self, ns: str, name: str, wait: bool = True) -> None:
        self._sim.evict(ns, name, wait)


# ----------------------------------------------------------------------------------------------
# the simulated scheduler, kubelet and Job controller (one background thread; all state is
# guarded by the store lock)

TERMINAL = ("Succeeded", "Failed")
_STANDARD_RESOURCES = re.compile(r"^(cpu|memory|ephemeral-storage|hugepages-.*|pods)$")


@dataclass
class _ContainerRun:
    name: str
    image: str
    container_id: str = ""
    proc: subprocess.Popen | None = None
    argv: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    sandbox: dict | None = None  # tests/kube/sandbox.py bwrap_argv arguments, None: a plain process
    logs: list[str] | None = None  # log file of every instance, oldest first
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    restarts: int = 0
    restart_at: float | None = None  # set while in CrashLoopBackOff
    backoff: float = 0.0
    last_state: dict | None = None
    waiting: tuple[str, str | None] = ("ContainerCreating", None)


@dataclass
class _PodRun:
    uid: str
    ns: str
    name: str
    dir: str
    gpus: int
    ip: str
    containers: dict[str, _ContainerRun]
    started: bool = False
    start_time: str | None = None
    start_ts: float = 0.0
    terminal: bool = False
    evicted: bool = False
    deadline_exceeded: bool = False
    blocked_message: str | None = None
    terminating: bool = False  # marked for graceful deletion and sent SIGTERM


@dataclass
class _JobState:
    counted: set
    controller_deleted: set
    tombstones: list
    succeeded: int = 0
    failed: int = 0
    last_create_attempt: float = 0.0
    failure: tuple[str, str] | None = None


class _Blocked(Exception):
    def __init__(self, reason: str, message: str, event_reason: str) -> None:
        super().__init__(message)
        self.reason, self.message, self.event_reason = reason, message, event_reason


def _set_condition(conds: list[dict], ctype: str, status: str, reason: str | None = None,
                   message: str | None = None) -> None:
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now_rfc3339()
            c["status"] = status
            for k, v in (("reason", reason), ("message", message)):
                if v is None:
                    c.pop(k, None)
                else:
                    c[k] = v
            return
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
    if reason is not None:
        c["reason"] = reason
    if message is not None:
        c["message"] = message
    conds.append(c)


def _has_condition(obj: dict, ctype: str, status: str = "True") -> bool:
    return any(c.get("type") == ctype and c.get("status") == status
               for c in (obj.get("status") or {}).get("conditions") or [])


def _controller_uid(obj: dict) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref.get("uid")
    return None


def _exit_code(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(getattr(proc, "group", proc.pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Simulator:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.store = cluster.store
        self.runs: dict[str, _PodRun] = {}  # pod uid -> what the kubelet runs for it
        self.jobs: dict[str, _JobState] = {}  # job uid -> controller bookkeeping
        self.dying: list[tuple[subprocess.Popen, float]] = []  # (process, when to SIGKILL)
        self.event_names: dict[tuple[str, str, str], str] = {}
        self.next_ip = 10
        self.thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.c.root
        self.store.listeners.append(self._on_change)
        self.thread = threading.Thread(target=self._loop, name="fakekube-sim", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=10)
        with self.store.lock:
            procs = [cr.proc for run in self.runs.values() for cr in run.containers.values() if cr.proc]
            procs += [p for p, _ in self.dying]
        for p in procs:
            _killpg(p, signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _loop(self) -> None:
        import traceback

        while not self.c._stopping:
            self.c._wake.wait(self.c.tick)
            self.c._wake.clear()
            if self.c._stopping:
                break
            try:
                with self.store.lock:
                    self._sync_jobs()
                    self._schedule()
                    self._sync_pods()
                    self._finish_deletions()
                    self._reap()
            except Exception:
                self.c.errors.append(traceback.format_exc())
                time.sleep(0.5)

    def _on_change(self, etype: str, res: Resource, obj: dict, old: dict | None) -> None:
        if res is EVENTS:
            return
        self.c._wake.set()
        if etype != "DELETED":
            return
        uid = obj["metadata"]["uid"]
        if res is JOBS:
            self.jobs.pop(uid, None)
        elif res is PODS:
            run = self.runs.pop(uid, None)
            if run is not None:
                self._kill(run, obj)
            job_state = self.jobs.get(_controller_uid(obj) or "")
            if (job_state is not None and uid not in job_state.counted and uid not in job_state.controller_deleted
                    and (obj.get("status") or {}).get("phase") not in TERMINAL):
                # a pod deleted while it ran counts as failed (the real controller tracks it with a finalizer)
                gone = _clone(obj)
                gone["status"]["phase"] = "Failed"
                for cs in gone["status"].get("containerStatuses") or []:
                    if "terminated" not in cs.get("state", {}):
                        cs["state"] = {"terminated": {"exitCode": 143, "reason": "Error"}}
                job_state.tombstones.append(gone)

    def _finish_deletions(self) -> None:
        """Graceful pod deletion (Foreground cascades): a pod marked for deletion is sent SIGTERM and goes
        once its processes have exited (SIGKILL after the grace period); an owner waiting on the
        foregroundDeletion finalizer goes once it owns nothing."""
        for pod in [p for p in self.store.all(PODS) if p["metadata"].get("deletionTimestamp")]:
            run = self.runs.get(pod["metadata"]["uid"])
            procs = [cr.proc for cr in run.containers.values() if cr.proc is not None] if run else []
            if any(p.poll() is None for p in procs):
                if run is not None and not run.terminating:
                    run.terminating = True
                    self._kill(run, pod)
                continue
            self.store._delete(PODS, pod, "Background")
        for res in (JOBS,):
            for owner in self.store.all(res):
                meta = owner["metadata"]
                if not meta.get("deletionTimestamp") or "foregroundDeletion" not in (meta.get("finalizers") or []):
                    continue
                if not any(_owned_by(p, meta["uid"]) for p in self.store.all(PODS, meta["namespace"])):
                    self.store._delete(res, owner, "Background")

    def _grace(self, pod: dict) -> float:
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return min(float(30 if grace is None else grace), self.c.max_grace_seconds)

    def _kill(self, run: _PodRun, pod: dict) -> None:
        kill_at = time.monotonic() + self._grace(pod)
        for cr in run.containers.values():
            if cr.proc is not None and cr.proc.poll() is None:
                _killpg(cr.proc, signal.SIGTERM)
                self.dying.append((cr.proc, kill_at))

    def _reap(self) -> None:
        now = time.monotonic()
        still = []
        for proc, kill_at in self.dying:
            if proc.poll() is None:
                if now >= kill_at:
                    _killpg(proc, signal.SIGKILL)
                still.append((proc, kill_at))
        self.dying = still

    def _event(self, obj: dict, etype: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta["uid"], reason, message)
        now = now_rfc3339()
        name = self.event_names.get(key)
        if name is not None and self.store.mutate(
                EVENTS, ns, name, lambda e: e.update(count=e.get("count", 1) + 1, lastTimestamp=now)) is not None:
            return
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        self.event_names[key] = name
        self.store.create(EVENTS, ns, {
            "metadata": {"name": name},
            "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": meta["name"], "uid": meta["uid"],
                               "apiVersion": obj["apiVersion"], "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": etype, "source": {"component": component},
            "reportingComponent": component, "reportingInstance": "", "firstTimestamp": now, "lastTimestamp": now,
            "count": 1, "eventTime": None})

    # -- test hooks -----------------------------------------------------------------------------

    def allocated_gpus(self) -> int:
        return sum(run.gpus for run in self.runs.values() if not run.terminal)

    def pid(self, ns: str, name: str, container: str | None) -> int | None:
        with self.store.lock:
            for run in self.runs.values():
                if run.ns == ns and run.name == name:
                    for cr in run.containers.values():
                        if (container is None or cr.name == container) and cr.proc and cr.proc.poll() is None:
                            return getattr(cr.proc, "group", cr.proc.pid)
        return None

    def evict(self, ns: str, name: str, wait: bool) -> None:
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            if pod["status"].get("phase") in TERMINAL:
                return
            run = self.runs.get(pod["metadata"]["uid"])

            def mark(p: dict) -> None:
                conds = p["status"].setdefault("conditions", [])
                _set_condition(conds, "DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting")
                if run is None or not run.started:
                    p["status"]["phase"] = "Failed"

            self.store.mutate(PODS, ns, name, mark)
            if run is not None:
                run.evicted = True
                if run.started:
                    self._kill(run, pod)
                else:
                    run.terminal = True
            self._event(pod, "Normal", "Killing", "Stopping container " + pod["spec"]["containers"][0]["name"], "kubelet")
        self.c._wake.set()
        if wait:
            self.c.wait_for(lambda: (self.c.get("pods", name, ns) or {}).get("status", {}).get("phase") in (None, "Failed"),
                            timeout=self._grace(pod) + 10)

    # -- scheduler ------------------------------------------------------------------------------

    def _requests(self, pod: dict) -> dict[str, float]:
        total: dict[str, float] = {}
        for c in pod["spec"].get("containers") or []:
            r = c.get("resources") or {}
            merged = dict(r.get("limits") or {})
            merged.update(r.get("requests") or {})
            for k, q in merged.items():
                total[k] = total.get(k, 0.0) + parse_quantity(q)
        return total

    def _schedule(self) -> None:
        free = self.c.gpus - self.allocated_gpus()
        for pod in self.store.all(PODS):
            if pod["spec"].get("nodeName") or pod["status"].get("phase") != "Pending":
                continue
            requests = self._requests(pod)
            need = int(requests.get(self.c.gpu_resource, 0))
            problems = []
            selector = pod["spec"].get("nodeSelector") or {}
            if self.c.node_labels is not None and any(self.c.node_labels.get(k) != v for k, v in selector.items()):
                problems.append("1 node(s) didn't match Node's node affinity/selector")
            for r in sorted(requests):
                if r != self.c.gpu_resource and not _STANDARD_RESOURCES.match(r) and requests[r] > 0:
                    problems.append(f"1 Insufficient {r}")
            if need > free:
                problems.append(f"1 Insufficient {self.c.gpu_resource}")
            meta = pod["metadata"]
            if problems:
                message = "0/1 nodes are available: " + ", ".join(problems) + "."

                def unschedulable(p: dict, message: str = message) -> None:
                    _set_condition(p["status"].setdefault("conditions", []), "PodScheduled", "False", "Unschedulable",
                                   message)

                before = [c for c in pod["status"].get("conditions") or [] if c.get("type") == "PodScheduled"]
                self.store.mutate(PODS, meta["namespace"], meta["name"], unschedulable)
                if not before or before[0].get("message") != message:
                    self._event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
                continue
            free -= need
            self._bind(pod, need)

    def _bind(self, pod: dict, gpus: int) -> None:
        meta = pod["metadata"]
        assert self.c.root
        pod_dir = os.path.join(self.c.root, "pods", f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}")
        os.makedirs(pod_dir, exist_ok=True)
        self.next_ip += 1
        containers = {c["name"]: _ContainerRun(c["name"], c.get("image", ""), logs=[])
                      for c in pod["spec"]["containers"]}
        self.runs[meta["uid"]] = _PodRun(meta["uid"], meta["namespace"], meta["name"], pod_dir, gpus,
                                         f"10.244.{self.next_ip // 250}.{self.next_ip % 250 + 2}", containers)

        def bind(p: dict) -> None:
            p["spec"]["nodeName"] = self.c.node_name
            _set_condition(p["status"].setdefault("conditions", []), "PodScheduled", "True")

        self.store.mutate(PODS, meta["namespace"], meta["name"], bind)
        self._event(pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to "
                    f"{self.c.node_name}", "default-scheduler")

    # -- kubelet --------------------------------------------------------------------------------

    def _sync_pods(self) -> None:
        for uid, run in list(self.runs.items()):
            pod = self.store.objects["pods"].get((run.ns, run.name))
            if pod is None or pod["metadata"]["uid"] != uid or run.terminal:
                continue
            if not run.started:
                self._try_start(pod, run)
            else:
                self._poll(pod, run)
            self._write_status(pod, run)

    def _lookup(self, res: Resource, ns: str, name: str) -> dict | None:
        return self.store.objects[res.plural].get((ns, name))

    def _volumes(self, pod: dict, run: _PodRun) -> dict[str, str]:
        """Materialise the pod's volumes; volume name -> directory. Raises _Blocked."""
        ns = run.ns
        out = {}
        for v in pod["spec"].get("volumes") or []:
            path = os.path.join(run.dir, "volumes", v["name"])
            out[v["name"]] = path
            if os.path.isdir(path):
                continue
            files: dict[str, bytes] = {}
            mode = 0o644
            items = None
            if "secret" in v or "configMap" in v:
                kind, src = ("secret", v["secret"]) if "secret" in v else ("configMap", v["configMap"])
                name = src.get("secretName") if kind == "secret" else src.get("name")
                obj = self._lookup(SECRETS if kind == "secret" else CONFIGMAPS, ns, name)
                mode = src.get("defaultMode", 0o644)
                items = src.get("items")
                if obj is None:
                    if src.get("optional"):
                        os.makedirs(path)
                        continue
                    what = "secret" if kind == "secret" else "configmap"
                    raise _Blocked("ContainerCreating", f'MountVolume.SetUp failed for volume "{v["name"]}" : {what} '
                                   f'"{name}" not found', "FailedMount")
                if kind == "secret":
                    files = {k: base64.b64decode(d) for k, d in (obj.get("data") or {}).items()}
                else:
                    files = {k: d.encode() for k, d in (obj.get("data") or {}).items()}
                    files.update({k: base64.b64decode(d) for k, d in (obj.get("binaryData") or {}).items()})
            tmp = path + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            selected = [(i["key"], i.get("path", i["key"]), i.get("mode", mode)) for i in items] if items else \
                [(k, k, mode) for k in files]
            for key, rel, fmode in selected:
                if key not in files:
                    raise _Blocked("ContainerCreating", f'MountVolume.SetUp failed for volume "{v["name"]}" : '
                                   f"configmap references non-existent config key: {key}", "FailedMount")
                target = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(files[key])
                os.chmod(target, fmode)
            os.rename(tmp, path)
        return out

    @staticmethod
    def _expand(value: str, env: dict[str, str]) -> str:
        """Kubernetes $(VAR) expansion: defined variables are substituted, $$ escapes, others stay."""
        return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                      lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)

    def _field_ref(self, pod: dict, run: _PodRun, path: str) -> str:
        meta = pod["metadata"]
        m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        return {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
                "spec.nodeName": self.c.node_name, "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                "status.podIP": run.ip, "status.hostIP": "127.0.0.1", "status.podIPs": run.ip,
                "status.hostIPs": "127.0.0.1"}.get(path, "")

    def _container_env(self, pod: dict, run: _PodRun, c: dict) -> dict[str, str]:
        """The container's own variables (envFrom, then env, with $(VAR) expansion). Raises _Blocked."""
        ns = run.ns
        defined: dict[str, str] = {}

        def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
            obj = self._lookup(SECRETS if kind == "Secret" else CONFIGMAPS, ns, name)
            if obj is None:
                if optional:
                    return None
                raise _Blocked("CreateContainerConfigError", f'{kind.lower()} "{name}" not found', "Failed")
            if kind == "Secret":
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
            return dict(obj.get("data") or {})

        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in src:
                    data = source(kind, src[key].get("name", ""), bool(src[key].get("optional")))
                    for k, v in (data or {}).items():
                        if _ENV_NAME_RE.match(prefix + k):
                            defined[prefix + k] = v
        for e in c.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                defined[name] = self._expand(e.get("value", ""), defined)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                defined[name] = self._field_ref(pod, run, vf["fieldRef"].get("fieldPath", ""))
            elif "resourceFieldRef" in vf:
                r = (c.get("resources") or {})
                res_name = vf["resourceFieldRef"].get("resource", "")
                section, _, key = res_name.partition(".")
                defined[name] = str((r.get(section) or {}).get(key, "0"))
            else:
                kind, key = ("Secret", "secretKeyRef") if "secretKeyRef" in vf else ("ConfigMap", "configMapKeyRef")
                ref = vf[key]
                data = source(kind, ref.get("name", ""), bool(ref.get("optional")))
                if data is None:
                    continue
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    raise _Blocked("CreateContainerConfigError", f"couldn't find key {ref.get('key')} in {kind} "
                                   f"{ns}/{ref.get('name')}", "Failed")
                defined[name] = data[ref["key"]]
        return defined

    @staticmethod
    def _mount_source(m: dict, volumes: dict[str, str]) -> str:
        """The directory a volumeMount shows; a missing ``subPath`` is created, as a kubelet does."""
        host = volumes[m["name"]]
        if m.get("subPath"):
            host = os.path.join(host, m["subPath"])
            os.makedirs(host, exist_ok=True)
        return host

    @classmethod
    def _mapper(cls, c: dict, volumes: dict[str, str]) -> Callable[[str], str]:
        """Rewrite container paths under a volumeMount's mountPath to the volume's directory."""
        mounts = []
        for m in c.get("volumeMounts") or []:
            mounts.append((m["mountPath"].rstrip("/") or "/", cls._mount_source(m, volumes)))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)

        def map_path(value: str) -> str:
            for mount, host in mounts:
                if value == mount:
                    return host
                prefix = mount if mount.endswith("/") else mount + "/"
                if value.startswith(prefix):
                    return os.path.join(host, value[len(prefix):])
            return value

        return map_path

    def _pod_kubeconfig(self, pod: dict) -> str:
        """The in-cluster credentials of the pod: its ServiceAccount's token."""
        return self.c.service_account_kubeconfig(pod["metadata"]["namespace"],
                                                 pod["spec"].get("serviceAccountName") or "default")

    def _try_start(self, pod: dict, run: _PodRun) -> None:
        if run.start_time is None:
            run.start_time, run.start_ts = now_rfc3339(), time.time()
        ns = run.ns
        try:
            volumes = self._volumes(pod, run)
            plans = []
            for c in pod["spec"]["containers"]:
                defined = self._container_env(pod, run, c)
                box = self._sandbox(pod, run, c, volumes) if self.c.sandboxed else None
                map_path = self._mapper(c, volumes) if box is None else (lambda v: v)
                defined = {k: map_path(v) for k, v in defined.items()}
                env = dict(os.environ)
                env["HOSTNAME"] = run.name
                automount = pod["spec"].get("automountServiceAccountToken")
                if automount is None:
                    sa = self._lookup(SERVICEACCOUNTS, ns, pod["spec"].get("serviceAccountName") or "default")
                    automount = (sa or {}).get("automountServiceAccountToken", True)
                if automount is False:
                    env.pop("KUBECONFIG", None)
                else:
                    env["KUBECONFIG"] = self._pod_kubeconfig(pod)
                env.update(defined)
                if c.get("command"):
                    base = [map_path(self._expand(a, defined)) for a in c["command"]]
                else:
                    base = list(self.c.entrypoints.get(c.get("image", ""), self.c.default_entrypoint or []))
                argv = base + [map_path(self._expand(a, defined)) for a in c.get("args") or []]
                if box is not None:
                    cwd = box.pop("cwd")
                else:
                    cwd = map_path(c["workingDir"]) if c.get("workingDir") else None
                    if cwd is None or cwd == c.get("workingDir"):
                        cwd = os.path.join(run.dir, "work", c["name"])
                    os.makedirs(cwd, exist_ok=True)
                plans.append((c, argv, env, cwd, box))
        except _Blocked as b:
            for cr in run.containers.values():
                cr.waiting = (b.reason, b.message if b.reason != "ContainerCreating" else None)
            if run.blocked_message != b.message:
                run.blocked_message = b.message
                self._event(pod, "Warning", b.event_reason, b.message, "kubelet")
            return
        run.started = True
        for c, argv, env, cwd, box in plans:
            cr = run.containers[c["name"]]
            cr.argv, cr.env, cr.cwd, cr.sandbox = argv, env, cwd, box
            self._spawn(pod, run, cr)

    def _sandbox(self, pod: dict, run: _PodRun, c: dict, volumes: dict[str, str]) -> dict:
        """How tests/kube/sandbox.py runs this container (bwrap_argv's arguments, and ``cwd``).
        Raises _Blocked for what a kubelet refuses."""
        try:
            security = sandbox_module.security_of(pod, c, image_uid=os.getuid())
        except sandbox_module.Refused as exc:
            raise _Blocked("CreateContainerConfigError", str(exc), "Failed") from None
        kinds = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = []
        for m in c.get("volumeMounts") or []:
            volume = kinds[m["name"]]
            writable = not m.get("readOnly") and "secret" not in volume and "configMap" not in volume
            mounts.append(sandbox_module.Mount(m["mountPath"], self._mount_source(m, volumes), writable))
        mounts += [sandbox_module.Mount(path, path, True) for path in self.c.shared]
        if c.get("workingDir"):
            cwd = c["workingDir"]
        elif security.read_only_root:
            cwd = "/"
        else:
            cwd = os.path.join(run.dir, "work", c["name"])
            os.makedirs(cwd, exist_ok=True)
            mounts.append(sandbox_module.Mount(cwd, cwd, True))
        if not security.read_only_root and not any(m.path.rstrip("/") == "/tmp" for m in mounts):
            tmp = os.path.join(run.dir, "tmp", c["name"])
            os.makedirs(tmp, exist_ok=True)
            mounts.append(sandbox_module.Mount("/tmp", tmp, True))
        kubeconfig = self._pod_kubeconfig(pod)
        mounts.append(sandbox_module.Mount(kubeconfig, kubeconfig, False))
        # The "image" is this machine's Python environment and checkout. Where a checkout lies under
        # a path the pod mounts a volume at (a clone under /tmp, where the pod's scratch goes), it
        # stays visible read-only at its own path, as an image's files would be.
        for path in _image_paths():
            if any(sandbox_module._under(path, m.path) and path != m.path.rstrip("/") for m in mounts):
                mounts.append(sandbox_module.Mount(path, path, False))
        assert self.c.root
        return {"security": security, "mounts": mounts, "hidden": [self.c.root], "cwd": cwd}

    def _spawn(self, pod: dict, run: _PodRun, cr: _ContainerRun) -> None:
        log_dir = os.path.join(run.dir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        log_path = os.path.join(log_dir, f"{cr.name}.{cr.restarts}.log")
        assert cr.logs is not None
        cr.logs.append(log_path)
        cr.container_id = uuid.uuid4().hex + uuid.uuid4().hex
        cr.started_at, cr.finished_at, cr.exit_code, cr.reason, cr.message = now_rfc3339(), None, None, None, None
        with open(log_path, "ab") as log:
            try:
                if not cr.argv:
                    raise OSError(0, "no command specified")
                assert cr.env is not None and cr.cwd is not None
                cr.proc = sandbox_module.start(cr.argv, env=cr.env, cwd=cr.cwd, log=log.fileno(), sandbox=cr.sandbox)
            except OSError as exc:
                cr.proc = None
                cr.exit_code, cr.reason, cr.finished_at = 128, "StartError", now_rfc3339()
                cr.message = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                              f'runc create failed: unable to start container process: exec: "{(cr.argv or [""])[0]}": '
                              f"{exc.strerror or exc}")
                self._event(pod, "Warning", "Failed", f"Error: {cr.message}", "kubelet")
                return
        self._event(pod, "Normal", "Started", f"Started container {cr.name}", "kubelet")

    def _poll(self, pod: dict, run: _PodRun) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        for cr in run.containers.values():
            if cr.proc is not None and cr.exit_code is None:
                rc = cr.proc.poll()
                if rc is None:
                    continue
                cr.exit_code, cr.finished_at = _exit_code(rc), now_rfc3339()
                cr.reason = "Completed" if cr.exit_code == 0 else "Error"
            if cr.exit_code is None or run.evicted or run.deadline_exceeded:
                continue
            if policy == "Always" or (policy == "OnFailure" and cr.exit_code != 0):
                if cr.restart_at is None:
                    cr.last_state = {"terminated": self._terminated(cr)}
                    cr.backoff = min(self.c.restart_backoff * 2 ** cr.restarts, 10.0)
                    cr.restart_at = time.monotonic() + cr.backoff
                elif time.monotonic() >= cr.restart_at:
                    cr.restart_at = None
                    cr.restarts += 1
                    self._spawn(pod, run, cr)
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline and not run.deadline_exceeded and time.time() - run.start_ts >= deadline:
            run.deadline_exceeded = True
            self._kill(run, pod)
            self._event(pod, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified "
                        "deadline", "kubelet")
        if all(cr.exit_code is not None and cr.restart_at is None for cr in run.containers.values()):
            run.terminal = True

    def _terminated(self, cr: _ContainerRun) -> dict:
        t = {"exitCode": cr.exit_code, "reason": cr.reason, "startedAt": cr.started_at, "finishedAt": cr.finished_at,
             "containerID": f"containerd://{cr.container_id}"}
        if cr.message:
            t["message"] = cr.message
        return t

    def _write_status(self, pod: dict, run: _PodRun) -> None:
        statuses = []
        for c in pod["spec"]["containers"]:
            cr = run.containers[c["name"]]
            image = c.get("image", "")
            cs: dict[str, Any] = {"name": cr.name, "image": image,
                                  "imageID": f"{image.split(':')[0]}@sha256:{uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2}",
                                  "ready": False, "started": False, "restartCount": cr.restarts,
                                  "lastState": cr.last_state or {}}
            if not run.started:
                waiting = {"reason": cr.waiting[0]}
                if cr.waiting[1]:
                    waiting["message"] = cr.waiting[1]
                cs["state"] = {"waiting": waiting}
            else:
                cs["containerID"] = f"containerd://{cr.container_id}"
                if cr.restart_at is not None:
                    cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                        f"back-off {cr.backoff:g}s restarting failed container={cr.name} "
                        f"pod={run.name}_{run.ns}({run.uid})")}}
                elif cr.exit_code is None:
                    cs["state"] = {"running": {"startedAt": cr.started_at}}
                    cs["ready"] = cs["started"] = True
                else:
                    cs["state"] = {"terminated": self._terminated(cr)}
            statuses.append(cs)
        if not run.started:
            phase = "Pending"
        elif not run.terminal:
            phase = "Running"
        elif run.evicted or run.deadline_exceeded or any(cr.exit_code != 0 for cr in run.containers.values()):
            phase = "Failed"
        else:
            phase = "Succeeded"
        all_ready = phase == "Running" and all(cs["ready"] for cs in statuses)

        def update(p: dict) -> None:
            st = p["status"]
            conds = st.setdefault("conditions", [])
            _set_condition(conds, "PodReadyToStartContainers", "True" if run.started else "False")
            _set_condition(conds, "Initialized", "True")
            if all_ready:
                ready = ("True", None, None)
            elif phase in TERMINAL:
                ready = ("False", "PodCompleted" if phase == "Succeeded" else "PodFailed", None)
            else:
                names = " ".join(cs["name"] for cs in statuses if not cs["ready"])
                ready = ("False", "ContainersNotReady", f"containers with unready status: [{names}]")
            _set_condition(conds, "Ready", *ready)
            _set_condition(conds, "ContainersReady", *ready)
            _set_condition(conds, "PodScheduled", "True")
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            conds.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else -1)
            st.update(phase=phase, hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}], podIP=run.ip,
                      podIPs=[{"ip": run.ip}], startTime=run.start_time, containerStatuses=statuses)
            if run.deadline_exceeded:
                st.update(reason="DeadlineExceeded",
                          message="Pod was active on the node longer than the specified deadline")

        self.store.mutate(PODS, run.ns, run.name, update)

    def serve_log(self, handler: _Handler, ns: str, name: str, q: dict[str, str]) -> None:
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            cname = q.get("container")
            if not cname:
                if len(names) != 1:
                    raise _bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                       f"[{' '.join(names)}]")
                cname = names[0]
            elif cname not in names:
                raise _bad_request(f"container {cname} is not valid for pod {name}")
            run = self.runs.get(pod["metadata"]["uid"])
            cr = run.containers[cname] if run is not None else None
            if cr is None or not cr.logs:
                reason = cr.waiting[0] if cr is not None else "ContainerCreating"
                raise _bad_request(f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
            if q.get("previous") in ("true", "1"):
                if len(cr.logs) < 2:
                    raise _bad_request(f'previous terminated container "{cname}" in pod "{name}" not found')
                path, live = cr.logs[-2], False
            else:
                path, live = cr.logs[-1], True
            proc = cr.proc
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None

        def read_from(pos: int) -> bytes:
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    return f.read()
            except FileNotFoundError:
                return b""

        def running() -> bool:
            return live and proc is not None and proc.poll() is None and not self.c._stopping

        data = read_from(0)
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        pos = os.path.getsize(path) if os.path.exists(path) else 0
        if q.get("follow") not in ("true", "1"):
            return handler.send_text(200, data[:limit] if limit is not None else data)
        handler.close_connection = True
        handler.start_chunked("text/plain")
        sent = 0
        try:
            while True:
                if limit is not None:
                    data = data[: max(0, limit - sent)]
                handler.chunk(data)
                sent += len(data)
                if limit is not None and sent >= limit:
                    break
                alive = running()
                data = read_from(pos)
                pos += len(data)
                if not data:
                    if not alive:
                        break
                    time.sleep(0.05)
            handler.end_chunked()
        except OSError:
            pass

    # -- Job controller -------------------------------------------------------------------------

    def _delete_pod(self, pod: dict, job_state: _JobState) -> None:
        job_state.controller_deleted.add(pod["metadata"]["uid"])
        self.store._delete(PODS, pod, "Background")

    @staticmethod
    def _failure_action(job: dict, pod: dict) -> tuple[str, str | None]:
        """(action, FailJob message) of the first podFailurePolicy rule matching a Failed pod."""
        rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules")) or []
        meta = pod["metadata"]
        statuses = (pod["status"].get("initContainerStatuses") or []) + (pod["status"].get("containerStatuses") or [])
        for i, rule in enumerate(rules):
            codes = rule.get("onExitCodes")
            if codes is not None:
                for cs in statuses:
                    if codes.get("containerName") and cs.get("name") != codes["containerName"]:
                        continue
                    term = (cs.get("state") or {}).get("terminated")
                    if not term or term.get("exitCode", 0) == 0:
                        continue
                    code = term["exitCode"]
                    if (code in codes.get("values", [])) == (codes.get("operator") == "In"):
                        return rule["action"], (f"Container {cs['name']} for pod {meta['namespace']}/{meta['name']} "
                                                f"failed with exit code {code} matching FailJob rule at index {i}")
            for want in rule.get("onPodConditions") or []:
                for c in pod["status"].get("conditions") or []:
                    if c.get("type") == want.get("type") and c.get("status") == want.get("status", "True"):
                        return rule["action"], (f"Pod {meta['namespace']}/{meta['name']} has condition "
                                                f"{want.get('type')} matching FailJob rule at index {i}")
        return "Count", None

    def _sync_jobs(self) -> None:
        now = time.time()
        for job in self.store.all(JOBS):
            meta, spec = job["metadata"], job["spec"]
            ns, uid = meta["namespace"], meta["uid"]
            js = self.jobs.setdefault(uid, _JobState(set(), set(), []))
            finished = _has_condition(job, "Complete") or _has_condition(job, "Failed")
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                if ttl is not None:
                    done = [c.get("lastTransitionTime") for c in job["status"].get("conditions") or []
                            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]
                    if done and parse_rfc3339(done[0]) + ttl <= now:
                        self.store._delete(JOBS, job, "Background")
                continue
            if meta.get("deletionTimestamp"):
                continue  # being deleted (Foreground): its pods are terminating, none are created
            pods = [p for p in self.store.all(PODS, ns) if _controller_uid(p) == uid]
            active = [p for p in pods if p["status"].get("phase") not in TERMINAL]
            status = _clone(job.get("status") or {})
            conds = status.setdefault("conditions", [])
            if spec.get("suspend"):
                for p in active:
                    self._delete_pod(p, js)
                active = []
                if not _has_condition(job, "Suspended"):
                    _set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended")
                    self._event(job, "Normal", "Suspended", "Job suspended", "job-controller")
            else:
                if _has_condition(job, "Suspended"):
                    _set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed")
                    status["startTime"] = now_rfc3339()
                    self._event(job, "Normal", "Resumed", "Job resumed", "job-controller")
                status.setdefault("startTime", now_rfc3339())
                for p in [p for p in pods if p["status"].get("phase") in TERMINAL] + js.tombstones:
                    puid = p["metadata"]["uid"]
                    if puid in js.counted:
                        continue
                    js.counted.add(puid)
                    if p["status"]["phase"] == "Succeeded":
                        js.succeeded += 1
                        continue
                    action, message = self._failure_action(job, p)
                    if action == "Ignore":
                        continue
                    js.failed += 1
                    if action == "FailJob" and js.failure is None:
                        js.failure = ("PodFailurePolicy", message or "")
                js.tombstones.clear()
                restarts = sum(cs.get("restartCount", 0) for p in active
                               for cs in p["status"].get("containerStatuses") or [])
                if js.failure is None and js.failed + restarts > spec.get("backoffLimit", 6):
                    js.failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                deadline = spec.get("activeDeadlineSeconds")
                if js.failure is None and deadline and now - parse_rfc3339(status["startTime"]) >= deadline:
                    js.failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
                completions = spec.get("completions", 1)
                if js.failure is not None:
                    for p in active:
                        self._delete_pod(p, js)
                    active = []
                    _set_condition(conds, "FailureTarget", "True", *js.failure)
                    _set_condition(conds, "Failed", "True", *js.failure)
                    self._event(job, "Warning", js.failure[0], js.failure[1], "job-controller")
                elif js.succeeded >= completions:
                    for p in active:
                        self._delete_pod(p, js)
                    active = []
                    _set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods")
                    _set_condition(conds, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
                    status["completionTime"] = now_rfc3339()
                    self._event(job, "Normal", "Completed", "Job completed", "job-controller")
                else:
                    want = min(spec.get("parallelism", 1), completions - js.succeeded) - len(active)
                    if want > 0 and now - js.last_create_attempt >= 1.0:
                        for _ in range(want):
                            pod = self._create_pod(job, js)
                            if pod is None:
                                js.last_create_attempt = now
                                break
                            active.append(pod)
            if not conds:
                del status["conditions"]
            for key, value in (("active", len(active)), ("succeeded", js.succeeded), ("failed", js.failed)):
                if value:
                    status[key] = value
                else:
                    status.pop(key, None)
            status["ready"] = sum(1 for p in active if _has_condition(p, "Ready"))
            status["terminating"] = 0
            status["uncountedTerminatedPods"] = {}

            def write(j: dict, status: dict = status) -> None:
                j["status"] = status

            self.store.mutate(JOBS, ns, meta["name"], write)

    def _create_pod(self, job: dict, js: _JobState) -> dict | None:
        meta = job["metadata"]
        template = _clone(job["spec"]["template"])
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations["batch.kubernetes.io/job-tracking"] = ""
        body = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"], "metadata": {
            "generateName": f"{meta['name']}-", "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}]}}
        try:
            pod = self.store.create(PODS, meta["namespace"], body)
        except ApiError as exc:
            self._event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}", "job-controller")
            return None
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller")
        return pod
