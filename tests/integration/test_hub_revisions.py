"""A stage really loads the hub model at the commit pinned at plan time, after the hub moved on.

The fake hub (tests/fakehub.py) serves the revision API and a model's files per commit: two
different tiny XLM-R models under one repository, one per commit of ``main``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.fakehub import FakeHub, Served
from tests.helpers import script

pytestmark = pytest.mark.integration

TOKEN = "hf_test_token_0123456789"


def _model(folder: Path, words: int) -> int:
    from xtrc_runtime.tiny import build_encoder, build_tokenizer

    tokenizer = build_tokenizer(["the quick brown fox"] * 5 + [f"w{i}x" for i in range(words)])
    build_encoder(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return len(tokenizer)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[FakeHub, Served]]:
    fake = FakeHub(token=TOKEN)
    fake.add("models", "org/tiny")
    served = Served(fake)
    yield fake, served
    served.close()


def xtrc(*args: str, home: Path, drop: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `xtrc` with its own caches, online (to the fake hub ``env`` names), without
    the variables in ``drop``."""
    full = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *drop)}
    full.update(XTRC_CACHE=str(home / "cache"), HF_HOME=str(home / "hf"), OMP_NUM_THREADS="1", **env)
    return script("xtrc", *args, timeout=600, env=full)


def test_a_stage_loads_the_pinned_commit_not_the_moved_branch(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    fake, served = hub
    pinned = fake.sha("models", "org/tiny")
    fake.files[pinned] = tmp_path / "commit-a"
    vocab_a = _model(fake.files[pinned], 40)
    store = tmp_path / "store"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "pinned"},
        "model": "org/tiny", "benchmark": "xtreme", "storage": {"uri": str(store)}, "seeds": [1],
        "targets": ["tatoeba"], "languages": {"tatoeba": ["de"]},
        "data": {"root": "builtin:fixtures/data?train=8&dev=4&test=8"}, "compute": {"gpus": 0},
        "training": {"defaults": {"max_seq_length": 32, "batch_size": 8}},
    }))
    env = dict(HF_ENDPOINT=served.endpoint, HF_TOKEN=TOKEN)
    planned = xtrc("plan", str(spec), home=tmp_path, **env)
    assert planned.returncode == 0, planned.stderr
    assert f"models/org/tiny@main = {pinned}" in planned.stdout

    moved = fake.move("models", "org/tiny")  # a new upload: another model under the same branch
    fake.files[moved] = tmp_path / "commit-b"
    vocab_b = _model(fake.files[moved], 160)
    assert vocab_a != vocab_b

    ran = xtrc("run", str(spec), home=tmp_path, **env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [stage_json] = list((store / "stages").glob("*/stage.json"))
    config = json.loads(stage_json.read_text())
    assert config["model_revision"] == pinned
    assert config["data_fingerprint"]["model"] == f"hub model org/tiny@{pinned}"
    files = [p for p in fake.paths() if "/resolve/" in p]
    assert files and all(f"/resolve/{pinned}/" in p for p in files), files  # every file of the pinned commit
    assert not any(moved in p for p in fake.paths())

    written = "".join(p.read_text(errors="replace") for p in store.rglob("*")
                      if p.is_file() and p.suffix in (".json", ".txt", ".jsonl", ".yaml"))
    assert TOKEN not in written and TOKEN not in ran.stdout + ran.stderr + planned.stdout + planned.stderr


def test_hub_data_is_read_at_the_pinned_commit(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    """datasets asks the hub for the pinned commit (this hub serves no dataset files: the load then
    fails as a data error, after the requests that show which commit it read)."""
    fake, served = hub
    fake.add("datasets", "google/xtreme")
    sha = fake.sha("datasets", "google/xtreme")
    fake.move("datasets", "google/xtreme")
    code = ("import sys\n"
            "from xtrc_runtime.data import DataError, DataLocation, read_table\n"
            "where = DataLocation(hub_revisions={'datasets/google/xtreme@main': sys.argv[1]})\n"
            "try:\n    read_table('panx', 'de', 'test', where)\n"
            "except DataError as exc:\n    print('DataError', exc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=served.endpoint, HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-c", code, sha], capture_output=True, text=True, timeout=300, env=env)
    assert result.stdout.startswith(f"DataError cannot load google/xtreme@{sha} PAN-X.de"), result.stdout + result.stderr
    asked = [p for p in fake.paths() if "google/xtreme" in p]
    assert asked and all(sha in p for p in asked), asked


def test_a_stage_downloads_a_gated_model_with_the_token_file_and_writes_the_token_nowhere(
        tmp_path: Path) -> None:
    """As in a pod: no HF_TOKEN, the token in a file at HF_TOKEN_PATH (hub.secret's mount), the hub
    named by the spec's hub.endpoint only. The plan resolves the gated model and the stage downloads
    it with that token; nothing the run wrote (store, logs, attempt records, caches) holds it."""
    sentinel = "hf_sentinel_token_5f1c9e0d7a2b"
    fake = FakeHub(token=sentinel)
    fake.add("models", "org/gated-tiny", gated=True)
    served = Served(fake)
    try:
        sha = fake.sha("models", "org/gated-tiny")
        fake.files[sha] = tmp_path / "model"
        _model(fake.files[sha], 40)
        token_file = tmp_path / "secret" / "token"
        token_file.parent.mkdir()
        token_file.write_text(sentinel + "\n")
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump({
            "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "gated"},
            "model": "org/gated-tiny", "benchmark": "xtreme", "storage": {"uri": str(tmp_path / "store")},
            "hub": {"secret": "hf-token", "endpoint": served.endpoint}, "seeds": [1],
            "targets": ["tatoeba"], "languages": {"tatoeba": ["de"]},
            "data": {"root": "builtin:fixtures/data?train=8&dev=4&test=8"}, "compute": {"gpus": 0},
            "training": {"defaults": {"max_seq_length": 32, "batch_size": 8}},
        }))
        ran = xtrc("run", str(spec), home=tmp_path, drop=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"),
                   HF_TOKEN_PATH=str(token_file))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert len(list((tmp_path / "store" / "stages").glob("*/_SUCCESS"))) == 1
        downloads = [(p, auth) for p, auth in fake.requests if "/resolve/" in p]
        assert downloads and all(auth == f"Bearer {sentinel}" for _, auth in downloads), downloads
        api = [(p, auth) for p, auth in fake.requests if p.startswith("/api/models/org/gated-tiny/")]
        assert any("/revision/main" in p for p, _ in api)  # the plan resolved it, with the token too
        assert all(auth == f"Bearer {sentinel}" for _, auth in api), api
    finally:
        served.close()
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and p != token_file and p.parent != fake.files[sha]
              and sentinel.encode() in p.read_bytes()]
    assert leaked == [] and sentinel not in ran.stdout + ran.stderr, leaked
