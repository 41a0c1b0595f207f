"""`xtrc plan --check-data` through the installed scripts (it runs `xtrc-runtime check-data`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import script, tiny_spec, write_spec
from xtrc_runtime.fixtures import Sizes, generate


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    # squad: XTREME-R scores tatoeba from the SQuAD model, so the plan trains one
    generate(str(root), tasks=["panx", "xnli", "mnli", "squad", "tatoeba"], languages=("en", "de", "es"),
             sizes=Sizes(train=20, dev=5, test=5))
    return root / "data"


def xtrc(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `xtrc` script (it finds `xtrc-runtime` beside it), with its own cache."""
    return script("xtrc", *args, env=dict(os.environ, XTRC_CACHE=str(home / "cache"), **env))


def spec_for(tmp: Path, root: Path | None, *, targets: tuple[str, ...] = ("panx", "xnli", "tatoeba"),
             **sections: Any) -> Path:
    """The experiment `checks` on the data under ``root`` (None: its tasks' hub sources, data.check on)."""
    data: dict[str, Any] = {"root": str(root)} if root else {"check": True}
    return write_spec(tmp, tiny_spec("checks", tmp / "store", targets=list(targets),
                                     languages={"panx": ["de"], "xnli": ["de", "es"], "tatoeba": ["de"]},
                                     data=data, **sections))


def test_a_valid_root_passes(tmp_path: Path, clean_root: Path) -> None:
    result = xtrc("plan", str(spec_for(tmp_path, clean_root)), "--check-data", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)["check_data"]
    labels = {c["label"] for c in checks}
    assert {"panx de test", "xnli es test", "mnli en train", "tatoeba de test"} <= labels
    assert all(c["status"] == "ok" and c["rows"] for c in checks if c["label"] != "mnli en dev"), checks
    assert "check-data: " in result.stderr and "0 gap(s)" in result.stderr


def test_one_line_per_gap_and_exit_2(tmp_path: Path, clean_root: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(clean_root, root)
    panx = root / "panx" / "de" / "test.jsonl"
    panx.write_text('{"tokens": ["a", "b"], "ner_tags": [0]}\n', encoding="utf-8")
    (root / "xnli" / "es" / "test.jsonl").unlink()
    (root / "tatoeba" / "de" / "test.jsonl").write_text("{broken\n", encoding="utf-8")
    result = xtrc("plan", str(spec_for(tmp_path, root)), "--check-data", home=tmp_path)
    assert result.returncode == 2, result.stderr
    gaps = [line for line in result.stderr.splitlines() if line.startswith("gap: ")]
    assert len(gaps) == 3, result.stderr
    assert f"gap: panx de test (1 row): {panx}:1: ner_tags: 1 tags for 2 tokens" in result.stderr
    assert "gap: xnli es test: missing: no test data for language 'es'" in result.stderr
    assert f"gap: tatoeba de test: {root / 'tatoeba' / 'de' / 'test.jsonl'}:1:2: not valid JSON" in result.stderr
    assert "3 gap(s)" in result.stderr


def test_offline_hub_sources_are_reported_not_passed(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, None)
    result = xtrc("plan", str(spec), "--check-data", home=tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 1, result.stderr  # nothing wrong found, but not everything checked
    assert "cannot check" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "0 ok, 0 gap(s)" in result.stderr


def test_dictionaries_and_translations_are_checked_too(tmp_path: Path, clean_root: Path) -> None:
    dictionaries = clean_root.parent / "dictionaries"
    spec = spec_for(tmp_path, clean_root, targets=("xnli",), factors={"augmentation": [
        "none",
        {"name": "cs", "code_switch": {"languages": ["de", "fr"], "dictionaries": str(dictionaries)}},
        {"name": "tt", "translate_train": {"languages": ["de"],
                                           "paths": {"xnli": str(tmp_path / "missing-translations")}}}]})
    result = xtrc("plan", str(spec), "--check-data", home=tmp_path)
    assert result.returncode == 2, result.stderr
    gaps = [line for line in result.stderr.splitlines() if line.startswith("gap: ")]
    assert len(gaps) == 2, result.stderr
    assert f"gap: dictionaries de,fr {dictionaries}: no dictionary file {dictionaries}/en-fr.txt" in result.stderr
    assert "gap: xnli de translate-train: translate-train path" in result.stderr and "does not exist" in result.stderr
