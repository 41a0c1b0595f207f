"""The research question's answer: for every (intermediate level, augmentation level) pair whose four
arms are in the design, *combined − intermediate-only*, *combined − augmentation-only* and the
*interaction*, per task and on the mean over tasks, each with an interval over seeds and test
examples (a paired hierarchical bootstrap) and, with three seeds or more, a paired t interval over
seeds."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np

from xtrc.plan import Plan
from xtrc.report.collect import Results
from xtrc.report.stats import (align, paired_t_interval, percentile_interval, resample_weights, statistic,
                               two_level_interval)
from xtrc.report.values import AVERAGE, CONFIDENCE, CONTRASTS, MIN_SEEDS_FOR_T, Comparison, summarise

_MAX_WEIGHTS = 4_000_000
"""Resample weights held at once (replicates × examples); larger sets go in chunks of replicates."""

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


def compare(results: Results, chosen: Sequence[str], all_tasks: bool, headline: dict[str, str],
            bootstrap: int, seed: int) -> list[Comparison]:
    quads = design_quads(results.plan)
    if not quads:
        return []
    arms = list(dict.fromkeys(a for _, _, roles in quads for a in roles.values()))
    point: dict[tuple[str, str], float | None] = {}
    per_seed: dict[tuple[str, str], np.ndarray] = {}
    why: dict[tuple[str, str], str] = {}
    for arm in arms:
        for task in chosen:
            seeds, states = results.headlines(arm, task)
            value = summarise(seeds, states)
            point[(arm, task)] = value.mean if value.ok else None
            if value.ok:
                per_seed[(arm, task)] = np.asarray([seeds[s] for s in results.seeds], dtype=np.float64)
            else:
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
        got, reason = _task_replicates(results, ready, task, headline[task], bootstrap, seed)
        if reason:
            no_ci[task] = reason
        reps.update({(a, task): r for a, r in got.items()})
    n_seeds = len(results.seeds)

    out: list[Comparison] = []
    targets = list(chosen) + ([AVERAGE] if all_tasks and len(chosen) > 1 else [])
    for inter, aug, roles in quads:
        for kind in CONTRASTS:
            for task in targets:
                comp = Comparison(inter, aug, roles, kind, task, n_seeds=n_seeds)
                tasks_here = list(chosen) if task == AVERAGE else [task]
                needed = [(roles[r], t) for r in _roles(kind) for t in tasks_here]
                missing = [k for k in dict.fromkeys(needed) if point[k] is None]
                if missing:
                    comp.detail = _missing_detail(missing, why)
                    out.append(comp)
                    continue
                seed_contrast = _contrast(kind, {r: np.mean([per_seed[(roles[r], t)] for t in tasks_here], axis=0)
                                                 for r in _roles(kind)})
                comp.estimate = float(np.mean(seed_contrast))
                comp.degenerate = list(dict.fromkeys(
                    f"{roles[r]} {t}" for r in _roles(kind) for t in tasks_here
                    if any(results.degenerate(roles[r], s, t) for s in results.seeds)))
                if n_seeds >= MIN_SEEDS_FOR_T:
                    comp.seeds_low, comp.seeds_high = paired_t_interval(seed_contrast, CONFIDENCE)
                lacking = [t for t in tasks_here if any((roles[r], t) not in reps for r in _roles(kind))]
                if lacking:
                    comp.detail = "; ".join(dict.fromkeys(f"{t}: {no_ci.get(t, 'no per-example records')}"
                                                           for t in lacking))
                else:
                    diff = _contrast(kind, {r: np.mean([reps[(roles[r], t)] for t in tasks_here], axis=0)
                                            for r in _roles(kind)})
                    comp.low, comp.high = two_level_interval(diff, seed_contrast, CONFIDENCE)
                    comp.examples_low, comp.examples_high = percentile_interval(diff.mean(axis=1), CONFIDENCE)
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


def _rng_for(seed: int, task: str, language: str) -> np.random.Generator:
    """Independent of which tasks or arms are in the report: the same (seed, task, language) always
    draws the same resamples."""
    return np.random.default_rng([seed, zlib.crc32(task.encode()), zlib.crc32(language.encode())])


def _task_replicates(results: Results, arms: Sequence[str], task: str, metric: str, bootstrap: int,
                     seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Per arm, ``(bootstrap, seeds)`` replicates of the task's headline per seed (the mean over
    languages); every arm and seed shares each language's example resamples (paired)."""
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
        aligned = align([r for r in recs if r is not None])
        if aligned is None:
            return {}, f"example ids differ across arms/seeds in {task} {lang}: cannot pair"
        try:
            stat = statistic(task, metric, aligned)
        except KeyError as exc:
            return {}, f"records of {task} carry no per-example {exc.args[0]!r}"
        n = len(aligned[0])
        chunk = max(1, min(bootstrap, _MAX_WEIGHTS // max(1, n)))
        rng = _rng_for(seed, task, lang)
        for start in range(0, bootstrap, chunk):
            b = min(chunk, bootstrap - start)
            totals[start:start + b] += stat(resample_weights(n, b, rng))
    per_column = totals / len(languages)
    return {a: per_column[:, i * len(seeds):(i + 1) * len(seeds)] for i, a in enumerate(arms)}, ""


