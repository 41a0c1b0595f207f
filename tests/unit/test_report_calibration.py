"""Calibration by simulation: do the report's nominal 95% intervals cover the true contrast?

Each simulated experiment has three seeds and 300 test examples (drawn afresh from the population
each time) for two arms; arm ``a`` on seed ``s`` scores ``mu_a + u_as + w_ai + e_asi`` on example
``i``: per-seed effects ``u`` of known variance (fine-tuning randomness), per-example effects ``w``
and per-(seed, example) noise ``e``. The true contrast is ``mu_C - mu_I``. The intervals come from
the functions the report uses (resample weights, the two-level interval, the examples-only
percentile interval), vectorised: 200 experiments take about a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from xtrc.report.stats import percentile_interval, resample_weights, two_level_interval

EXPERIMENTS, SEEDS, EXAMPLES, REPLICATES = 200, 3, 300, 1000
TRUE_CONTRAST = 2.0


def coverage(seed_sd: float, example_sd: float, noise_sd: float) -> dict[str, float]:
    rng = np.random.default_rng([int(10 * seed_sd), int(10 * example_sd), int(10 * noise_sd)])
    seed_effect = rng.normal(0, seed_sd, size=(EXPERIMENTS, 2, SEEDS))
    example_effect = rng.normal(0, example_sd, size=(EXPERIMENTS, 2, EXAMPLES))
    noise = rng.normal(0, noise_sd, size=(EXPERIMENTS, 2, SEEDS, EXAMPLES))
    scores = seed_effect[..., None] + example_effect[:, :, None, :] + noise
    contrast = TRUE_CONTRAST + scores[:, 0] - scores[:, 1]  # (experiments, seeds, examples): C − I
    # the bootstrap draws are independent of the data, so one set serves every experiment
    weights = resample_weights(EXAMPLES, REPLICATES, rng)
    replicates = np.einsum("bn,esn->ebs", weights, contrast) / EXAMPLES  # (experiments, replicates, seeds)
    covered = {"two-level": 0, "examples only": 0}
    for e in range(EXPERIMENTS):
        lo, hi = two_level_interval(replicates[e], contrast[e].mean(axis=1), 0.95)
        covered["two-level"] += lo <= TRUE_CONTRAST <= hi
        lo, hi = percentile_interval(replicates[e].mean(axis=1), 0.95)
        covered["examples only"] += lo <= TRUE_CONTRAST <= hi
    return {k: v / EXPERIMENTS for k, v in covered.items()}


@pytest.mark.parametrize(("seed_sd", "example_sd", "noise_sd"), [(1.5, 1.0, 10.0), (2.0, 0.0, 2.0)])
def test_two_level_intervals_cover_where_examples_only_intervals_do_not(seed_sd: float, example_sd: float,
                                                                        noise_sd: float) -> None:
    got = coverage(seed_sd, example_sd, noise_sd)
    assert 0.90 <= got["two-level"] <= 0.99, got
    assert got["examples only"] < 0.75, got  # the examples-only method leaves the seed variance out


def test_without_seed_variance_the_two_level_interval_is_not_needlessly_wide() -> None:
    got = coverage(0.0, 2.0, 10.0)
    assert 0.90 <= got["two-level"] <= 0.99 and got["examples only"] >= 0.90, got
