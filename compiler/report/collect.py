"""Reading a report's inputs: every cell stage's ``metrics.json`` and prediction records from the
store (a thread pool over fsspec reads; a stage shared by several cells is read once), each cell
checked against its records, and the local backend's view of stages that are not done."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from xtrc import tasks as registry
from xtrc.plan import Arm, Plan
from xtrc.results_index import ResultsIndex
from xtrc.store import METRICS_JSON, PREDICTIONS_DIR, Store

DONE = "done"
MISSING = "missing"
RUNNING = "running"
FAILED = "failed"
BLOCKED = "blocked"
INVALID = "invalid"
"""A stage marked done whose outputs break the store contract (unreadable metrics.json, a task absent)."""
WORST_FIRST = (FAILED, INVALID, BLOCKED, RUNNING, MISSING)

@dataclass
class Records:
    """One prediction file (``predictions/<task>/<lang>.jsonl``) in columns."""

    ids: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-example scores (0-100) by metric name."""
    counts: np.ndarray | None = None
    """Tagging: ``(n, 3)`` entity counts ``[tp, n_pred, n_gold]`` per sentence."""
    gold: list[str] | None = None
    prediction: list[str] | None = None
    """Classification only: labels, for macro-F1 on resamples."""
    has_prediction: np.ndarray | None = None
    """BUCC only: whether the source sentence was paired with anything."""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class StageResult:
    key: str
    state: str
    metrics: dict[str, Any] | None = None
    records: dict[tuple[str, str], Records] = field(default_factory=dict)
    """(task, language) → records; absent when the file is missing or predictions were not read."""
    problems: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    """Task → why its results cannot be trusted (the stage is done, but that task's cell is invalid)."""
    degenerate: dict[str, str] = field(default_factory=dict)
    """Task → how its predictions are degenerate (one class, chance level, nothing predicted)."""


@dataclass
class Results:
    """Everything :func:`collect` read: the plan and one :class:`StageResult` per cell stage."""

    plan: Plan
    stages: dict[str, StageResult]
    predictions_read: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(self.plan.experiment.target_tasks)

    @property
    def seeds(self) -> list[int]:
        return list(self.plan.experiment.seeds)

    @property
    def arms(self) -> list[Arm]:
        return list(self.plan.arms)

    def key(self, arm: str, seed: int, task: str) -> str:
        return self.plan.cells[(arm, seed, task)]

    def state(self, arm: str, seed: int, task: str) -> str:
        stage = self.stages[self.key(arm, seed, task)]
        return INVALID if task in stage.invalid else stage.state

    def task_result(self, arm: str, seed: int, task: str) -> dict[str, Any] | None:
        """``metrics.json``'s ``tasks[task]`` for a done, valid cell, else None."""
        stage = self.stages[self.key(arm, seed, task)]
        if stage.state != DONE or stage.metrics is None or task in stage.invalid:
            return None
        return stage.metrics["tasks"][task]

    def degenerate(self, arm: str, seed: int, task: str) -> str:
        """How the cell's predictions are degenerate, or ''."""
        return self.stages[self.key(arm, seed, task)].degenerate.get(task, "")

    def records(self, arm: str, seed: int, task: str, language: str) -> Records | None:
        return self.stages[self.key(arm, seed, task)].records.get((task, language))

    def headlines(self, arm: str, task: str) -> tuple[dict[int, float | None], dict[int, str]]:
        """Per seed: the cell's stored headline (None unless done) and its state."""
        per_seed: dict[int, float | None] = {}
        states: dict[int, str] = {}
        for s in self.seeds:
            states[s] = self.state(arm, s, task)
            entry = self.task_result(arm, s, task)
            per_seed[s] = float(entry["headline"]) if entry is not None else None
        return per_seed, states


def collect(plan: Plan, store: Store, *, status: dict[str, str] | None = None, workers: int = 32,
            predictions: bool = True, markers: dict[str, str] | None = None, cached: bool = True) -> Results:
    """Read every cell's metrics (and, unless ``predictions`` is False, its prediction records)
    from ``store``, ``workers`` requests at a time; each stage once.

    A stage counts as done only when its ``_SUCCESS`` exists: ``markers`` (done key → marker
    identity, :meth:`Store.done_markers`) says which, listed here when not given. A done stage's
    metrics come from the experiment's results index where it holds them under the same marker,
    else from the stage's ``metrics.json``, which then goes into the index (``cached=False``: every
    stage read directly, the index neither read nor written). A cell whose stage is not done gets
    ``status[key]`` (``running``, ``failed``, ``blocked``) when given, else ``missing``.

    Every done cell is checked against its prediction records (:mod:`xtrc.report.verify`). The
    records are read for every done cell when ``predictions`` is True (the bootstrap needs them);
    otherwise only for cells whose check the index does not keep under their current marker (a
    cell checked once is judged again by what its check found, without reading its records).
    """
    status = status or {}
    wanted: dict[str, set[str]] = {}
    for (_arm, _seed, task), key in plan.cells.items():
        wanted.setdefault(key, set()).add(task)
    fs = store.reader_fs(workers)
    fs.invalidate_cache()  # stages commit from other processes: never trust a cached listing
    if markers is None:
        markers = store.done_markers()
    index = ResultsIndex(store, plan.experiment.metadata.name, fs=fs, workers=workers)
    fetched = index.metrics({key: markers[key] for key in wanted if key in markers}, cached=cached, save=False)

    stages: dict[str, StageResult] = {}
    for key, tasks in wanted.items():
        got = fetched.get(key)
        if got is None:
            stages[key] = StageResult(key, status.get(key, MISSING) if status.get(key) != DONE else MISSING)
        elif got.problem:
            stages[key] = StageResult(key, INVALID, problems=[got.problem])
        else:
            problems = _check_metrics(key, got.metrics, tasks)
            stages[key] = StageResult(key, INVALID if problems else DONE, got.metrics, problems=problems)
    done = [stage for stage in stages.values() if stage.state == DONE]
    checked = {stage.key: index.verification(stage.key, markers[stage.key], stage.metrics, wanted[stage.key])
               for stage in done}
    # Records are read for the bootstrap (every done cell), else only where no check is kept.
    fresh = [stage for stage in done if predictions or checked[stage.key] is None]
    _verify(store, fs, index, markers, fresh, wanted, workers)
    from xtrc.report.verify import judge  # here, not at the top: verify builds on this module's types

    fresh_keys = {stage.key for stage in fresh}
    for stage in (s for s in done if s.key not in fresh_keys):  # judged by what was kept
        judge(stage, wanted[stage.key], checked[stage.key] or {})
    index.save()
    warnings = [problem for stage in stages.values() for problem in stage.problems] + index.problems
    return Results(plan, stages, predictions_read=predictions, warnings=warnings)


def verify_cells(plan: Plan, store: Store, index: ResultsIndex, markers: dict[str, str], *,
                 workers: int = 16) -> list[str]:
    """Check every done cell stage in ``markers`` (key → its _SUCCESS identity) that ``index``
    holds without a kept check against its prediction records, and keep what the check found (saved
    with the index's next save): the orchestration loop calls this as cells finish, so a report
    after a run reads no prediction record unless it bootstraps. The keys checked."""
    wanted: dict[str, set[str]] = {}
    for (_arm, _seed, task), key in plan.cells.items():
        if key in markers:
            wanted.setdefault(key, set()).add(task)
    fetched = index.metrics({key: markers[key] for key in wanted}, save=False)
    stages = []
    for key, tasks in wanted.items():
        got = fetched.get(key)
        if got is None or got.problem or _check_metrics(key, got.metrics, tasks):
            continue  # nothing a report would show as a number
        if index.verification(key, markers[key], got.metrics, tasks) is None:
            stages.append(StageResult(key, DONE, got.metrics))
    _verify(store, index.fs, index, markers, stages, wanted, workers)
    return [stage.key for stage in stages]


def _verify(store: Store, fs: Any, index: ResultsIndex, markers: dict[str, str], stages: list[StageResult],
            wanted: dict[str, set[str]], workers: int) -> None:
    """Read the prediction records of ``stages`` (done, metrics checked) in parallel, check each
    against them, and keep the findings in ``index`` where every record file was there."""
    if not stages:
        return
    from xtrc.report.verify import verify  # here, not at the top: verify builds on this module's types

    by_key = {stage.key: stage for stage in stages}
    reads = [(stage.key, task, language) for stage in stages for task in sorted(wanted[stage.key])
             for language in _languages(stage.metrics, task)]

    def read(key: str, task: str, language: str) -> tuple[str, str, str, Records | None, str | None]:
        path = store.layout.stage(key, PREDICTIONS_DIR, task, f"{language}.jsonl")
        try:
            raw = fs.cat_file(path)
        except FileNotFoundError:
            return key, task, language, None, f"stage {key}: no {PREDICTIONS_DIR}/{task}/{language}.jsonl"
        try:
            return key, task, language, parse_records(raw, task), None
        except (ValueError, KeyError, TypeError) as exc:
            return key, task, language, None, f"stage {key}: {PREDICTIONS_DIR}/{task}/{language}.jsonl: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="xtrc-report") as pool:
        for key, task, language, records, problem in pool.map(lambda r: read(*r), reads):
            if records is not None:
                by_key[key].records[(task, language)] = records
            if problem:
                by_key[key].problems.append(problem)
    for stage in stages:
        found, complete = verify(stage, wanted[stage.key])
        if complete:
            index.set_verification(stage.key, markers[stage.key], stage.metrics, found)


def _languages(metrics: Any, task: str) -> list[str]:
    languages = metrics["tasks"][task].get("languages")
    return list(languages) if isinstance(languages, dict) else []


def _check_metrics(key: str, metrics: Any, wanted: Iterable[str]) -> list[str]:
    if not isinstance(metrics, dict) or not isinstance(metrics.get("tasks"), dict):
        return [f"stage {key}: {METRICS_JSON} has no 'tasks' object"]
    if metrics.get("key") != key:
        return [f"stage {key}: its results name stage {metrics.get('key')!r}: they belong to another stage"]
    problems = []
    for task in sorted(wanted):
        entry = metrics["tasks"].get(task)
        if not isinstance(entry, dict):
            problems.append(f"stage {key}: {METRICS_JSON} has no results for {task}")
            continue
        for name in ("languages", "headline"):
            if name not in entry:
                problems.append(f"stage {key}: {METRICS_JSON} tasks.{task} has no '{name}'")
    return problems


def parse_records(raw: bytes | str, task: str) -> Records:
    """Columns of one prediction file; raises ValueError/KeyError on records that break the contract."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    ids = [str(r["id"]) if "id" in r else str(i) for i, r in enumerate(rows)]
    out = Records(ids)
    if not rows:
        return out
    info = registry.TASKS.get(task)
    if "counts" in rows[0]:
        out.counts = np.asarray([r["counts"] for r in rows], dtype=np.float64).reshape(len(rows), 3)
    if "scores" in rows[0]:
        for name in rows[0]["scores"]:
            out.scores[name] = np.asarray([r["scores"][name] for r in rows], dtype=np.float64)
    if info is not None and info.type in ("classification", "multiple_choice"):
        out.gold = [_label(r["gold"]) for r in rows]
        out.prediction = [_label(r["prediction"]) for r in rows]
    if task == "bucc":
        out.has_prediction = np.asarray([r.get("prediction") is not None for r in rows], dtype=np.float64)
    if out.counts is None and not out.scores:
        raise ValueError("records carry neither 'scores' nor 'counts'")
    return out


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def local_status(plan: Plan, store: Store, done: set[str]) -> dict[str, str]:
    """The local backend's view of stages that are not done, from its state files alone:
    ``<key>.exit`` non-zero (or zero without ``_SUCCESS``) → failed; ``<key>.json`` with a live pid →
    running; a stage below a failed or blocked one → blocked. Starts and signals nothing."""
    from xtrc.lease import pid_running
    from xtrc.local import state_dir_for
    from xtrc.orchestrate import BackendStatus, assess

    state_dir = state_dir_for(store.uri)
    if not state_dir.is_dir():
        return {}
    backend: dict[str, BackendStatus] = {}
    for key in plan.stages:
        if key in done:
            continue
        exit_file, record_file = state_dir / f"{key}.exit", state_dir / f"{key}.json"
        try:
            if exit_file.exists():
                text = exit_file.read_text().strip()
                code = int(text) if text else 1
                backend[key] = BackendStatus("failed" if code else "finished", f"exit {code}")
            elif record_file.exists():
                pid = int(json.loads(record_file.read_text())["pid"])
                backend[key] = BackendStatus("running" if pid_running(pid) else "failed",
                                             "" if pid_running(pid) else "the process is gone")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    views = assess(plan, done, backend)
    return {key: view.state for key, view in views.items() if view.state in (RUNNING, FAILED, BLOCKED)}

