"""Tables from collected results: arms × target tasks (headline metric, mean ± std over seeds, Δ against
the baseline arm, the mean over tasks and the XTREME(-R) score) and arms × languages per task."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from xtrc import tasks as registry
from xtrc.errors import XtrcError, did_you_mean
from xtrc.report.collect import DONE, INVALID, MISSING, WORST_FIRST, Results
from xtrc.report.contrasts import compare
from xtrc.report.values import AVERAGE, DEGENERATE_MARK, Report, Table, Value, summarise
from xtrc.store import normalize_uri

def headline_metric(results: Results, task: str) -> str:
    for (arm, seed, t) in results.plan.cells:
        if t == task:
            entry = results.task_result(arm, seed, task)
            if entry and entry.get("headline_metric"):
                return str(entry["headline_metric"])
    info = registry.TASKS[task]
    return info.metrics[0] if info.metrics else "score"


def cell_value(results: Results, arm: str, task: str) -> Value:
    """A cell's headline over seeds, with its degenerate seeds and whether its seeds share one stage."""
    per_seed, states = results.headlines(arm, task)
    value = summarise(per_seed, states)
    keys = {results.key(arm, s, task) for s in results.seeds}
    value.runs = len(keys)
    if len(keys) == 1:
        value.std = None  # one run copied to every seed: no spread to show
    value.degenerate = list(dict.fromkeys(f"seed {s}: {reason}" if len(keys) > 1 else reason
                                          for s in results.seeds if (reason := results.degenerate(arm, s, task))))
    return value


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
            cells[(arm.name, task)] = cell_value(results, arm.name, task)
            for reason in cells[(arm.name, task)].degenerate:
                warnings.append(f"{arm.name} {task} {reason}: degenerate predictions (marked {DEGENERATE_MARK}); "
                                "a comparison resting on this cell says so")
    columns, labels = list(chosen), [f"{t} ({headline[t]})" for t in chosen]
    aggregates: dict[tuple[str, str], Value] = {}
    if all_tasks and len(chosen) > 1:
        score = exp.benchmark
        members = registry.GROUPS.get(score, ())
        scored = [t for t in chosen if t in members]
        for arm in results.arms:
            aggregates[(arm.name, AVERAGE)] = _aggregate(results, arm.name, chosen, lambda e: e["headline"])
        columns.append(AVERAGE)
        labels.append("mean over tasks")
        notes.append(f"mean over tasks: the plain mean of the {len(chosen)} targets' headline metrics "
                     f"({', '.join(f'{t} {headline[t]}' for t in chosen)}), per seed, then over seeds")
        if scored:
            for arm in results.arms:
                aggregates[(arm.name, "xtreme")] = _aggregate(results, arm.name, scored, _xtreme_score)
            columns.append("xtreme")
            labels.append(f"{score} score")
            left_out = [t for t in chosen if t not in members]
            notes.append(f"{score} score: the mean of the {score.upper()} task scores ({_score_rule(scored)}) over "
                         + (f"this spec's {len(scored)} {score.upper()} targets of {len(members)}, not the full "
                            "benchmark" if set(scored) != set(members) else f"all {len(members)} {score.upper()} tasks")
                         + (f"; {', '.join(left_out)} left out: not {score.upper()} tasks" if left_out else ""))
        restricted = [t for t in chosen if len(task_languages(results, t)) < len(registry.TASKS[t].languages_for(score))]
        if restricted:
            notes.append("languages: restricts " + ", ".join(
                f"{t} to {len(task_languages(results, t))} of {len(registry.TASKS[t].languages_for(score))} languages"
                for t in restricted) + "; the averages are not comparable with published numbers")
    notes += _cap_notes(results, chosen)
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
    comparisons = compare(results, chosen, all_tasks, headline, bootstrap, seed)
    return Report(exp.metadata.name, exp.benchmark, normalize_uri(exp.storage.uri), list(chosen), all_tasks,
                  results.seeds,
                  results.arms, baseline.name if baseline else None, headline, main, by_language, comparisons,
                  bootstrap, seed, warnings, notes)


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
                raise XtrcError(f"--task {part}: not a target task of this spec; {did_you_mean(part.lower(), targets)}"
                                f"targets: {', '.join(targets)}")
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
    value.degenerate = [t for t in tasks if any(results.degenerate(arm, s, t) for s in results.seeds)]
    if not value.ok:
        value.state = next((x for x in WORST_FIRST if x in bad), MISSING)
    return value


def language_order(results: Results) -> list[str]:
    """One language order for every table and figure: the order the spec's ``languages:`` lists
    them (across its tasks, first mention first); languages it does not list follow, English first."""
    order: list[str] = []
    for langs in results.plan.experiment.languages.values():
        order += [lang for lang in langs if lang not in order]
    return order


def task_languages(results: Results, task: str) -> list[str]:
    """The languages ``task`` is evaluated on, in :func:`language_order`."""
    languages: list[str] = []
    for stage in results.plan.stages.values():
        for ev in stage.eval_tasks:
            if ev.task == task:
                languages += [lang for lang in ev.languages if lang not in languages]
    order = language_order(results)
    rank = {lang: i for i, lang in enumerate(order)}
    return sorted(languages, key=lambda lang: (rank.get(lang, len(order)), lang != "en", lang))


def _cap_notes(results: Results, chosen: Sequence[str]) -> list[str]:
    """Where ``max_eval_examples`` left test examples out: from ``metrics.json``'s per-language
    ``examples`` record (``evaluated``, ``cap.left_out``), read from the first done cell of each task."""
    notes = []
    for task in chosen:
        entry = next((e for (arm, seed, t) in results.plan.cells if t == task
                      and (e := results.task_result(arm, seed, task)) is not None), None)
        examples = entry.get("examples") if entry else None
        if not isinstance(examples, dict):
            continue
        capped = []
        for lang in task_languages(results, task):
            counts = examples.get(lang)
            cap = counts.get("cap") if isinstance(counts, dict) else None
            if isinstance(cap, dict) and not cap.get("not_applied") and cap.get("left_out"):
                try:
                    capped.append(f"{lang} {int(counts['evaluated'])}/{int(counts['evaluated']) + int(cap['left_out'])}")
                except (KeyError, TypeError, ValueError):
                    continue
        if capped:
            notes.append(f"{task} is scored on part of its test sets (max_eval_examples; evaluated/available): "
                         + ", ".join(capped))
    return notes


def _score_rule(tasks: Sequence[str]) -> str:
    """Each task's score, as XTREME(-R) counts it: ``xnli accuracy, xquad (EM + F1)/2``."""
    rules = {t: registry.TASKS[t].xtreme_score for t in tasks}
    return ", ".join(f"{t} {'(EM + F1)/2' if r == 'em_f1_mean' else r or 'headline'}" for t, r in rules.items())


def language_table(results: Results, task: str, metric: str) -> Table:
    languages = task_languages(results, task)
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


