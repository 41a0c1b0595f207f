"""Stage keys see the data: a fingerprint of the files each stage reads is part of its key, so
`xtrc plan` says "not done" after those files change (and only for the stages that read them)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from xtrc.fingerprint import HASH_BELOW, Fingerprinter
from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc_runtime import fixtures

XTRC = Path(sys.executable).with_name("xtrc")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    fixtures.generate(str(out), tasks=["xnli", "mnli", "panx", "udpos"], languages=["en", "de"],
                      sizes=fixtures.Sizes(30, 10, 10))
    return out


def _spec(root: Path, store: Path, model: str = "FacebookAI/xlm-roberta-base") -> dict:
    return {
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "keys"},
        "model": model, "storage": {"uri": str(store)}, "seeds": [1],
        "factors": {"intermediate": ["none", "mnli"], "augmentation": [
            "none", {"name": "cs", "code_switch": {"languages": ["de"], "dictionaries": str(root / "dictionaries")}}]},
        "targets": ["xnli", "panx"], "languages": {"xnli": ["en", "de"], "panx": ["en", "de"]},
        "data": {"root": str(root / "data")}, "compute": {"gpus": 0},
    }


def _plan(doc: dict) -> Plan:
    return build(load_text(yaml.safe_dump(doc), "keys.yaml"))


def _touch(path: Path, extra: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(extra)


def test_keys_change_with_the_files_a_stage_reads_and_only_those(root: Path, tmp_path: Path) -> None:
    before = _plan(_spec(root, tmp_path))
    stage = before.stages[before.cells[("none+none", 1, "xnli")]]
    assert stage.data_fingerprint["data.xnli"].startswith("4 files sha256:")  # en and de, dev and test
    assert stage.data_fingerprint["model"] == "hub model FacebookAI/xlm-roberta-base@main (unresolved)"

    xnli_de = root / "data" / "xnli" / "de" / "test.jsonl"
    original = xnli_de.read_bytes()
    try:
        _touch(xnli_de, json.dumps({"language": "de", "sentence1": "a", "sentence2": "b", "gold_label": "neutral"}) + "\n")
        after = _plan(_spec(root, tmp_path))
    finally:
        xnli_de.write_bytes(original)
    for cell, key in before.cells.items():
        changed = after.cells[cell] != key
        assert changed == (cell[2] == "xnli"), cell  # PAN-X stages do not read XNLI
    # Intermediate stages read MNLI only.
    assert {k for k, s in before.stages.items() if s.kind == "intermediate"} <= set(after.stages)
    # Restored bytes, restored keys (small files are fingerprinted by content, not mtime).
    assert list(_plan(_spec(root, tmp_path)).stages) == list(before.stages)

    # A file no stage reads (UD-POS) changes no key; a dictionary changes the code-switching stages'.
    _touch(root / "data" / "udpos" / "de" / "test.jsonl", "\n")
    assert list(_plan(_spec(root, tmp_path)).stages) == list(before.stages)
    dictionary = root / "dictionaries" / "en-de.txt"
    original = dictionary.read_bytes()
    try:
        _touch(dictionary, "zebra zebra\n")
        switched = _plan(_spec(root, tmp_path))
    finally:
        dictionary.write_bytes(original)
    for cell, key in before.cells.items():
        assert (switched.cells[cell] != key) == cell[0].endswith("+cs"), cell


def test_every_stage_config_reads_back_to_its_key(root: Path, tmp_path: Path) -> None:
    """What a Job carries (the config JSON) must hash to the key the planner gave it."""
    from xtrc.stage import StageConfig, compute_key

    doc = _spec(root, tmp_path)
    doc["factors"]["augmentation"].append(
        {"name": "tt", "translate_train": {"languages": ["de"], "paths": {"xnli": str(root / "data" / "mnli"), "panx": str(root / "data" / "panx")}}})
    plan = _plan(doc)
    assert any("translate_train.xnli" in s.data_fingerprint for s in plan.stages.values())
    for key, stage in plan.stages.items():
        assert compute_key(StageConfig.model_validate_json(stage.to_json()).key_payload()) == key


def test_plan_says_not_done_after_the_data_changed(root: Path, tmp_path: Path) -> None:
    """The installed `xtrc plan`: every stage marked done, then a training file changes."""
    store = tmp_path / "store"
    doc = _spec(root, store, model="builtin:tiny-xlmr")
    spec = tmp_path / "keys.yaml"
    spec.write_text(yaml.safe_dump(doc))
    for key in _plan(doc).stages:
        (store / "stages" / key).mkdir(parents=True)
        (store / "stages" / key / "_SUCCESS").write_text("{}")

    def plan_json() -> dict:
        proc = subprocess.run([str(XTRC), "plan", str(spec), "--json"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    first = plan_json()
    assert first["stages"]["done"] == first["stages"]["total"] > 0, first["stages"]
    mnli = root / "data" / "mnli" / "en" / "train.jsonl"
    original = mnli.read_bytes()
    try:
        _touch(mnli, mnli.read_text(encoding="utf-8").splitlines()[0] + "\n")
        second = plan_json()
    finally:
        mnli.write_bytes(original)
    # The built-in model's tokenizer reads every stage's text, so every stage is to do again.
    assert second["stages"]["done"] == 0, second["stages"]


def test_big_files_by_size_and_mtime_small_ones_by_content(tmp_path: Path) -> None:
    (tmp_path / "t" / "en").mkdir(parents=True)
    big, small = tmp_path / "t" / "en" / "train.jsonl", tmp_path / "t" / "en" / "dev.jsonl"
    big.write_bytes(b"x" * (HASH_BELOW + 1))
    small.write_bytes(b"{}\n")
    first = Fingerprinter().under(str(tmp_path), ["t/en"], "data.root")
    os.utime(small, (time.time() + 100, time.time() + 100))
    assert Fingerprinter().under(str(tmp_path), ["t/en"], "data.root") == first
    os.utime(big, (time.time() + 100, time.time() + 100))
    assert Fingerprinter().under(str(tmp_path), ["t/en"], "data.root") != first


def test_one_listing_per_root_and_a_fast_plan(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = Fingerprinter._list

    def counting(self: Fingerprinter, base: str, what: str) -> dict[str, str]:
        calls.append(base)
        return original(self, base, what)
    monkeypatch.setattr(Fingerprinter, "_list", counting)
    started = time.perf_counter()
    plan = _plan(_spec(root, tmp_path))
    assert time.perf_counter() - started < 1.0
    assert len(plan.stages) > 5
    assert sorted(calls) == sorted({str(root / "data"), str(root / "dictionaries")})


def test_unlistable_data_gives_provisional_keys_that_run_refuses(tmp_path: Path) -> None:
    doc = {**_spec(tmp_path / "missing", tmp_path / "store"), "model_revision": "a" * 40}  # the model is known
    plan = _plan(doc)
    assert plan.unlisted and plan.unlisted[0].startswith("data.root: ") and "holds no files" in plan.unlisted[0]
    spec = tmp_path / "keys.yaml"
    spec.write_text(yaml.safe_dump(doc))
    shown = subprocess.run([str(XTRC), "plan", str(spec), "--no-store"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "stage keys are provisional" in shown.stderr, shown.stderr
    ran = subprocess.run([str(XTRC), "run", str(spec)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 2 and "cannot run with provisional stage keys" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_is_tried_for_one_root_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline with credentials at hand (`xtrc plan`, `apply --dry-run`): the first root on the
    store's endpoint waits out the client's retries; the others on it are not tried again."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAXTRCTESTDUMMY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "xtrc-test-dummy")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # one client try per request: the test's own wait stays short
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    doc = _spec(tmp_path, tmp_path)
    doc["storage"] = {"uri": "s3://xtrc-keys/store", "options": {"endpoint_url": endpoint}}
    doc["data"] = {"root": "s3://xtrc-keys/data"}
    doc["factors"]["augmentation"][1]["code_switch"]["dictionaries"] = "s3://xtrc-keys/dictionaries"
    plan = _plan(doc)
    assert len(plan.unlisted) == 2, plan.unlisted
    first, second = plan.unlisted
    assert "cannot list 's3://xtrc-keys/" in first and "EndpointConnectionError" in first, first
    tried = first.split("cannot list ", 1)[1].split(" ", 1)[0]
    assert "not listed: listing " + tried + " could not connect to its endpoint" in second, second


def test_a_root_that_answers_with_nothing_leaves_the_others_listed(root: Path, tmp_path: Path) -> None:
    doc = _spec(root, tmp_path)
    doc["data"] = {"root": str(tmp_path / "missing")}
    plan = _plan(doc)
    assert len(plan.unlisted) == 1 and "holds no files" in plan.unlisted[0], plan.unlisted
    stage = next(s for s in plan.stages.values() if "dictionaries" in json.dumps(s.data_fingerprint))
    assert any(v.endswith(tuple("0123456789abcdef")) and "files sha256:" in v for v in stage.data_fingerprint.values())
