"""What a report checks before it shows a number: each done cell's headline recomputed from its
prediction records (a ``metrics.json`` or index entry that disagrees makes the cell invalid), and
predictions that are degenerate (one class for nearly every example, or chance level).

Two halves: :func:`recompute` reads what the records say (the expensive part: the records must be
read), :func:`judge` compares that with the results, every time. What :func:`recompute` found is
kept in the results index under a stamp (:mod:`xtrc.results_index`), so a cell's records are read
for this once per commit of its stage."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from xtrc import tasks as registry
from xtrc.report.collect import DONE, Records, StageResult
from xtrc.report.stats import statistic

COLLAPSED_SHARE = 0.95
"""A cell whose most frequent prediction covers this share of its examples has collapsed to one class."""
_RELATIVE_TOLERANCE = 1e-6


def recompute(stage: StageResult, tasks: Iterable[str]) -> tuple[dict[str, Any], bool]:
    """What a done stage's prediction records say, per task in ``tasks``: the headline metric
    recomputed per language (None where the records carry no per-example field for it) and how the
    predictions are degenerate ('' when they are not); and whether every language's records were
    there (only then are the findings worth keeping: a missing file is looked for again)."""
    found: dict[str, Any] = {}
    complete = True
    for task in sorted(tasks):
        entry = stage.metrics["tasks"][task] if stage.metrics is not None else {}
        metric = _metric(task, entry)
        languages = entry.get("languages")
        recomputed: dict[str, float | None] = {}
        for lang in sorted(languages) if isinstance(languages, dict) else ():
            records = stage.records.get((task, lang))
            if records is None:
                complete = False
                continue
            recomputed[lang] = _recomputed(task, metric, records)
        found[task] = {"metric": metric, "recomputed": recomputed,
                       "degenerate": degenerate_reason(task, [r for (t, _), r in sorted(stage.records.items())
                                                              if t == task])}
    return found, complete


def judge(stage: StageResult, tasks: Iterable[str], found: dict[str, Any]) -> None:
    """Check a done stage's ``tasks`` against what its records say (``found``, from
    :func:`recompute`, fresh or as the results index kept it), in place: a disagreement marks the
    task invalid (:attr:`StageResult.invalid`), a degenerate prediction pattern goes into
    :attr:`StageResult.degenerate`; each finding is also a problem line."""
    if stage.state != DONE or stage.metrics is None:
        return
    for task in sorted(tasks):
        entry = stage.metrics["tasks"][task]
        metric = _metric(task, entry)
        task_found = found.get(task) or {}
        recomputed = task_found.get("recomputed") if task_found.get("metric") == metric else None
        problem = _check_headline(task, entry, metric, recomputed or {})
        if problem:
            stage.invalid[task] = problem
            stage.problems.append(f"stage {stage.key}: {problem}: the cell is invalid, not shown as a number")
            continue
        if task_found.get("degenerate"):
            stage.degenerate[task] = str(task_found["degenerate"])


def verify(stage: StageResult, tasks: Iterable[str]) -> tuple[dict[str, Any], bool]:
    """:func:`recompute` from the stage's records, then :func:`judge` by it; what was found."""
    tasks = sorted(tasks)
    found, complete = recompute(stage, tasks)
    judge(stage, tasks, found)
    return found, complete


def _metric(task: str, entry: dict[str, Any]) -> str:
    if entry.get("headline_metric"):
        return str(entry["headline_metric"])
    info = registry.TASKS.get(task)
    return info.metrics[0] if info is not None and info.metrics else "score"


def _recomputed(task: str, metric: str, records: Records) -> float | None:
    if len(records) == 0:
        return None  # nothing to recompute from
    try:
        return float(statistic(task, metric, [records])(np.ones((1, len(records))))[0, 0])
    except KeyError:
        return None  # records without per-example fields for this metric: collect warns when bootstrapping


def _check_headline(task: str, entry: dict[str, Any], metric: str, recomputed: dict[str, Any]) -> str:
    languages = entry.get("languages")
    if not isinstance(languages, dict) or not languages:
        return f"{task} has no per-language results"
    stored = {lang: (m or {}).get(metric) if isinstance(m, dict) else None for lang, m in languages.items()}
    if any(not isinstance(v, (int, float)) for v in stored.values()):
        return f"{task} lacks {metric!r} in some language"
    mean = sum(float(v) for v in stored.values()) / len(stored)  # plain Python: this runs for every cell
    if not _close(mean, entry.get("headline")):
        return f"{task} headline {entry.get('headline')!r} is not the mean of its languages' {metric} ({mean:.4f})"
    for lang, want in stored.items():
        got = recomputed.get(lang)
        if not isinstance(got, (int, float)):
            continue  # no records, or none that carry this metric: nothing to compare with
        if not _close(float(got), want):
            return (f"{task} {lang}: {metric} is {float(want):.4f} in metrics.json but {float(got):.4f} "
                    "recomputed from its prediction records")
    return ""


def _close(got: float, want: Any) -> bool:
    if not isinstance(want, (int, float)) or not math.isfinite(float(want)):
        return False
    return abs(got - float(want)) <= _RELATIVE_TOLERANCE * max(1.0, abs(float(want)))


def degenerate_reason(task: str, records: list[Records]) -> str:
    """Why a cell's predictions (pooled over its languages) are degenerate, or ''."""
    info = registry.TASKS.get(task)
    if info is None or not records:
        return ""
    n = sum(len(r) for r in records)
    if n == 0:
        return ""
    predictions = [p for r in records for p in (r.prediction or ())]
    if len(predictions) == n:
        values, counts = np.unique(np.asarray(predictions, dtype=object).astype(str), return_counts=True)
        top = int(counts.argmax())
        if counts[top] >= COLLAPSED_SHARE * n and (len(values) == 1 or n >= 20):
            return f"predicts {str(values[top])!r} for {100.0 * counts[top] / n:.0f}% of {n} examples"
        gold = [g for r in records for g in (r.gold or ())]
        classes = len(info.labels) or (info.num_choices or 0)
        if classes >= 2 and len(gold) == n:
            accuracy = float(np.mean([p == g for p, g in zip(predictions, gold)]))
            chance = 1.0 / classes
            if accuracy <= chance + 1.96 * math.sqrt(chance * (1 - chance) / n):
                return f"accuracy {100 * accuracy:.1f} is at chance ({100 * chance:.1f} for {classes} classes)"
    if info.type == "tagging" and all(r.counts is not None for r in records):
        if sum(float(r.counts[:, 1].sum()) for r in records if r.counts is not None) == 0:
            return f"predicts no entity in {n} sentences"
    if info.type == "qa" and all("f1" in r.scores for r in records):
        if all(not r.scores["f1"].any() for r in records):
            return f"no answer overlaps its gold answer in {n} questions"
    return ""
