"""The installed `xtrc` script's cluster commands, each run as a subprocess against the API test
server (FakeCluster) with the fast stand-in runtime: apply --dry-run, orchestrate, status,
logs, delete. (tests/kube/test_backend.py covers their behaviour in depth, in-process.)"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import script
from tests.kube.test_backend import Kube, cluster, kube  # noqa: F401  (fixtures)
from xtrc.loader import load
from xtrc.plan import build

pytestmark = pytest.mark.integration


def xtrc(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return script("xtrc", *args, timeout=timeout, env=dict(os.environ))


def test_cluster_commands_of_the_installed_script(kube: Kube) -> None:  # noqa: F811
    spec = kube.spec("cli", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,))
    plan = build(load(spec))
    (key,) = plan.stages

    dry = xtrc("apply", str(spec), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Job" in dry.stdout and kube.jobs() == []  # nothing was created

    loop = xtrc("orchestrate", str(spec), "--poll", "0.2")
    assert loop.returncode == 0, loop.stdout + loop.stderr
    assert (kube.tmp / "store" / "stages" / key / "_SUCCESS").exists()

    status = xtrc("status", str(spec), "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert [r["key"] for r in rows] == [key] and rows[0]["state"] in ("cached", "succeeded"), rows

    logs = xtrc("logs", str(spec), "none+none/panx")
    assert logs.returncode == 0, logs.stderr
    assert f"fake stage {key} (target panx): ok" in logs.stdout

    bad = xtrc("logs", str(spec), "none+none/nosuch")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr

    deleted = xtrc("delete", str(spec), "--purge-store", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert kube.jobs() == []
    assert not (kube.tmp / "store" / "stages" / key).exists()
