"""The Kubernetes backend and `xtrc apply/orchestrate/status/logs/delete`, against FakeCluster
(tests/kube/apiserver/: a real HTTP API server whose pods are local processes) through the
official client.

Most tests run a stand-in for the runtime (fake_stage.py: starts in a fraction of a second,
behaviour per stage from $XTRC_FAKE_STAGES); the end-to-end test runs the real runtime on the
tiny model with the store on moto's S3 server.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from tests.kube.apiserver import PSA_ENFORCE_LABEL, FakeCluster
from xtrc.cli import main
from xtrc.kube import SHARED_FS_ENV, KubernetesBackend, apply_manifests, orchestrator_args
from xtrc.loader import load
from xtrc.plan import Plan, build
from xtrc.render import Renderer, job_name
from xtrc.store import Store

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
RUNTIME = [sys.executable, "-m", "xtrc_runtime.cli"]
FAKE_IMAGE = "xtrc-test/fake-runtime:1"
FAKE = [sys.executable, str(HERE / "fake_stage.py")]
SPECS = HERE.parents[1] / "specs"
K8S_VERSION = "1.30.0"
DATA = "builtin:fixtures/data?train=120&dev=30&test=30&languages=en,de"
LANGUAGES = {"panx": ["en", "de"], "xnli": ["en", "de"], "xquad": ["en", "de"], "tatoeba": ["de"]}
TRAINING = {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": 1, "max_seq_length": 48, "eval_every_steps": 50,
            "checkpoint_every_steps": 50, "precision": "fp32"}


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(gpus=0, default_entrypoint=RUNTIME, entrypoints={FAKE_IMAGE: FAKE}) as c:
        yield c
        assert c.errors == [], c.errors[0]


class Kube:
    """One test's view: a fresh namespace, a kubeconfig, API clients, a file:// store pods can see."""

    def __init__(self, cluster: FakeCluster, tmp: Path):
        self.cluster = cluster
        self.tmp = tmp
        self.ns = f"t-{uuid.uuid4().hex[:8]}"
        self.store = f"file://{cluster.share(tmp / 'store')}"  # pods see it, writable, at that path
        api = cluster.api_client()
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.net = client.NetworkingV1Api(api)
        # As a platform team would run ML workloads: Pod Security Admission enforces "restricted".
        self.core.create_namespace({"metadata": {"name": self.ns, "labels": {PSA_ENFORCE_LABEL: "restricted"}}})

    def spec(self, name: str = "exp", *, image: str = FAKE_IMAGE, intermediate: Any = ("none", "mnli"),
             augmentation: Any = ("none",), targets: Any = ("panx",), seeds: Any = (1,), storage: Any = None,
             training: Any = None, file: str = "spec.yaml", **compute: Any) -> Path:
        doc = {
            "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
            "model": "builtin:tiny-xlmr", "image": image, "storage": storage or {"uri": self.store},
            "seeds": list(seeds),
            # XTREME's protocol scores Tatoeba from the arm's checkpoint: the backend tests keep
            # their small graphs (XTREME-R's adds a SQuAD stage per arm)
            "benchmark": "xtreme",
            "factors": {"intermediate": list(intermediate), "augmentation": list(augmentation)},
            "targets": list(targets), "languages": {t: LANGUAGES[t] for t in targets if t in LANGUAGES},
            "training": training or {"defaults": TRAINING}, "data": {"root": DATA},
            "compute": {"gpus": 0, "max_parallel": 4, "retries": 0, "namespace": self.ns, **compute},
        }
        path = self.tmp / file
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def jobs(self, selector: str = "app.kubernetes.io/component=stage") -> list[dict]:
        return self.cluster.jobs(self.ns, selector)

    def pods(self, selector: str = "app.kubernetes.io/component=stage") -> list[dict]:
        return self.cluster.pods(self.ns, selector)

    def job(self, name: str) -> dict | None:
        return self.cluster.get("jobs", name, self.ns)

    def job_done(self, name: str, condition: str = "Complete") -> bool:
        job = self.job(name) or {}
        return any(c["type"] == condition and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))

    def job_posts(self, answered: str = "") -> int:
        """Job creates sent to this namespace (``answered``: only those the server answered with that code)."""
        needle = f'"POST /apis/batch/v1/namespaces/{self.ns}/jobs'
        return sum(1 for line in list(self.cluster.request_log)
                   if needle in line and f'" {answered}' in line and "dryRun" not in line)

    def backend(self, spec: Path) -> tuple[Plan, KubernetesBackend]:
        plan = build(load(spec))
        return plan, KubernetesBackend(plan, self.api)


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kube:
    """The environment of this process is also the pods' (FakeCluster runs them as local processes)."""
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv(SHARED_FS_ENV, "1")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # `xtrc`
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("XTRC_FAKE_SECONDS", "0")
    monkeypatch.delenv("XTRC_FAKE_STAGES", raising=False)
    monkeypatch.delenv("XTRC_STORE", raising=False)
    return Kube(cluster, tmp_path)


def xtrc(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xtrc.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def status_rows(spec: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["status", str(spec), "--json"]) == 0
    return {row["key"]: row for row in json.loads(capsys.readouterr().out)}


def key_of(plan: Plan, kind: str, arm: str, task: str | None = None) -> str:
    for key, stage in plan.stages.items():
        tasks = {*stage.train_tasks, *(e.task for e in stage.eval_tasks)}
        if stage.kind == kind and arm in plan.arms_by_stage[key] and (task is None or task in tasks):
            return key
    raise KeyError((kind, arm, task))


# --- apply ---------------------------------------------------------------------------------------


def test_apply_creates_valid_objects_runs_in_cluster_and_reapply_creates_nothing_new(
        kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("inclu")
    plan = build(load(spec))

    # What apply sends validates strictly against the Kubernetes 1.30 schema.
    args = orchestrator_args("/etc/xtrc/spec.yaml", kube.ns, store=None, image=None, rerun=None, poll=0.3)
    manifests = apply_manifests(plan, Renderer(), spec_text=spec.read_text(), args=args, env={SHARED_FS_ENV: "1"})
    assert [(m.kind, m.name) for m in manifests] == [
        ("ConfigMap", "xtrc-inclu-spec"), ("ServiceAccount", "xtrc-inclu-orchestrator"),
        ("Role", "xtrc-inclu-orchestrator"), ("RoleBinding", "xtrc-inclu-orchestrator"),
        ("NetworkPolicy", "inclu-stages-no-ingress"), ("Job", "xtrc-inclu-orchestrator")]
    docs = [yaml.safe_load(m.text) for m in manifests]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    role = docs[2]
    assert {(tuple(r["apiGroups"]), tuple(r["resources"])) for r in role["rules"]} == {
        (("batch",), ("jobs",)), (("",), ("pods",)), (("",), ("pods/log",)), (("",), ("events",)),
        (("kueue.x-k8s.io",), ("workloads",)), (("kueue.x-k8s.io",), ("localqueues",))}
    assert {verb for r in role["rules"] if r["apiGroups"] != ["batch"] for verb in r["verbs"]} <= {"get", "list", "watch"}
    pod = docs[5]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "xtrc-inclu-orchestrator" and pod["automountServiceAccountToken"] is True
    container = pod["containers"][0]
    assert container["command"] == ["xtrc"] and container["args"][:2] == ["orchestrate", "/etc/xtrc/spec.yaml"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True

    # A server dry run stores nothing.
    assert main(["apply", str(spec), "--server-dry-run", "--poll", "0.3"]) == 0
    assert "server dry run" in capsys.readouterr().out
    assert kube.core.list_namespaced_config_map(kube.ns).items == [] and kube.jobs("") == []

    # apply: the objects, then the in-cluster orchestrator creates the stage Jobs and they run.
    assert main(["apply", str(spec), "--poll", "0.3"]) == 0
    out = capsys.readouterr().out
    for kind, name in [(m.kind, m.name) for m in manifests]:
        assert f"{kind.lower()}/{name} created" in out
    configmap = kube.core.read_namespaced_config_map("xtrc-inclu-spec", kube.ns)
    assert configmap.data["spec.yaml"] == spec.read_text()
    for read in (kube.core.read_namespaced_service_account, kube.rbac.read_namespaced_role,
                 kube.rbac.read_namespaced_role_binding):
        read("xtrc-inclu-orchestrator", kube.ns)
    kube.net.read_namespaced_network_policy("inclu-stages-no-ingress", kube.ns)
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-inclu-orchestrator"), timeout=60)
    assert Store(kube.store).done_keys() >= set(plan.stages)
    assert sorted(j["metadata"]["labels"]["xtrc.dev/stage-key"] for j in kube.jobs()) == sorted(plan.stages)
    rows = status_rows(spec, capsys)
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    assert all(r["phase"] == "Succeeded" and r["attempts"] == 1 and r["node"] == "fake-node" for r in rows.values())
    orchestrator_pod = kube.pods("app.kubernetes.io/component=orchestrator")[0]["metadata"]["name"]
    log = kube.core.read_namespaced_pod_log(orchestrator_pod, kube.ns)
    assert f"{len(plan.stages)}/{len(plan.stages)} stages done" in log

    # Re-applying the same spec creates nothing new.
    def snapshot() -> dict[tuple[str, str], tuple[str, str]]:
        objects = {}
        for kind, items in (("ConfigMap", kube.core.list_namespaced_config_map(kube.ns).items),
                            ("ServiceAccount", kube.core.list_namespaced_service_account(kube.ns).items),
                            ("Role", kube.rbac.list_namespaced_role(kube.ns).items),
                            ("RoleBinding", kube.rbac.list_namespaced_role_binding(kube.ns).items),
                            ("NetworkPolicy", kube.net.list_namespaced_network_policy(kube.ns).items),
                            ("Job", kube.batch.list_namespaced_job(kube.ns).items)):
            for item in items:
                objects[(kind, item.metadata.name)] = (item.metadata.uid, item.metadata.resource_version)
        return objects

    before, posts = snapshot(), kube.job_posts("201")
    assert main(["apply", str(spec), "--poll", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "created" not in out and out.count("unchanged") == 6
    time.sleep(1.0)
    after = snapshot()
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert {k: v for k, v in after.items() if k[0] != "Job"} == {k: v for k, v in before.items() if k[0] != "Job"}
    assert kube.job_posts("201") == posts

    # A changed spec replaces the ConfigMap and the orchestrator Job; only the changed stages run.
    # (A second seed: a new target would change the built-in model's tokenizer corpus, and so every key.)
    changed = kube.spec("inclu", seeds=(1, 2))
    new_plan = build(load(changed))
    new_keys = set(new_plan.stages) - set(plan.stages)
    assert new_keys and set(plan.stages) < set(new_plan.stages)
    old_orchestrator = before[("Job", "xtrc-inclu-orchestrator")][0]
    assert main(["apply", str(changed), "--poll", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "configmap/xtrc-inclu-spec replaced" in out and "job/xtrc-inclu-orchestrator replaced" in out
    assert "serviceaccount/xtrc-inclu-orchestrator unchanged" in out
    assert kube.core.read_namespaced_config_map("xtrc-inclu-spec", kube.ns).data["spec.yaml"] == changed.read_text()
    assert kube.batch.read_namespaced_job("xtrc-inclu-orchestrator", kube.ns).metadata.uid != old_orchestrator
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-inclu-orchestrator"), timeout=60)
    assert Store(kube.store).done_keys() >= set(new_plan.stages)
    jobs = {j["metadata"]["labels"]["xtrc.dev/stage-key"]: j["metadata"]["uid"] for j in kube.jobs()}
    assert set(jobs) == set(new_plan.stages)
    assert all(jobs[k] == before[("Job", job_name("inclu", plan.stages[k]))][0] for k in plan.stages)


def test_reapply_retries_failed_stages(kube: Kube, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("retry")
    plan = build(load(spec))
    inter = key_of(plan, "intermediate", "mnli+none")
    monkeypatch.setenv("XTRC_FAKE_STAGES", json.dumps({inter: "config-error"}))
    assert main(["apply", str(spec), "--poll", "0.3"]) == 0
    # Exit 3 (stages failed) is final for the orchestrator Job: no retry of a loop that cannot help.
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-retry-orchestrator", "Failed"), timeout=60)
    orchestrator = kube.job("xtrc-retry-orchestrator")
    assert orchestrator["status"].get("failed") == 1
    rows = status_rows(spec, capsys)
    assert rows[inter]["state"] == "failed" and "configuration error" in rows[inter]["reason"]
    assert {rows[k]["state"] for k, s in plan.stages.items() if s.init_from == inter} == {"blocked"}

    monkeypatch.delenv("XTRC_FAKE_STAGES")  # the data is fixed; apply again
    assert main(["apply", str(spec), "--poll", "0.3"]) == 0
    assert "job/xtrc-retry-orchestrator restarted" in capsys.readouterr().out
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-retry-orchestrator"), timeout=60)
    assert Store(kube.store).done_keys() >= set(plan.stages)
    assert Counter(j["metadata"]["labels"]["xtrc.dev/stage-key"] for j in kube.jobs()) == Counter(
        {key: 1 for key in plan.stages})


def test_client_configuration(kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import incluster_config

    from xtrc.errors import XtrcError
    from xtrc.kube import api_client

    # $KUBECONFIG and --context
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    config["contexts"].append({"name": "other", "context": {"cluster": "nowhere", "user": "fake"}})
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}})
    config["current-context"] = "other"
    path = tmp_path / "two-contexts"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}{os.pathsep}{path}")
    assert api_client().configuration.host == "http://127.0.0.1:9"
    assert api_client("fake").configuration.host == kube.cluster.url
    with pytest.raises(XtrcError, match="context 'nope'"):
        api_client("nope")

    # Inside a pod: the in-cluster configuration (ServiceAccount token, cluster CA), unless a context is asked for.
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("in-cluster-token")
    ca.write_text("not read until a request is made")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = api_client().configuration
    assert cfg.host == "https://10.96.0.1:443" and cfg.ssl_ca_cert == str(ca)
    assert "in-cluster-token" in json.dumps(cfg.api_key)
    assert api_client("fake").configuration.host == kube.cluster.url


def test_apply_dry_run_lists_objects_without_a_cluster(kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))  # any cluster call would fail
    spec = SPECS / "combined.yaml"
    plan = build(load(spec))
    assert main(["apply", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("ConfigMap       xtrc-combined-spec", "ServiceAccount  xtrc-combined-orchestrator",
                 "Role            xtrc-combined-orchestrator", "RoleBinding     xtrc-combined-orchestrator",
                 "NetworkPolicy   combined-stages-no-ingress", "Job             xtrc-combined-orchestrator"):
        assert line in out
    assert "namespace xtrc" in out and f"and {len(plan.stages)} stage Jobs" in out
    assert all(job_name("combined", stage) in out for stage in plan.stages.values())

    # A store on this machine's disk is refused, and says why.
    monkeypatch.delenv(SHARED_FS_ENV)
    assert main(["apply", str(SPECS / "smoke.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "pods cannot see" in err and "s3://" in err and SHARED_FS_ENV in err
    assert main(["apply", str(SPECS / "smoke.yaml"), "--dry-run", "--store", "s3://bucket/x"]) == 0


# --- status --------------------------------------------------------------------------------------


def test_status_explains_every_state(kube: Kube, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("states", intermediate=("none", "mnli", "qqp"), targets=("panx", "xnli", "xquad", "tatoeba"),
                     queue="team-a")
    plan, backend = kube.backend(spec)
    failing = key_of(plan, "intermediate", "mnli+none")
    sleeping = key_of(plan, "intermediate", "qqp+none")
    succeeding = key_of(plan, "target", "none+none", "panx")
    queued = key_of(plan, "target", "none+none", "xnli")
    ready = key_of(plan, "target", "none+none", "xquad")
    cached = key_of(plan, "retrieval", "none+none", "tatoeba")
    monkeypatch.setenv("XTRC_FAKE_STAGES", json.dumps({failing: "config-error", sleeping: "sleep", queued: "sleep"}))
    success = Path(Store(kube.store).layout.success(cached).removeprefix("file://"))
    success.parent.mkdir(parents=True)
    success.write_text("")

    for key in (failing, sleeping, succeeding, queued):
        backend.submit(plan.stages[key])
    # Kueue would suspend a Job of a full queue: the backend never does (Kueue owns `suspend`).
    assert not any(j["spec"].get("suspend") for j in kube.jobs())
    kube.batch.patch_namespaced_job(job_name("states", plan.stages[queued]), kube.ns, {"spec": {"suspend": True}})
    kube.cluster.wait_for(lambda: kube.job_done(job_name("states", plan.stages[failing]), "Failed")
                          and kube.job_done(job_name("states", plan.stages[succeeding]))
                          and any(p["status"].get("phase") == "Running" for p in kube.pods(
                              f"xtrc.dev/stage-key={sleeping}")), timeout=30)

    rows = status_rows(spec, capsys)
    state = {key: row["state"] for key, row in rows.items()}
    assert state[failing] == "failed"
    assert rows[failing]["reason"] == f"exit 2: configuration error: no data for mnli at /nonexistent/mnli"
    assert state[sleeping] == "running" and rows[sleeping]["phase"] == "Running"
    assert rows[sleeping]["node"] == "fake-node" and rows[sleeping]["age"] >= 0 and rows[sleeping]["attempts"] == 1
    assert state[succeeding] == "succeeded" and rows[succeeding]["phase"] == "Succeeded"
    assert state[queued] == "pending" and rows[queued]["reason"] == "waiting in Kueue queue team-a"
    assert state[ready] == "ready"
    assert state[cached] == "cached" and rows[cached]["job"] == ""
    for key, stage in plan.stages.items():
        if stage.init_from == failing:
            assert state[key] == "blocked" and rows[key]["reason"] == f"upstream {failing} failed"
        if stage.init_from == sleeping:
            assert state[key] == "waiting" and rows[key]["reason"] == "upstream not done"
    assert set(state.values()) == {"cached", "waiting", "ready", "pending", "running", "succeeded", "failed",
                                   "blocked"}

    assert main(["status", str(spec)]) == 0
    table = capsys.readouterr().out
    for word in ("cached", "waiting", "ready", "pending", "running", "succeeded", "failed", "blocked",
                 "waiting in Kueue queue team-a", "configuration error: no data for mnli"):
        assert word in table
    backend.cancel()


def test_status_explains_an_unschedulable_stage(kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("nogpu", intermediate=("none",), gpus=1)  # the cluster has no GPU
    plan, backend = kube.backend(spec)
    (key,) = plan.stages
    backend.submit(plan.stages[key])
    backend.submit(plan.stages[key])  # idempotent: the Job exists already
    assert len(kube.jobs()) == 1
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    kube.cluster.wait_for(lambda: any(c.get("message") == message for p in kube.pods()
                                      for c in p["status"].get("conditions", [])), timeout=15)
    row = status_rows(spec, capsys)[key]
    assert row["state"] == "pending" and row["phase"] == "Pending"
    assert row["reason"] == f"Unschedulable: {message}"
    assert main(["status", str(spec)]) == 0
    assert message in capsys.readouterr().out
    backend.cancel()
    kube.cluster.wait_for(lambda: not kube.jobs() and not kube.pods(), timeout=10)


def test_failures_are_explained_in_words(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRC_FAKE_STAGES", json.dumps({"intermediate": "fail", "*": "sleep"}))
    retried = kube.spec("backoff", intermediate=("mnli",), targets=("panx",), retries=1, file="a.yaml")
    plan_a, backend_a = kube.backend(retried)
    slow = kube.spec("slow", intermediate=("none",), targets=("panx",), deadline="2s", file="b.yaml")
    plan_b, backend_b = kube.backend(slow)
    first_a = next(iter(plan_a.stages.values()))
    backend_a.submit(first_a)
    (only_b,) = plan_b.stages.values()
    backend_b.submit(only_b)
    kube.cluster.wait_for(lambda: kube.job_done(job_name("backoff", first_a), "Failed")
                          and kube.job_done(job_name("slow", only_b), "Failed"), timeout=30)
    a = backend_a.poll()[first_a.key]
    assert a.state == "failed" and a.attempts == 2
    assert a.reason == ("BackoffLimitExceeded: 2 failed attempt(s); last exit 1: stage failed: ConnectionError: "
                        "the store went away")
    b = backend_b.poll()[only_b.key]
    assert b.state == "failed"
    assert b.reason == "DeadlineExceeded: the Job ran longer than activeDeadlineSeconds (2s)"


# --- the loop, killed and restarted; preemption ----------------------------------------------------


def test_killed_loop_restarted_creates_no_duplicate_jobs(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRC_FAKE_SECONDS", "1.5")
    spec = kube.spec("restart", intermediate=("none", "mnli", "qqp"), targets=("panx", "xnli"), max_parallel=3)
    plan = build(load(spec))
    first = subprocess.Popen([sys.executable, "-m", "xtrc.cli", "apply", str(spec), "--watch", "--poll", "0.2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kube.cluster.wait_for(lambda: len(kube.jobs()) >= 3, timeout=60)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # mid-run: its stage Jobs run on
        first.wait()
    store = Store(kube.store)
    assert len(store.done_keys()) < len(plan.stages)

    second = xtrc("apply", str(spec), "--watch", "--poll", "0.2")
    assert second.returncode == 0, second.stderr
    assert f"{len(plan.stages)}/{len(plan.stages)} stages done" in second.stderr
    assert store.done_keys() >= set(plan.stages)
    per_key = Counter(j["metadata"]["labels"]["xtrc.dev/stage-key"] for j in kube.jobs())
    assert per_key == Counter({key: 1 for key in plan.stages})
    assert kube.job_posts() == len(plan.stages)  # not even a create that the server refused
    pods_per_key = Counter(p["metadata"]["labels"]["xtrc.dev/stage-key"] for p in kube.pods())
    assert pods_per_key == Counter({key: 1 for key in plan.stages})

    # Watching a finished experiment again starts nothing.
    third = xtrc("apply", str(spec), "--watch", "--poll", "0.2")
    assert third.returncode == 0, third.stderr
    assert kube.job_posts() == len(plan.stages)


def test_preempted_stage_pod_is_replaced_without_a_retry(kube: Kube, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XTRC_FAKE_SECONDS", "30")
    spec = kube.spec("preempt", intermediate=("none",), targets=("panx",), retries=0)
    plan, backend = kube.backend(spec)
    (stage,) = plan.stages.values()
    backend.submit(stage)
    running = kube.cluster.wait_for(lambda: [p for p in kube.pods() if p["status"].get("phase") == "Running"],
                                    timeout=15)
    monkeypatch.setenv("XTRC_FAKE_SECONDS", "0.5")  # the next pod finishes soon
    kube.cluster.evict(running[0]["metadata"]["name"], kube.ns)
    status = kube.cluster.wait_for(lambda: (lambda s: s if s and s.attempts == 2 else None)(
        backend.poll().get(stage.key)), timeout=15)
    assert status.state == "running" and status.reason == "preempted, retrying"
    kube.cluster.wait_for(lambda: kube.job_done(job_name("preempt", stage)), timeout=30)
    job = kube.job(job_name("preempt", stage))
    assert "failed" not in job["status"]  # backoffLimit 0, and the preemption did not count
    row = status_rows(spec, capsys)[stage.key]
    assert row["state"] == "succeeded" and row["attempts"] == 2


# --- logs, delete --------------------------------------------------------------------------------


def test_logs_print_the_newest_pod_of_a_stage(kube: Kube, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("logs", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1, 2))
    plan, backend = kube.backend(spec)
    seed1, seed2 = (plan.cells[("none+none", s, "panx")] for s in (1, 2))
    backend.submit(plan.stages[seed1])
    kube.cluster.wait_for(lambda: kube.job_done(job_name("logs", plan.stages[seed1])), timeout=20)

    capsys.readouterr()
    assert main(["logs", str(spec), "none+none/panx", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert f"fake stage {seed1} (target panx): ok" in captured.out and f"stage {seed1} done" in captured.out
    assert "attempt 1" in captured.err
    assert main(["logs", str(spec), seed1[:6]]) == 0
    assert f"stage {seed1} done" in capsys.readouterr().out

    assert main(["logs", str(spec), "none+none/panx"]) == 2  # two seeds: say which
    err = capsys.readouterr().err
    assert f"seed 1: {seed1}" in err and f"seed 2: {seed2}" in err and "--seed" in err
    assert main(["logs", str(spec), "none+none/panx", "--seed", "2"]) == 2
    assert "has no Job" in capsys.readouterr().err

    # --follow streams a running pod's log until its container ends.
    monkeypatch.setenv("XTRC_FAKE_SECONDS", "1.5")
    backend.submit(plan.stages[seed2])
    kube.cluster.wait_for(lambda: any(p["status"].get("phase") == "Running" for p in kube.pods(
        f"xtrc.dev/stage-key={seed2}")), timeout=15)
    assert main(["logs", str(spec), seed2, "--follow"]) == 0
    out = capsys.readouterr().out
    assert "step 1" in out and f"stage {seed2} done" in out


def test_delete_removes_everything_but_the_store(kube: Kube, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = kube.spec("gone")
    plan = build(load(spec))
    assert main(["apply", str(spec), "--poll", "0.3"]) == 0
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-gone-orchestrator"), timeout=60)
    store = Store(kube.store)
    assert store.done_keys() >= set(plan.stages)
    # A Job deleted without propagation (as `kubectl delete --cascade=orphan` would) leaves its pod behind.
    orphaned = job_name("gone", next(iter(plan.stages.values())))
    kube.batch.delete_namespaced_job(orphaned, kube.ns)
    assert kube.pods(f"job-name={orphaned}")

    assert main(["delete", str(spec)]) == 0
    assert "untouched" in capsys.readouterr().out
    selector = "xtrc.dev/experiment=gone"
    assert kube.batch.list_namespaced_job(kube.ns, label_selector=selector).items == []
    kube.cluster.wait_for(lambda: not kube.core.list_namespaced_pod(kube.ns, label_selector=selector).items)
    assert kube.core.list_namespaced_config_map(kube.ns).items == []
    assert kube.core.list_namespaced_service_account(kube.ns).items == []
    assert kube.rbac.list_namespaced_role(kube.ns).items == []
    assert kube.rbac.list_namespaced_role_binding(kube.ns).items == []
    assert kube.net.list_namespaced_network_policy(kube.ns).items == []
    assert store.done_keys() >= set(plan.stages)  # results stay
    assert main(["delete", str(spec)]) == 0  # nothing left: fine

    # --purge-store asks first; without a terminal it needs --yes.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert main(["delete", str(spec), "--purge-store"]) == 2
    assert "--yes" in capsys.readouterr().err
    other = Path(store.layout.success("someone-elses-stage").removeprefix("file://"))
    other.parent.mkdir(parents=True)
    other.write_text("")
    assert main(["delete", str(spec), "--purge-store", "--yes"]) == 0
    assert store.done_keys() == {"someone-elses-stage"}


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_e2e_apply_watch_on_s3_with_preemption_matches_a_local_run(
        kube: Kube, s3_server: Any, s3_bucket: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`xtrc apply --watch` of the smoke design (2x2, smaller: PAN-X and Tatoeba, one seed) on FakeCluster
    with the store on S3, one stage pod evicted mid-training; its report equals a local `xtrc run`'s."""
    secret = "xtrc-s3"
    credentials = {"AWS_ACCESS_KEY_ID": s3_server.env["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": s3_server.env["AWS_SECRET_ACCESS_KEY"]}
    kube.core.create_namespaced_secret(kube.ns, {"metadata": {"name": secret}, "data": {
        k: base64.b64encode(v.encode()).decode() for k, v in credentials.items()}})
    smoke = yaml.safe_load((SPECS / "smoke.yaml").read_text())
    training = {"defaults": {**smoke["training"]["defaults"], "max_train_examples": 120, "max_eval_examples": 30}}
    # The intermediate stage trains long enough to be evicted mid-way, checkpointing often.
    intermediate = ["none", {"name": "mnli", "tasks": ["mnli"],
                             "training": {"epochs": 25, "checkpoint_every_steps": 20, "eval_every_steps": 100}}]
    common = dict(image="ghcr.io/xtrc-dev/xtrc-runtime:test", intermediate=intermediate,
                  augmentation=smoke["factors"]["augmentation"], targets=("panx", "tatoeba"), seeds=(1,),
                  training=training, max_parallel=2, retries=1)
    spec = kube.spec("e2e", storage={"uri": s3_bucket.url, "secret": secret,
                                     "options": {"endpoint_url": s3_server.endpoint}}, file="s3.yaml", **common)
    local_spec = kube.spec("e2e", storage={"uri": str(tmp_path / "local-store")}, file="local.yaml", **common)
    plan = build(load(spec))
    assert set(plan.stages) == set(build(load(local_spec)).stages)
    assert len(plan.stages) == 7 and len(plan.arms) == 4
    inter = key_of(plan, "intermediate", "mnli+none")

    # The pods get the store's credentials only from the mounted Secret; this loop from its environment.
    watch_env = dict(os.environ, **credentials)
    for name in credentials:
        monkeypatch.delenv(name)
    monkeypatch.delenv(SHARED_FS_ENV)
    loop = subprocess.Popen([sys.executable, "-m", "xtrc.cli", "apply", str(spec), "--watch", "--poll", "0.5"],
                            env=watch_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def checkpointed() -> str | None:
            for pod in kube.pods(f"xtrc.dev/stage-key={inter}"):
                if pod["status"].get("phase") != "Running":
                    continue
                name = pod["metadata"]["name"]
                if "checkpoint at step" in kube.core.read_namespaced_pod_log(name, kube.ns):
                    return name
            return None

        victim = kube.cluster.wait_for(checkpointed, timeout=120, interval=0.2)
        kube.cluster.evict(victim, kube.ns)
        output, _ = loop.communicate(timeout=300)
    finally:
        if loop.poll() is None:
            loop.kill()
    assert loop.returncode == 0, output
    assert f"{len(plan.stages)}/{len(plan.stages)} stages done" in output

    # The evicted pod did not count as a failure; the next one resumed from the checkpoint in the store.
    pods = sorted(kube.pods(f"xtrc.dev/stage-key={inter}"), key=lambda p: p["metadata"]["creationTimestamp"])
    assert [p["metadata"]["name"] for p in pods][0] == victim and len(pods) == 2
    assert any(c["type"] == "DisruptionTarget" for c in pods[0]["status"]["conditions"])
    assert "resumed from step" in kube.core.read_namespaced_pod_log(pods[1]["metadata"]["name"], kube.ns)
    job = kube.job(job_name("e2e", plan.stages[inter]))
    assert "failed" not in job["status"] and kube.job_done(job["metadata"]["name"])
    assert Counter(j["metadata"]["labels"]["xtrc.dev/stage-key"] for j in kube.jobs()) == Counter(
        {key: 1 for key in plan.stages})

    local = xtrc("run", str(local_spec), env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert local.returncode == 0, local.stderr
    reports = []
    for path in (spec, local_spec):
        result = xtrc("report", str(path), "--format", "json", "--bootstrap", "200", env=watch_env)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads(result.stdout))
    assert [r.pop("store") for r in reports] == [s3_bucket.url, f"file://{tmp_path / 'local-store'}"]
    assert reports[0] == reports[1]
    cells = [c for c in reports[0]["cells"] if c["kind"] == "task"]
    assert len(cells) == 8 and all(c["state"] == "done" and c["mean"] is not None for c in cells)
