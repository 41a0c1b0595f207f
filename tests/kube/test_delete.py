"""`xtrc delete` against the API test server: the orchestrator is stopped (and waited for) before the
stage Jobs are listed, so a Job its loop creates while it shuts down does not survive the delete."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.kube.apiserver import FakeCluster
from xtrc.kube import SHARED_FS_ENV
from xtrc.render import orchestrator_name

pytestmark = pytest.mark.integration

XTRC = str(Path(sys.executable).parent / "xtrc")

# A stand-in for the orchestration loop that keeps creating stage Jobs, and goes on for a while after
# SIGTERM, as a loop finishing its pass does.
LOOP = r"""
import os, signal, sys, time, uuid
from kubernetes import client, config
config.load_kube_config()
batch = client.BatchV1Api()
ns, experiment = sys.argv[1], sys.argv[2]
stop_at = [float("inf")]
signal.signal(signal.SIGTERM, lambda *_: stop_at.__setitem__(0, time.monotonic() + 1.5))
print("loop started", flush=True)
while time.monotonic() < stop_at[0]:
    name = f"{experiment}-tgt-{uuid.uuid4().hex[:12]}"
    batch.create_namespaced_job(ns, {"metadata": {"name": name, "labels": {"xtrc.dev/experiment": experiment,
        "app.kubernetes.io/component": "stage"}}, "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "stage", "image": "x",
        "command": [sys.executable, "-c", "import time; time.sleep(600)"]}]}}}})
    time.sleep(0.1)
print("loop stopped", flush=True)
"""


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(gpus=0, max_grace_seconds=5.0) as c:
        yield c
        assert c.errors == [], c.errors[0]


def test_delete_stops_the_orchestrator_before_listing_stage_jobs(cluster: FakeCluster, tmp_path: Path) -> None:
    ns, experiment = f"t-{uuid.uuid4().hex[:8]}", "race"
    batch = client.BatchV1Api(cluster.api_client())
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": experiment},
        "model": "builtin:tiny-xlmr", "storage": {"uri": f"file://{cluster.share(tmp_path / 'store')}"},
        "targets": ["panx"], "compute": {"gpus": 0, "namespace": ns}}))
    orchestrator = orchestrator_name(experiment)
    # The stand-in loop runs as the namespace's default ServiceAccount: RBAC lets it manage Jobs.
    rbac = client.RbacAuthorizationV1Api(cluster.api_client())
    rbac.create_namespaced_role(ns, {"metadata": {"name": "loop"}, "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "delete"]}]})
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "loop"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "loop"}, "subjects": [
        {"kind": "ServiceAccount", "name": "default", "namespace": ns}]})
    batch.create_namespaced_job(ns, {"metadata": {"name": orchestrator, "labels": {
        "xtrc.dev/experiment": experiment, "app.kubernetes.io/component": "orchestrator"}}, "spec": {
        "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "orchestrator", "image": "x", "command": [sys.executable, "-c", LOOP, ns, experiment]}]}}}})
    stage_jobs = f"xtrc.dev/experiment={experiment},app.kubernetes.io/component=stage"
    cluster.wait_for(lambda: len(cluster.jobs(ns, stage_jobs)) >= 3, 30)
    [pod] = cluster.pods(ns, f"job-name={orchestrator}")
    pid = cluster.pid(pod["metadata"]["name"], ns)
    assert pid

    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig(tmp_path / "kubeconfig", ns), **{SHARED_FS_ENV: "1"})
    result = subprocess.run([XTRC, "delete", str(spec)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"job/{orchestrator} deleted", result.stdout

    # The loop had stopped before delete listed the stage Jobs: none of them, nor any it made, survives.
    cluster.wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 10)
    assert cluster.jobs(ns, f"xtrc.dev/experiment={experiment}") == []
    assert [p for p in cluster.pods(ns) if p["metadata"]["labels"].get("job-name", "").startswith(experiment)] == []


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_foreground_deletion_keeps_a_job_until_its_pods_have_terminated(cluster: FakeCluster) -> None:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    batch = client.BatchV1Api(cluster.api_client())
    slow_exit = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.0), sys.exit(0)))\n"
                 "print('up', flush=True)\ntime.sleep(600)")
    batch.create_namespaced_job(ns, {"metadata": {"name": "slow"}, "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "x",
                                                  "command": [sys.executable, "-c", slow_exit]}]}}}})
    pod = cluster.wait_for(lambda: next((p for p in cluster.pods(ns, "job-name=slow")
                                         if p["status"].get("phase") == "Running"), None), 20)
    name = pod["metadata"]["name"]
    cluster.wait_for(lambda: "up" in client.CoreV1Api(cluster.api_client()).read_namespaced_pod_log(name, ns), 10)
    pid = cluster.pid(name, ns)
    batch.delete_namespaced_job("slow", ns, propagation_policy="Foreground")
    job = batch.read_namespaced_job("slow", ns)  # still there, being deleted
    assert job.metadata.deletion_timestamp is not None and "foregroundDeletion" in job.metadata.finalizers
    terminating = cluster.get("pods", name, ns)
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    cluster.wait_for(lambda: cluster.get("jobs", "slow", ns) is None, 15)
    assert cluster.get("pods", name, ns) is None and (not os.path.exists(f"/proc/{pid}") or _zombie(pid))
