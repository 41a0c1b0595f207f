"""The README's main command, end to end: `xtrc run specs/smoke.yaml`, then `xtrc report`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import attempts
from tests.helpers import xtrc as run_xtrc
from xtrc.loader import load
from xtrc.local import state_dir_for
from xtrc.plan import build
from xtrc.store import Store

pytestmark = pytest.mark.e2e

SMOKE = Path(__file__).resolve().parents[2] / "specs" / "smoke.yaml"


def xtrc(*args: str) -> subprocess.CompletedProcess[str]:
    return run_xtrc(*args, timeout=1200)


def _classes(prediction: object) -> list[str]:
    """The predicted classes of one record: a label, each tag of a sentence, an answer, an id."""
    if isinstance(prediction, list):
        return [json.dumps(p) for p in prediction] if prediction and not isinstance(prediction[0], str) \
            else [str(p) for p in prediction]
    return [json.dumps(prediction)]


def assert_no_constant_predictor(store: Path, plan) -> None:
    """Every smoke cell learned: in each stage's stored predictions of each task, on English and
    over all its languages, the model predicts more than one class (a collapsed XNLI stage
    predicted one label for every pair; a collapsed tagger predicts O everywhere)."""
    for key, stage in plan.stages.items():
        for ev in stage.eval_tasks:
            pooled: set[str] = set()
            for language in ev.languages:
                path = store / "stages" / key / "predictions" / ev.task / f"{language}.jsonl"
                records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
                assert records, path
                seen = {c for r in records for c in _classes(r["prediction"])}
                if language == "en":
                    assert len(seen) > 1, f"{ev.task} stage {key} ({stage.kind}) predicts only {seen} on English"
                pooled |= seen
            assert len(pooled) > 1, f"{ev.task} stage {key} predicts only {pooled}"


def test_smoke_experiment_runs_reports_and_resumes(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    plan = build(load(SMOKE))
    started = time.monotonic()
    result = xtrc("run", str(SMOKE), "--store", store_uri)
    print(f"xtrc run specs/smoke.yaml: {time.monotonic() - started:.0f}s for {len(plan.stages)} stages")
    assert result.returncode == 0, result.stderr[-4000:]
    store = Store(store_uri)
    assert store.done_keys() >= set(plan.stages)
    assert (tmp_path / "store" / "experiments" / "smoke" / "spec.yaml").read_bytes() == SMOKE.read_bytes()

    report = xtrc("report", str(SMOKE), "--store", store_uri, "--format", "json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    cells = data["cells"]
    task_cells = [c for c in cells if c["kind"] == "task"]
    assert len(task_cells) == len(plan.arms) * len(plan.experiment.target_tasks)
    for cell in cells:
        assert cell["state"] == "done", cell
        assert isinstance(cell["mean"], float) and 0.0 <= cell["mean"] <= 100.0, cell
        assert cell["n_seeds"] == len(plan.experiment.seeds) or cell["kind"] != "task"
    assert data["comparisons"], "the 2x2 design must answer the research question"
    assert_no_constant_predictor(tmp_path / "store", plan)

    logs = state_dir_for(store.uri)
    second = xtrc("run", str(SMOKE), "--store", store_uri)
    assert second.returncode == 0
    assert all(attempts(logs / f"{key}.log") == 1 for key in plan.stages)  # no work the second time

    victim = next(key for key, stage in plan.stages.items() if stage.kind == "target" and stage.augmentation)
    (tmp_path / "store" / "stages" / victim / "_SUCCESS").unlink()
    third = xtrc("run", str(SMOKE), "--store", store_uri)
    assert third.returncode == 0, third.stderr[-4000:]
    assert attempts(logs / f"{victim}.log") == 2
    assert all(attempts(logs / f"{key}.log") == 1 for key in plan.stages if key != victim)
