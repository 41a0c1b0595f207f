"""Every console command, run as the installed script in a subprocess: `xtrc validate`, `plan`,
`render`, `schema`, `tasks`, `run`, `report`; `xtrc-runtime fixtures`, `augment` (the README's
example as written), `score` and `run-stage`. The cluster commands (`apply`, `orchestrate`,
`status`, `logs`, `delete`) are in tests/kube/test_console_kube.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import helpers

pytestmark = pytest.mark.integration

BIN = helpers.BIN
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "specs" / "smoke.yaml"


def script(name: str, *args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("XTRC_DEBUG", None)
    env["OMP_NUM_THREADS"] = "1"
    return helpers.script(name, *args, timeout=timeout, env=env, cwd=cwd)


def test_help_and_version() -> None:
    for name in ("xtrc", "xtrc-runtime"):
        shown = script(name, "--help")
        assert shown.returncode == 0 and "COMMAND" in shown.stdout, shown.stderr
        assert script(name, "--version").stdout.startswith(name)
    for command in ("augment", "fixtures", "score", "run-stage"):
        shown = script("xtrc-runtime", command, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "args" not in shown.stdout.split()  # real options, not one REMAINDER argument
    assert "--code-switch" in script("xtrc-runtime", "augment", "--help").stdout
    assert "--tasks" in script("xtrc-runtime", "fixtures", "--help").stdout


def test_spec_commands(tmp_path: Path) -> None:
    assert script("xtrc", "validate", str(SMOKE)).returncode == 0
    plan = script("xtrc", "plan", str(SMOKE), "--no-store", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["stages"]["total"] == 34
    rendered = script("xtrc", "render", str(SMOKE), "-o", str(tmp_path / "out"))
    assert rendered.returncode == 0, rendered.stderr
    assert len(list((tmp_path / "out").iterdir())) == 35  # 34 Jobs and the NetworkPolicy
    schema = script("xtrc", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"]
    listed = script("xtrc", "tasks")
    assert listed.returncode == 0 and "xnli" in listed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("seeds: [1, 2]", "seeds: [1, 2]\nsedes: [3]"))
    refused = script("xtrc", "validate", str(bad))
    assert refused.returncode == 2 and "sedes" in refused.stderr and "Traceback" not in refused.stderr


def test_fixtures_takes_options_in_any_order(tmp_path: Path) -> None:
    """`xtrc-runtime fixtures --tasks …` failed (argparse REMAINDER took no leading options)."""
    first = script("xtrc-runtime", "fixtures", "--tasks", "pawsx", "--languages", "en", "de", "--train", "5",
                   "--dev", "3", "--test", "3", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    second = script("xtrc-runtime", "fixtures", str(tmp_path / "b"), "--test", "3", "--dev", "3", "--train", "5",
                    "--languages", "en", "de", "--tasks", "pawsx")
    assert second.returncode == 0, second.stderr
    for rel in ("data/pawsx/de/test.jsonl", "data/pawsx/en/train.jsonl", "dictionaries/en-de.txt"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    unknown = script("xtrc-runtime", "fixtures", str(tmp_path / "c"), "--tasks", "pawz")
    assert unknown.returncode == 2 and "did you mean 'pawsx'" in unknown.stderr, unknown.stderr


def test_the_readmes_augment_example_works_as_written(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"`(xtrc-runtime augment --task panx --code-switch [^`]*)`", readme).group(1)  # type: ignore[union-attr]
    made = script("xtrc-runtime", "fixtures", str(tmp_path / "fx"), "--tasks", "panx", "--languages", "en", "de",
                  "--train", "20", "--dev", "5", "--test", "5")
    assert made.returncode == 0, made.stderr
    (tmp_path / "IN.jsonl").write_bytes((tmp_path / "fx" / "data" / "panx" / "en" / "train.jsonl").read_bytes())
    command = example.replace("DIR", str(tmp_path / "fx" / "dictionaries"))
    proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "OUT.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20 and all(len(r["words"]) == len(r["tags"]) for r in rows)
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    assert stats["words_switched"] > 0, stats
    # Options after the positionals work too, and a bad option is a one-line error with exit 2.
    again = script("xtrc-runtime", "augment", str(tmp_path / "IN.jsonl"), str(tmp_path / "OUT2.jsonl"), "--task",
                   "panx", "--code-switch", json.dumps({"languages": ["de"],
                                                        "dictionaries": str(tmp_path / "fx" / "dictionaries")}))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "OUT2.jsonl").read_bytes() == (tmp_path / "OUT.jsonl").read_bytes()
    wrong = script("xtrc-runtime", "augment", "--task", "panx", "--code-switch", "{", "IN.jsonl", "O.jsonl",
                   cwd=tmp_path)
    assert wrong.returncode == 2 and "is not JSON" in wrong.stderr and "Traceback" not in wrong.stderr


def test_run_and_report_a_retrieval_experiment(tmp_path: Path) -> None:
    """`xtrc run` and `xtrc report` on the smallest experiment: Tatoeba from the built-in model
    (no training: XTREME's protocol scores it from the base model), and `xtrc-runtime score` on the
    predictions the stage stored."""
    doc = yaml.safe_load(SMOKE.read_text())
    doc.update(metadata={"name": "cli"}, benchmark="xtreme", seeds=[1], targets=["tatoeba"], languages={"tatoeba": ["de"]},
               factors={"intermediate": ["none"], "augmentation": ["none"]},
               data={"root": "builtin:fixtures/data?train=20&dev=10&test=30&languages=en,de"})
    spec = tmp_path / "cli.yaml"
    spec.write_text(yaml.safe_dump(doc))
    store = tmp_path / "store"
    ran = script("xtrc", "run", str(spec), "--store", str(store))
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = script("xtrc", "report", str(spec), "--store", str(store), "--format", "json")
    assert report.returncode == 0, report.stderr
    cells = json.loads(report.stdout)["cells"]
    assert any(c["state"] == "done" for c in cells)
    (stage,) = (store / "stages").iterdir()
    predictions = stage / "predictions" / "tatoeba" / "de.jsonl"
    from xtrc_runtime.fixtures import resolve_builtin

    gold = Path(resolve_builtin(doc["data"]["root"])) / "tatoeba" / "de" / "test.jsonl"
    scored = script("xtrc-runtime", "score", "--task", "tatoeba", "--language", "de", str(predictions), str(gold))
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((stage / "metrics.json").read_text())
    assert json.loads(scored.stdout)["accuracy"] == pytest.approx(metrics["tasks"]["tatoeba"]["languages"]["de"]["accuracy"])
    # run-stage of a done stage exits 0 at once.
    config = (stage / "stage.json").read_text()
    again = script("xtrc-runtime", "run-stage", "--config", json.dumps({**json.loads(config), "store": f"file://{store}"}))
    assert again.returncode == 0 and "already-done" in again.stdout, again.stderr
