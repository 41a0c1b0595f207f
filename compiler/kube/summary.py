"""The few fields of each watched object the backend reads, taken from the API's JSON.

The backend keeps one small summary per Job, Pod, Kueue Workload and FailedCreate Event instead of
whole objects (a stage Job's JSON is ~4 KB; its summary ~200 bytes), and never builds the official
client's models for them (deserializing 10,000 Jobs into models costs seconds of CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xtrc.kube.client import QUEUE_LABEL, STAGE_CONTAINER, STAGE_KEY_LABEL

Condition = tuple[str, str, str]
"""(status, reason, message) of one condition."""


def timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _conditions(obj: dict) -> dict[str, Condition]:
    return {c.get("type", ""): (c.get("status", ""), c.get("reason") or "", c.get("message") or "")
            for c in (obj.get("status") or {}).get("conditions") or []}


def _true(conditions: dict[str, Condition], kind: str) -> Condition | None:
    found = conditions.get(kind)
    return found if found is not None and found[0] == "True" else None


def _controller(meta: dict) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", "")
    return ""


@dataclass(frozen=True, slots=True)
class JobSummary:
    uid: str
    name: str
    key: str  # the stage key label
    created: float | None
    started: float | None
    suspended: bool
    queue: str  # the Kueue LocalQueue label, "" without one
    deleting: bool
    complete: bool
    failed: Condition | None  # the Failed (or FailureTarget) condition when it is True
    active: int
    succeeded: int
    failures: int
    deadline: int | None  # activeDeadlineSeconds

    @property
    def counted(self) -> int:
        return self.active + self.succeeded + self.failures


def summarize_job(obj: dict) -> JobSummary | None:
    meta = obj.get("metadata") or {}
    key = (meta.get("labels") or {}).get(STAGE_KEY_LABEL)
    if not key or not meta.get("uid"):
        return None
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = _conditions(obj)
    return JobSummary(
        uid=meta["uid"], name=meta.get("name", ""), key=key, created=timestamp(meta.get("creationTimestamp")),
        started=timestamp(status.get("startTime")), suspended=bool(spec.get("suspend")),
        queue=(meta.get("labels") or {}).get(QUEUE_LABEL, ""), deleting=meta.get("deletionTimestamp") is not None,
        complete=_true(conditions, "Complete") is not None,
        failed=_true(conditions, "Failed") or _true(conditions, "FailureTarget"),
        active=int(status.get("active") or 0), succeeded=int(status.get("succeeded") or 0),
        failures=int(status.get("failed") or 0), deadline=spec.get("activeDeadlineSeconds"))


@dataclass(frozen=True, slots=True)
class PodSummary:
    uid: str
    name: str
    owner: str  # the controlling Job's uid
    created: float
    phase: str
    node: str
    unschedulable: Condition | None  # PodScheduled=False
    waiting: tuple[str, str] | None  # (reason, message) of a container waiting for more than creation
    disrupted: bool  # DisruptionTarget=True: preempted or evicted
    exit_code: int | None  # of the stage container (else any container) once it terminated


def _exit_code(statuses: list[dict]) -> int | None:
    terminated = [(cs.get("name"), ((cs.get("state") or {}).get("terminated") or {})) for cs in statuses]
    for name, state in terminated:
        if name == STAGE_CONTAINER and "exitCode" in state:
            return int(state["exitCode"])
    for _, state in terminated:
        if "exitCode" in state:
            return int(state["exitCode"])
    return None


def summarize_pod(obj: dict) -> PodSummary | None:
    meta = obj.get("metadata") or {}
    owner = _controller(meta)
    if not owner or not meta.get("uid"):
        return None
    status = obj.get("status") or {}
    conditions = _conditions(obj)
    scheduled = conditions.get("PodScheduled")
    waiting = None
    for cs in status.get("containerStatuses") or []:
        state = (cs.get("state") or {}).get("waiting")
        if state is not None and state.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            waiting = (state.get("reason", ""), state.get("message") or "")
            break
    return PodSummary(
        uid=meta["uid"], name=meta.get("name", ""), owner=owner, created=timestamp(meta.get("creationTimestamp")) or 0.0,
        phase=status.get("phase") or "", node=(obj.get("spec") or {}).get("nodeName") or "",
        unschedulable=scheduled if scheduled is not None and scheduled[0] == "False" else None, waiting=waiting,
        disrupted=_true(conditions, "DisruptionTarget") is not None,
        exit_code=_exit_code(status.get("containerStatuses") or []))


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    """A Kueue Workload (kueue.x-k8s.io/v1beta1): Kueue's admission record of one Job."""

    uid: str
    owner: str  # the Job's uid
    queue: str  # spec.queueName: the LocalQueue
    cluster_queue: str  # status.admission.clusterQueue, once quota is reserved
    quota_reserved: Condition | None
    admitted: Condition | None
    evicted: Condition | None  # when True


def summarize_workload(obj: dict) -> WorkloadSummary | None:
    meta = obj.get("metadata") or {}
    owner = _controller(meta)
    if not owner or not meta.get("uid"):
        return None
    conditions = _conditions(obj)
    admission = (obj.get("status") or {}).get("admission") or {}
    return WorkloadSummary(
        uid=meta["uid"], owner=owner, queue=(obj.get("spec") or {}).get("queueName") or "",
        cluster_queue=admission.get("clusterQueue") or "", quota_reserved=conditions.get("QuotaReserved"),
        admitted=conditions.get("Admitted"), evicted=_true(conditions, "Evicted"))


FAILED_CREATE = "involvedObject.kind=Job,reason=FailedCreate"
"""The Events the backend reads: the Job controller could not create a pod (admission refused it:
a ResourceQuota, a missing ServiceAccount, a policy)."""


@dataclass(frozen=True, slots=True)
class EventSummary:
    uid: str
    involved: str  # the Job's uid
    reason: str
    message: str
    last: float


def summarize_event(obj: dict) -> EventSummary | None:
    meta = obj.get("metadata") or {}
    involved = (obj.get("involvedObject") or {}).get("uid")
    if not involved or not meta.get("uid"):
        return None
    last = timestamp(obj.get("lastTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")) or 0.0
    return EventSummary(uid=meta["uid"], involved=involved, reason=obj.get("reason") or "",
                        message=obj.get("message") or "", last=last)
