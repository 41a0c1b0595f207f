"""Leases in the store (xtrc.lease) on local files and fsspec's memory store."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from xtrc.lease import Lease, LeaseHeld, LeaseLost, LeaseRecord
from xtrc.store import Store, write_atomic


def local_lease(tmp_path: Path, ttl: float = 30.0) -> Lease:
    store = Store(str(tmp_path / "store"))
    return Lease(store.fs, store.layout.experiment("exp", "lease.json"), what="test", scheme="file", ttl=ttl)


def memory_lease(path: str, ttl: float = 30.0) -> Lease:
    return Lease(fsspec.filesystem("memory"), path, what="test", scheme="memory", ttl=ttl, settle=0.2)


def test_a_held_lease_names_its_holder_and_a_second_one_is_refused(tmp_path: Path) -> None:
    first, second = local_lease(tmp_path), local_lease(tmp_path)
    first.acquire(wait=False)
    with pytest.raises(LeaseHeld) as held:
        second.acquire(wait=False)
    record = held.value.record
    assert record.holder == first.holder and record.pid > 0 and record.host
    assert "pid" in str(held.value) and "expires in" in str(held.value)
    first.release()
    second.acquire(wait=False)  # released: free again
    second.release()


def test_a_stale_lease_is_taken_over_and_its_old_holder_learns_it_lost(tmp_path: Path) -> None:
    old = local_lease(tmp_path, ttl=0.5)
    old.acquire(wait=False)
    time.sleep(0.7)  # not renewed: expired
    new = local_lease(tmp_path)
    new.acquire(wait=False)
    with pytest.raises(LeaseLost):
        old.renew()
    new.renew()  # the new holder keeps it


def test_renewal_in_the_background_keeps_a_short_lease(tmp_path: Path) -> None:
    lease = local_lease(tmp_path, ttl=1.0)
    lease.acquire(wait=False)
    lease.start_renewing()
    try:
        time.sleep(2.5)  # 2.5 time-to-lives
        with pytest.raises(LeaseHeld):
            local_lease(tmp_path).acquire(wait=False)
        lease.check()
    finally:
        lease.release()


def test_a_holder_that_cannot_renew_fences_itself(tmp_path: Path) -> None:
    lease = local_lease(tmp_path, ttl=0.4)
    lease.acquire(wait=False)
    lease.check()
    time.sleep(0.35)  # past FENCE of the time-to-live without a renewal
    with pytest.raises(LeaseLost, match="could not be renewed"):
        lease.check()
    lease.check(fence=False)  # nobody else took it: a loop may carry on


def test_waiting_takes_the_lease_once_its_holder_releases_it(tmp_path: Path) -> None:
    holder = local_lease(tmp_path)
    holder.acquire(wait=False)
    waiter = local_lease(tmp_path)
    seen: list[LeaseRecord] = []
    timer = threading.Timer(0.5, holder.release)
    timer.start()
    waiter.acquire(wait=True, on_wait=seen.append, poll=0.1)
    timer.join()
    assert seen and seen[0].holder == holder.holder
    assert waiter.read()[0].holder == waiter.holder


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_of_many_racing_takers_exactly_one_holds_the_lease(tmp_path: Path, kind: str) -> None:
    path = f"/race-{uuid.uuid4().hex}/lease.json"
    leases = [local_lease(tmp_path) if kind == "file" else memory_lease(path) for _ in range(8)]
    results: dict[int, LeaseRecord | None] = {}
    barrier = threading.Barrier(len(leases))

    def take(i: int) -> None:
        barrier.wait()
        results[i] = leases[i].try_acquire()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, other in results.items() if other is None]
    assert len(winners) == 1, results
    current = leases[0].read()[0]
    assert current is not None and current.holder == leases[winners[0]].holder


def test_a_damaged_lease_counts_as_free(tmp_path: Path) -> None:
    lease = local_lease(tmp_path)
    write_atomic(lease.fs, lease.path, b"{not json")
    lease.acquire(wait=False)
    assert json.loads(lease.fs.cat_file(lease.path))["holder"] == lease.holder
