"""`xtrc report` and `xtrc tasks` as a user runs them: the installed script in a subprocess, at 80
columns and piped, over stores written by hand."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report import levels, qa, write_store
from test_report_checks import xnli_records

from tests.helpers import tiny_spec, write_spec
from xtrc.loader import load
from xtrc.plan import Plan, build

XTRC = str(Path(sys.executable).parent / "xtrc") if (Path(sys.executable).parent / "xtrc").exists() \
    else shutil.which("xtrc") or "xtrc"
LONG_ARM = "code_switch_with_a_long_name"
ARMS = ["none+none", f"none+{LONG_ARM}", "mnli+none", f"mnli+{LONG_ARM}"]


def run(*args: str, cwd: Path | None = None, columns: int | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "XTRC_STORE", "XTRC_DEBUG")}
    if columns:
        environ["COLUMNS"] = str(columns)
    environ.update(env or {})
    return subprocess.run([XTRC, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=environ,
                          check=False)


def rq_spec(directory: Path, store: str = "store") -> Path:
    """A 2x2 spec in ``directory`` whose relative ``storage.uri`` is ``store``; xnli lists de before en."""
    return write_spec(directory, tiny_spec(
        "rq", store, seeds=[1, 2],
        factors={"intermediate": ["none", "mnli"], "augmentation": [
            "none",
            {"name": LONG_ARM, "code_switch": {"languages": ["de"], "dictionaries": "builtin:fixtures/dictionaries"}}]},
        targets=["xnli", "xquad", "panx", "tatoeba"],
        languages={"xnli": ["de", "en", "es"], "xquad": ["en", "es", "de"], "panx": ["es", "en"],
                   "tatoeba": ["de", "es"]},
        data={"root": "builtin:fixtures/data"}, compute={"gpus": 0}), "rq.yaml")


def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng([seed, *levels(arm), len(task), len(lang)])
    if task == "xnli":
        return xnli_records(arm, seed, task, lang)
    if task == "panx":
        gold = rng.integers(0, 3, 30)
        tp = np.minimum(gold, rng.integers(0, 3, 30))
        return [{"id": f"s{k}", "prediction": ["O"], "gold": ["O"], "counts": [int(t), int(t) + 1, int(g)]}
                for k, (t, g) in enumerate(zip(tp, gold))]
    if task == "tatoeba":
        return [{"id": f"t{k}", "prediction": "x", "gold": "x", "scores": {"accuracy": float(h)}}
                for k, h in enumerate(100.0 * (rng.random(30) < 0.5))]
    return qa([f"q{k}" for k in range(30)], rng.uniform(0, 100, 30))


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan]:
    spec = rq_spec(tmp_path_factory.mktemp("rq") / "sub")
    plan = build(load(spec))
    write_store(plan, make)
    return spec, plan


def test_at_80_columns_nothing_is_cut_and_arm_names_stay_whole(filled: tuple[Path, Plan]) -> None:
    spec, _ = filled
    result = run("report", str(spec), "--by", "language", "--bootstrap", "50", columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    for arm in ARMS:
        assert re.search(rf"│ {re.escape(arm)}\s", result.stdout), arm
    assert "(part 1 of" in result.stdout  # the columns are split into tables that fit
    assert re.search(r"\d+\.\d\d ± \d+\.\d\d", result.stdout)


def test_piped_output_is_full_width_and_in_the_specs_language_order(filled: tuple[Path, Plan]) -> None:
    spec, _ = filled
    result = run("report", str(spec), "--by", "language", "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and "(part " not in result.stdout
    # one language order everywhere: the spec's first mentions (de, en, es), not each task's own
    for task, want in (("xnli", ["de", "en", "es"]), ("xquad", ["de", "en", "es"]), ("panx", ["en", "es"])):
        block = result.stdout.split(f"{task} by language")[1]
        header = next(line for line in block.splitlines() if line.startswith("┃") and "arm" in line)
        assert re.findall(r"\b(de|en|es)\b", header) == want, header
    # the base model's retrieval cell is one run for both seeds: no "±" there
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ none+none"))
    assert "±" in row
    data = json.loads(run("report", str(spec), "--format", "json", "--bootstrap", "0").stdout)
    tatoeba = next(c for c in data["cells"] if c["arm"] == "none+none" and c["column"] == "tatoeba")
    # XTREME-R scores tatoeba from each seed's SQuAD model: one run per seed
    assert tatoeba["runs"] == 2
    assert any(n.startswith("xtreme-r score:") for n in data["notes"])


def test_a_closed_pipe_ends_quietly(filled: tuple[Path, Plan]) -> None:
    spec, _ = filled
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    for fmt in ("table", "json", "csv"):
        proc = subprocess.Popen([XTRC, "report", str(spec), "--bootstrap", "0", "--format", fmt],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first write, as with `| head` once it has its lines
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 1, (fmt, err)
        assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, fmt


def test_a_relative_store_is_relative_to_the_spec_file(filled: tuple[Path, Plan], tmp_path: Path) -> None:
    spec, plan = filled
    above = spec.parent.parent
    result = run("report", "sub/rq.yaml", "--format", "json", "--bootstrap", "0", cwd=above)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["store"] == "file://" + str(spec.parent / "store")
    assert all(c["state"] == "done" for c in data["cells"])
    planned = json.loads(run("plan", "sub/rq.yaml", "--json", cwd=above).stdout)
    assert planned["store"] == data["store"]
    assert planned["stages"]["done"] == len(set(plan.cells.values()))  # every cell stage, found from one dir up

    empty = rq_spec(tmp_path / "empty")
    result = run("report", str(empty))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"0/{len(plan.stages)} stages done in file://{empty.parent / 'store'}; run `xtrc run {empty}`"]


def test_numeric_flags_and_task_names_are_checked(filled: tuple[Path, Plan]) -> None:
    spec, _ = filled
    for args, message in ((["run", str(spec), "--jobs", "0"], "argument --jobs: must be at least 1, got 0"),
                          (["report", str(spec), "--workers", "0"], "argument --workers: must be at least 1"),
                          (["report", str(spec), "--bootstrap", "-5"], "argument --bootstrap: must be at least 0"),
                          (["report", str(spec), "--jobs", "x"], "unrecognized arguments")):
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    result = run("report", str(spec), "--task", "xnil")
    assert result.returncode == 2
    assert "--task xnil: not a target task of this spec; did you mean 'xnli'?" in result.stderr


def test_the_forest_plot_and_the_heatmap_in_each_format(filled: tuple[Path, Plan], tmp_path: Path) -> None:
    spec, _ = filled
    for name, kind, magic in (("a.png", "forest", b"\x89PNG"), ("a.svg", "forest", b"<?xml"),
                              ("a.pdf", "forest", b"%PDF"), ("h.png", "heatmap", b"\x89PNG")):
        result = run("report", str(spec), "--bootstrap", "20", "--plot", str(tmp_path / name), "--plot-kind", kind)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name).read_bytes().startswith(magic), name
    for target, message in ((tmp_path / "a.gif", "the suffix sets the format; use one of .png, .svg, .pdf"),
                            (tmp_path / "nowhere" / "a.png", "no directory")):
        result = run("report", str(spec), "--plot", str(target))
        assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_a_missing_matplotlib_is_reported_before_any_work(filled: tuple[Path, Plan], tmp_path: Path) -> None:
    spec, _ = filled
    stub = tmp_path / "stubs" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    result = run("report", str(spec), "--plot", str(tmp_path / "a.png"), env={"PYTHONPATH": str(stub.parent)})
    assert result.returncode == 2 and result.stdout == ""
    assert "--plot needs matplotlib: pip install 'xtrc[plot]'" in result.stderr


def test_wrong_metrics_are_invalid_through_the_cli_without_bootstrap(filled: tuple[Path, Plan],
                                                                   tmp_path: Path) -> None:
    spec = rq_spec(tmp_path / "wrong")
    plan = build(load(spec))
    write_store(plan, make)
    path = Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" / \
        plan.cells[("mnli+none", 2, "xquad")] / "metrics.json"
    metrics = json.loads(path.read_text())
    entry = metrics["tasks"]["xquad"]
    for lang in entry["languages"]:
        entry["languages"][lang]["f1"] += 3.0
    entry["headline"] += 3.0
    path.write_text(json.dumps(metrics))
    data = json.loads(run("report", str(spec), "--format", "json", "--bootstrap", "0").stdout)
    cell = next(c for c in data["cells"] if c["arm"] == "mnli+none" and c["column"] == "xquad")
    assert cell["state"] == "invalid" and cell["mean"] is None
    assert any("recomputed from its prediction records" in w for w in data["warnings"])


def test_tasks_fit_80_columns_and_have_json() -> None:
    result = run("tasks", columns=80)
    assert result.returncode == 0 and "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "cambridgeltl/xcopa" in result.stdout
    data = json.loads(run("tasks", "--json").stdout)
    xnli = next(t for t in data["tasks"] if t["name"] == "xnli")
    assert xnli["type"] == "classification" and "en" in xnli["languages"] and xnli["source"]["dataset"]
    assert data["groups"]["xtreme-r"][0] == "xnli"


def test_every_schema_field_has_a_description() -> None:
    schema = json.loads(run("schema").stdout)
    missing = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, field in (node.get("properties") or {}).items():
                if not field.get("description"):
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, key if key not in ("properties", "$defs", "items", "anyOf") else where)
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    walk(schema, "Experiment")
    assert missing == []
