"""The Kubernetes backend at scale and under Kueue, against FakeCluster through the official client:
paginated lists then watches (O(changes) polls, a re-list on 410 Gone), a Complete Job whose
_SUCCESS left the store run again, Kueue Workload conditions and FailedCreate Events in
`xtrc status`, and max_parallel counting only admitted Jobs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.kube.apiserver import FakeCluster
from tests.kube.test_backend import FAKE, FAKE_IMAGE, RUNTIME, Kube, key_of, status_rows
from tests.kube.test_backend import kube as kube  # noqa: F401  (the fixture)
from xtrc.kube import watch as kube_watch
from xtrc.kube.backend import NOT_DONE_AGAIN, KubernetesBackend
from xtrc.orchestrate import orchestrate
from xtrc.plan import Plan
from xtrc.render import job_name
from xtrc.store import Store

pytestmark = pytest.mark.integration
KUEUE = ("kueue.x-k8s.io", "v1beta1")


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(gpus=0, default_entrypoint=RUNTIME, entrypoints={FAKE_IMAGE: FAKE}) as c:
        yield c
        assert c.errors == [], c.errors[0]


def create_suspended(kube: Kube, plan: Plan, backend: KubernetesBackend, keys: list[str]) -> None:
    """Create the stages' Jobs suspended, as Kueue's webhook leaves them (so no pod runs)."""
    for key in keys:
        body = yaml.safe_load(backend.renderer.render_stage(plan, plan.stages[key]).text)
        body["spec"]["suspend"] = True
        kube.batch.create_namespaced_job(kube.ns, body)


def requests_since(kube: Kube, mark: int, what: str) -> list[str]:
    return [line for line in list(kube.cluster.request_log)[mark:] if what in line]


def test_poll_lists_in_pages_once_then_only_watches(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_watch, "PAGE", 3)
    spec = kube.spec("scale", intermediate=("none",), targets=("panx", "xnli", "xquad", "tatoeba"), seeds=(1, 2))
    plan, backend = kube.backend(spec)
    keys = list(plan.stages)
    assert len(keys) == 7  # retrieval needs no seed: one tatoeba stage
    create_suspended(kube, plan, backend, keys)
    jobs_path = f"/apis/batch/v1/namespaces/{kube.ns}/jobs?"
    mark = len(kube.cluster.request_log)
    statuses = backend.poll()
    lists = requests_since(kube, mark, jobs_path)
    assert len(lists) == 3 and all("limit=3" in line and "labelSelector=" in line for line in lists)
    assert sum("continue=" in line for line in lists) == 2  # pages 2 and 3 follow the continue token
    assert {key: (s.state, s.reason, s.queued) for key, s in statuses.items()} == {
        key: ("running", "suspended", True) for key in keys}

    mark = len(kube.cluster.request_log)
    for _ in range(5):
        assert backend.poll() == statuses  # nothing changed: nothing to do
    first = keys[0]
    kube.batch.patch_namespaced_job(job_name("scale", plan.stages[first]), kube.ns, {"spec": {"suspend": False}})
    kube.cluster.wait_for(lambda: backend.poll()[first].state == "finished", timeout=30)
    assert {k: s.state for k, s in backend.poll().items() if k != first} == {k: "running" for k in keys[1:]}
    later = list(kube.cluster.request_log)[mark:]
    assert not [line for line in later if jobs_path in line and "watch=true" not in line], later  # no list again
    assert any(jobs_path in line and "watch=true" in line for line in later)
    backend.close()


def test_a_watch_whose_version_was_compacted_lists_again(kube: Kube) -> None:
    spec = kube.spec("gone", intermediate=("none",), targets=("panx", "xnli"))
    plan, backend = kube.backend(spec)
    first, second = plan.stages
    create_suspended(kube, plan, backend, [first])
    assert set(backend.poll()) == {first}  # listed at some resourceVersion
    create_suspended(kube, plan, backend, [second])
    kube.batch.delete_namespaced_job(job_name("gone", plan.stages[first]), kube.ns, propagation_policy="Background")
    kube.cluster.compact()  # the watch from the list's version is now 410 Gone: only a new list can tell
    mark = len(kube.cluster.request_log)
    kube.cluster.wait_for(lambda: set(backend.poll()) == {second}, timeout=15)
    jobs_path = f"/apis/batch/v1/namespaces/{kube.ns}/jobs?"
    assert [line for line in requests_since(kube, mark, jobs_path) if "watch=true" not in line]  # the re-list
    backend.close()


def success_path(kube: Kube, key: str) -> Path:
    return Path(Store(kube.store).layout.success(key).removeprefix("file://"))


def test_a_complete_job_without_success_in_the_store_runs_again_once(kube: Kube,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = kube.spec("redo", intermediate=("none",), targets=("panx",))
    plan = kube.backend(spec)[0]
    (key,) = plan.stages
    name = job_name("redo", plan.stages[key])

    def run() -> tuple[str, str]:
        backend = KubernetesBackend(plan, kube.api)
        snapshot = orchestrate(plan, Store(kube.store), backend, max_parallel=2, poll_seconds=0.1)
        backend.close()
        return snapshot.stages[key].state, snapshot.stages[key].reason

    assert run() == ("done", "")
    first_uid = kube.job(name)["metadata"]["uid"]
    success_path(kube, key).unlink()  # the README's way to redo a stage
    assert run() == ("done", "")  # before: "failed: the stage ended without writing _SUCCESS" until the TTL
    second_uid = kube.job(name)["metadata"]["uid"]
    assert second_uid != first_uid and success_path(kube, key).exists()

    # A Job that completes again without _SUCCESS (pods writing elsewhere) fails: never a redo loop.
    monkeypatch.setenv("XTRC_FAKE_STAGES", json.dumps({"*": "no-success"}))
    success_path(kube, key).unlink()
    assert run() == ("failed", NOT_DONE_AGAIN)
    assert kube.job(name)["metadata"]["uid"] not in (first_uid, second_uid)
    assert kube.job_posts("201") == 3


def workload(job: dict, name: str, queue: str, condition: dict) -> dict:
    return {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
            "metadata": {"name": name, "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                              "uid": job["metadata"]["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"queueName": queue, "podSets": [{"name": "main", "count": 1,
                                                      "template": job["spec"]["template"]}]},
            "status": {"conditions": [condition]}}


def pending(message: str) -> dict:
    return {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": message,
            "lastTransitionTime": "2026-12-01T00:00:00Z", "observedGeneration": 1}


QUOTA = ("couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor default-flavor, "
         "previously considered podsets requests (0) + current podset request (1) > maximum capacity (0)")


def test_status_says_why_kueue_or_admission_holds_a_stage(kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("kq", intermediate=("none",), targets=("panx", "xnli", "xquad"), queue="team-a")
    plan, backend = kube.backend(spec)
    over_quota = key_of(plan, "target", "none+none", "panx")
    inadmissible = key_of(plan, "target", "none+none", "xnli")
    unexplained = key_of(plan, "target", "none+none", "xquad")
    create_suspended(kube, plan, backend, [over_quota, inadmissible, unexplained])
    custom = client.CustomObjectsApi(kube.api)
    custom.create_namespaced_custom_object(*KUEUE, kube.ns, "localqueues", {
        "apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue", "metadata": {"name": "team-a"},
        "spec": {"clusterQueue": "gpu-cluster"}})
    for key, message in ((over_quota, QUOTA), (inadmissible, "Workload namespace doesn't match ClusterQueue selector")):
        job = kube.job(job_name("kq", plan.stages[key]))
        name = f"job-{job['metadata']['name']}-1a2b3"
        custom.create_namespaced_custom_object(*KUEUE, kube.ns, "workloads", workload(job, name, "team-a", {}))
        custom.patch_namespaced_custom_object_status(*KUEUE, kube.ns, "workloads", name,
                                                     {"status": {"conditions": [pending(message)]}})
    rows = status_rows(spec, capsys)
    assert rows[over_quota]["state"] == "pending"
    assert rows[over_quota]["reason"] == (
        "quota exceeded in ClusterQueue gpu-cluster: insufficient quota for nvidia.com/gpu in flavor default-flavor, "
        "previously considered podsets requests (0) + current podset request (1) > maximum capacity (0)")
    assert rows[inadmissible]["reason"] == "admission failed: Workload namespace doesn't match ClusterQueue selector"
    assert rows[unexplained]["reason"] == "waiting in Kueue queue team-a"
    assert main_status_text(spec, capsys).count("quota exceeded in ClusterQueue gpu-cluster") == 1


def main_status_text(spec: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from xtrc.cli import main

    capsys.readouterr()
    assert main(["status", str(spec)]) == 0
    return capsys.readouterr().out


def test_status_says_when_admission_refuses_a_stage_pod(kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("nosa", intermediate=("none",), service_account="no-such-account")
    plan, backend = kube.backend(spec)
    (key,) = plan.stages
    backend.submit(plan.stages[key])
    kube.cluster.wait_for(lambda: any(e.reason == "FailedCreate" for e in kube.core.list_namespaced_event(
        kube.ns).items), timeout=15)
    row = status_rows(spec, capsys)[key]
    assert row["state"] == "pending"
    assert row["reason"].startswith("admission failed: Error creating: pods ") and "no-such-account" in row["reason"]
    backend.cancel()


def test_max_parallel_counts_admitted_jobs_not_queued_ones(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRC_FAKE_STAGES", json.dumps({"*": "sleep"}))
    monkeypatch.setattr(kube.cluster.store, "kueue_webhook", True)  # Jobs with a queue label start suspended
    spec = kube.spec("mp", intermediate=("none",), targets=("panx", "xnli", "xquad"), queue="team-a", max_parallel=1)
    plan = kube.backend(spec)[0]
    backend = KubernetesBackend(plan, kube.api)
    stop = threading.Event()
    loop = threading.Thread(target=orchestrate, args=(plan, Store(kube.store), backend),
                            kwargs={"max_parallel": 1, "poll_seconds": 0.1, "should_stop": stop.is_set}, daemon=True)
    loop.start()
    try:
        # Kueue holds every Job in its queue: none is admitted, so none counts against max_parallel.
        kube.cluster.wait_for(lambda: len(kube.jobs()) == 3, timeout=15)
        assert all(job["spec"]["suspend"] for job in kube.jobs())
        first = kube.jobs()[0]["metadata"]["name"]
        kube.batch.patch_namespaced_job(first, kube.ns, {"spec": {"suspend": False}})  # Kueue admits one
        kube.cluster.wait_for(lambda: any(p["status"].get("phase") == "Running" for p in kube.pods()), timeout=15)
        time.sleep(0.5)  # a few passes: still nothing new to create, nothing deleted
        assert len(kube.jobs()) == 3
    finally:
        stop.set()
        loop.join(timeout=30)
        backend.cancel()
        backend.close()


def test_a_broken_watch_is_a_fault_the_loop_sees_not_a_stale_view(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from xtrc.kube import SHARED_FS_ENV, ClusterError
    from xtrc.loader import load
    from xtrc.plan import build

    with FakeCluster() as lone:
        monkeypatch.setenv(SHARED_FS_ENV, "1")
        kube = Kube(lone, tmp_path)
        plan = build(load(kube.spec("lone", intermediate=("none",))))
        backend = KubernetesBackend(plan, lone.api_client())
        backend.poll()
        backend.poll()  # the watches start
        lone.stop()

        def refused() -> bool:
            try:
                backend.poll()
            except ClusterError as exc:
                return "cannot reach the Kubernetes API" in str(exc)
            return False

        lone.wait_for(refused, timeout=20)
        backend.close()
