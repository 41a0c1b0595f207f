"""The parts every orchestration loop of the command line shares (`xtrc run`, `xtrc apply --watch`,
`xtrc orchestrate`): the data check in front of the backend, the store's lease and spec copy, the
live view, and the closing summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from xtrc.errors import XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan


def checked_backend(plan: Plan, done: set[str], backend: Any, say: Callable[[str], None]) -> Any:
    """``backend`` wrapped so that stages whose data fail the check are failed, never submitted."""
    from xtrc.datacheck import CheckedBackend, rejected_stages

    rejected, notes = rejected_stages(plan, done)
    for note in notes:
        say(f"note: {note}")
    if rejected:
        say(f"data check: {len(rejected)} stage(s) will not run: their data fail validation")
    return CheckedBackend(backend, rejected) if rejected else backend


def patiently(op: Callable[[], Any], what: str, console: Any) -> Any:
    """``op()``, retried through transient store failures; a missing bucket or refused access is the
    user's to fix."""
    from xtrc.orchestrate import patiently as retry_patiently
    from xtrc.store import MissingBucket

    try:
        return retry_patiently(op, what, lambda text: console.print(text, markup=False, highlight=False),
                               fatal=(MissingBucket,))
    except (MissingBucket, PermissionError) as exc:
        raise XtrcError(str(exc) if isinstance(exc, MissingBucket) else
                        f"the store refused access ({exc}); check storage.options and the credentials") from None


def hold_loop_lease(store: Any, name: str, *, wait: bool, console: Any) -> Any:
    """The experiment's loop lease in ``store`` (held for the ``with`` block), after checking that
    the store's bucket exists: xtrc never creates one."""
    from xtrc.lease import holding, loop_lease

    patiently(store.check_bucket, "checking the store", console)
    return holding(loop_lease(store, name), wait=wait,
                   say=lambda text: console.print(text, markup=False, highlight=False))


def save_spec(store: Any, name: str, text: bytes, console: Any) -> None:
    """experiments/<name>/spec.yaml: the spec as applied."""
    from xtrc.store import write_atomic

    patiently(lambda: write_atomic(store.fs, store.layout.experiment(name, "spec.yaml"), text),
              "saving the spec", console)


def watched_loop(plan: Plan, store: Any, backend: Any, console: Any, *, max_parallel: int,
                 poll_seconds: float = 1.0, lease: Any = None,
                 log: Callable[[str], str] | None = None) -> tuple[Any, bool]:
    """The orchestration loop with the live view; Ctrl-C ends the loop (not the stages) and
    returns (last snapshot, True)."""
    import signal

    from xtrc.live import Progress
    from xtrc.orchestrate import orchestrate

    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    progress = Progress(plan, console, store=store, log=log)
    try:
        snapshot = orchestrate(plan, store, backend, max_parallel=max_parallel, poll_seconds=poll_seconds,
                               on_pass=progress, should_stop=lambda: interrupted, lease=lease)
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    return snapshot, interrupted


def print_summary(console: Any, plan: Plan, snapshot: Any, uri: str, describe: Any, *, log: Any) -> int:
    """The closing lines of a loop's run: counts, and each failed or blocked stage with its reason
    and where its log is (``log(key)``); 1 when anything failed or is blocked."""
    failed = {k: v for k, v in snapshot.stages.items() if v.state == "failed"}
    blocked = {k: v for k, v in snapshot.stages.items() if v.state == "blocked"}
    console.print(f"{snapshot.count('done')}/{len(plan.stages)} stages done in {uri}; "
                  f"{len(failed)} failed, {len(blocked)} blocked")
    for key, view in failed.items():
        console.print(f"  [red]failed[/] {key} {describe(plan, key)}: {view.reason} (log: {log(key)})")
    for key, view in blocked.items():
        console.print(f"  [yellow]blocked[/] {key} {describe(plan, key)}: {view.reason}")
    for warning in snapshot.warnings:
        console.print(f"  warning: {warning}", markup=False, highlight=False)
    return 1 if failed or blocked else 0
