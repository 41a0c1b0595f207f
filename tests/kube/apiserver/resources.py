"""The served resources (``Resource``, one per kind) and the errors the server answers with, as
``Status`` objects."""

from __future__ import annotations

from dataclasses import dataclass


JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name")


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
