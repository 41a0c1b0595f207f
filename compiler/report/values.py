"""What a report holds: table entries (:class:`Value`), tables, comparisons and the whole
:class:`Report`, each with its JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtrc.plan import Arm
from xtrc.report.collect import DONE, MISSING, WORST_FIRST

CONTRASTS = ("combined-intermediate", "combined-augmentation", "interaction")
AVERAGE = "average"
"""The column/row label of the mean over tasks (headline metric)."""
CONFIDENCE = 0.95
DEGENERATE_MARK = "†"
"""Marks a number that rests on degenerate predictions (one class, or chance level)."""
MIN_SEEDS_FOR_T = 3
"""Seeds from which a comparison also gets the paired t interval over seeds."""
INTERVAL_METHOD = ("hierarchical bootstrap, paired across arms: each replicate resamples the seeds and, per task "
                   "and language, the test examples (one draw shared by every seed and arm); estimate ± t·SE with "
                   "the seed part corrected for few seeds (Welch–Satterthwaite degrees of freedom)")
SEEDS_METHOD = "paired t over per-seed contrasts of the stored headlines (test set fixed), with 3 seeds or more"

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
    runs: int = 0
    """Distinct stages behind the value: 1 for a cell every seed shares (no seed-dependent training:
    no ± then), else the number of seeds."""
    degenerate: list[str] = field(default_factory=list)
    """Why constituents' predictions are degenerate (marked with :data:`DEGENERATE_MARK`)."""

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
        return self._number(r"$\pm$", delta).replace(DEGENERATE_MARK, r"$^\dagger$")

    def _number(self, plus_minus: str, delta: bool) -> str:
        """``mean ± std (Δ)``, each part where known."""
        out = f"{self.mean:.2f}"
        if self.std is not None:
            out += f" {plus_minus} {self.std:.2f}"
        if delta and self.delta is not None:
            out += f" ({self.delta:+.2f})"
        return out + (DEGENERATE_MARK if self.degenerate else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state, "mean": _num(self.mean), "std": _num(self.std), "n_seeds": self.n_seeds,
            "seeds": {str(s): _num(v) for s, v in self.seeds.items()},
            "seed_states": {str(s): v for s, v in self.seed_states.items()},
            "delta_vs_baseline": _num(self.delta), "not_done": self.not_done, "of": self.of, "unit": self.unit,
            "runs": self.runs, "degenerate": self.degenerate,
        }


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def summarise(per_seed: dict[int, float | None], seed_states: dict[int, str], unit: str = "seeds",
               not_done: int | None = None, of: int | None = None) -> Value:
    bad = [s for s in seed_states.values() if s != DONE]
    count_bad = len(bad) if not_done is None else not_done
    total = len(seed_states) if of is None else of
    if count_bad:
        worst = next((state for state in WORST_FIRST if state in bad), MISSING) if bad else MISSING
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
    """The interval over seeds and test examples (hierarchical bootstrap; examples only with one seed)."""
    detail: str = ""
    """Why there is no estimate or no interval."""
    n_seeds: int = 0
    seeds_low: float | None = None
    seeds_high: float | None = None
    """The paired t interval over per-seed contrasts (test set fixed), with three seeds or more."""
    examples_low: float | None = None
    examples_high: float | None = None
    """The percentile interval over test examples alone (seeds fixed): what the interval was before it
    covered seeds, kept in JSON for comparison."""
    degenerate: list[str] = field(default_factory=list)
    """Cells this comparison rests on whose predictions are degenerate (``arm task``)."""

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def covers(self) -> str:
        """What the interval's width accounts for."""
        return "seeds and test examples" if self.n_seeds > 1 else "test examples only (one seed)"

    def statement(self) -> str:
        a = self.arms
        where = "on the mean over tasks" if self.task == AVERAGE else f"on {self.task}"
        other = "intermediate_only" if self.contrast == "combined-intermediate" else "augmentation_only"
        role = other.replace("_only", "-only")
        if self.contrast == "interaction":
            subject = (f"the interaction ({a['combined']} − {a['intermediate_only']} − {a['augmentation_only']} "
                       f"+ {a['baseline']}) {where}")
        else:
            subject = f"combined ({a['combined']}) vs {role} ({a[other]}) {where}"
        if self.estimate is None:
            return f"{subject}: not available ({self.detail})"
        if self.interval is None:
            verdict = f"{subject}: {self.estimate:+.2f} (no interval: {self.detail})"
        else:
            lo, hi = self.interval
            ci = f"{self.estimate:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            if lo == hi == 0 and self.estimate == 0:
                verdict = f"{subject}: {ci}, no difference (identical results on every resample: the arms share stages)"
            elif lo <= 0 <= hi:
                verdict = f"{subject}: {ci}, within noise (the 95% interval over {self.covers} includes 0)"
            elif self.contrast == "interaction":
                verdict = (f"{subject} is positive: {ci}, more than additive (the methods reinforce each other)"
                           if lo > 0 else
                           f"{subject} is negative: {ci}, less than additive (the gains overlap or interfere)")
            else:
                verb = "beats" if lo > 0 else "is worse than"
                verdict = f"combined ({a['combined']}) {verb} {role} ({a[other]}) {where} by {ci}"
        if self.seeds_interval is not None:
            lo, hi = self.seeds_interval
            verdict += f"; over seeds alone (paired t, {self.n_seeds} seeds) [{lo:+.2f}, {hi:+.2f}]"
        if self.degenerate:
            verdict += f" — it rests on degenerate cells ({', '.join(self.degenerate)}): read it with care"
        return verdict

    @property
    def seeds_interval(self) -> tuple[float, float] | None:
        return None if self.seeds_low is None or self.seeds_high is None else (self.seeds_low, self.seeds_high)

    def as_dict(self) -> dict[str, Any]:
        return {"intermediate": self.intermediate, "augmentation": self.augmentation, "arms": self.arms,
                "contrast": self.contrast, "task": self.task, "estimate": _num(self.estimate),
                "ci_low": _num(self.low), "ci_high": _num(self.high), "ci_covers": self.covers,
                "seeds_ci_low": _num(self.seeds_low), "seeds_ci_high": _num(self.seeds_high),
                "examples_ci_low": _num(self.examples_low), "examples_ci_high": _num(self.examples_high),
                "n_seeds": self.n_seeds, "degenerate": self.degenerate, "detail": self.detail,
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
                          "resampling": INTERVAL_METHOD, "seeds_interval": SEEDS_METHOD},
            "warnings": self.warnings,
            "notes": self.notes,
        }


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "−": "--", "Δ": r"$\Delta$", DEGENERATE_MARK: r"$^\dagger$", "±": r"$\pm$", "×": r"$\times$", "•": r"\textbullet{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
