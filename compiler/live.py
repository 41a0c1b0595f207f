"""What `xtrc run` shows while it works: a rich live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from typing import Any

from xtrc.orchestrate import Snapshot
from xtrc.plan import Plan

STATES = ("done", "running", "ready", "waiting", "failed", "blocked")


def describe(plan: Plan, key: str) -> str:
    stage = plan.stages[key]
    tasks = ",".join(dict.fromkeys([*stage.train_tasks, *(e.task for e in stage.eval_tasks)]))
    seed = f" seed {stage.seed}" if stage.seed is not None else ""
    return f"{stage.kind} {tasks}{seed}"


class Progress:
    """An ``on_pass`` callback for the orchestration loop."""

    def __init__(self, plan: Plan, console: Any):
        self.plan = plan
        self.console = console
        self.started = time.time()
        self.first_done: int | None = None
        self.reported_failures: set[str] = set()
        self.last_counts: tuple[int, ...] | None = None
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
                self.console.print(f"[red]failed[/] {key} ({describe(self.plan, key)}): {view.reason}")
        if self.live is not None:
            self.live.update(self._table(snap))
            return
        counts = (*(snap.count(s) for s in STATES), snap.fault.split(" since ", 1)[0])
        if counts != self.last_counts:
            self.last_counts = counts
            self.console.print(self._line(snap), markup=False, highlight=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()

    def eta(self, snap: Snapshot) -> str:
        finished_here = snap.count("done") - (self.first_done or 0)
        remaining = sum(snap.count(s) for s in ("running", "ready", "waiting"))
        if finished_here <= 0 or remaining == 0:
            return "-"
        per_stage = (time.time() - self.started) / finished_here
        return time.strftime("%H:%M:%S", time.gmtime(per_stage * remaining))

    def _line(self, snap: Snapshot) -> str:
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.time() - self.started))
        parts = ", ".join(f"{snap.count(s)} {s}" for s in STATES if snap.count(s))
        return f"[{elapsed}] {len(snap.stages)} stages: {parts}; ETA {self.eta(snap)}"

    def _table(self, snap: Snapshot) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("stage", "what", "state", "elapsed", "reason"):
            table.add_column(column)
        now = time.time()
        for key, view in snap.stages.items():
            if view.state not in ("running", "failed", "blocked"):
                continue
            elapsed = time.strftime("%M:%S", time.gmtime(now - view.started)) if view.started else ""
            colour = {"running": "cyan", "failed": "red", "blocked": "yellow"}[view.state]
            table.add_row(key[:12], describe(self.plan, key), f"[{colour}]{view.state}[/]", elapsed, view.reason)
        return Group(self._line(snap), table)
