"""The orchestration loop, written once for every backend.

It keeps no state of its own: the store says what is done (``_SUCCESS``), the backend says
what is running or has failed. So the loop can be killed and restarted anywhere without
running a stage twice or losing one. Each pass: read both, mark the dependants of failed
stages blocked, submit ready stages (all upstream done) up to the concurrency limit, stop
when nothing more can happen. Cells that finished since the last pass go into the
experiment's results index (:mod:`xtrc.results_index`), checked against their prediction records,
so a report need not read them one by one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, TypeVar

from xtrc.lease import Lease
from xtrc.plan import Plan
from xtrc.results_index import ResultsIndex
from xtrc.stage import StageConfig
from xtrc.store import MissingBackend, Store

T = TypeVar("T")
State = Literal["done", "running", "failed", "blocked", "ready", "waiting"]


@dataclass(frozen=True)
class BackendStatus:
    """What a backend knows of one stage it was given."""

    state: Literal["running", "failed", "finished"]
    reason: str = ""
    attempts: int = 1
    started: float | None = None  # time.time() when it started
    queued: bool = False
    """Running but waiting in a queue to be admitted (a suspended Kueue Job): not counted against max_parallel."""
    rerunnable: bool = False
    """Finished, and the backend runs it again if submitted: without _SUCCESS in the store the stage is ready
    again (the store is the truth), not failed."""


class Backend(Protocol):
    def submit(self, stage: StageConfig) -> None: ...

    def poll(self) -> dict[str, BackendStatus]:
        """Status of every stage this backend has (or had, when it can still tell) for the plan."""
        ...

    def cancel(self) -> None: ...


@dataclass
class StageView:
    key: str
    state: State
    reason: str = ""
    attempts: int = 0
    started: float | None = None


@dataclass
class Snapshot:
    """One pass of the loop: every stage's state, for views and summaries."""

    stages: dict[str, StageView]
    submitted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Problems that do not change any stage's state (the results index could not be written)."""
    fault: str = ""
    """What the loop is riding out right now ("store unreachable since 12s, retrying: ..."); the
    stages are as last seen."""

    def count(self, state: State) -> int:
        return sum(1 for s in self.stages.values() if s.state == state)

    @property
    def finished(self) -> bool:
        return not any(s.state in ("running", "ready") for s in self.stages.values())


def assess(plan: Plan, done: set[str], backend: dict[str, BackendStatus]) -> dict[str, StageView]:
    """Every stage's state from what the store and the backend say (pure: no I/O)."""
    views: dict[str, StageView] = {}
    for key, stage in plan.stages.items():  # upstream before dependants
        status = backend.get(key)
        if key in done:
            views[key] = StageView(key, "done", attempts=status.attempts if status else 0)
        elif status is not None and status.state == "running":
            views[key] = StageView(key, "running", status.reason, status.attempts, status.started)
        elif status is not None and (status.state == "failed" or status.state == "finished" and not status.rerunnable):
            # "finished" without _SUCCESS: the process ended but the stage did not commit.
            reason = status.reason or "the stage ended without writing _SUCCESS"
            views[key] = StageView(key, "failed", reason, status.attempts)
        else:
            upstream = [views[u] for u in stage.upstream]
            bad = next((u for u in upstream if u.state in ("failed", "blocked")), None)
            if bad is not None:
                views[key] = StageView(key, "blocked", f"upstream {bad.key} {bad.state}")
            elif all(u.state == "done" for u in upstream):
                views[key] = StageView(key, "ready")
            else:
                views[key] = StageView(key, "waiting", "upstream not done")
    return views


INDEX_SAVE_SECONDS = 30.0
"""The loop writes the results index at most this often (and when it ends): a shard is rewritten
whole, so saving on every finished stage would write the index over and over."""


class Faults:
    """Errors of one kind (the store, the cluster API) that the loop is riding out: when they
    began, and how long to wait before the next try (doubling up to :data:`MAX_BACKOFF`)."""

    def __init__(self, what: str, poll_seconds: float):
        self.what = what
        self.poll_seconds = poll_seconds
        self.since: float | None = None
        self.tries = 0
        self.last = ""

    def failed(self, exc: BaseException) -> None:
        self.since = self.since or time.monotonic()
        self.tries += 1
        self.last = f"{type(exc).__name__}: {exc}"[:300]

    def ok(self) -> None:
        self.since, self.tries, self.last = None, 0, ""

    @property
    def text(self) -> str:
        if self.since is None:
            return ""
        return f"{self.what} unreachable since {time.monotonic() - self.since:.0f}s, retrying ({self.last})"

    @property
    def backoff(self) -> float:
        return min(MAX_BACKOFF, self.poll_seconds * 2 ** min(self.tries, 8))


MAX_BACKOFF = 30.0
FATAL_STORE_ERRORS = (PermissionError, MissingBackend)
"""Store errors no wait mends (refused credentials, no fsspec backend for the store's protocol);
anything else is weather."""


def orchestrate(plan: Plan, store: Store, backend: Backend, *, max_parallel: int,
                poll_seconds: float = 1.0, on_pass: Callable[[Snapshot], None] | None = None,
                should_stop: Callable[[], bool] | None = None, lease: Lease | None = None) -> Snapshot:
    """Run the plan to the end (or until ``should_stop``); the last snapshot. Store and backend
    errors are retried with backoff and shown in the snapshot's ``fault``; the loop ends with
    :class:`~xtrc.lease.LeaseLost` only if another loop took its ``lease``."""
    index = ResultsIndex(store, plan.experiment.metadata.name)
    cells = set(plan.cells.values())
    checked: dict[str, str] = {}
    """Done cell → the marker under which this loop checked it against its prediction records."""
    saved = time.monotonic()
    store_faults, api_faults = Faults("store", poll_seconds), Faults("backend", poll_seconds)
    views: dict[str, StageView] = {key: StageView(key, "waiting", "not looked at yet") for key in plan.stages}
    while True:
        if lease is not None:
            lease.check(fence=False)
        stopping = should_stop is not None and should_stop()
        # The backend first, then the store: a stage that ends between the two reads is seen done
        # (its _SUCCESS is written before its process exits), never "finished without _SUCCESS".
        faults = api_faults
        try:
            status = backend.poll()
            api_faults.ok()
            faults = store_faults
            markers = store.done_markers()
            store_faults.ok()
        except FATAL_STORE_ERRORS:
            raise
        except Exception as exc:  # weather: show it, wait, look again
            faults.failed(exc)
            snapshot = Snapshot(views, fault=faults.text)
            if on_pass is not None:
                on_pass(snapshot)
            if stopping:
                snapshot.warnings = list(dict.fromkeys(index.problems))
                return snapshot
            _sleep(faults.backoff, should_stop)
            continue
        done_cells = {key: marker for key, marker in markers.items() if key in cells}
        try:
            index.metrics(done_cells, save=False)
        except Exception as exc:  # the index is a cache: a store hiccup here must not stop the run
            index.problems.append(f"results index not updated ({type(exc).__name__}: {exc}); reports read "
                                  "those stages one by one")
        done = set(markers) & set(plan.stages)
        views = assess(plan, done, status)
        running = sum(1 for k, v in views.items() if v.state == "running" and not (k in status and status[k].queued))
        submitted: list[str] = []
        fault = ""
        for key, view in views.items():
            if running >= max_parallel or stopping:
                break
            if view.state == "ready":
                try:
                    backend.submit(plan.stages[key])
                except FATAL_STORE_ERRORS:
                    raise
                except Exception as exc:  # the next pass tries again
                    api_faults.failed(exc)
                    fault = f"could not start stage {key}: {api_faults.text}"
                    break
                view.state, view.started = "running", time.time()
                submitted.append(key)
                running += 1
        if not stopping:
            checked.update(_check_new_cells(plan, store, index, done_cells, checked))
        snapshot = Snapshot(views, submitted, fault=fault)
        if on_pass is not None:
            on_pass(snapshot)
        ending = snapshot.finished or stopping
        if ending or time.monotonic() - saved >= INDEX_SAVE_SECONDS:
            try:
                index.save()
            except Exception as exc:
                index.problems.append(f"results index not saved ({type(exc).__name__}: {exc})")
            saved = time.monotonic()
        if ending:
            snapshot.warnings = list(dict.fromkeys(index.problems))
            return snapshot
        _sleep(api_faults.backoff if fault else poll_seconds, should_stop)


CHECKS_PER_PASS = 64
"""Cells a pass checks against their prediction records at most: a loop started on a store of
10,000 unchecked cells keeps submitting stages while it works through them (about 40 ms a cell
on S3), instead of reading every record before its first submission."""


def _check_new_cells(plan: Plan, store: Store, index: ResultsIndex, done_cells: dict[str, str],
                     checked: dict[str, str]) -> dict[str, str]:
    """Check the cells done since the last pass against their prediction records and keep the
    findings in the index (:func:`xtrc.report.collect.verify_cells`), so a report after the run finds every
    cell checked; the cells looked at (each once per marker, even where the index kept nothing)."""
    new = {key: marker for key, marker in done_cells.items() if checked.get(key) != marker}
    new = dict(list(new.items())[:CHECKS_PER_PASS])  # a large store's backlog spreads over passes
    if not new:
        return {}
    from xtrc.report.collect import verify_cells  # numpy and the task registry: only once a cell is done

    try:
        verify_cells(plan, store, index, new)
    except Exception as exc:  # a cache: a store hiccup here must not stop the run (the next pass tries again)
        index.problems.append(f"cells not checked against their prediction records ({type(exc).__name__}: "
                              f"{exc}); the report checks them")
        return {}
    return new


def patiently(op: Callable[[], T], what: str, say: Callable[[str], None], *,
              fatal: tuple[type[BaseException], ...] = ()) -> T:
    """``op()``, retried with backoff until it succeeds (Ctrl-C stops): for the store reads and
    writes a loop makes before it starts. ``say`` hears of the first failure and then every minute."""
    delay, first, told = 0.5, time.monotonic(), 0.0
    while True:
        try:
            return op()
        except (*FATAL_STORE_ERRORS, *fatal):
            raise
        except Exception as exc:
            now = time.monotonic()
            if not told or now - told >= 60:
                told = now
                say(f"{what}: store unreachable since {now - first:.0f}s, retrying ({type(exc).__name__}: {exc})")
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def _sleep(seconds: float, should_stop: Callable[[], bool] | None) -> None:
    """Sleep, but wake within a tenth of a second of ``should_stop`` turning true."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop is not None and should_stop():
            return
        time.sleep(min(0.1, left))
