"""`xtrc report`: read every cell's results from the store and answer the research question.

Three steps, each usable on its own:

* :func:`collect` reads each cell's ``metrics.json`` and per-example prediction records from the
  store, in parallel (a thread pool over fsspec reads; a stage shared by several cells is read once).
* :func:`build_report` turns them into tables — arms × target tasks (headline metric, mean ± std
  over seeds, Δ against the baseline arm, the mean over tasks and the XTREME(-R) score), optional
  per-language tables — and into the research question's answer: for every (intermediate level,
  augmentation level) pair with all four arms present, *combined − intermediate-only*,
  *combined − augmentation-only* and the *interaction* (combined − intermediate − augmentation +
  baseline), per task and on the mean over tasks, each with a paired bootstrap interval.
* :func:`render` writes a report as rich tables, CSV, JSON, Markdown or LaTeX; :func:`plot` draws a
  heatmap of Δ vs the baseline by language × arm.

Bootstrap: per task and language, examples are resampled with replacement; the same resampled
indices serve every arm and seed (paired). In each replicate, a cell's metric is recomputed from
the resampled records (the mean of per-example scores; micro F1 from summed entity counts for
tagging; macro-F1 from gold/prediction for classification), averaged over the task's languages,
then over seeds (pooled). The interval is the 2.5–97.5 percentile range of the replicate contrasts;
the point estimate is the contrast of the stored headline values (the numbers in the main table).

Nothing is averaged over a subset: a cell with any seed not done, or an aggregate over cells any of
which is not done, shows the state of what is missing and how much of it is, never a number.
Never imports torch, transformers or datasets; matplotlib only inside :func:`plot`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from xtrc import tasks as registry
from xtrc.errors import XtrcError
from xtrc.plan import Arm, Plan
from xtrc.results_index import ResultsIndex
from xtrc.store import METRICS_JSON, PREDICTIONS_DIR, Store, normalize_uri

DONE = "done"
MISSING = "missing"
RUNNING = "running"
FAILED = "failed"
BLOCKED = "blocked"
INVALID = "invalid"
"""A stage marked done whose outputs break the store contract (unreadable metrics.json, a task absent)."""
_WORST_FIRST = (FAILED, INVALID, BLOCKED, RUNNING, MISSING)
FORMATS = ("table", "csv", "json", "markdown", "latex")
CONTRASTS = ("combined-intermediate", "combined-augmentation", "interaction")
AVERAGE = "average"
"""The column/row label of the mean over tasks (headline metric)."""
CONFIDENCE = 0.95
_MAX_WEIGHTS = 4_000_000
"""Resample weights held at once (replicates × examples); larger sets go in chunks of replicates."""


# --- reading the store -----------------------------------------------------------------------


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
        return self.stages[self.key(arm, seed, task)].state

    def task_result(self, arm: str, seed: int, task: str) -> dict[str, Any] | None:
        """``metrics.json``'s ``tasks[task]`` for a done cell, else None."""
        stage = self.stages[self.key(arm, seed, task)]
        if stage.state != DONE or stage.metrics is None:
            return None
        return stage.metrics["tasks"][task]

    def records(self, arm: str, seed: int, task: str, language: str) -> Records | None:
        return self.stages[self.key(arm, seed, task)].records.get((task, language))


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
    fetched = index.metrics({key: markers[key] for key in wanted if key in markers}, cached=cached)

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

    def read_records(key: str, task: str, language: str) -> tuple[str, str, str, Records | None, str | None]:
        path = store.layout.stage(key, PREDICTIONS_DIR, task, f"{language}.jsonl")
        try:
            raw = fs.cat_file(path)
        except FileNotFoundError:
            return key, task, language, None, f"stage {key}: no {PREDICTIONS_DIR}/{task}/{language}.jsonl"
        try:
            return key, task, language, parse_records(raw, task), None
        except (ValueError, KeyError, TypeError) as exc:
            return key, task, language, None, f"stage {key}: {PREDICTIONS_DIR}/{task}/{language}.jsonl: {exc}"

    if predictions:
        reads = [(stage.key, task, language) for stage in stages.values() if stage.state == DONE
                 for task in sorted(wanted[stage.key]) for language in stage.metrics["tasks"][task]["languages"]]
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="xtrc-report") as pool:
            for key, task, language, records, problem in pool.map(lambda r: read_records(*r), reads):
                if records is not None:
                    stages[key].records[(task, language)] = records
                if problem:
                    stages[key].problems.append(problem)
    warnings = [problem for stage in stages.values() for problem in stage.problems] + index.problems
    return Results(plan, stages, predictions_read=predictions, warnings=warnings)


def _check_metrics(key: str, metrics: Any, wanted: Iterable[str]) -> list[str]:
    if not isinstance(metrics, dict) or not isinstance(metrics.get("tasks"), dict):
        return [f"stage {key}: {METRICS_JSON} has no 'tasks' object"]
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
    if info is not None and info.type == "classification":
        out.gold = [_label(r["gold"]) for r in rows]
        out.prediction = [_label(r["prediction"]) for r in rows]
    if task == "bucc":
        out.has_prediction = np.asarray([r.get("prediction") is not None for r in rows], dtype=np.float64)
    if out.counts is None and not out.scores:
        raise ValueError("records carry neither 'scores' nor 'counts'")
    return out


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# --- local run state (files only) --------------------------------------------------------------


def local_status(plan: Plan, store: Store, done: set[str]) -> dict[str, str]:
    """The local backend's view of stages that are not done, from its state files alone:
    ``<key>.exit`` non-zero (or zero without ``_SUCCESS``) → failed; ``<key>.json`` with a live pid →
    running; a stage below a failed or blocked one → blocked. Starts and signals nothing."""
    from xtrc.local import _pid_alive, state_dir_for
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
                backend[key] = BackendStatus("running" if _pid_alive(pid) else "failed",
                                             "" if _pid_alive(pid) else "the process is gone")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    views = assess(plan, done, backend)
    return {key: view.state for key, view in views.items() if view.state in (RUNNING, FAILED, BLOCKED)}


# --- values and tables -------------------------------------------------------------------------


@dataclass
class Value:
    """One table entry: a mean ± std over seeds when every constituent is done, else a state."""

    state: str
    mean: float | None = None
    std: float | None = None
    n_seeds: int = 0
    seeds: dict[int, float | None] = field(default_factory=dict)
    """Per-seed value (None where that seed is not complete)."""
    seed_states: dict[int, str] = field(default_factory=dict)
    delta: float | None = None
    """Mean minus the baseline arm's mean (None for the baseline, or when either is not done)."""
    not_done: int = 0
    of: int = 0
    unit: str = "seeds"
    """What ``not_done``/``of`` count: seeds (a cell) or cells (an aggregate)."""

    @property
    def ok(self) -> bool:
        return self.state == DONE

    def detail(self) -> str:
        if self.ok:
            return ""
        if self.of <= 1:
            return self.state
        return f"{self.state} ({self.not_done}/{self.of} {self.unit})"

    def text(self, *, delta: bool = True) -> str:
        if not self.ok or self.mean is None:
            return self.detail()
        return self._number("±", delta)

    def latex(self, *, delta: bool = True) -> str:
        if not self.ok or self.mean is None:
            return r"\textit{" + latex_escape(self.detail()) + "}"
        return self._number(r"$\pm$", delta)

    def _number(self, plus_minus: str, delta: bool) -> str:
        """``mean ± std (Δ)``, each part where known."""
        out = f"{self.mean:.2f}"
        if self.std is not None:
            out += f" {plus_minus} {self.std:.2f}"
        if delta and self.delta is not None:
            out += f" ({self.delta:+.2f})"
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state, "mean": _num(self.mean), "std": _num(self.std), "n_seeds": self.n_seeds,
            "seeds": {str(s): _num(v) for s, v in self.seeds.items()},
            "seed_states": {str(s): v for s, v in self.seed_states.items()},
            "delta_vs_baseline": _num(self.delta), "not_done": self.not_done, "of": self.of, "unit": self.unit,
        }


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summarise(per_seed: dict[int, float | None], seed_states: dict[int, str], unit: str = "seeds",
               not_done: int | None = None, of: int | None = None) -> Value:
    bad = [s for s in seed_states.values() if s != DONE]
    count_bad = len(bad) if not_done is None else not_done
    total = len(seed_states) if of is None else of
    if count_bad:
        worst = next((state for state in _WORST_FIRST if state in bad), MISSING) if bad else MISSING
        return Value(worst, seeds=per_seed, seed_states=seed_states, not_done=count_bad, of=total, unit=unit)
    values = np.asarray([v for v in per_seed.values() if v is not None], dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return Value(DONE, float(values.mean()), std, len(values), per_seed, seed_states, of=total, unit=unit)


@dataclass
class Table:
    title: str
    columns: list[str]
    """Column ids (tasks, languages, or the aggregates ``average`` / ``xtreme``)."""
    labels: list[str]
    """Column headers as shown."""
    rows: list[tuple[str, list[Value]]]
    task: str | None = None


@dataclass
class Comparison:
    intermediate: str
    augmentation: str
    arms: dict[str, str]
    """Role (``baseline``, ``intermediate_only``, ``augmentation_only``, ``combined``) → arm name."""
    contrast: str
    task: str
    """A task name, or ``average`` (the mean over tasks)."""
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    detail: str = ""
    """Why there is no estimate or no interval."""

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    def statement(self) -> str:
        a = self.arms
        where = "on the mean over tasks" if self.task == AVERAGE else f"on {self.task}"
        if self.contrast == "interaction":
            subject = (f"the interaction ({a['combined']} − {a['intermediate_only']} − {a['augmentation_only']} "
                       f"+ {a['baseline']}) {where}")
        else:
            other = "intermediate_only" if self.contrast == "combined-intermediate" else "augmentation_only"
            role = other.replace("_only", "-only")
            subject = f"combined ({a['combined']}) vs {role} ({a[other]}) {where}"
        if self.estimate is None:
            return f"{subject}: not available ({self.detail})"
        if self.interval is None:
            return f"{subject}: {self.estimate:+.2f} (no interval: {self.detail})"
        lo, hi = self.interval
        ci = f"{self.estimate:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        if lo == hi == 0 and self.estimate == 0:
            return f"{subject}: {ci}, no difference (identical results on every resample: the arms share stages)"
        if lo <= 0 <= hi:
            return f"{subject}: {ci}, within noise (the 95% interval includes 0)"
        if self.contrast == "interaction":
            if lo > 0:
                return f"{subject} is positive: {ci}, more than additive (the methods reinforce each other)"
            return f"{subject} is negative: {ci}, less than additive (the gains overlap or interfere)"
        verb = "beats" if lo > 0 else "is worse than"
        return f"combined ({a['combined']}) {verb} {role} ({a[other]}) {where} by {ci}"

    def as_dict(self) -> dict[str, Any]:
        return {"intermediate": self.intermediate, "augmentation": self.augmentation, "arms": self.arms,
                "contrast": self.contrast, "task": self.task, "estimate": _num(self.estimate),
                "ci_low": _num(self.low), "ci_high": _num(self.high), "detail": self.detail,
                "statement": self.statement()}


@dataclass
class Report:
    experiment: str
    benchmark: str
    store: str
    tasks: list[str]
    all_tasks: bool
    """Whether ``tasks`` are all the spec's targets (the averages are shown only then)."""
    seeds: list[int]
    arms: list[Arm]
    baseline: str | None
    headline: dict[str, str]
    main: Table
    by_language: list[Table]
    comparisons: list[Comparison]
    bootstrap: int
    seed: int
    warnings: list[str]
    """Contract problems met while reading (unreadable files, records that disagree with metrics.json)."""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment, "benchmark": self.benchmark, "store": self.store,
            "tasks": self.tasks, "seeds": self.seeds, "headline_metrics": self.headline,
            "baseline": self.baseline,
            "arms": [{"name": a.name, "intermediate": a.intermediate.name, "augmentation": a.augmentation.name,
                      "is_baseline": a.is_baseline} for a in self.arms],
            "cells": [{"arm": arm, "column": col, "kind": "aggregate" if col in (AVERAGE, "xtreme") else "task",
                       **value.as_dict()}
                      for arm, values in self.main.rows for col, value in zip(self.main.columns, values)],
            "by_language": [{"task": t.task, "cells": [{"arm": arm, "language": col, **value.as_dict()}
                                                       for arm, values in t.rows
                                                       for col, value in zip(t.columns, values)]}
                            for t in self.by_language],
            "comparisons": [c.as_dict() for c in self.comparisons],
            "bootstrap": {"replicates": self.bootstrap, "seed": self.seed, "confidence": CONFIDENCE,
                          "resampling": "examples, per task and language, paired across arms and seeds; "
                                        "pooled over seeds"},
            "warnings": self.warnings,
            "notes": self.notes,
        }


def _headline_metric(results: Results, task: str) -> str:
    for (arm, seed, t) in results.plan.cells:
        if t == task:
            entry = results.task_result(arm, seed, task)
            if entry and entry.get("headline_metric"):
                return str(entry["headline_metric"])
    info = registry.TASKS[task]
    return info.metrics[0] if info.metrics else "score"


def build_report(results: Results, *, tasks: Sequence[str] | None = None, by: str | None = None,
                 bootstrap: int = 1000, seed: int = 0) -> Report:
    """Tables and comparisons from collected results. ``tasks`` filters the target tasks (the
    averages over tasks appear only when all are kept); ``by="language"`` adds one arms × languages
    table per task; ``bootstrap`` replicates (0: point estimates only), seeded by ``seed``."""
    exp = results.plan.experiment
    all_targets = results.tasks
    chosen = check_tasks(tasks, all_targets) if tasks else all_targets
    all_tasks = list(chosen) == list(all_targets)
    baseline = results.plan.baseline
    headline = {t: _headline_metric(results, t) for t in chosen}
    warnings = list(results.warnings)
    notes: list[str] = []

    # cells
    cells: dict[tuple[str, str], Value] = {}
    for arm in results.arms:
        for task in chosen:
            per_seed, states = _cell_seeds(results, arm.name, task)
            cells[(arm.name, task)] = _summarise(per_seed, states)
    warnings += _check_language_means(results, chosen, headline)
    columns, labels = list(chosen), [f"{t} ({headline[t]})" for t in chosen]
    aggregates: dict[tuple[str, str], Value] = {}
    if all_tasks and len(chosen) > 1:
        score = "xtreme-r" if exp.benchmark == "xtreme-r" else "xtreme"
        for arm in results.arms:
            aggregates[(arm.name, AVERAGE)] = _aggregate(results, arm.name, chosen, lambda e: e["headline"])
            aggregates[(arm.name, "xtreme")] = _aggregate(results, arm.name, chosen, _xtreme_score)
        columns += [AVERAGE, "xtreme"]
        labels += ["mean over tasks", f"{score} score"]
        full = set(registry.GROUPS.get(exp.benchmark, ()))
        if set(chosen) != full:
            notes.append(f"the {score} score is the mean of the {exp.benchmark.upper()} task scores over this "
                            f"spec's {len(chosen)} target tasks, not the full benchmark")
    values = {**cells, **aggregates}
    if baseline is not None:
        for (arm, col), value in values.items():
            base = values[(baseline.name, col)]
            if arm != baseline.name and value.ok and base.ok and value.mean is not None and base.mean is not None:
                value.delta = value.mean - base.mean
    main = Table(f"{exp.metadata.name}: headline metric, mean ± std over {len(results.seeds)} seed(s)"
                 + (f" (Δ vs {baseline.name})" if baseline else " (no baseline arm: no Δ)"),
                 columns, labels, [(arm.name, [values[(arm.name, c)] for c in columns]) for arm in results.arms])

    by_language = [_language_table(results, t, headline[t]) for t in chosen] if by == "language" else []
    comparisons = _comparisons(results, chosen, all_tasks, headline, bootstrap, seed, warnings)
    return Report(exp.metadata.name, exp.benchmark, normalize_uri(exp.storage.uri), list(chosen), all_tasks,
                  results.seeds,
                  results.arms, baseline.name if baseline else None, headline, main, by_language, comparisons,
                  bootstrap, seed, warnings, notes)


def _check_language_means(results: Results, chosen: Sequence[str], headline: dict[str, str]) -> list[str]:
    """The contract the bootstrap relies on: a task's headline is the plain mean over its languages."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for (arm, seed, task), key in results.plan.cells.items():
        if task not in chosen or (key, task) in seen:
            continue
        seen.add((key, task))
        entry = results.task_result(arm, seed, task)
        if entry is None:
            continue
        values = [m.get(headline[task]) for m in entry["languages"].values()]
        if not values or any(v is None for v in values):
            problems.append(f"stage {key}: {task} lacks {headline[task]!r} in some language")
        elif abs(float(np.mean(values)) - float(entry["headline"])) > 1e-6 * max(1.0, abs(float(entry["headline"]))):
            problems.append(f"stage {key}: {task} headline {entry['headline']:.4f} is not the mean over languages "
                            f"({float(np.mean(values)):.4f})")
    return problems


def check_tasks(tasks: Sequence[str], targets: Sequence[str]) -> list[str]:
    out = []
    for name in tasks:
        for part in (p.strip() for p in name.split(",")):
            if not part:
                continue
            try:
                task = registry.resolve(part)
            except KeyError:
                task = part
            if task not in targets:
                raise XtrcError(f"--task {part}: not a target task of this spec; targets: {', '.join(targets)}")
            if task not in out:
                out.append(task)
    return [t for t in targets if t in out]


def _xtreme_score(entry: dict[str, Any]) -> float:
    value = entry.get("xtreme_score")
    if value is None:
        raise KeyError("xtreme_score")
    return float(value)


def _aggregate(results: Results, arm: str, tasks: Sequence[str], pick: Any) -> Value:
    """Mean over tasks per seed, then mean ± std over seeds; only when every cell is done."""
    per_seed: dict[int, float | None] = {}
    seed_states: dict[int, str] = {}
    bad: list[str] = []
    for s in results.seeds:
        states = [results.state(arm, s, t) for t in tasks]
        bad += [x for x in states if x != DONE]
        seed_states[s] = next((x for x in _WORST_FIRST if x in states), DONE)
        if all(x == DONE for x in states):
            try:
                per_seed[s] = float(np.mean([pick(results.task_result(arm, s, t)) for t in tasks]))
            except (KeyError, TypeError):
                per_seed[s] = None
                seed_states[s] = INVALID
                bad.append(INVALID)
        else:
            per_seed[s] = None
    value = _summarise(per_seed, seed_states, unit="cells", not_done=len(bad), of=len(tasks) * len(results.seeds))
    if not value.ok:
        value.state = next((x for x in _WORST_FIRST if x in bad), MISSING)
    return value


def _language_table(results: Results, task: str, metric: str) -> Table:
    languages: list[str] = []
    for stage in results.plan.stages.values():
        for ev in stage.eval_tasks:
            if ev.task == task:
                languages += [lang for lang in ev.languages if lang not in languages]
    values: dict[tuple[str, str], Value] = {}
    for arm in results.arms:
        for lang in languages:
            per_seed: dict[int, float | None] = {}
            states: dict[int, str] = {}
            for s in results.seeds:
                states[s] = results.state(arm.name, s, task)
                entry = results.task_result(arm.name, s, task)
                got = entry["languages"].get(lang, {}).get(metric) if entry is not None else None
                if entry is not None and got is None:
                    states[s] = INVALID
                per_seed[s] = float(got) if got is not None else None
            values[(arm.name, lang)] = _summarise(per_seed, states)
        values[(arm.name, AVERAGE)] = _summarise(
            {s: (float(e["headline"]) if (e := results.task_result(arm.name, s, task)) else None)
             for s in results.seeds},
            {s: results.state(arm.name, s, task) for s in results.seeds})
    columns = [*languages, AVERAGE]
    baseline = results.plan.baseline
    if baseline is not None:
        for (arm, col), value in values.items():
            base = values[(baseline.name, col)]
            if arm != baseline.name and value.ok and base.ok:
                value.delta = value.mean - base.mean  # type: ignore[operator]
    return Table(f"{task} by language: {metric}, mean ± std over seeds"
                 + (f" (Δ vs {baseline.name})" if baseline else ""), columns,
                 [*languages, "mean over languages"],
                 [(arm.name, [values[(arm.name, c)] for c in columns]) for arm in results.arms], task=task)


# --- the research question: contrasts with paired bootstrap intervals ---------------------------


def design_quads(plan: Plan) -> list[tuple[str, str, dict[str, str]]]:
    """(intermediate level, augmentation level, role → arm) for every pair of non-none levels whose
    four arms (baseline, intermediate-only, augmentation-only, combined) are all in the design."""
    by_levels: dict[tuple[str, str], str] = {}
    for arm in plan.arms:
        by_levels.setdefault((arm.intermediate.name, arm.augmentation.name), arm.name)
    base = plan.baseline
    if base is None:
        return []
    none_i, none_a = base.intermediate.name, base.augmentation.name
    inter = [a.intermediate.name for a in plan.arms if not a.intermediate.is_none]
    aug = [a.augmentation.name for a in plan.arms if not a.augmentation.is_none]
    out = []
    for i in dict.fromkeys(inter):
        for a in dict.fromkeys(aug):
            roles = {"baseline": base.name, "intermediate_only": by_levels.get((i, none_a)),
                     "augmentation_only": by_levels.get((none_i, a)), "combined": by_levels.get((i, a))}
            if all(roles.values()):
                out.append((i, a, {k: str(v) for k, v in roles.items()}))
    return out


def _contrast(kind: str, v: dict[str, Any]) -> Any:
    if kind == "combined-intermediate":
        return v["combined"] - v["intermediate_only"]
    if kind == "combined-augmentation":
        return v["combined"] - v["augmentation_only"]
    return v["combined"] - v["intermediate_only"] - v["augmentation_only"] + v["baseline"]


def _comparisons(results: Results, chosen: Sequence[str], all_tasks: bool, headline: dict[str, str],
                 bootstrap: int, seed: int, warnings: list[str]) -> list[Comparison]:
    quads = design_quads(results.plan)
    if not quads:
        return []
    arms = list(dict.fromkeys(a for _, _, roles in quads for a in roles.values()))
    point: dict[tuple[str, str], float | None] = {}
    why: dict[tuple[str, str], str] = {}
    for arm in arms:
        for task in chosen:
            value = _summarise(*_cell_seeds(results, arm, task))
            point[(arm, task)] = value.mean if value.ok else None
            if not value.ok:
                why[(arm, task)] = value.detail()
    reps: dict[tuple[str, str], np.ndarray] = {}
    no_ci: dict[str, str] = {}
    for task in chosen:
        if bootstrap <= 0:
            no_ci[task] = "bootstrap disabled"
            continue
        if not results.predictions_read:
            no_ci[task] = "prediction records not read"
            continue
        ready = [a for a in arms if point[(a, task)] is not None]
        got, reason = _task_replicates(results, ready, task, headline[task], bootstrap, seed, warnings)
        if reason:
            no_ci[task] = reason
        reps.update({(a, task): r for a, r in got.items()})

    out: list[Comparison] = []
    targets = list(chosen) + ([AVERAGE] if all_tasks and len(chosen) > 1 else [])
    for inter, aug, roles in quads:
        for kind in CONTRASTS:
            for task in targets:
                comp = Comparison(inter, aug, roles, kind, task)
                needed = [(roles[r], t) for r in _roles(kind) for t in (chosen if task == AVERAGE else [task])]
                missing = [k for k in dict.fromkeys(needed) if point[k] is None]
                if missing:
                    comp.detail = _missing_detail(missing, why)
                    out.append(comp)
                    continue
                per_role = {r: float(np.mean([point[(roles[r], t)] for t in (chosen if task == AVERAGE else [task])]))
                            for r in _roles(kind)}
                comp.estimate = float(_contrast(kind, per_role))
                lacking = [t for t in (chosen if task == AVERAGE else [task]) if any((roles[r], t) not in reps
                                                                                        for r in _roles(kind))]
                if lacking:
                    comp.detail = "; ".join(dict.fromkeys(f"{t}: {no_ci.get(t, 'no per-example records')}"
                                                           for t in lacking))
                else:
                    tasks_here = chosen if task == AVERAGE else [task]
                    rep_roles = {r: np.mean([reps[(roles[r], t)] for t in tasks_here], axis=0) for r in _roles(kind)}
                    diff = _contrast(kind, rep_roles)
                    lo, hi = np.quantile(diff, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
                    comp.low, comp.high = float(lo), float(hi)
                out.append(comp)
    return out


def _missing_detail(missing: list[tuple[str, str]], why: dict[tuple[str, str], str]) -> str:
    """``mnli+cs: xnli, panx failed; none+cs: xnli missing`` — per arm, the tasks not done by state."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for arm, task in missing:
        grouped.setdefault(arm, {}).setdefault(why[(arm, task)], []).append(task)
    return "; ".join(f"{arm}: " + ", ".join(f"{', '.join(ts)} {state}" for state, ts in states.items())
                     for arm, states in grouped.items())


def _roles(kind: str) -> tuple[str, ...]:
    if kind == "combined-intermediate":
        return ("combined", "intermediate_only")
    if kind == "combined-augmentation":
        return ("combined", "augmentation_only")
    return ("combined", "intermediate_only", "augmentation_only", "baseline")


def _cell_seeds(results: Results, arm: str, task: str) -> tuple[dict[int, float | None], dict[int, str]]:
    per_seed: dict[int, float | None] = {}
    states: dict[int, str] = {}
    for s in results.seeds:
        states[s] = results.state(arm, s, task)
        entry = results.task_result(arm, s, task)
        per_seed[s] = float(entry["headline"]) if entry is not None else None
    return per_seed, states


def _rng_for(seed: int, task: str, language: str) -> np.random.Generator:
    """Independent of which tasks or arms are in the report: the same (seed, task, language) always
    draws the same resamples."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), zlib.crc32(language.encode())])


def _task_replicates(results: Results, arms: Sequence[str], task: str, metric: str, bootstrap: int, seed: int,
                     warnings: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """Per arm, ``bootstrap`` replicates of the task's headline (mean over languages, then seeds)."""
    if not arms:
        return {}, ""
    seeds = results.seeds
    columns = [(a, s) for a in arms for s in seeds]
    languages = list(results.task_result(arms[0], seeds[0], task)["languages"])  # type: ignore[index]
    totals = np.zeros((bootstrap, len(columns)))
    for lang in languages:
        recs = [results.records(a, s, task, lang) for a, s in columns]
        if any(r is None for r in recs):
            return {}, f"no prediction records for some arm or seed ({lang})"
        aligned = _align([r for r in recs if r is not None])
        if aligned is None:
            return {}, f"example ids differ across arms/seeds in {task} {lang}: cannot pair"
        try:
            stat = _statistic(task, metric, aligned)
        except KeyError as exc:
            return {}, f"records of {task} carry no per-example {exc.args[0]!r}"
        stored = [(results.task_result(a, s, task) or {}).get("languages", {}).get(lang, {}).get(metric)
                  for a, s in columns]
        recomputed = stat(np.ones((1, len(aligned[0]))))[0]
        for (a, s), want, got in zip(columns, stored, recomputed):
            if want is not None and abs(float(want) - got) > 1e-6 * max(1.0, abs(float(want))):
                warnings.append(f"{task} {lang} ({a}, seed {s}): {metric} recomputed from the prediction records is "
                                f"{got:.4f}, metrics.json says {float(want):.4f}; the interval is around the former")
                break
        n = len(aligned[0])
        chunk = max(1, min(bootstrap, _MAX_WEIGHTS // max(1, n)))
        rng = _rng_for(seed, task, lang)
        for start in range(0, bootstrap, chunk):
            b = min(chunk, bootstrap - start)
            totals[start:start + b] += stat(_resample_weights(n, b, rng))
    per_arm = totals / (len(languages) * len(seeds))
    return {a: per_arm[:, i * len(seeds):(i + 1) * len(seeds)].sum(axis=1) for i, a in enumerate(arms)}, ""


def _resample_weights(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """``(b, n)``: how often each example is drawn in each of ``b`` resamples of size ``n``."""
    idx = rng.integers(0, n, size=(b, n))
    idx += (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _align(recs: list[Records]) -> list[Records] | None:
    """The records reordered to the first one's example order, or None if the example sets differ."""
    ref = recs[0].ids
    if len(set(ref)) != len(ref):
        return recs if all(r.ids == ref for r in recs) else None
    where = {i: k for k, i in enumerate(ref)}
    out = []
    for r in recs:
        if r.ids == ref:
            out.append(r)
            continue
        if len(r.ids) != len(ref) or set(r.ids) != set(ref):
            return None
        order = np.asarray([where[i] for i in r.ids])
        perm = np.empty_like(order)
        perm[order] = np.arange(len(order))
        out.append(_take(r, perm))
    return out


def _take(r: Records, idx: np.ndarray) -> Records:
    return Records(
        [r.ids[i] for i in idx], {k: v[idx] for k, v in r.scores.items()},
        None if r.counts is None else r.counts[idx],
        None if r.gold is None else [r.gold[i] for i in idx],
        None if r.prediction is None else [r.prediction[i] for i in idx],
        None if r.has_prediction is None else r.has_prediction[idx])


def _statistic(task: str, metric: str, recs: list[Records]) -> Any:
    """A function of resample weights ``(b, n)`` → ``(b, len(recs))``: the metric on each resample."""
    info = registry.TASKS[task]
    n = len(recs[0])
    if info.type == "tagging" or (recs[0].counts is not None and metric == "f1"):
        if any(r.counts is None for r in recs):
            raise KeyError("counts")
        counts = np.concatenate([r.counts for r in recs], axis=1)  # type: ignore[misc]
        return lambda w: _micro_f1(w @ counts)
    if info.type == "classification" and metric == "f1":
        return _macro_f1_statistic(info.labels, recs)
    if task == "bucc" and metric == "f1":
        if any(r.has_prediction is None or "hit" not in r.scores for r in recs):
            raise KeyError("hit")
        # tp = hit, n_pred = paired at all, n_gold = 1 per source sentence
        columns = [np.stack([r.scores["hit"] / 100.0, r.has_prediction, np.ones(n)], axis=1)  # type: ignore[list-item]
                   for r in recs]
        counts = np.concatenate(columns, axis=1)
        return lambda w: _micro_f1(w @ counts)
    if any(metric not in r.scores for r in recs):
        raise KeyError(metric)
    values = np.stack([r.scores[metric] for r in recs], axis=1)
    return lambda w: (w @ values) / n


def _micro_f1(summed: np.ndarray) -> np.ndarray:
    """``(b, 3m)`` summed [tp, n_pred, n_gold] triples → ``(b, m)`` F1 (0-100): 2tp/(n_pred+n_gold)."""
    s = summed.reshape(summed.shape[0], -1, 3)
    denominator = s[..., 1] + s[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 200.0 * s[..., 0] / denominator, 0.0)


def _macro_f1_statistic(labels: Sequence[str], recs: list[Records]) -> Any:
    """Macro-F1 as ``xtrc_runtime.metrics.macro_f1``: the mean per-class F1 over classes that are gold
    in the resample, or are registry labels predicted in it (a class neither gold nor predicted is
    skipped; a predicted label outside the registry counts only as an error)."""
    if any(r.gold is None or r.prediction is None for r in recs):
        raise KeyError("gold/prediction")
    classes = list(dict.fromkeys([*labels, *(g for r in recs for g in r.gold or ())]))
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    in_labels = np.asarray([c in set(labels) for c in classes])
    n = len(recs[0])
    blocks = []
    for r in recs:
        gold = np.asarray([index[g] for g in r.gold or ()])
        pred = np.asarray([index.get(p, -1) for p in r.prediction or ()])
        g1 = np.zeros((n, k))
        g1[np.arange(n), gold] = 1
        p1 = np.zeros((n, k))
        known = pred >= 0
        p1[np.arange(n)[known], pred[known]] = 1
        blocks.append(np.concatenate([g1, p1, g1 * (gold == pred)[:, None]], axis=1))
    matrix = np.concatenate(blocks, axis=1)

    def stat(w: np.ndarray) -> np.ndarray:
        s = (w @ matrix).reshape(w.shape[0], len(recs), 3, k)
        gold_c, pred_c, tp_c = s[:, :, 0], s[:, :, 1], s[:, :, 2]
        eligible = (gold_c > 0) | (in_labels & (pred_c > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(gold_c + pred_c > 0, 2.0 * tp_c / (gold_c + pred_c), 0.0)
        count = eligible.sum(axis=2)
        return np.where(count > 0, 100.0 * (f1 * eligible).sum(axis=2) / np.maximum(count, 1), 0.0)
    return stat


# --- output ----------------------------------------------------------------------------------------


def render(report: Report, fmt: str) -> str:
    """The report as text in one of :data:`FORMATS` (``table`` renders rich tables to a string)."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "latex":
        return _latex(report)
    if fmt == "table":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=200, record=True)
        print_tables(report, console)
        return console.export_text()
    raise XtrcError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _comparison_tables(report: Report) -> list[tuple[str, list[str], list[tuple[str, list[Comparison]]]]]:
    """One table per (intermediate, augmentation) pair: rows = contrasts, columns = tasks (+ average)."""
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in report.comparisons:
        groups.setdefault((c.intermediate, c.augmentation), []).append(c)
    out = []
    for (inter, aug), comps in groups.items():
        roles = comps[0].arms
        columns = list(dict.fromkeys(c.task for c in comps))
        rows = [(kind, [next(c for c in comps if c.contrast == kind and c.task == t) for t in columns])
                for kind in CONTRASTS]
        title = (f"intermediate '{inter}' x augmentation '{aug}': combined {roles['combined']}, intermediate-only "
                 f"{roles['intermediate_only']}, augmentation-only {roles['augmentation_only']}, baseline "
                 f"{roles['baseline']} (estimate [95% bootstrap interval], {report.bootstrap} replicates)")
        out.append((title, columns, rows))
    return out


_CONTRAST_LABEL = {
    "combined-intermediate": "combined − intermediate-only",
    "combined-augmentation": "combined − augmentation-only",
    "interaction": "interaction (C − I − A + B)",
}


def _comparison_text(c: Comparison) -> str:
    if c.estimate is None:
        return "n/a"
    if c.interval is None:
        return f"{c.estimate:+.2f}"
    return f"{c.estimate:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def print_tables(report: Report, console: Any) -> None:
    from rich.table import Table as RichTable
    from rich.text import Text

    style = {FAILED: "red", INVALID: "red", BLOCKED: "magenta", RUNNING: "yellow", MISSING: "dim"}

    def cell(value: Value) -> Text:
        return Text(value.text(), style=style.get(value.state, ""))

    def show(table: Table) -> None:
        rich = RichTable(title=Text(table.title), title_justify="left")
        rich.add_column("arm", style="bold")
        for label in table.labels:
            rich.add_column(Text(label), justify="right")
        for arm, values in table.rows:
            rich.add_row(Text(arm + (" (baseline)" if arm == report.baseline else "")), *(cell(v) for v in values))
        console.print(rich)

    show(report.main)
    for table in report.by_language:
        show(table)
    for title, columns, rows in _comparison_tables(report):
        rich = RichTable(title=Text(title), title_justify="left")
        rich.add_column("contrast", style="bold")
        for column in columns:
            rich.add_column(Text("mean over tasks" if column == AVERAGE else column), justify="right")
        for kind, comps in rows:
            rich.add_row(Text(_CONTRAST_LABEL[kind]), *(Text(_comparison_text(c)) for c in comps))
        console.print(rich)
    if report.comparisons:
        console.print(Text("The answer:", style="bold"))
        for c in _ordered_statements(report):
            console.print(Text("  • " + c.statement()))
    elif report.baseline is None:
        console.print(Text("No baseline arm (no intermediate task, no augmentation): no Δ and no comparisons."))
    else:
        console.print(Text("The design lacks an intermediate-only, augmentation-only and combined arm for the "
                           "same levels: no research-question comparisons."))
    console.print(Text(_LEGEND, style="dim"))
    for note in report.notes:
        console.print(Text("note: " + note, style="dim"))
    for warning in report.warnings:
        console.print(Text("warning: " + warning, style="yellow"))


_LEGEND = ("A cell shows a number only when every seed is done (an aggregate: every cell of its row); "
           "otherwise the worst state and, as k/n, how many seeds or cells are not done.")


def _ordered_statements(report: Report) -> list[Comparison]:
    """The average first (the answer), then per task."""
    return sorted(report.comparisons, key=lambda c: (c.intermediate, c.augmentation, c.task != AVERAGE,
                                                     CONTRASTS.index(c.contrast)))


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "task", "arm", "column", "state", "mean", "std", "n_seeds", "delta_vs_baseline",
                     "not_done", "of", "seeds", "ci_low", "ci_high", "detail"])

    def value_row(section: str, task: str, arm: str, column: str, v: Value) -> list[Any]:
        return [section, task, arm, column, v.state, _fmt(v.mean), _fmt(v.std), v.n_seeds, _fmt(v.delta),
                v.not_done, v.of, ";".join(f"{s}={_fmt(x)}" for s, x in v.seeds.items()), "", "", v.detail()]

    for arm, values in report.main.rows:
        for column, v in zip(report.main.columns, values):
            section = "aggregate" if column in (AVERAGE, "xtreme") else "cell"
            writer.writerow(value_row(section, column if section == "cell" else "", arm, column, v))
    for table in report.by_language:
        for arm, values in table.rows:
            for column, v in zip(table.columns, values):
                writer.writerow(value_row("language", table.task or "", arm, column, v))
    for c in report.comparisons:
        writer.writerow(["comparison", c.task, c.arms["combined"], c.contrast, "done" if c.estimate is not None
                         else "missing", _fmt(c.estimate), "", "", "", "", "", "", _fmt(c.low), _fmt(c.high),
                         c.statement()])
    return out.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def _markdown(report: Report) -> str:
    lines: list[str] = []

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        lines.extend([f"**{_md(title)}**", "", "| " + " | ".join(_md(h) for h in header) + " |",
                      "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"])
        lines.extend("| " + " | ".join(_md(x) for x in row) + " |" for row in rows)
        lines.append("")

    def arm_label(arm: str) -> str:
        return arm + (" (baseline)" if arm == report.baseline else "")

    for t in [report.main, *report.by_language]:
        table(t.title, ["arm", *t.labels], [[arm_label(arm), *(v.text() for v in values)] for arm, values in t.rows])
    for title, columns, rows in _comparison_tables(report):
        table(title, ["contrast", *("mean over tasks" if c == AVERAGE else c for c in columns)],
              [[_CONTRAST_LABEL[kind], *(_comparison_text(c) for c in comps)] for kind, comps in rows])
    if report.comparisons:
        lines.append("**The answer**")
        lines.append("")
        lines.extend(f"- {_md(c.statement())}" for c in _ordered_statements(report))
        lines.append("")
    lines.extend(f"> note: {_md(n)}" for n in report.notes)
    lines.extend(f"> warning: {_md(w)}" for w in report.warnings)
    return "\n".join(lines).rstrip() + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "−": "--", "Δ": r"$\Delta$", "±": r"$\pm$", "×": r"$\times$", "•": r"\textbullet{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(report: Report) -> str:
    parts: list[str] = [f"% xtrc report: {latex_escape(report.experiment)} (needs \\usepackage{{booktabs}})"]

    def tabular(title: str, header: list[str], rows: list[list[str]]) -> None:
        parts.append(f"% {latex_escape(title)}")
        parts.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        parts.append(r"\toprule")
        parts.append(" & ".join(latex_escape(h) for h in header) + r" \\")
        parts.append(r"\midrule")
        parts.extend(" & ".join(row) + r" \\" for row in rows)
        parts.append(r"\bottomrule")
        parts.append(r"\end{tabular}")
        parts.append("")

    for t in [report.main, *report.by_language]:
        tabular(t.title, ["arm", *t.labels],
                [[latex_escape(arm) + (r" \textit{(baseline)}" if arm == report.baseline else ""),
                  *(v.latex() for v in values)] for arm, values in t.rows])
    for title, columns, rows in _comparison_tables(report):
        tabular(title, ["contrast", *("mean over tasks" if c == AVERAGE else c for c in columns)],
                [[latex_escape(_CONTRAST_LABEL[kind]), *(latex_escape(_comparison_text(c)) for c in comps)]
                 for kind, comps in rows])
    return "\n".join(parts)


def plot(results: Results, path: str, *, tasks: Sequence[str] | None = None) -> None:
    """A PNG heatmap of Δ (headline metric, mean over seeds) against the baseline arm: one row per
    (task, language) — the chosen tasks' languages stacked — and one column per other arm. Cells
    that are not done (in the arm or the baseline) are left blank."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise XtrcError("--plot needs matplotlib: pip install 'xtrc[plot]'") from None
    baseline = results.plan.baseline
    if baseline is None:
        raise XtrcError("--plot draws Δ against the baseline arm, and this design has none "
                        "(an arm with no intermediate task and no augmentation)")
    chosen = check_tasks(tasks, results.tasks) if tasks else results.tasks
    others = [a.name for a in results.arms if a.name != baseline.name]
    if not others:
        raise XtrcError("--plot: the design has no arm besides the baseline")
    row_labels: list[str] = []
    grid: list[list[float]] = []
    for task in chosen:
        table = _language_table(results, task, _headline_metric(results, task))
        values = dict(table.rows)
        for j, lang in enumerate(table.columns[:-1]):
            row_labels.append(f"{task} {lang}")
            grid.append([values[a][j].delta if values[a][j].delta is not None else math.nan for a in others])
    data = np.asarray(grid, dtype=np.float64).reshape(len(row_labels), len(others))
    finite = data[np.isfinite(data)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    fig = Figure(figsize=(max(4.0, 1.1 * len(others) + 3), max(3.0, 0.28 * len(row_labels) + 1.6)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(range(len(others)), labels=others, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    if data.size <= 600:
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, "n/a" if not math.isfinite(v) else f"{v:+.1f}", ha="center", va="center", fontsize=7,
                    color="black" if not math.isfinite(v) or abs(v) < 0.6 * bound else "white")
    fig.colorbar(image, ax=ax, label=f"Δ vs {baseline.name} (headline metric)")
    ax.set_title(f"{results.plan.experiment.metadata.name}: Δ vs baseline by language")
    fig.tight_layout()
    fig.savefig(path, format="png")
