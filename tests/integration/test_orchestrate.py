"""The orchestration loop with the local backend, running real `xtrc-runtime run-stage` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import XTRC_MODULE, attempts, loop_spec, plan_of, xtrc
from xtrc.local import state_dir_for
from xtrc.results_index import ResultsIndex
from xtrc.store import Store

pytestmark = pytest.mark.integration

def test_a_failed_stage_blocks_only_its_dependants(tmp_path: Path) -> None:
    # MNLI's data exist but are malformed: the pre-run data check fails that stage alone.
    bad = tmp_path / "mnli"
    for split in ("train", "dev"):
        (bad / "en").mkdir(parents=True, exist_ok=True)
        (bad / "en" / f"{split}.jsonl").write_text('{"premise": "a cat", "label": 0}\n')
    spec = loop_spec(tmp_path, tasks={"mnli": {"path": str(bad)}})
    result = xtrc("run", str(spec))
    assert result.returncode == 1, result.stderr
    plan = plan_of(spec)
    done = Store(str(tmp_path / "store")).done_keys()
    intermediate = next(k for k, s in plan.stages.items() if s.kind == "intermediate")
    dependants = {k for k, s in plan.stages.items() if s.init_from == intermediate}
    independent = set(plan.stages) - dependants - {intermediate}
    assert independent and independent <= done  # the baseline arm finished
    assert not (dependants | {intermediate}) & done
    assert f"failed {intermediate}" in result.stderr
    assert "configuration error" in result.stderr and f"{bad}/en/train.jsonl:1: hypothesis" in result.stderr
    for key in dependants:
        assert f"blocked {key}" in result.stderr
        assert f"upstream {intermediate} failed" in result.stderr


def test_killed_and_restarted_loop_runs_no_stage_twice(tmp_path: Path) -> None:
    spec = loop_spec(tmp_path, seeds=[1, 2], targets=["panx", "xnli"])
    plan = plan_of(spec)
    store = Store(str(tmp_path / "store"))
    first = subprocess.Popen([*XTRC_MODULE, "run", str(spec)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(store.done_keys()) < 2 and time.time() < deadline:
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)  # the loop dies; its stage processes run on
    first.wait()
    assert len(store.done_keys()) < len(plan.stages)

    second = xtrc("run", str(spec))
    assert second.returncode == 0, second.stderr
    assert store.done_keys() >= set(plan.stages)
    logs = state_dir_for(store.uri)
    for key in plan.stages:
        assert attempts(logs / f"{key}.log") == 1, key

    # A third run finds everything done and starts nothing.
    third = xtrc("run", str(spec))
    assert third.returncode == 0
    assert all(attempts(logs / f"{key}.log") == 1 for key in plan.stages)

    # Deleting one stage's _SUCCESS re-runs exactly that stage.
    victim = next(k for k, s in plan.stages.items() if s.kind == "target")
    Path(store.layout.success(victim).removeprefix("file://")).unlink()
    fourth = xtrc("run", str(spec))
    assert fourth.returncode == 0, fourth.stderr
    assert attempts(logs / f"{victim}.log") == 2
    assert all(attempts(logs / f"{key}.log") == 1 for key in plan.stages if key != victim)

    # The loop kept the results index current: every cell, under the marker of its latest commit.
    entries: dict[str, dict] = {}
    for shard in (tmp_path / "store" / "experiments" / "orch" / "results").glob("*.json"):
        entries.update(json.loads(shard.read_text())["stages"])
    markers = store.done_markers()
    assert {key: entry["marker"] for key, entry in entries.items()} == {key: markers[key] for key in plan.cells.values()}
    assert all(entry["metrics"]["key"] == key for key, entry in entries.items())

    # ... and checked every cell against its prediction records as it finished: a report after the
    # run reads none of them (without a bootstrap), and still checks every cell.
    index = ResultsIndex(store, "orch")
    index.metrics(markers)
    for (_arm, _seed, task), key in plan.cells.items():
        assert index.verification(key, markers[key], entries[key]["metrics"], {task}) is not None, key
    for key in set(plan.cells.values()):
        shutil.rmtree(tmp_path / "store" / "stages" / key / "predictions")
    report = xtrc("report", str(spec), "--bootstrap", "0", "--format", "json")
    assert report.returncode == 0, report.stderr
    answer = json.loads(report.stdout)
    assert not [w for w in answer["warnings"] if "predictions/" in w], answer["warnings"]
    assert answer["cells"] and {cell["state"] for cell in answer["cells"]} == {"done"}
