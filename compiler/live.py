"""What `xtrc run` shows while it works (a rich live table on a terminal, plain lines elsewhere),
and the pieces `xtrc status` shares with it: durations, stage descriptions, in-stage progress.

In-stage progress comes from ``stages/<key>/progress.json``, which a stage writes every few
seconds while it trains (step, total, ETA) and as each language's evaluation starts (task,
language, languages done/total, ETA): the same record on this machine and on a cluster.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from xtrc.orchestrate import Snapshot
from xtrc.plan import Plan
from xtrc.store import PROGRESS_FILE, Store

STATES = ("done", "running", "ready", "waiting", "failed", "blocked")
PROGRESS_READ_SECONDS = 5.0
"""The live view reads a running stage's progress record at most this often."""


def duration(seconds: float | None) -> str:
    """``h:mm:ss``, with days in front past 24 hours (``2d 03:04:05``); empty for None."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours}:{minutes:02d}:{secs:02d}"


def describe(plan: Plan, key: str) -> str:
    stage = plan.stages[key]
    tasks = ",".join(dict.fromkeys([*stage.train_tasks, *(e.task for e in stage.eval_tasks)]))
    seed = f" seed {stage.seed}" if stage.seed is not None else ""
    return f"{stage.kind} {tasks}{seed}"


def arms_text(plan: Plan, key: str) -> str:
    """The arm(s) a stage serves: one name, or the first and how many more share it."""
    arms = plan.arms_by_stage.get(key, [])
    if not arms:
        return ""
    return arms[0] if len(arms) == 1 else f"{arms[0]} +{len(arms) - 1}"


def read_progress(store: Store, key: str) -> dict[str, Any] | None:
    """A stage's progress record, or None (none yet, unreadable: progress is only a view)."""
    try:
        return json.loads(store.fs.cat_file(store.layout.stage(key, PROGRESS_FILE)))
    except Exception:
        return None


def progress_text(record: dict[str, Any] | None, now: float | None = None) -> str:
    """``step 40/120 (phase 1/2), ETA 0:01:10`` while training, ``eval xnli de (3/40 languages),
    ETA 0:02:00`` while evaluating, from a progress record; how old it is when stale."""
    if not record:
        return ""
    if record.get("state") == "evaluating" and "languages_total" in record:
        done, total = record.get("languages_done", 0), record["languages_total"]
        if done == total:
            text = f"eval done ({total}/{total} languages, {record.get('examples', 0):,} examples)"
        else:
            text = f"eval {record.get('task', '')} {record.get('language', '')} ({done}/{total} languages)"
        finished = done == total
    elif "step" in record:
        text = f"step {record['step']}/{record.get('total', '?')}"
        if record.get("phases", 1) > 1:
            text += f" (phase {record.get('phase', 1)}/{record['phases']})"
        finished = record.get("step") == record.get("total")
    else:
        return ""
    if record.get("eta_seconds") is not None and not finished:
        text += f", ETA {duration(record['eta_seconds'])}"
    age = (time.time() if now is None else now) - float(record.get("updated", 0) or 0)
    if age > 60:
        text += f" ({duration(age)} ago)"
    return text


class Progress:
    """An ``on_pass`` callback for the orchestration loop. ``log(key)`` says where a stage's log
    is (shown in each row)."""

    def __init__(self, plan: Plan, console: Any, *, store: Store | None = None,
                 log: Callable[[str], str] | None = None):
        self.plan = plan
        self.console = console
        self.store = store
        self.log = log
        self.started = time.time()
        self.first_done: int | None = None
        self.reported_failures: set[str] = set()
        self.reported_starts: set[tuple[str, int]] = set()
        self.last_counts: tuple[Any, ...] | None = None
        self.progress: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.live: Any = None
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(console=console, refresh_per_second=2, transient=False)
            self.live.start()

    def __call__(self, snap: Snapshot) -> None:
        if self.first_done is None:
            self.first_done = snap.count("done")
        for key, view in snap.stages.items():
            if view.state == "failed" and key not in self.reported_failures:
                self.reported_failures.add(key)
                self.console.print(f"[red]failed[/] {key} ({self.what(key)}): {view.reason}")
        if self.live is not None:
            self.live.update(self._table(snap))
            return
        for key, view in snap.stages.items():  # plain lines: each start, once per attempt
            if view.state == "running" and (key, view.attempts) not in self.reported_starts:
                self.reported_starts.add((key, view.attempts))
                where = f", log {self.log(key)}" if self.log else ""
                attempt = f" attempt {view.attempts}" if view.attempts > 1 else ""
                self.console.print(f"started {key} ({self.what(key)}){attempt}{where}", markup=False,
                                   highlight=False)
        counts = (*(snap.count(s) for s in STATES), snap.fault.split(" since ", 1)[0])
        if counts != self.last_counts:
            self.last_counts = counts
            self.console.print(self._line(snap), markup=False, highlight=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()

    def what(self, key: str) -> str:
        arms = arms_text(self.plan, key)
        return f"{arms}: {describe(self.plan, key)}" if arms else describe(self.plan, key)

    def eta(self, snap: Snapshot) -> str:
        finished_here = snap.count("done") - (self.first_done or 0)
        remaining = sum(snap.count(s) for s in ("running", "ready", "waiting"))
        if finished_here <= 0 or remaining == 0:
            return "-"
        per_stage = (time.time() - self.started) / finished_here
        return duration(per_stage * remaining)

    def stage_progress(self, key: str) -> str:
        if self.store is None:
            return ""
        now = time.monotonic()
        read, record = self.progress.get(key, (0.0, None))
        if now - read >= PROGRESS_READ_SECONDS:
            record = read_progress(self.store, key)
            self.progress[key] = (now, record)
        return progress_text(record)

    def _line(self, snap: Snapshot) -> str:
        parts = ", ".join(f"{snap.count(s)} {s}" for s in STATES if snap.count(s))
        line = f"[{duration(time.time() - self.started)}] {len(snap.stages)} stages: {parts}; ETA {self.eta(snap)}"
        return f"{line}; {snap.fault}" if snap.fault else line

    def _table(self, snap: Snapshot) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("stage", "arm", "what", "state", "attempt", "elapsed", "progress", "reason"):
            table.add_column(column, overflow="fold", no_wrap=column in ("stage", "state", "attempt", "elapsed"))
        now = time.time()
        for key, view in snap.stages.items():
            if view.state not in ("running", "failed", "blocked"):
                continue
            elapsed = duration(now - view.started) if view.started else ""
            colour = {"running": "cyan", "failed": "red", "blocked": "yellow"}[view.state]
            progress = self.stage_progress(key) if view.state == "running" else ""
            table.add_row(key[:12], arms_text(self.plan, key), describe(self.plan, key),
                          Text(view.state, style=colour), str(view.attempts or ""), elapsed, progress,
                          Text(view.reason))
        head = Text(self._line(snap))
        if snap.fault:
            head.stylize("yellow", len(head) - len(snap.fault))
        parts: list[Any] = [head, table]
        if self.log is not None:  # one line for every row's log: the path with the stage's key in it
            parts.append(Text(f"logs: {self.log('<stage>')}", style="dim"))
        return Group(*parts)
