"""Faults of the orchestration loop, with the installed `xtrc` and `xtrc-runtime` scripts and real
training: restarts, two loops on one store, two runners of one stage, missing objects."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, alive, attempts, loop_spec, plan_of, script, wait_until
from xtrc.local import state_dir_for
from xtrc.store import Store

pytestmark = pytest.mark.integration

XTRC = str(BIN / "xtrc")
RUNTIME = str(BIN / "xtrc-runtime")


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "XTRC_LEASE_TTL": "10", **extra}


def xtrc(*args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess[str]:
    return script("xtrc", *args, timeout=timeout, env=env(**extra))


def start(*args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([XTRC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(**extra))


def running_stages(state: Path) -> dict[str, int]:
    """Stages with a live process recorded in the local state directory → their pids."""
    out = {}
    for path in state.glob("*.json"):
        if (state / f"{path.stem}.exit").exists():
            continue
        try:
            pid = json.loads(path.read_text())["pid"]
            os.kill(pid, 0)
        except (ProcessLookupError, ValueError, OSError):
            continue
        out[path.stem] = pid
    return out


@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm", "cold"])
def test_restarting_the_loop_twice_while_stages_run_trains_no_stage_twice(tmp_path: Path, warm: str) -> None:
    # 60 epochs: a stage trains for seconds, so it is still running when each loop is killed
    # (a warm stage skips the imports that kept a cold one busy at first).
    spec = loop_spec(tmp_path, seeds=[1], targets=["panx", "xnli"], epochs=60)
    plan = plan_of(spec)
    store = Store(str(tmp_path / "store"))
    state = state_dir_for(store.uri)
    lease = tmp_path / "store" / "experiments" / "orch" / "lease.json"

    def training() -> dict[str, int]:
        return {key: pid for key, pid in running_stages(state).items()
                if " step " in (state / f"{key}.log").read_text()}

    first = start("run", str(spec), XTRC_WARM_STAGES=warm)
    pids = wait_until(training, timeout=180, what="a stage training")
    os.kill(first.pid, signal.SIGKILL)  # the loop dies; its stage processes run on
    first.communicate()
    second = start("run", str(spec), XTRC_WARM_STAGES=warm)  # adopts them ...
    wait_until(lambda: lease.exists() and json.loads(lease.read_text())["pid"] == second.pid, timeout=120,
               what="the second loop to hold the lease (and so to have adopted the stages)")
    time.sleep(1.0)
    os.kill(second.pid, signal.SIGKILL)  # ... and dies too, while they still run
    second.communicate()
    assert any(alive(pid) for pid in pids.values()), "the stages should outlive both loops"
    last = xtrc("run", str(spec), XTRC_WARM_STAGES=warm)
    assert last.returncode == 0, last.stderr
    assert store.done_keys() >= set(plan.stages)
    for key in plan.stages:  # one start per stage across all three loops, and one training
        log = (state / f"{key}.log").read_text()
        assert attempts(state / f"{key}.log") == 1, (key, log[-2000:])
        assert log.count("forked from pid") == (1 if warm == "1" else 0), (key, log[-2000:])
        trainings = re.findall(r" step (\d+)/\1 ", log)  # each training logs its last step once
        assert len(trainings) == 1 and "resumed from" not in log and '"status": "busy"' not in log, (key, log[-2000:])
    for key in plan.stages:  # every stage's results and log reached the store, the last one's too
        stage_dir = tmp_path / "store" / "stages" / key
        assert json.loads((stage_dir / "metrics.json").read_text())["status"] == "done"
        assert (stage_dir / "log.txt").read_text().count("=== attempt 1") == 1


def test_a_second_loop_on_one_store_says_who_holds_it_or_waits(tmp_path: Path) -> None:
    spec = loop_spec(tmp_path)
    plan = plan_of(spec)
    store = Store(str(tmp_path / "store"))
    state = state_dir_for(store.uri)
    first = start("run", str(spec))
    lease = tmp_path / "store" / "experiments" / "orch" / "lease.json"
    wait_until(lease.exists, timeout=120, what="the loop's lease")
    second = xtrc("run", str(spec))
    assert second.returncode == 4, second.stderr
    holder = json.loads(lease.read_text())
    assert f"pid {first.pid}" in second.stderr and holder["host"] in second.stderr
    assert "--wait" in second.stderr and "Traceback" not in second.stderr

    status = xtrc("status", str(spec), "--json")  # a local run: no cluster needed
    assert status.returncode == 0, status.stderr
    rows = {row["key"]: row for row in json.loads(status.stdout)}
    assert set(rows) == set(plan.stages)
    assert {row["state"] for row in rows.values()} <= {"running", "waiting", "ready", "succeeded"}

    waiter = start("run", str(spec), "--wait")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    # The plain view: h:mm:ss clocks, and each start with its arm, task and log path.
    assert re.search(r"^\[\d+:\d\d:\d\d\] 3 stages: ", err, re.M), err
    for key in plan.stages:
        assert f"started {key} ({plan.arms_by_stage[key][0]}" in err
        assert str(state / f"{key}.log") in err
    out, err = waiter.communicate(timeout=600)
    assert waiter.returncode == 0, err
    assert "waiting: this experiment's loop is held by" in err
    assert store.done_keys() >= set(plan.stages)
    assert all(attempts(state / f"{key}.log") == 1 for key in plan.stages)
    assert not lease.exists()  # released when the loop ended

    status = xtrc("status", str(spec))
    assert status.returncode == 0, status.stderr
    assert "3 succeeded" in status.stdout and "(local run)" in status.stdout
    target = next(k for k, s in plan.stages.items() if s.kind == "target")
    logs = xtrc("logs", str(spec), target[:8])
    assert logs.returncode == 0, logs.stderr
    assert f"==> stage {target}" in logs.stderr and "=== attempt 1" in logs.stdout and "step " in logs.stdout


def test_a_stale_loop_lease_is_taken_over(tmp_path: Path) -> None:
    spec = loop_spec(tmp_path)
    lease = tmp_path / "store" / "experiments" / "orch" / "lease.json"
    lease.parent.mkdir(parents=True)
    lease.write_text(json.dumps({"holder": "dead", "host": "gone-host", "pid": 1, "what": "the loop of orch",
                                 "acquired": time.time() - 100, "expires": time.time() - 10, "ttl": 60}))
    result = xtrc("run", str(spec))
    assert result.returncode == 0, result.stderr


def stage_config(tmp_path: Path, kind: str) -> str:
    spec = loop_spec(tmp_path)
    plan = plan_of(spec)
    return next(s for s in plan.stages.values() if s.kind == kind).to_json()


def test_a_second_runner_of_one_stage_waits_then_exits_transiently_without_touching_it(tmp_path: Path) -> None:
    config = stage_config(tmp_path, "target")
    key = json.loads(config)["key"]
    stage_dir = tmp_path / "store" / "stages" / key
    first = subprocess.Popen([RUNTIME, "run-stage", "--config-env", "XTRC_STAGE_CONFIG"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(XTRC_STAGE_CONFIG=config))
    wait_until((stage_dir / "lease.json").exists, timeout=120, what="the stage lease")
    second = subprocess.run([RUNTIME, "run-stage", "--config-env", "XTRC_STAGE_CONFIG"], capture_output=True,
                            text=True, timeout=300, env=env(XTRC_STAGE_CONFIG=config, XTRC_STAGE_LEASE_WAIT="1"))
    status = json.loads(second.stdout.splitlines()[-1])["status"]
    # The first either still held the stage (busy) or committed it while the second waited.
    assert (second.returncode, status) in {(1, "busy"), (0, "already-done")}, second.stderr
    if status == "busy":
        assert f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert "step " not in second.stderr  # it never trained
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert (stage_dir / "_SUCCESS").exists() and not (stage_dir / "lease.json").exists()

    # Once the stage is done a later runner exits 0 at once.
    third = subprocess.run([RUNTIME, "run-stage", "--config-env", "XTRC_STAGE_CONFIG"], capture_output=True,
                           text=True, timeout=300, env=env(XTRC_STAGE_CONFIG=config))
    assert third.returncode == 0 and json.loads(third.stdout.splitlines()[-1])["status"] == "already-done"


def test_a_missing_object_in_the_store_is_transient_not_a_configuration_error(tmp_path: Path) -> None:
    spec = loop_spec(tmp_path)
    plan = plan_of(spec)
    target = next(s for s in plan.stages.values() if s.init_from)
    upstream = tmp_path / "store" / "stages" / target.init_from
    upstream.mkdir(parents=True)
    (upstream / "_SUCCESS").write_text("{}")  # done, but its model/ is gone (pruned, or a store hiccup)
    result = subprocess.run([RUNTIME, "run-stage", "--config-env", "XTRC_STAGE_CONFIG"], capture_output=True,
                            text=True, timeout=300, env=env(XTRC_STAGE_CONFIG=target.to_json()))
    assert result.returncode == 1, result.stderr  # a retry may find it; exit 2 would fail the Job for good
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "failed"
