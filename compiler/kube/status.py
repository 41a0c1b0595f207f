"""`xtrc status` rows and the in-cluster loop's plain transition lines."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from xtrc.kube.backend import KubernetesBackend
from xtrc.orchestrate import BackendStatus
from xtrc.plan import Plan


STATUS_STATES = ("cached", "waiting", "ready", "pending", "running", "succeeded", "failed", "blocked")


@dataclass
class StageRow:
    key: str
    what: str
    arms: list[str]
    state: str
    phase: str = ""
    node: str = ""
    age: float | None = None  # seconds since the Job was created
    attempts: int = 0
    reason: str = ""
    job: str = ""
    pod: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_rows(plan: Plan, done: set[str], backend: KubernetesBackend, statuses: dict[str, BackendStatus],
               now: float | None = None) -> list[StageRow]:
    """One row per stage from the store's done keys and the cluster (via the loop's own `assess`)."""
    from xtrc.live import describe
    from xtrc.orchestrate import assess

    now = time.time() if now is None else now
    views = assess(plan, done, statuses)
    rows = []
    for key, view in views.items():
        detail = backend.details.get(key)
        state: str = view.state
        if state == "done":
            state = "succeeded" if detail is not None else "cached"
        elif state == "running":
            state = "running" if detail is not None and detail.phase == "Running" and not detail.suspended \
                else "pending"
        reason = view.reason
        if state == "pending" and not reason:
            reason = "pending"
        rows.append(StageRow(
            key=key, what=describe(plan, key), arms=list(plan.arms_by_stage.get(key, [])), state=state,
            phase=detail.phase if detail else "", node=detail.node if detail else "",
            age=(now - detail.created) if detail and detail.created else None,
            attempts=statuses[key].attempts if key in statuses else 0, reason=reason,
            job=detail.job if detail else "", pod=detail.pod if detail else ""))
    return rows


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


# --- plain lines for the in-cluster loop -----------------------------------------------------


@dataclass
class Transitions:
    """An ``on_pass`` callback printing one line per stage whenever its state or reason changes."""

    plan: Plan
    out: Any = None
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __call__(self, snap: Any) -> None:
        from xtrc.live import describe

        out = self.out or sys.stdout
        for key, view in snap.stages.items():
            now = (view.state, view.reason)
            if self.seen.get(key) == now:
                continue
            self.seen[key] = now
            stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
            reason = f": {view.reason}" if view.reason else ""
            print(f"{stamp} {key} {describe(self.plan, key)}: {view.state}{reason}", file=out, flush=True)
