"""The orchestration loop's backend on a cluster: each stage is one batch/v1 Job.

``poll`` costs O(changes), not O(stages): the first call lists the experiment's Jobs and Pods (and
the namespace's FailedCreate Events, and Kueue Workloads when the spec names a queue) in pages,
with label/field selectors; later calls start one watch per kind (:class:`~xtrc.kube.watch.Informer`)
and recompute only the stages whose objects changed. A stage Job created by ``submit`` counts as
pending until the watch shows it.
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass
from typing import Any

import yaml

from xtrc.kube.client import (
    COMPONENT_LABEL, EXPERIMENT_LABEL, REQUEST_TIMEOUT, STAGE_CONTAINER, STRICT, ClusterError, call, check_store,
    is_api_error,
)
from xtrc.kube.reasons import failure_reason, waiting_reason
from xtrc.kube.summary import (
    FAILED_CREATE, EventSummary, JobSummary, PodSummary, WorkloadSummary, summarize_event, summarize_job,
    summarize_pod, summarize_workload,
)
from xtrc.kube.watch import Change, Informer
from xtrc.orchestrate import BackendStatus
from xtrc.plan import Plan
from xtrc.render import Renderer, job_name
from xtrc.stage import StageConfig

KUEUE = ("kueue.x-k8s.io", "v1beta1")
FREEZE_AFTER = 2_000
"""Objects in the first list from which the backend freezes the collector's view of the heap."""
NOT_DONE_AGAIN = ("the Job completed again without the stage's _SUCCESS in the store (is the store the pods "
                  "write to the one this loop reads? storage.uri / --store)")


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
        self.custom = client.CustomObjectsApi(api)
        self.selector = f"{EXPERIMENT_LABEL}={self.experiment},{COMPONENT_LABEL}=stage"
        self.details: dict[str, StageDetail] = {}
        self.submitted: list[str] = []
        ns = self.namespace
        self.jobs: Informer[JobSummary] = Informer(self.batch.list_namespaced_job, ns, what=f"Jobs in {ns}",
                                                   summarize=summarize_job, label_selector=self.selector)
        self.pods: Informer[PodSummary] = Informer(self.core.list_namespaced_pod, ns, what=f"Pods in {ns}",
                                                   summarize=summarize_pod, label_selector=self.selector)
        # Events and Workloads only explain why a stage waits: a Role that may not read them, or a
        # cluster without Kueue, leaves them out (Informer.unavailable says why).
        self.refusals: Informer[EventSummary] = Informer(
            self.core.list_namespaced_event, ns, what=f"Events in {ns}", summarize=summarize_event, optional=True,
            field_selector=FAILED_CREATE)
        self.workloads: Informer[WorkloadSummary] | None = None
        if plan.experiment.compute.queue:
            self.workloads = Informer(self.custom.list_namespaced_custom_object, *KUEUE, ns, "workloads",
                                      what=f"Kueue Workloads in {ns}", summarize=summarize_workload, optional=True)
        self._synced = False
        self._statuses: dict[str, BackendStatus] = {}
        self._job_of: dict[str, str] = {}  # stage key → uid of its (not deleting) Job
        self._pods_of: dict[str, dict[str, PodSummary]] = {}  # Job uid → its pods
        self._workload_of: dict[str, WorkloadSummary] = {}  # Job uid → its Kueue Workload
        self._refused: dict[str, EventSummary] = {}  # Job uid → newest FailedCreate Event
        self._failure_reasons: dict[str, str] = {}  # Job uid → reason (a failed Job stays failed)
        self._pending: dict[str, float] = {}  # stage key → when submit created its Job, until the watch shows it
        self._redone: dict[str, str] = {}  # stage key → uid of the Complete Job deleted to run it again
        self._recreate: dict[str, dict] = {}  # stage key → Job body to create once the old Job is gone
        self._cluster_queues: dict[str, str] = {}  # LocalQueue → ClusterQueue

    # --- Backend ---------------------------------------------------------------------------
    def submit(self, stage: StageConfig) -> None:
        body = yaml.safe_load(self.renderer.render_stage(self.plan, stage).text)
        body["metadata"]["namespace"] = self.namespace
        if not self._create(body):  # a Job of that name exists: the same stage (names are content-keyed)
            self._replace_complete(stage.key, body)
        self._pending[stage.key] = time.time()
        self.submitted.append(stage.key)

    def poll(self) -> dict[str, BackendStatus]:
        """Every stage's status; the first call lists, the later ones apply what the watches saw."""
        if not self._synced:
            changed = self._first_list()
        else:
            for informer in self._informers():
                informer.start()
            broken = [i.error for i in (self.jobs, self.pods) if i.error]
            if broken:  # the loop shows it and waits: what it would see now is stale
                raise ClusterError("; ".join(broken))
            changed = self._apply(*(informer.drain() if informer is not None else []
                                    for informer in (self.jobs, self.pods, self.refusals, self.workloads)))
        for key in list(self._recreate):
            if self._create(self._recreate[key]):
                del self._recreate[key]
        for key in changed:
            self._refresh(key)
        out = dict(self._statuses)
        for key, since in self._pending.items():
            if key not in out or key in self._redone and self._job_of.get(key) == self._redone[key]:  # unseen/old
                out[key] = BackendStatus("running", "pending", 1, since)
        return out

    def cancel(self) -> None:
        """Delete every stage Job of the experiment (and, by Background propagation, their pods)."""
        listing: Informer[JobSummary] = Informer(self.batch.list_namespaced_job, self.namespace,
                                                 what=f"Jobs in {self.namespace}", summarize=summarize_job,
                                                 label_selector=self.selector)
        listing.list()
        for job in listing.items.values():
            self.delete_job(job.name)

    def close(self) -> None:
        """Stop the watches."""
        for informer in self._informers():
            informer.stop()

    def delete_job(self, name: str, uid: str | None = None) -> None:
        extra = {"body": {"preconditions": {"uid": uid}}} if uid else {}
        call(self.batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background",
             what=f"delete Job {self.namespace}/{name}", ok=(404, 409), _request_timeout=REQUEST_TIMEOUT, **extra)

    def job_name(self, key: str) -> str:
        return job_name(self.experiment, self.plan.stages[key])

    @property
    def problems(self) -> list[str]:
        """What the backend cannot see right now (a watch being retried, a kind it may not read)."""
        return [text for i in self._informers() for text in (i.unavailable, i.error) if text]

    # --- creating, and re-creating a Job that completed without _SUCCESS --------------------
    def _create(self, body: dict) -> bool:
        """Create the Job; False when one of that name exists (409)."""
        name = body["metadata"]["name"]
        result = call(self.batch.create_namespaced_job, self.namespace, body, what=f"create Job {self.namespace}/{name}",
                      ok=(409,), _request_timeout=REQUEST_TIMEOUT, **STRICT)
        return not is_api_error(result)

    def _replace_complete(self, key: str, body: dict) -> bool:
        """The stage's Job exists. The loop submits a stage only when the store lacks its _SUCCESS,
        so a Complete Job means the store lost it (deleted to redo the stage, or another --store):
        delete that Job and create it again, once per loop (a second Complete without _SUCCESS is a
        failure, see :data:`NOT_DONE_AGAIN`). True when it was replaced (or will be)."""
        name = body["metadata"]["name"]
        current = call(self.batch.read_namespaced_job, name, self.namespace, what=f"read Job {self.namespace}/{name}",
                       ok=(404,), _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        if is_api_error(current):
            return self._create(body)  # deleted meanwhile
        job = summarize_job(json.loads(current.data))
        if job is None or not job.complete or job.deleting or key in self._redone:
            return False
        self._redone[key] = job.uid
        self.delete_job(name, uid=job.uid)
        if not self._create(body):
            self._recreate[key] = body  # still being deleted: poll creates it
        return True

    # --- keeping the statuses current --------------------------------------------------------
    def _first_list(self) -> set[str]:
        # Building tens of thousands of summaries at once wakes the cyclic garbage collector over
        # and over (2.5 of 3.8 s CPU at 10,000 stages); at that size they and the plan then live as
        # long as the loop, so they move to the collector's permanent generation and later passes
        # never scan them (a small experiment's process keeps its collector as it was).
        enabled = gc.isenabled()
        gc.disable()
        try:
            changed = self._apply(*(informer.list() if informer is not None else []
                                    for informer in (self.jobs, self.pods, self.refusals, self.workloads)))
        finally:
            if enabled:
                gc.enable()
        if len(self.jobs.items) + len(self.pods.items) >= FREEZE_AFTER:
            gc.collect()
            gc.freeze()
        self._synced = True
        return changed

    def _informers(self) -> list[Informer[Any]]:
        return [i for i in (self.jobs, self.pods, self.refusals, self.workloads) if i is not None]

    def _apply(self, jobs: list[Change], pods: list[Change], refusals: list[Change],
               workloads: list[Change]) -> set[str]:
        """Fold the changes into the indexes; the stage keys whose status may have changed."""
        touched: set[str] = set()  # Job uids
        keys: set[str] = set()
        for uid, before, after in jobs:
            for job in (before, after):
                if job is not None:
                    keys.add(job.key)
            if before is not None and self._job_of.get(before.key) == uid:
                del self._job_of[before.key]
            if after is not None and not after.deleting and after.key in self.plan.stages:
                self._job_of[after.key] = uid
                self._pending.pop(after.key, None)
            if after is None:
                for index in (self._pods_of, self._workload_of, self._refused):
                    index.pop(uid, None)
        for uid, before, after in pods:
            if before is not None:
                self._pods_of.get(before.owner, {}).pop(uid, None)
                touched.add(before.owner)
            if after is not None:
                self._pods_of.setdefault(after.owner, {})[uid] = after
                touched.add(after.owner)
        for uid, before, after in workloads:
            if before is not None and self._workload_of.get(before.owner) is before:
                del self._workload_of[before.owner]
                touched.add(before.owner)
            if after is not None:
                self._workload_of[after.owner] = after
                touched.add(after.owner)
        for uid, before, after in refusals:
            if after is not None:
                newest = self._refused.get(after.involved)
                if newest is None or after.last >= newest.last:
                    self._refused[after.involved] = after
                touched.add(after.involved)
            elif before is not None and self._refused.get(before.involved) is before:
                del self._refused[before.involved]
                touched.add(before.involved)
        if touched:
            by_uid = self.jobs.items
            keys.update(by_uid[uid].key for uid in touched if uid in by_uid)
        return {key for key in keys if key in self.plan.stages}

    def _refresh(self, key: str) -> None:
        uid = self._job_of.get(key)
        job = self.jobs.items.get(uid) if uid else None
        if job is None:
            self._statuses.pop(key, None)
            self.details.pop(key, None)
            return
        pods = sorted(self._pods_of.get(uid, {}).values(), key=lambda p: (p.created, p.name))
        self._statuses[key], self.details[key] = self._status(job, pods)

    def _status(self, job: JobSummary, pods: list[PodSummary]) -> tuple[BackendStatus, StageDetail]:
        attempts = max(len(pods), job.counted, 1)
        started = job.started or job.created
        detail = StageDetail(job.name, job.created, suspended=job.suspended)
        if pods:
            newest = pods[-1]
            detail.pod, detail.phase, detail.node = newest.name, newest.phase, newest.node
        if job.complete:
            detail.condition = "Complete"
            if self._redone.get(job.key, job.uid) != job.uid:  # the Job created again completed too
                return BackendStatus("failed", NOT_DONE_AGAIN, attempts, started), detail
            return BackendStatus("finished", "", attempts, started, rerunnable=True), detail
        if job.failed is not None:
            detail.condition = "Failed"
            reason = self._failure_reasons.get(job.uid)
            if reason is None:
                reason = self._failure_reasons[job.uid] = failure_reason(job, pods, self._error_line)
            return BackendStatus("failed", reason, attempts, started), detail
        reason = waiting_reason(job, pods, self._workload_of.get(job.uid), self._refused.get(job.uid),
                                self._cluster_queue)
        return BackendStatus("running", reason, attempts, started, queued=job.suspended), detail

    def _cluster_queue(self, local_queue: str) -> str:
        """The ClusterQueue a LocalQueue of this namespace points at ("" when it cannot be read)."""
        if local_queue not in self._cluster_queues:
            try:
                queue = self.custom.get_namespaced_custom_object(*KUEUE, self.namespace, "localqueues", local_queue,
                                                                 _request_timeout=REQUEST_TIMEOUT)
                self._cluster_queues[local_queue] = str((queue.get("spec") or {}).get("clusterQueue") or "")
            except Exception:  # a reason must never fail a poll (no Kueue, no permission, no such queue)
                self._cluster_queues[local_queue] = ""
        return self._cluster_queues[local_queue]

    def _error_line(self, pod: PodSummary) -> str:
        """The last ERROR line of a pod's log (what the runtime says before it exits), else its last line."""
        try:
            text = self.core.read_namespaced_pod_log(pod.name, self.namespace, container=STAGE_CONTAINER,
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
