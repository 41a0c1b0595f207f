"""Pods under their securityContext: the test cluster's kubelet (tests/kube/sandbox.py) enforces it, and
xtrc's stage Job starts under it with the real runtime, where the template before the fix did not."""

from __future__ import annotations

import copy
import json
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.kube import sandbox
from tests.kube.apiserver import FakeCluster
from xtrc.loader import load
from xtrc.plan import build
from xtrc.render import POD_UID, Renderer
from xtrc.store import METRICS_JSON, Store

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(sandbox.unavailable() is not None, reason=f"{sandbox.unavailable()}")]

RUNTIME = [sys.executable, "-m", "xtrc_runtime.cli"]
PYTHON_IMAGE = "python:test"

PROBE = r"""
import json, os, pathlib, sys
def writable(path):
    try:
        p = pathlib.Path(path, f"probe-{os.getpid()}")
        p.write_text("x")
        p.unlink()
        return True
    except OSError:
        return False
status = {k: v.split() for k, v in (l.split(":", 1) for l in open("/proc/self/status")) if k in ("Uid", "Gid")}
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "caps": caps,
                  "paths": {p: writable(p) for p in sys.argv[1:]},
                  "secret": open("/secret/key").read(), "cluster_root_entries": os.listdir(os.environ["ROOT"]),
                  "no_new_privs": [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0]}))
"""


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(gpus=0, sandbox=True, default_entrypoint=RUNTIME,
                     entrypoints={PYTHON_IMAGE: [sys.executable, "-c"]}) as c:
        yield c
        assert c.errors == [], c.errors[0]


@pytest.fixture
def ns() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def core(cluster: FakeCluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture
def batch(cluster: FakeCluster) -> client.BatchV1Api:
    return client.BatchV1Api(cluster.api_client())


def pod_of(cluster: FakeCluster, ns: str, job: str) -> dict:
    return cluster.wait_for(lambda: next(iter(cluster.pods(ns, f"job-name={job}")), None), 10)


def finished(cluster: FakeCluster, ns: str, job: str, timeout: float = 60) -> str:
    def done() -> str | None:
        for c in ((cluster.get("jobs", job, ns) or {}).get("status") or {}).get("conditions") or []:
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return str(c["type"])
        return None
    return str(cluster.wait_for(done, timeout, 0.1))


def log_of(core: client.CoreV1Api, ns: str, job: str) -> str:
    [pod] = core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items
    return str(core.read_namespaced_pod_log(pod.metadata.name, ns))


def probe_job(name: str, args: list[str], *, pod_context: dict, container_context: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "securityContext": pod_context,
        "containers": [{"name": "probe", "image": PYTHON_IMAGE, "args": [PROBE, *args],
                        "securityContext": container_context,
                        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                         {"name": "data", "mountPath": "/work/cache", "subPath": "cache"},
                                         {"name": "secret", "mountPath": "/secret"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "secret", "secret": {"secretName": "s"}}]}}}}


RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "capabilities": {"drop": ["ALL"]}}


def test_container_runs_under_its_security_context(cluster: FakeCluster, core, batch, ns,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.root
    monkeypatch.setenv("ROOT", cluster.root)
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"key": "k1"}})
    paths = ["/", "/tmp", "/usr", str(Path.home()), str(Path(__file__).parent), "/data", "/work/cache", "/secret",
             "/dev/shm"]
    context = {"runAsUser": 10123, "runAsGroup": 10456, "runAsNonRoot": True}
    batch.create_namespaced_job(ns, probe_job("probe", paths, pod_context=context, container_context=RESTRICTED))
    assert finished(cluster, ns, "probe") == "Complete", log_of(core, ns, "probe")
    out = json.loads(log_of(core, ns, "probe"))
    assert (out["uid"], out["gid"]) == (10123, 10456)
    assert int(out["caps"], 16) == 0 and out["no_new_privs"] == "1"
    assert out["paths"] == {"/": False, "/tmp": False, "/usr": False, str(Path.home()): False,
                            str(Path(__file__).parent): False, "/data": True, "/work/cache": True,
                            "/secret": False, "/dev/shm": True}
    assert out["secret"] == "k1"
    assert out["cluster_root_entries"] == ["serviceaccounts"]  # other pods' volumes are hidden (its token shows)

    # A writable root: a fresh /tmp and working directory; this machine's directories stay read-only.
    writable_root = {**RESTRICTED, "readOnlyRootFilesystem": False}
    batch.create_namespaced_job(ns, probe_job("rw", ["/tmp", ".", "/usr"], pod_context=context,
                                              container_context=writable_root))
    assert finished(cluster, ns, "rw") == "Complete", log_of(core, ns, "rw")
    assert json.loads(log_of(core, ns, "rw"))["paths"] == {"/tmp": True, ".": True, "/usr": False}


@pytest.mark.parametrize(("context", "message"), [
    ({"runAsNonRoot": True, "runAsUser": 0}, "container's runAsUser breaks non-root policy"),
    ({"runAsNonRoot": True}, "container has runAsNonRoot and image will run as root"),
])
def test_kubelet_refuses_root_under_run_as_non_root(cluster: FakeCluster, core, batch, ns, context: dict,
                                                    message: str) -> None:
    if "runAsUser" not in context and sandbox.os.getuid() != 0:
        pytest.skip("the test image's user is this machine's user, which is not root")
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"key": "k1"}})
    batch.create_namespaced_job(ns, probe_job("root", [], pod_context=context, container_context={}))

    def waiting() -> dict | None:
        for pod in cluster.pods(ns, "job-name=root"):
            for status in pod["status"].get("containerStatuses") or []:
                if status["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError":
                    return dict(status["state"]["waiting"])
        return None

    state = cluster.wait_for(waiting, 10)
    assert state["message"].startswith(message) and "container: probe" in state["message"]
    pod = pod_of(cluster, ns, "root")
    assert pod["status"]["phase"] == "Pending"
    events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={pod['metadata']['name']}").items
    assert any(e.reason == "Failed" and message in e.message for e in events)


# --- xtrc's stage Job -------------------------------------------------------------------------------


def stage_job(tmp_path: Path, cluster: FakeCluster, ns: str, **extra: object) -> tuple[dict, Store, str]:
    """The real template's Job for the first stage of a tiny spec (Tatoeba's retrieval follows a SQuAD
    fine-tuning stage: that one, on 20 examples), its store shared with the pods."""
    store = f"file://{cluster.share(tmp_path / 'store')}"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "pods"},
        "model": "builtin:tiny-xlmr", "image": "ghcr.io/xtrc-dev/xtrc-runtime:test", "storage": {"uri": store},
        "seeds": [1], "factors": {"intermediate": ["none"], "augmentation": ["none"]}, "targets": ["tatoeba"],
        "languages": {"tatoeba": ["de"]},
        "data": {"root": "builtin:fixtures/data?train=20&dev=10&test=10&languages=en,de"},
        "compute": {"gpus": 0, "retries": 0, "namespace": ns}, **extra}))
    plan = build(load(spec))
    stage = next(s for s in plan.stages.values() if not s.upstream)
    job = yaml.safe_load(Renderer().render_stage(plan, stage).text)
    return job, Store(store), stage.key


def test_stage_job_runs_the_real_runtime_under_the_restricted_security_context(
        cluster: FakeCluster, core, batch, ns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job, store, key = stage_job(tmp_path, cluster, ns)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == POD_UID >= 10000
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    name = job["metadata"]["name"]
    batch.create_namespaced_job(ns, job)
    assert finished(cluster, ns, name, timeout=240) == "Complete", log_of(core, ns, name)
    assert key in store.done_keys()
    # The runtime records the image its Job names (a tag here: no digest).
    with store.fs.open(store.layout.stage(key, METRICS_JSON)) as f:
        run = json.load(f)["run"]
    assert run["image"] == "ghcr.io/xtrc-dev/xtrc-runtime:test" and run["image_digest"] is None


def test_the_template_before_the_fix_cannot_start_a_stage(
        cluster: FakeCluster, core, batch, ns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old stage Job: TMPDIR=/scratch/tmp on an emptyDir mounted at /scratch, which starts empty."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job, store, key = stage_job(tmp_path, cluster, ns)
    old = copy.deepcopy(job)
    container = old["spec"]["template"]["spec"]["containers"][0]
    config = next(e for e in container["env"] if e["name"] == "XTRC_STAGE_CONFIG")
    container["env"] = [config, {"name": "HF_HOME", "value": "/scratch/hf"}, {"name": "TMPDIR", "value": "/scratch/tmp"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"}]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "scratch"] + [
        {"name": "scratch", "mountPath": "/scratch"}]
    name = old["metadata"]["name"]
    batch.create_namespaced_job(ns, old)
    assert finished(cluster, ns, name, timeout=120) == "Failed"
    assert "No usable temporary directory found in ['/scratch/tmp'" in log_of(core, ns, name)
    assert key not in store.done_keys()


HUB_PROBE = r"""
import hashlib, json, os, stat
from huggingface_hub import get_token
path = os.environ["HF_TOKEN_PATH"]
try:
    open(path, "a").close()
    writable = True
except OSError:
    writable = False
print(json.dumps({"sha256": hashlib.sha256((get_token() or "").encode()).hexdigest(), "path": path,
                  "mode": oct(stat.S_IMODE(os.stat(path).st_mode)), "writable": writable,
                  "files": sorted(os.listdir(os.path.dirname(path))), "in_env": "HF_TOKEN" in os.environ}))
"""


def test_the_stage_pod_reads_the_hub_token_from_its_secret_and_writes_it_nowhere(
        cluster: FakeCluster, core, batch, ns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hub.secret, as the real template mounts it: huggingface_hub in the container finds the token at
    HF_TOKEN_PATH (read-only, only the token key), and the real runtime's stage neither stores nor logs it."""
    import hashlib

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    sentinel = "hf_sentinel_token_of_the_pod_7d41"
    core.create_namespaced_secret(ns, {"metadata": {"name": "hf-token"},
                                       "stringData": {"token": sentinel + "\n", "other": "not mounted"}})
    job, store, key = stage_job(tmp_path, cluster, ns, hub={"secret": "hf-token"})

    probe = copy.deepcopy(job)
    probe["metadata"]["name"] = "hub-probe"
    container = probe["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["args"] = PYTHON_IMAGE, [HUB_PROBE]
    batch.create_namespaced_job(ns, probe)
    assert finished(cluster, ns, "hub-probe") == "Complete", log_of(core, ns, "hub-probe")
    out = json.loads(log_of(core, ns, "hub-probe").strip().splitlines()[-1])
    assert out["sha256"] == hashlib.sha256(sentinel.encode()).hexdigest()  # the hub library found it
    assert out["path"] == "/var/run/secrets/xtrc/hub/token" and out["files"] == ["token"]
    assert out["mode"] == "0o400" and out["writable"] is False and out["in_env"] is False

    name = job["metadata"]["name"]
    batch.create_namespaced_job(ns, job)
    assert finished(cluster, ns, name, timeout=240) == "Complete", log_of(core, ns, name)
    assert key in store.done_keys()
    stored = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and sentinel.encode() in p.read_bytes()]
    assert stored == [] and sentinel not in log_of(core, ns, name)
