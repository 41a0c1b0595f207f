"""Why a stage's Job waits or failed, in words, from the summaries of its Job, pods, Kueue Workload
and FailedCreate Events (:mod:`xtrc.kube.summary`)."""

from __future__ import annotations

import re
from typing import Callable

from xtrc.kube.summary import EventSummary, JobSummary, PodSummary, WorkloadSummary

CONFIG_ERROR = 2
_FLAVORS_PREFIX = re.compile(r"^couldn't assign flavors to pod set [^:]*: ")
_QUOTA_WORDS = ("insufficient quota", "insufficient unused quota", "borrowing limit", "maximum capacity")


def waiting_reason(job: JobSummary, pods: list[PodSummary], workload: WorkloadSummary | None,
                   refused: EventSummary | None, cluster_queue: Callable[[str], str]) -> str:
    """Why an unfinished Job is not running yet ("" when it simply runs). ``pods`` oldest first;
    ``refused``: the newest FailedCreate Event of the Job; ``cluster_queue(local_queue)`` names the
    ClusterQueue behind a LocalQueue ("" when unknown)."""
    if job.suspended:
        return kueue_reason(workload, cluster_queue) or (
            f"waiting in Kueue queue {job.queue}" if job.queue else "suspended")
    newest = pods[-1] if pods else None
    if refused is not None and (newest is None or refused.last >= newest.created):
        return f"admission failed: {refused.message or refused.reason}"
    if newest is None:
        return kueue_reason(workload, cluster_queue) or "pending"
    preempted = any(p.disrupted for p in pods)
    if newest.phase == "Pending":
        if newest.unschedulable is not None:
            _, reason, message = newest.unschedulable
            return f"{reason or 'Unschedulable'}: {message or 'not scheduled yet'}"
        if newest.waiting is not None:
            reason, message = newest.waiting
            return f"{reason}: {message}" if message else reason
        return "preempted, retrying" if preempted else "pending"
    if preempted:
        return "preempted, retrying"
    if newest.phase == "Failed":
        code = newest.exit_code
        return f"retrying after exit {code}" if code is not None else "retrying"
    earlier = [p for p in pods[:-1] if p.phase == "Failed"]
    if earlier:
        code = earlier[-1].exit_code
        return f"attempt {len(pods)}, after exit {code}" if code is not None else f"attempt {len(pods)}"
    return ""


def kueue_reason(workload: WorkloadSummary | None, cluster_queue: Callable[[str], str]) -> str:
    """What Kueue says of a Workload it has not admitted ("" when nothing useful)."""
    if workload is None:
        return ""
    cq = workload.cluster_queue or (cluster_queue(workload.queue) if workload.queue else "")
    where = f"ClusterQueue {cq}" if cq else (
        f"the ClusterQueue of LocalQueue {workload.queue}" if workload.queue else "its ClusterQueue")
    reserved = workload.quota_reserved
    if reserved is not None and reserved[0] == "False" and reserved[2]:
        message = reserved[2]
        if any(word in message for word in _QUOTA_WORDS):
            return f"quota exceeded in {where}: {_FLAVORS_PREFIX.sub('', message)}"
        return f"admission failed: {message}"
    if workload.evicted is not None:
        _, reason, message = workload.evicted
        return f"evicted by Kueue ({reason}): {message}" if message else f"evicted by Kueue ({reason})"
    admitted = workload.admitted
    if reserved is not None and reserved[0] == "True" and admitted is not None and admitted[0] == "False":
        return f"quota reserved in {where}, waiting for admission checks" + (f": {admitted[2]}" if admitted[2] else "")
    return ""


def failure_reason(job: JobSummary, pods: list[PodSummary], error_line: Callable[[PodSummary], str]) -> str:
    """Why a failed Job failed; ``error_line(pod)`` reads what the runtime said last (one API call)."""
    status, kind, message = job.failed or ("True", "Failed", "")
    kind = kind or "Failed"
    failed = [p for p in pods if p.phase == "Failed" and not p.disrupted]
    last = failed[-1] if failed else None
    code = last.exit_code if last is not None else None
    exit_text = ""
    if code is not None and last is not None:
        error = error_line(last)
        if code == CONFIG_ERROR and not error.startswith("configuration error"):
            error = f"configuration error: {error}" if error else "configuration error"
        exit_text = f"exit {code}: {error}" if error else f"exit {code}"
    if kind == "DeadlineExceeded":
        return f"DeadlineExceeded: the Job ran longer than activeDeadlineSeconds ({job.deadline}s)"
    if kind == "BackoffLimitExceeded":
        return f"BackoffLimitExceeded: {job.failures} failed attempt(s)" + (f"; last {exit_text}" if exit_text else "")
    if exit_text:
        return exit_text
    return f"{kind}: {message}" if message else kind
