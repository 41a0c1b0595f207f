"""Per-example statistics for the bootstrap: a task's metric as a function of resample weights
(mean of per-example scores, micro F1 from summed entity counts, macro F1 from labels), example
alignment across arms and seeds, and the resample weights themselves."""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from xtrc import tasks as registry
from xtrc.report.collect import Records

def resample_weights(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """``(b, n)``: how often each example is drawn in each of ``b`` resamples of size ``n``."""
    idx = rng.integers(0, n, size=(b, n))
    idx += (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def align(recs: list[Records]) -> list[Records] | None:
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


def statistic(task: str, metric: str, recs: list[Records]) -> Any:
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




# --- intervals -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` (> 0, not necessarily whole) degrees
    of freedom: bisection on the CDF, the density integrated by Simpson's rule."""
    if df > 1e6:
        return NormalDist().inv_cdf(p)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:
        grid = np.linspace(0.0, x, 2001)
        dens = np.exp(log_c - (df + 1) / 2 * np.log1p(grid * grid / df))
        h = x / 2000
        return 0.5 + h / 3 * float(dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())

    lo, hi = 0.0, max(2.0, NormalDist().inv_cdf(p))
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def two_level_interval(per_seed_replicates: np.ndarray, per_seed: np.ndarray,
                       confidence: float) -> tuple[float, float]:
    """The interval over seeds and test examples of a contrast whose per-seed values are ``per_seed``
    (``S``,) and whose paired bootstrap over examples gives ``per_seed_replicates`` (``B``, ``S``):
    replicate ``b`` resamples the test examples once, the same for every seed, arm and language
    (seeds and examples are crossed: every seed is scored on the same test set).

    Two variance parts: the examples part is the bootstrap variance of the mean over seeds; the
    seeds part is the between-seed variance of ``per_seed`` over S, less the within-seed example
    noise it also holds (which the examples part already counts). The interval is
    ``mean ± t·√(examples + seeds)`` with Welch–Satterthwaite degrees of freedom (the seeds part is
    known to S − 1; a normal quantile when it is 0, e.g. with one seed)."""
    n_seeds = len(per_seed)
    estimate = float(np.mean(per_seed))
    examples = per_seed_replicates.mean(axis=1)
    v_examples = float(examples.var(ddof=1)) if len(examples) > 1 else 0.0
    v_seeds = between = 0.0
    if n_seeds > 1:
        within = float(per_seed_replicates.var(axis=0, ddof=1).mean()) if len(examples) > 1 else 0.0
        noise = max(0.0, within - v_examples) * n_seeds / (n_seeds - 1)  # per seed: noise not shared by seeds
        between = float(np.var(per_seed, ddof=1)) / n_seeds
        v_seeds = max(0.0, between - noise / n_seeds)
    total = v_examples + v_seeds
    if total <= 0:
        return estimate, estimate
    # the only part estimated from few values is the between-seed variance (S − 1 degrees of freedom)
    df = math.inf if v_seeds == 0 else (n_seeds - 1) * total ** 2 / between ** 2
    half = t_quantile((1 + confidence) / 2, df) * math.sqrt(total)
    return estimate - half, estimate + half


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def paired_t_interval(per_seed: Sequence[float], confidence: float) -> tuple[float, float]:
    """Mean ± t·sd/√S over per-seed contrasts (the test set held fixed): seeds are the only source
    of variation it covers."""
    values = np.asarray(per_seed, dtype=np.float64)
    mean = float(values.mean())
    half = t_quantile((1 + confidence) / 2, len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean - half, mean + half
