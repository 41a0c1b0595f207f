"""The Kubernetes backend: each stage is one batch/v1 Job, created (only) when the stage is ready.

- :func:`api_client`: the official client, configured in-cluster (when ``KUBERNETES_SERVICE_HOST``
  is set: the orchestrator Job) or from kubeconfig (``$KUBECONFIG``, ``--context``).
- :class:`KubernetesBackend`: the orchestration loop's backend. ``submit`` renders the stage's Job
  with the :class:`~xtrc.render.Renderer` and creates it (an existing Job of that name is the same
  stage: Job names are content-keyed, so creating is idempotent); ``poll`` lists the experiment's
  Jobs and their pods (two list calls) and says in words why a stage waits or failed; ``cancel``
  deletes the Jobs (propagation Background, so their pods go too). Jobs are never pre-created
  suspended: Kueue owns ``suspend``.
- :func:`apply`, :func:`delete`, :func:`stage_rows`, :func:`pod_log`: what `xtrc apply`,
  `xtrc delete`, `xtrc status` and `xtrc logs` do.

Pods run elsewhere, so the store must be object storage (s3://, gs://, az://): a ``file://``
store is refused unless ``XTRC_KUBE_SHARED_FILESYSTEM=1`` says the pods see this machine's
filesystem at the same paths (tests against a local API server whose pods are local processes,
and single-node clusters with a hostPath store mounted at the same path).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import yaml

from xtrc.errors import XtrcError
from xtrc.orchestrate import BackendStatus
from xtrc.plan import Plan
from xtrc.render import (
    SPEC_HASH_ANNOTATION,
    Manifest,
    Renderer,
    job_name,
    network_policy_name,
    orchestrator_name,
    spec_configmap_name,
)
from xtrc.stage import StageConfig
from xtrc.store import uri_scheme

SHARED_FS_ENV = "XTRC_KUBE_SHARED_FILESYSTEM"
"""Set to 1 only when every pod sees this machine's filesystem at the same paths (tests, single-node clusters)."""
EXPERIMENT_LABEL = "xtrc.dev/experiment"
STAGE_KEY_LABEL = "xtrc.dev/stage-key"
COMPONENT_LABEL = "app.kubernetes.io/component"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
STAGE_CONTAINER = "stage"
CONFIG_ERROR = 2
REQUEST_TIMEOUT = 30
_LOCAL_SCHEMES = ("file", "memory", "local")
_ATTEMPTS = 4  # API calls retried on throttling, server errors and dropped connections


# --- the client ------------------------------------------------------------------------------


def api_client(context: str | None = None) -> Any:
    """A configured ``kubernetes.client.ApiClient``: in-cluster inside a pod (unless a context is
    asked for), else from kubeconfig (``$KUBECONFIG``, colon-separated files allowed; else
    ``~/.kube/config``)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
        try:
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        except ConfigException:
            pass  # a pod without a token: try kubeconfig
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                persist_config=False)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = f"context {context!r} in {path}" if context else path
        raise XtrcError(f"cannot load the Kubernetes configuration ({where}): {exc}; "
                        "set KUBECONFIG or pass --context") from None
    return client.ApiClient(cfg)


class ClusterError(XtrcError):
    """The cluster refused or could not be reached: exit 1, so an orchestrator Job retries (exit 2,
    a configuration error, does not)."""

    exit_code = 1


def call(fn: Callable[..., Any], *args: Any, what: str, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
    """One API call, retried on 429/5xx and dropped connections; errors become ClusterError.
    A status in ``ok`` returns the ApiException instead of raising."""
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    delay = 0.5
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status in ok:
                return exc
            if (exc.status == 429 or (exc.status or 0) >= 500) and attempt < _ATTEMPTS:
                time.sleep(delay)
                delay *= 2
                continue
            raise ClusterError(f"{what}: {_api_message(exc)}") from None
        except HTTPError as exc:
            if attempt < _ATTEMPTS:
                time.sleep(delay)
                delay *= 2
                continue
            raise ClusterError(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})") from None
    raise AssertionError("unreachable")


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return f"{exc.status} {body.get('reason', '')}: {body.get('message', '')}".strip()
    except (TypeError, ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"


def check_store(uri: str) -> None:
    """Stage pods must reach the store: object storage, or a shared filesystem only when told."""
    scheme = uri_scheme(uri)
    if scheme not in _LOCAL_SCHEMES:
        return
    if scheme == "file" and os.environ.get(SHARED_FS_ENV) == "1":
        return
    raise XtrcError(
        f"the store {uri} is on this machine's {'filesystem' if scheme == 'file' else 'memory'}, which the "
        "cluster's pods cannot see; use object storage for the Kubernetes backend (s3://, gs://, az://: "
        "storage.uri or --store), or `xtrc run` to run here. "
        f"(Only for tests and single-node clusters whose pods see this path: {SHARED_FS_ENV}=1.)")


# --- the backend -----------------------------------------------------------------------------


@dataclass
class StageDetail:
    """What `xtrc status` shows of one stage's Job beyond BackendStatus."""

    job: str
    created: float | None
    pod: str = ""
    phase: str = ""  # of the newest pod
    node: str = ""
    condition: str = ""  # Complete | Failed | "" (active)
    suspended: bool = False


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _true_conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in (obj.status.conditions or []) if c.status == "True"} if obj.status else {}


def _disrupted(pod: Any) -> bool:
    return "DisruptionTarget" in _true_conditions(pod)


def _exit_code(pod: Any) -> int | None:
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.name == STAGE_CONTAINER and cs.state and cs.state.terminated:
            return cs.state.terminated.exit_code
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.state and cs.state.terminated:
            return cs.state.terminated.exit_code
    return None


class KubernetesBackend:
    """The orchestration loop's backend on a cluster (see the module docstring)."""

    def __init__(self, plan: Plan, api: Any, *, namespace: str | None = None, renderer: Renderer | None = None,
                 require_remote_store: bool = True):
        from kubernetes import client

        if require_remote_store:
            check_store(plan.experiment.storage.uri)
        self.plan = plan
        self.namespace = namespace or plan.experiment.compute.namespace
        self.experiment = plan.experiment.metadata.name
        self.renderer = renderer or Renderer()
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.selector = f"{EXPERIMENT_LABEL}={self.experiment},{COMPONENT_LABEL}=stage"
        self.details: dict[str, StageDetail] = {}
        self.submitted: list[str] = []
        self._failure_reasons: dict[str, str] = {}  # Job uid → reason (a failed Job stays failed)

    # --- Backend ---------------------------------------------------------------------------
    def submit(self, stage: StageConfig) -> None:
        body = yaml.safe_load(self.renderer.render_stage(self.plan, stage).text)
        body["metadata"]["namespace"] = self.namespace
        name = body["metadata"]["name"]
        call(self.batch.create_namespaced_job, self.namespace, body, what=f"create Job {self.namespace}/{name}",
             ok=(409,), _request_timeout=REQUEST_TIMEOUT)  # 409: it exists already, the same stage
        self.submitted.append(stage.key)

    def poll(self) -> dict[str, BackendStatus]:
        jobs = call(self.batch.list_namespaced_job, self.namespace, label_selector=self.selector,
                    what=f"list Jobs in {self.namespace}", _request_timeout=REQUEST_TIMEOUT).items
        pods = call(self.core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                    what=f"list Pods in {self.namespace}", _request_timeout=REQUEST_TIMEOUT).items
        by_owner: dict[str, list[Any]] = {}
        for pod in pods:
            for ref in pod.metadata.owner_references or []:
                if ref.controller:
                    by_owner.setdefault(ref.uid, []).append(pod)
        out: dict[str, BackendStatus] = {}
        details: dict[str, StageDetail] = {}
        for job in jobs:
            key = (job.metadata.labels or {}).get(STAGE_KEY_LABEL)
            if key not in self.plan.stages or job.metadata.deletion_timestamp is not None:
                continue
            owned = sorted(by_owner.get(job.metadata.uid, []), key=lambda p: (_ts(p.metadata.creation_timestamp) or 0,
                                                                                p.metadata.name))
            out[key], details[key] = self._status(job, owned)
        self.details = details
        return out

    def cancel(self) -> None:
        """Delete every stage Job of the experiment (and, by Background propagation, their pods)."""
        for job in call(self.batch.list_namespaced_job, self.namespace, label_selector=self.selector,
                        what=f"list Jobs in {self.namespace}", _request_timeout=REQUEST_TIMEOUT).items:
            self.delete_job(job.metadata.name)

    def delete_job(self, name: str) -> None:
        call(self.batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background",
             what=f"delete Job {self.namespace}/{name}", ok=(404,), _request_timeout=REQUEST_TIMEOUT)

    def job_name(self, key: str) -> str:
        return job_name(self.experiment, self.plan.stages[key])

    # --- status in words -------------------------------------------------------------------
    def _status(self, job: Any, pods: list[Any]) -> tuple[BackendStatus, StageDetail]:
        conditions = _true_conditions(job)
        st = job.status
        counted = ((st.failed or 0) + (st.succeeded or 0) + (st.active or 0)) if st else 0
        attempts = max(len(pods), counted, 1)
        started = _ts(st.start_time if st and st.start_time else job.metadata.creation_timestamp)
        newest = pods[-1] if pods else None
        detail = StageDetail(job.metadata.name, _ts(job.metadata.creation_timestamp), suspended=bool(job.spec.suspend))
        if newest is not None:
            detail.pod = newest.metadata.name
            detail.phase = (newest.status.phase or "") if newest.status else ""
            detail.node = newest.spec.node_name or ""
        if "Complete" in conditions:
            detail.condition = "Complete"
            return BackendStatus("finished", "", attempts, started), detail
        failed = conditions.get("Failed") or conditions.get("FailureTarget")
        if failed is not None:
            detail.condition = "Failed"
            reason = self._failure_reasons.get(job.metadata.uid)
            if reason is None:
                reason = self._failure_reasons[job.metadata.uid] = self._failure_reason(job, failed, pods)
            return BackendStatus("failed", reason, attempts, started), detail
        return BackendStatus("running", self._waiting_reason(job, pods), attempts, started), detail

    def _waiting_reason(self, job: Any, pods: list[Any]) -> str:
        if job.spec.suspend:
            queue = (job.metadata.labels or {}).get(QUEUE_LABEL)
            return f"waiting in Kueue queue {queue}" if queue else "suspended"
        if not pods:
            return "pending"
        newest = pods[-1]
        preempted = any(_disrupted(p) for p in pods)
        phase = newest.status.phase if newest.status else None
        if phase == "Pending":
            scheduled = {c.type: c for c in (newest.status.conditions or [])}.get("PodScheduled")
            if scheduled is not None and scheduled.status == "False":
                return f"{scheduled.reason or 'Unschedulable'}: {scheduled.message or 'not scheduled yet'}"
            for cs in newest.status.container_statuses or []:
                waiting = cs.state.waiting if cs.state else None
                if waiting is not None and waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
                    return f"{waiting.reason}: {waiting.message}" if waiting.message else waiting.reason
            return "preempted, retrying" if preempted else "pending"
        if preempted:
            return "preempted, retrying"
        if phase == "Failed":
            code = _exit_code(newest)
            return f"retrying after exit {code}" if code is not None else "retrying"
        earlier = [p for p in pods[:-1] if p.status and p.status.phase == "Failed"]
        if earlier:
            code = _exit_code(earlier[-1])
            return f"attempt {len(pods)}, after exit {code}" if code is not None else f"attempt {len(pods)}"
        return ""

    def _failure_reason(self, job: Any, condition: Any, pods: list[Any]) -> str:
        kind = condition.reason or "Failed"
        failed = [p for p in pods if p.status and p.status.phase == "Failed" and not _disrupted(p)]
        last = failed[-1] if failed else None
        code = _exit_code(last) if last is not None else None
        error = self._error_line(last) if last is not None else ""
        exit_text = ""
        if code is not None:
            if code == CONFIG_ERROR and not error.startswith("configuration error"):
                error = f"configuration error: {error}" if error else "configuration error"
            exit_text = f"exit {code}: {error}" if error else f"exit {code}"
        if kind == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds
            return f"DeadlineExceeded: the Job ran longer than activeDeadlineSeconds ({deadline}s)"
        if kind == "BackoffLimitExceeded":
            n = (job.status.failed or 0) if job.status else 0
            return f"BackoffLimitExceeded: {n} failed attempt(s)" + (f"; last {exit_text}" if exit_text else "")
        if exit_text:
            return exit_text
        return f"{kind}: {condition.message}" if condition.message else kind

    def _error_line(self, pod: Any) -> str:
        """The last ERROR line of a pod's log (what the runtime says before it exits), else its last line."""
        try:
            text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace, container=STAGE_CONTAINER,
                                                     tail_lines=200, _request_timeout=REQUEST_TIMEOUT)
        except Exception:  # a reason must never fail a poll
            return ""
        lines = [line.strip() for line in str(text).splitlines() if line.strip()]
        for line in reversed(lines):
            if " ERROR " in line:
                return line.split(" ERROR ", 1)[1].strip()[:300]
        if lines:
            last = lines[-1]
            try:
                return str(json.loads(last).get("error", last))[:300]
            except (ValueError, AttributeError):
                return last[:300]
        return ""


# --- `xtrc apply` ----------------------------------------------------------------------------

_CREATE = {  # kind → (API class, method suffix)
    "ConfigMap": ("CoreV1Api", "config_map"),
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "Role": ("RbacAuthorizationV1Api", "role"),
    "RoleBinding": ("RbacAuthorizationV1Api", "role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
    "Job": ("BatchV1Api", "job"),
}


def spec_hash(spec_text: str, args: list[str], env: dict[str, str]) -> str:
    payload = json.dumps({"spec": spec_text, "args": args, "env": env}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def orchestrator_args(spec_path: str, namespace: str, *, store: str | None, image: str | None,
                      rerun: str | None, poll: float | None) -> list[str]:
    args = ["orchestrate", spec_path, "--namespace", namespace]
    for flag, value in (("--store", store), ("--image", image), ("--rerun", rerun)):
        if value:
            args += [flag, value]
    if poll is not None:
        args += ["--poll", f"{poll:g}"]
    return args


def orchestrator_env() -> dict[str, str]:
    """Settings the in-cluster loop needs from here (only the shared-filesystem switch)."""
    return {SHARED_FS_ENV: "1"} if os.environ.get(SHARED_FS_ENV) == "1" else {}


def apply_manifests(plan: Plan, renderer: Renderer, *, spec_text: str, args: list[str],
                    env: dict[str, str]) -> list[Manifest]:
    """Everything `xtrc apply` creates, in order: ConfigMap, ServiceAccount, Role, RoleBinding,
    NetworkPolicy, the orchestrator Job."""
    objects = renderer.render_orchestrator(plan, spec_text=spec_text, spec_hash=spec_hash(spec_text, args, env),
                                           args=args, env=env)
    return [*objects[:4], renderer.render_network_policy(plan), objects[4]]


@dataclass
class Applied:
    kind: str
    name: str
    action: str  # created | unchanged | replaced | restarted | deleted


def _api(api: Any, kind: str) -> tuple[Any, str]:
    from kubernetes import client

    cls, suffix = _CREATE[kind]
    return getattr(client, cls)(api), suffix


def apply(plan: Plan, api: Any, manifests: list[Manifest], *, server_dry_run: bool = False,
          backend: KubernetesBackend | None = None) -> list[Applied]:
    """Create each object unless it exists (409 → unchanged). The ConfigMap and the orchestrator Job
    are replaced when the spec (or the flags passed on) changed; an orchestrator Job that ended
    with failed stages is started again after the failed stage Jobs are deleted (a retry, as a new
    `xtrc run` retries what failed)."""
    namespace = plan.experiment.compute.namespace
    dry = {"dry_run": "All"} if server_dry_run else {}
    backend = backend or KubernetesBackend(plan, api, require_remote_store=False)
    out: list[Applied] = []
    for manifest in manifests:
        body = yaml.safe_load(manifest.text)
        target, suffix = _api(api, manifest.kind)
        what = f"{manifest.kind} {namespace}/{manifest.name}"
        created = call(getattr(target, f"create_namespaced_{suffix}"), namespace, body, what=f"create {what}",
                       ok=(409,), _request_timeout=REQUEST_TIMEOUT, **dry)
        if not _is_conflict(created):
            out.append(Applied(manifest.kind, manifest.name, "created"))
            continue
        action = "unchanged"
        if manifest.kind == "ConfigMap":
            action = _replace_config_map(target, namespace, body, what, dry)
        elif manifest.kind == "Job":
            action = _refresh_orchestrator(target, namespace, body, what, dry, backend)
        out.append(Applied(manifest.kind, manifest.name, action))
    return out


def _is_conflict(result: Any) -> bool:
    from kubernetes.client import ApiException

    return isinstance(result, ApiException)


def _replace_config_map(core: Any, namespace: str, body: dict, what: str, dry: dict) -> str:
    current = call(core.read_namespaced_config_map, body["metadata"]["name"], namespace, what=f"read {what}",
                   _request_timeout=REQUEST_TIMEOUT)
    if (current.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION) == body["metadata"]["annotations"][
            SPEC_HASH_ANNOTATION] and current.data == body["data"]:
        return "unchanged"
    body["metadata"]["resourceVersion"] = current.metadata.resource_version
    call(core.replace_namespaced_config_map, body["metadata"]["name"], namespace, body, what=f"replace {what}",
         _request_timeout=REQUEST_TIMEOUT, **dry)
    return "replaced"


def _refresh_orchestrator(batch: Any, namespace: str, body: dict, what: str, dry: dict,
                          backend: KubernetesBackend) -> str:
    name = body["metadata"]["name"]
    current = call(batch.read_namespaced_job, name, namespace, what=f"read {what}", _request_timeout=REQUEST_TIMEOUT)
    same = (current.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION) == \
        body["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    conditions = _true_conditions(current)
    if same and "Failed" not in conditions:
        return "unchanged"  # running, or finished with every stage done
    if same and not dry:
        retry_failed(backend)  # it ended with failed stages (or crashed): apply again = try again
    if dry:
        return "restarted" if same else "replaced"
    call(batch.delete_namespaced_job, name, namespace, propagation_policy="Background", what=f"delete {what}",
         ok=(404,), _request_timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + 60
    while True:
        result = call(batch.create_namespaced_job, namespace, body, what=f"create {what}", ok=(409,),
                      _request_timeout=REQUEST_TIMEOUT)
        if not _is_conflict(result):
            return "replaced" if not same else "restarted"
        if time.monotonic() > deadline:
            raise XtrcError(f"{what} is still being deleted after 60s; run `xtrc apply` again")
        time.sleep(0.5)


def retry_failed(backend: KubernetesBackend) -> list[str]:
    """Delete the Jobs of failed stages (of this plan), so the loop creates them again; their keys."""
    failed = [key for key, status in backend.poll().items() if status.state == "failed"]
    for key in failed:
        backend.delete_job(backend.details[key].job)
    if failed:
        deadline = time.monotonic() + 60
        while set(failed) & set(k for k, s in backend.poll().items() if s.state == "failed"):
            if time.monotonic() > deadline:
                raise XtrcError("failed stage Jobs are still being deleted after 60s; try again")
            time.sleep(0.5)
    return failed


# --- `xtrc delete` ---------------------------------------------------------------------------


def delete(plan: Plan, api: Any) -> list[Applied]:
    """Remove the experiment's objects from the cluster (never the store): every stage Job (of any
    version of the spec) and its pods, leftover pods, the orchestrator Job, the spec's ConfigMap,
    the ServiceAccount, Role, RoleBinding and the NetworkPolicy."""
    from kubernetes import client

    exp = plan.experiment.metadata.name
    ns = plan.experiment.compute.namespace
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    out: list[Applied] = []
    account = orchestrator_name(exp)
    # The orchestrator first, so that it creates no stage Job while they are being deleted.
    gone = call(batch.delete_namespaced_job, account, ns, propagation_policy="Background",
                what=f"delete Job {ns}/{account}", ok=(404,), _request_timeout=REQUEST_TIMEOUT)
    if not _is_conflict(gone):
        out.append(Applied("Job", account, "deleted"))
    selector = f"{EXPERIMENT_LABEL}={exp}"
    for job in call(batch.list_namespaced_job, ns, label_selector=selector, what=f"list Jobs in {ns}",
                    _request_timeout=REQUEST_TIMEOUT).items:
        gone = call(batch.delete_namespaced_job, job.metadata.name, ns, propagation_policy="Background",
                    what=f"delete Job {ns}/{job.metadata.name}", ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not _is_conflict(gone):
            out.append(Applied("Job", job.metadata.name, "deleted"))
    # Pods a Job deletion without propagation left behind (or ones whose Job is already gone).
    for pod in call(core.list_namespaced_pod, ns, label_selector=selector, what=f"list Pods in {ns}",
                    _request_timeout=REQUEST_TIMEOUT).items:
        gone = call(core.delete_namespaced_pod, pod.metadata.name, ns, what=f"delete Pod {ns}/{pod.metadata.name}",
                    ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not _is_conflict(gone):
            out.append(Applied("Pod", pod.metadata.name, "deleted"))
    for kind, name in (("ConfigMap", spec_configmap_name(exp)), ("RoleBinding", account), ("Role", account),
                       ("ServiceAccount", account), ("NetworkPolicy", network_policy_name(exp))):
        target, suffix = _api(api, kind)
        gone = call(getattr(target, f"delete_namespaced_{suffix}"), name, ns, what=f"delete {kind} {ns}/{name}",
                    ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not _is_conflict(gone):
            out.append(Applied(kind, name, "deleted"))
    return out


# --- `xtrc status` ---------------------------------------------------------------------------

STATUS_STATES = ("cached", "waiting", "ready", "pending", "running", "succeeded", "failed", "blocked")


@dataclass
class StageRow:
    key: str
    what: str
    arms: list[str]
    state: str
    phase: str = ""
    node: str = ""
    age: float | None = None  # seconds since the Job was created
    attempts: int = 0
    reason: str = ""
    job: str = ""
    pod: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_rows(plan: Plan, done: set[str], backend: KubernetesBackend, statuses: dict[str, BackendStatus],
               now: float | None = None) -> list[StageRow]:
    """One row per stage from the store's done keys and the cluster (via the loop's own `assess`)."""
    from xtrc.live import describe
    from xtrc.orchestrate import assess

    now = time.time() if now is None else now
    views = assess(plan, done, statuses)
    rows = []
    for key, view in views.items():
        detail = backend.details.get(key)
        state: str = view.state
        if state == "done":
            state = "succeeded" if detail is not None else "cached"
        elif state == "running":
            state = "running" if detail is not None and detail.phase == "Running" and not detail.suspended \
                else "pending"
        reason = view.reason
        if state == "pending" and not reason:
            reason = "pending"
        rows.append(StageRow(
            key=key, what=describe(plan, key), arms=list(plan.arms_by_stage.get(key, [])), state=state,
            phase=detail.phase if detail else "", node=detail.node if detail else "",
            age=(now - detail.created) if detail and detail.created else None,
            attempts=statuses[key].attempts if key in statuses else 0, reason=reason,
            job=detail.job if detail else "", pod=detail.pod if detail else ""))
    return rows


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


# --- `xtrc logs` -----------------------------------------------------------------------------


def resolve_stage(plan: Plan, text: str, seed: int | None = None) -> str:
    """A stage key from a key prefix or ``ARM/TASK`` (TASK a target task, or ``intermediate``)."""
    if "/" in text:
        arm, task = text.split("/", 1)
        arms = [a.name for a in plan.arms]
        if arm not in arms:
            raise XtrcError(f"no arm {arm!r}; arms: {', '.join(arms)}")
        if task == "intermediate":
            matches = {}
            for (a, s, _), key in plan.cells.items():
                upstream = plan.stages[key].init_from
                if a == arm and upstream:
                    matches[s] = upstream
            if not matches:
                raise XtrcError(f"arm {arm!r} has no intermediate stage")
        else:
            from xtrc import tasks

            try:
                task = tasks.resolve(task)
            except KeyError:
                pass
            matches = {s: key for (a, s, t), key in plan.cells.items() if a == arm and t == task}
            if not matches:
                targets = sorted({t for (_, _, t) in plan.cells})
                raise XtrcError(f"no target {task!r} in arm {arm!r}; targets: {', '.join(targets)}, or intermediate")
        if seed is not None:
            if seed not in matches:
                raise XtrcError(f"{text} has no seed {seed}; seeds: {', '.join(map(str, sorted(matches)))}")
            return matches[seed]
        keys = set(matches.values())
        if len(keys) > 1:
            listing = ", ".join(f"seed {s}: {k}" for s, k in sorted(matches.items()))
            raise XtrcError(f"{text} matches {len(keys)} stages ({listing}); pick one with --seed")
        return next(iter(keys))
    found = [key for key in plan.stages if key.startswith(text)]
    if not found:
        raise XtrcError(f"no stage of this plan has a key starting with {text!r}; give a key prefix "
                        "(see `xtrc status SPEC`) or ARM/TASK such as none+none/panx")
    if len(found) > 1:
        raise XtrcError(f"{text!r} matches {len(found)} stages ({', '.join(found[:8])}{', …' if len(found) > 8 else ''}); "
                        "give more of the key")
    return found[0]


def newest_pod(backend: KubernetesBackend, key: str) -> tuple[Any, int]:
    """The stage's newest pod and how many it has had; XtrcError when there is none."""
    selector = f"{backend.selector},{STAGE_KEY_LABEL}={key}"
    pods = call(backend.core.list_namespaced_pod, backend.namespace, label_selector=selector,
                what=f"list Pods in {backend.namespace}", _request_timeout=REQUEST_TIMEOUT).items
    if not pods:
        job = backend.job_name(key)
        exists = call(backend.batch.read_namespaced_job, job, backend.namespace, what=f"read Job {job}", ok=(404,),
                      _request_timeout=REQUEST_TIMEOUT)
        if _is_conflict(exists):
            raise XtrcError(f"stage {key} has no Job in namespace {backend.namespace} (not started yet, or deleted "
                            "after it finished: ttlSecondsAfterFinished)")
        raise XtrcError(f"stage {key}: Job {job} has no pod yet")
    pods.sort(key=lambda p: (_ts(p.metadata.creation_timestamp) or 0, p.metadata.name))
    return pods[-1], len(pods)


def pod_log(backend: KubernetesBackend, pod: str, *, follow: bool) -> Iterator[bytes]:
    """The pod's log as it comes (``follow``: until the container ends)."""
    response = call(backend.core.read_namespaced_pod_log, pod, backend.namespace, container=STAGE_CONTAINER,
                    follow=follow, _preload_content=False, what=f"read the log of pod {backend.namespace}/{pod}",
                    **({} if follow else {"_request_timeout": REQUEST_TIMEOUT}))
    try:
        yield from response.stream(64 * 1024)
    finally:
        response.release_conn()


# --- plain lines for the in-cluster loop -----------------------------------------------------


@dataclass
class Transitions:
    """An ``on_pass`` callback printing one line per stage whenever its state or reason changes."""

    plan: Plan
    out: Any = None
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __call__(self, snap: Any) -> None:
        from xtrc.live import describe

        out = self.out or sys.stdout
        for key, view in snap.stages.items():
            now = (view.state, view.reason)
            if self.seen.get(key) == now:
                continue
            self.seen[key] = now
            stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
            reason = f": {view.reason}" if view.reason else ""
            print(f"{stamp} {key} {describe(self.plan, key)}: {view.state}{reason}", file=out, flush=True)
