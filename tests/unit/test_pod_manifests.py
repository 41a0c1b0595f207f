"""What xtrc's pods need to start under the restricted security context, read off the rendered manifests.
(tests/kube/test_pods.py runs them under an enforcing kubelet.)"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from xtrc.loader import load
from xtrc.plan import Plan, build
from xtrc.render import POD_ENV, Renderer

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
