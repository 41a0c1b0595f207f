"""`xtrc apply` reads the Secrets a spec names before it creates anything (a pod whose Secret volume
is missing waits in ContainerCreating forever), through the installed script against the API test
server; with them in place, the orchestrator and the stage pods start with the hub token mounted."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from tests.helpers import script
from tests.kube.test_backend import Kube, cluster, kube  # noqa: F401  (fixtures)
from xtrc.loader import load
from xtrc.plan import build
from xtrc.store import Store

pytestmark = pytest.mark.integration

SENTINEL = "hf_sentinel_token_in_a_secret_93c1"


def xtrc(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return script("xtrc", *args, timeout=timeout, env=dict(os.environ))


def _secret(kube: Kube, name: str, data: dict[str, str], kind: str = "Opaque") -> None:
    kube.core.create_namespaced_secret(kube.ns, {
        "metadata": {"name": name}, "type": kind,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def _writes(kube: Kube) -> list[str]:
    """Requests that would change this namespace (creates, replaces, deletes)."""
    return [line for line in list(kube.cluster.request_log)
            if f"/namespaces/{kube.ns}/" in line and any(f'"{m} ' in line for m in ("POST", "PUT", "PATCH", "DELETE"))]


def test_apply_refuses_missing_secrets_and_keys_before_creating_anything(kube: Kube) -> None:  # noqa: F811
    spec = kube.spec("hubsec", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,),
                     storage={"uri": kube.store, "secret": "store-creds"}, image_pull_secrets=["regcred"])
    spec.write_text(spec.read_text() + "hub:\n  secret: hf-token\n")
    lines = spec.read_text().splitlines()
    hub_line = lines.index("  secret: hf-token") + 1

    refused = xtrc("apply", str(spec), "--poll", "0.2")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    err = refused.stderr
    assert (f"{spec}:{hub_line}:11: hub.secret: Secret {kube.ns}/hf-token does not exist: its pods would wait in "
            f"ContainerCreating (FailedMount). Create it: kubectl -n {kube.ns} create secret generic hf-token "
            "--from-file=token=PATH_TO_TOKEN_FILE") in err, err
    assert f": storage.secret: Secret {kube.ns}/store-creds does not exist" in err, err
    assert f": compute.image_pull_secrets[0]: Secret {kube.ns}/regcred does not exist" in err
    assert f"kubectl -n {kube.ns} create secret docker-registry regcred" in err
    assert f"nothing was created in namespace {kube.ns}" in err
    assert _writes(kube) == [] and kube.jobs("") == []

    # The token under another key (a common mistake: HF_TOKEN): the mount's item would be missing.
    _secret(kube, "store-creds", {"anything": "x"})  # a file:// store reads no key of it
    _secret(kube, "regcred", {".dockerconfigjson": "{}"}, "kubernetes.io/dockerconfigjson")
    _secret(kube, "hf-token", {"HF_TOKEN": SENTINEL})
    writes = len(_writes(kube))
    wrong = xtrc("apply", str(spec), "--poll", "0.2")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert (f"{spec}:{hub_line}:11: hub.secret: Secret {kube.ns}/hf-token has no key token (it has HF_TOKEN). "
            f"Recreate it: kubectl -n {kube.ns} delete secret hf-token; kubectl -n {kube.ns} create secret generic "
            "hf-token --from-file=token=PATH_TO_TOKEN_FILE") in wrong.stderr, wrong.stderr
    assert "storage.secret" not in wrong.stderr and "image_pull_secrets" not in wrong.stderr
    assert SENTINEL not in wrong.stdout + wrong.stderr
    assert len(_writes(kube)) == writes and kube.jobs("") == []

    # In place: the orchestrator and the stage start (their hub volume mounts) and finish.
    kube.core.delete_namespaced_secret("hf-token", kube.ns)
    _secret(kube, "hf-token", {"token": SENTINEL + "\n"})
    applied = xtrc("apply", str(spec), "--poll", "0.2")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    kube.cluster.wait_for(lambda: kube.job_done("xtrc-hubsec-orchestrator"), timeout=90)
    assert Store(kube.store).done_keys() >= set(build(load(spec)).stages)
    pods = kube.pods("")
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods} == {"orchestrator", "stage"}
    for pod in pods:
        [container] = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HF_TOKEN_PATH"] == "/var/run/secrets/xtrc/hub/token"
        assert any(v.get("secret", {}).get("secretName") == "hf-token" for v in pod["spec"]["volumes"])
    assert SENTINEL not in applied.stdout + applied.stderr


def test_a_store_secret_must_hold_what_its_scheme_reads(kube: Kube) -> None:  # noqa: F811
    from xtrc.kube.secrets import secret_problems
    from xtrc.loader import load_text

    exp = load_text(kube.spec("s3sec", storage={"uri": "s3://bucket/x", "secret": "s3-creds"}).read_text())
    _secret(kube, "s3-creds", {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"})  # half of a key pair
    problems, notes = secret_problems(exp, kube.api)
    assert notes == [] and [loc for loc, _ in problems] == [("storage", "secret")]
    assert "has no key AWS_SECRET_ACCESS_KEY (it has AWS_ACCESS_KEY_ID)" in problems[0][1]
    assert "AKIAEXAMPLE" not in problems[0][1]
    kube.core.delete_namespaced_secret("s3-creds", kube.ns)
    _secret(kube, "s3-creds", {"AWS_ENDPOINT_URL": "http://minio.ml.svc"})  # none of the keys: workload identity
    assert secret_problems(exp, kube.api) == ([], [])
    kube.core.delete_namespaced_secret("s3-creds", kube.ns)
    _secret(kube, "s3-creds", {"aws_access_key_id": "x"})  # the wrong spelling: the store reads none of it
    [(loc, message)] = secret_problems(exp, kube.api)[0]
    assert "has no key AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY" in message


def test_without_the_check_a_stage_pod_waits_for_its_hub_secret_key_forever(kube: Kube) -> None:  # noqa: F811
    """What the check prevents: the stage Job created directly, its Secret holding the token under
    another key, leaves the pod in ContainerCreating with FailedMount events, as a kubelet does."""
    import yaml

    from xtrc.render import Renderer

    spec = kube.spec("nokey", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,))
    spec.write_text(spec.read_text() + "hub:\n  secret: hf-token\n")
    plan = build(load(spec))
    [stage] = plan.stages.values()
    _secret(kube, "hf-token", {"HF_TOKEN": SENTINEL})
    kube.batch.create_namespaced_job(kube.ns, yaml.safe_load(Renderer().render_stage(plan, stage).text))

    def waiting() -> dict | None:
        for pod in kube.pods():
            for status in pod["status"].get("containerStatuses") or []:
                if status["state"].get("waiting", {}).get("reason") == "ContainerCreating":
                    return pod
        return None

    pod = kube.cluster.wait_for(waiting, 20)
    assert pod["status"]["phase"] == "Pending"
    events = kube.core.list_namespaced_event(kube.ns, field_selector=f"involvedObject.name={pod['metadata']['name']}")
    assert any(e.reason == "FailedMount" and 'volume "hub-token" : references non-existent secret key: token'
               in e.message for e in events.items), [e.message for e in events.items]
