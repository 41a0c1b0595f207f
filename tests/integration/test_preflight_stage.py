"""A stage with bad data fails with exit 2 before any training, and the local backend does not retry it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import plan_of, tiny_spec, write_spec, xtrc
from xtrc_runtime.fixtures import Sizes, generate

pytestmark = pytest.mark.integration


def spec_doc(tmp: Path, root: Path, *, check: bool) -> dict:
    return tiny_spec("pre", tmp / "store", targets=["panx"], languages={"panx": ["de"]},
                     data={"root": str(root), "check": check},
                     training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 8, "epochs": 1,
                                            "max_seq_length": 32, "checkpoint_every_steps": 1, "precision": "fp32"}},
                     compute={"gpus": 0, "max_parallel": 1, "retries": 2})


@pytest.fixture
def bad_root(tmp_path: Path) -> Path:
    generate(str(tmp_path / "gen"), tasks=["panx"], languages=("en", "de"), sizes=Sizes(train=40, dev=8, test=8))
    root = tmp_path / "gen" / "data"
    test = root / "panx" / "de" / "test.jsonl"
    rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
    rows[2]["ner_tags"] = rows[2]["ner_tags"][:-1]  # one tag short: the test split is read after training today
    test.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def run(tmp: Path, root: Path, *, check: bool) -> tuple[subprocess.CompletedProcess[str], str, Path]:
    spec = write_spec(tmp, spec_doc(tmp, root, check=check))
    result = xtrc("run", str(spec), timeout=600)
    (key,) = plan_of(spec).stages
    return result, key, tmp / "store"


def test_the_stage_exits_2_before_training_and_is_not_retried(tmp_path: Path, bad_root: Path) -> None:
    result, key, store = run(tmp_path, bad_root, check=False)  # the stage's own preflight, not the loop's
    assert result.returncode == 1, result.stderr
    assert f"failed {key}" in result.stderr and "configuration error" in result.stderr
    log = (store / ".local-runs" / f"{key}.log").read_text()
    assert log.count("=== attempt") == 1  # a configuration error is never retried
    assert "preflight" in log and f"{bad_root / 'panx' / 'de' / 'test.jsonl'}:3: ner_tags" in log
    assert "Traceback" not in log
    stage = store / "stages" / key
    assert not (stage / "checkpoints").exists() and not (stage / "_SUCCESS").exists()  # it never trained


def test_the_loop_does_not_start_a_stage_whose_data_fail(tmp_path: Path, bad_root: Path) -> None:
    result, key, store = run(tmp_path, bad_root, check=True)
    assert result.returncode == 1, result.stderr
    assert "data check: 1 stage(s) will not run" in result.stderr
    assert f"failed {key}" in result.stderr and "panx de test" in result.stderr
    assert not (store / ".local-runs" / f"{key}.log").exists()  # never started: no process, no GPU time


def test_a_malformed_file_the_stage_does_not_read_does_not_fail_it(tmp_path: Path) -> None:
    generate(str(tmp_path / "gen"), tasks=["panx"], languages=("en", "de"), sizes=Sizes(train=24, dev=4, test=4))
    root = tmp_path / "gen" / "data"
    (root / "xnli" / "de").mkdir(parents=True)
    (root / "xnli" / "de" / "test.jsonl").write_bytes(b'\xef\xbb\xbf{"sentence1": "a", broken\n')
    result, key, store = run(tmp_path, root, check=True)
    assert result.returncode == 0, result.stderr
    assert (store / "stages" / key / "_SUCCESS").exists()
