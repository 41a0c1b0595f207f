"""The orchestration loop's backend on a cluster: each stage is one batch/v1 Job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from xtrc.kube.client import (
    COMPONENT_LABEL, CONFIG_ERROR, EXPERIMENT_LABEL, QUEUE_LABEL, REQUEST_TIMEOUT, STAGE_CONTAINER, STAGE_KEY_LABEL,
    call, check_store,
)
from xtrc.orchestrate import BackendStatus
from xtrc.plan import Plan
from xtrc.render import Renderer, job_name
from xtrc.stage import StageConfig


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
