"""Tables from collected results: arms × target tasks (headline metric, mean ± std over seeds, Δ against
the baseline arm, the mean over tasks and the XTREME(-R) score) and arms × languages per task."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from xtrc import tasks as registry
from xtrc.errors import XtrcError
from xtrc.report.collect import DONE, INVALID, MISSING, WORST_FIRST, Results
from xtrc.report.contrasts import compare
from xtrc.report.values import AVERAGE, Report, Table, Value, summarise
from xtrc.store import normalize_uri

def headline_metric(results: Results, task: str) -> str:
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
    headline = {t: headline_metric(results, t) for t in chosen}
    warnings = list(results.warnings)
    notes: list[str] = []

    # cells
    cells: dict[tuple[str, str], Value] = {}
    for arm in results.arms:
        for task in chosen:
            per_seed, states = results.headlines(arm.name, task)
            cells[(arm.name, task)] = summarise(per_seed, states)
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

    by_language = [language_table(results, t, headline[t]) for t in chosen] if by == "language" else []
    comparisons = compare(results, chosen, all_tasks, headline, bootstrap, seed, warnings)
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
        seed_states[s] = next((x for x in WORST_FIRST if x in states), DONE)
        if all(x == DONE for x in states):
            try:
                per_seed[s] = float(np.mean([pick(results.task_result(arm, s, t)) for t in tasks]))
            except (KeyError, TypeError):
                per_seed[s] = None
                seed_states[s] = INVALID
                bad.append(INVALID)
        else:
            per_seed[s] = None
    value = summarise(per_seed, seed_states, unit="cells", not_done=len(bad), of=len(tasks) * len(results.seeds))
    if not value.ok:
        value.state = next((x for x in WORST_FIRST if x in bad), MISSING)
    return value


def language_table(results: Results, task: str, metric: str) -> Table:
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
            values[(arm.name, lang)] = summarise(per_seed, states)
        values[(arm.name, AVERAGE)] = summarise(
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


