"""What xtrc's pods need to start under the restricted security context, read off the rendered manifests.
(tests/kube/test_pods.py runs them under an enforcing kubelet.)"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import script
from xtrc.loader import load
from xtrc.plan import Plan, build
from xtrc.render import IMAGE_ANNOTATION, IMAGE_DIGEST_ANNOTATION, POD_ENV, Renderer
from xtrc.spec import MAX_NAME
from xtrc.stage import IMAGE_ENV

SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"
PATH_VARIABLES = [k for k, v in POD_ENV.items() if v.startswith("/")]


@lru_cache(maxsize=None)
def _plan(name: str) -> Plan:
    return build(load(SPECS_DIR / f"{name}.yaml"))


def _stage_job(name: str = "smoke") -> dict[str, Any]:
    plan = _plan(name)
    return yaml.safe_load(Renderer().render_stage(plan, next(iter(plan.stages.values()))).text)


def _orchestrator_job(name: str = "smoke") -> dict[str, Any]:
    manifests = Renderer().render_orchestrator(_plan(name), spec_text="x", spec_hash="0" * 64,
                                               args=["orchestrate", "/etc/xtrc/spec.yaml"])
    return yaml.safe_load(manifests[-1].text)


def _under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


@pytest.mark.parametrize("render", [_stage_job, _orchestrator_job], ids=["stage", "orchestrator"])
def test_every_writable_path_is_on_an_emptydir_that_exists_at_start(render: Any) -> None:
    pod = render()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [m["mountPath"] for m in container["volumeMounts"]
                if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")]
    assert PATH_VARIABLES and {"HOME", "TMPDIR", "XDG_CACHE_HOME", "HF_HOME"} <= set(PATH_VARIABLES)
    for name in PATH_VARIABLES:
        assert env[name] == POD_ENV[name]
        assert any(_under(env[name], m) for m in writable), (name, env[name], writable)
    # HOME and TMPDIR are mount points themselves: they exist before any process starts.
    assert env["HOME"] in writable and env["TMPDIR"] in writable


@pytest.mark.parametrize("render", [_stage_job, _orchestrator_job], ids=["stage", "orchestrator"])
def test_pods_run_as_uid_and_gid_above_10000(render: Any) -> None:
    context = render()["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] >= 10000 and context["runAsGroup"] >= 10000 and context["fsGroup"] >= 10000


def _spec(tmp_path: Path, **changes: Any) -> Path:
    doc = yaml.safe_load((SPECS_DIR / "smoke.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _xtrc(*args: str) -> subprocess.CompletedProcess[str]:
    return script("xtrc", *args, timeout=120)


DIGEST = "sha256:" + "ab12" * 16


def test_stage_pods_have_guaranteed_qos() -> None:
    [container] = _stage_job("combined")["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    assert resources["limits"]["cpu"] == resources["requests"]["cpu"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"]


def test_image_by_digest_is_recorded_in_annotations_and_the_pod_environment(tmp_path: Path) -> None:
    image = f"registry.example.com/xtrc/runtime@{DIGEST}"
    plan = build(load(_spec(tmp_path, image=image)))
    job = yaml.safe_load(Renderer().render_stage(plan, next(iter(plan.stages.values()))).text)
    assert job["metadata"]["annotations"][IMAGE_ANNOTATION] == image
    assert job["metadata"]["annotations"][IMAGE_DIGEST_ANNOTATION] == DIGEST
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image and container["imagePullPolicy"] == "IfNotPresent"
    assert {"name": IMAGE_ENV, "value": image} in container["env"]
    # A tag has no digest to record.
    tagged = _stage_job()
    assert IMAGE_DIGEST_ANNOTATION not in tagged["metadata"]["annotations"]
    assert tagged["metadata"]["annotations"][IMAGE_ANNOTATION] == build(load(SPECS_DIR / "smoke.yaml")).experiment.image


def test_validate_warns_on_a_mutable_tag_and_accepts_a_digest(tmp_path: Path) -> None:
    tagged = _xtrc("validate", str(_spec(tmp_path, image="registry.example.com/xtrc/runtime:1.0")))
    assert tagged.returncode == 0, tagged.stderr
    assert re.search(r"^warning: .*spec\.yaml:\d+:\d+: image: 'registry.example.com/xtrc/runtime:1.0' is a tag.*"
                     r"pin the image by digest", tagged.stderr, re.MULTILINE), tagged.stderr
    pinned = _xtrc("validate", str(_spec(tmp_path, image=f"registry.example.com/xtrc/runtime:1.0@{DIGEST}")))
    assert pinned.returncode == 0 and pinned.stderr == "", pinned.stderr
    bad = _xtrc("validate", str(_spec(tmp_path, image="registry.example.com/xtrc/runtime@sha256:abc")))
    assert bad.returncode == 2 and re.search(r"spec\.yaml:\d+:\d+: image: .*repo@sha256:<64", bad.stderr), bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(("field", "value", "where"), [
    ("storage__uri", "s3://AKIAEXAMPLE:hunter2@bucket/xtrc", "storage.uri"),
    ("storage__uri", "s3://AKIAEXAMPLE@bucket/xtrc", "storage.uri"),
    ("storage__options", {"endpoint_url": "https://minio:minio123@minio.local:9000"}, "storage.options.endpoint_url"),
    ("storage__uri", "abfs://container:key@account.dfs.core.windows.net/xtrc", "storage.uri"),
])
def test_validate_refuses_credentials_in_urls(tmp_path: Path, field: str, value: Any, where: str) -> None:
    result = _xtrc("validate", str(_spec(tmp_path, **{field: value})))
    assert result.returncode == 2, result.stdout
    assert re.search(rf"spec\.yaml:\d+:\d+: {re.escape(where)}: .*credential.*storage\.secret", result.stderr), \
        result.stderr
    assert "hunter2" not in result.stderr and "minio123" not in result.stderr and "key@" not in result.stderr


def test_an_azure_account_in_a_uri_is_not_a_credential(tmp_path: Path) -> None:
    assert load(_spec(tmp_path, storage__uri="abfs://container@account.dfs.core.windows.net/xtrc"))


@pytest.mark.parametrize(("field", "value", "where"), [
    ("compute__queue", "q" * 64, "compute.queue"),
    ("compute__tolerations", [{"key": "pool", "operator": "Equal", "value": "v" * 64}], "compute.tolerations[0].value"),
    ("compute__node_selector", {"example.com/" + "n" * 64: "x"}, "compute.node_selector"),
    ("compute__gpu_resource", "example.com/" + "g" * 64, "compute.gpu_resource"),
])
def test_names_and_label_values_over_63_characters_are_refused(tmp_path: Path, field: str, value: Any,
                                                               where: str) -> None:
    result = _xtrc("validate", str(_spec(tmp_path, **{field: value})))
    assert result.returncode == 2, result.stdout
    assert re.search(rf"spec\.yaml:\d+:\d+: {re.escape(where)}\S*: .*63", result.stderr), result.stderr


def test_every_name_and_label_value_of_the_longest_spec_fits_in_63_characters(tmp_path: Path) -> None:
    spec = _spec(tmp_path, metadata__name="e" * MAX_NAME, compute__queue="q" * 63,
                 compute__node_selector={"example.com/" + "k" * 63: "v" * 63})
    plan = build(load(spec))
    renderer = Renderer()
    manifests = [*renderer.render(plan), *renderer.render_orchestrator(plan, spec_text="x", spec_hash="0" * 64,
                                                                       args=["orchestrate"])]
    for manifest in manifests:
        doc = yaml.safe_load(manifest.text)
        labels = [doc["metadata"].get("labels") or {}]
        template = (doc.get("spec") or {}).get("template")
        if template:
            labels.append(template["metadata"].get("labels") or {})
            labels.append(template["spec"].get("nodeSelector") or {})
        assert len(doc["metadata"]["name"]) <= 63, manifest.name
        for mapping in labels:
            for key, value in mapping.items():
                assert len(value) <= 63 and len(key.rpartition("/")[2]) <= 63, (manifest.name, key)
