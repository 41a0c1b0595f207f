"""The stage's side of the store (xtrc_runtime.storage): its lease guards every write; a checkpoint
named but gone means training from the start, not a failure that every retry repeats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from xtrc.lease import Lease, LeaseHeld, LeaseLost
from xtrc_runtime.storage import StageStore

KEY = "ab" * 10


def test_a_runner_that_lost_its_stage_lease_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRC_LEASE_TTL", "0.6")
    store = StageStore(str(tmp_path), KEY)
    lease = store.hold(wait_seconds=0)
    store.write_json("stage.json", {"ok": 1})
    lease._stop.set()  # its renewals stop (a stalled or partitioned process)
    time.sleep(0.7)
    other = Lease(store.fs, store.path("lease.json"), what="another runner", scheme="file")
    other.acquire(wait=False)  # expired: taken over
    with pytest.raises(LeaseLost):
        store.write_json("metrics.json", {"late": True})
    with pytest.raises(LeaseLost):
        store.remove("stage.json")
    assert not (tmp_path / "stages" / KEY / "metrics.json").exists()
    assert (tmp_path / "stages" / KEY / "stage.json").exists()


def test_a_second_runner_is_refused_the_stage_lease_while_the_first_holds_it(tmp_path: Path) -> None:
    first = StageStore(str(tmp_path), KEY)
    first.hold(wait_seconds=0)
    second = StageStore(str(tmp_path), KEY)
    seen = []
    with pytest.raises(LeaseHeld):
        second.hold(wait_seconds=0.6, on_wait=seen.append)
    assert seen and seen[0].what == f"stage {KEY}"
    first.release()
    second.hold(wait_seconds=0)
    second.release()


def test_a_checkpoint_named_but_missing_means_training_from_the_start(tmp_path: Path) -> None:
    store = StageStore(str(tmp_path), KEY)
    local = tmp_path / "ckpt"
    local.mkdir()
    (local / "state.bin").write_bytes(b"x" * 10)
    store.save_checkpoint(local, step=5)
    assert store.latest_checkpoint(tmp_path / "resume") == 5
    store.fs.rm(store.path("checkpoints", "step-000000005"), recursive=True)
    assert store.latest_checkpoint(tmp_path / "resume") is None
    assert not (tmp_path / "resume").exists()
