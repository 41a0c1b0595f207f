"""Why a stage waits, in words, from Kueue Workload and Job summaries (xtrc.kube.reasons)."""

from __future__ import annotations

from xtrc.kube.reasons import kueue_reason, waiting_reason
from xtrc.kube.summary import EventSummary, JobSummary, PodSummary, WorkloadSummary, summarize_workload

QUOTA = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor a10, "
         "1 more needed")


def job(**kw: object) -> JobSummary:
    fields = dict(uid="j", name="stage-job", key="k", created=10.0, started=None, suspended=False, queue="team-a",
                  deleting=False, complete=False, failed=None, active=0, succeeded=0, failures=0, deadline=None)
    fields.update(kw)
    return JobSummary(**fields)  # type: ignore[arg-type]


def workload(reserved: tuple[str, str, str] | None = None, admitted: tuple[str, str, str] | None = None,
             evicted: tuple[str, str, str] | None = None, cluster_queue: str = "") -> WorkloadSummary:
    return WorkloadSummary("w", "j", "team-a", cluster_queue, reserved, admitted, evicted)


def no_lookup(queue: str) -> str:
    return ""


def test_quota_and_inadmissible_workloads_are_told_apart() -> None:
    lookup = {"team-a": "gpu-cluster"}.get
    assert kueue_reason(workload(("False", "Pending", QUOTA)), lambda q: lookup(q, "")) == (
        "quota exceeded in ClusterQueue gpu-cluster: insufficient unused quota for nvidia.com/gpu in flavor a10, "
        "1 more needed")
    assert kueue_reason(workload(("False", "Pending", QUOTA)), no_lookup).startswith(
        "quota exceeded in the ClusterQueue of LocalQueue team-a: insufficient unused quota")
    assert kueue_reason(workload(("False", "Inadmissible", "LocalQueue team-a doesn't exist")), no_lookup) == \
        "admission failed: LocalQueue team-a doesn't exist"
    assert kueue_reason(workload(("True", "QuotaReserved", ""), ("False", "", "waiting for provisioning"),
                                 cluster_queue="gpu-cluster"), no_lookup) == (
        "quota reserved in ClusterQueue gpu-cluster, waiting for admission checks: waiting for provisioning")
    assert kueue_reason(workload(evicted=("True", "Preempted", "Preempted to accommodate a workload")), no_lookup) == \
        "evicted by Kueue (Preempted): Preempted to accommodate a workload"
    assert kueue_reason(None, no_lookup) == "" and kueue_reason(workload(), no_lookup) == ""


def test_a_suspended_job_without_a_workload_waits_in_its_queue() -> None:
    assert waiting_reason(job(suspended=True), [], None, None, no_lookup) == "waiting in Kueue queue team-a"
    assert waiting_reason(job(suspended=True, queue=""), [], None, None, no_lookup) == "suspended"


def test_a_refused_pod_creation_is_an_admission_failure_until_a_newer_pod_exists() -> None:
    refused = EventSummary("e", "j", "FailedCreate", 'Error creating: pods "p" is forbidden: exceeded quota', 20.0)
    assert waiting_reason(job(), [], None, refused, no_lookup) == (
        'admission failed: Error creating: pods "p" is forbidden: exceeded quota')
    newer = PodSummary("p", "stage-job-abcde", "j", 30.0, "Running", "node", None, None, False, None)
    assert waiting_reason(job(), [newer], None, refused, no_lookup) == ""


def test_workload_summary_reads_kueue_shapes() -> None:
    obj = {"metadata": {"uid": "w1", "ownerReferences": [{"uid": "j1", "controller": True, "kind": "Job"}]},
           "spec": {"queueName": "team-a", "podSets": [{"name": "main", "count": 1, "template": {}}]},
           "status": {"admission": {"clusterQueue": "gpu-cluster"}, "conditions": [
               {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "Quota reserved"},
               {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "The workload is admitted"}]}}
    summary = summarize_workload(obj)
    assert summary is not None and (summary.owner, summary.queue, summary.cluster_queue) == ("j1", "team-a",
                                                                                            "gpu-cluster")
    assert summary.admitted == ("True", "Admitted", "The workload is admitted") and summary.evicted is None
    assert summarize_workload({"metadata": {"uid": "orphan"}}) is None  # no owning Job: not a stage's
