"""`xtrc report` on constructed stores: stages written by hand with known per-example scores."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from xtrc import tasks as registry
from xtrc.cli import main
from xtrc.errors import XtrcError
from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc.report import AVERAGE, FORMATS, Comparison, Report, build_report, collect, plot, render
from xtrc.report.stats import t_quantile
from xtrc.store import Store
from xtrc_runtime import metrics as rt

RecordMaker = Callable[[str, int, str, str], list[dict[str, Any]]]
"""(arm, seed, task, language) → prediction records of that cell."""


@pytest.fixture(autouse=True)
def _no_store_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XTRC_STORE", raising=False)


def spec_text(store: Path, targets: list[str], languages: dict[str, list[str]], *, seeds: list[int] | None = None,
              augmentation: str = "cs") -> str:
    spec = {
        "apiVersion": "xtrc.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "rq"},
        "model": "builtin:tiny-xlmr",
        "storage": {"uri": str(store)},
        "seeds": seeds or [1, 2],
        "factors": {
            "intermediate": ["none", "mnli"],
            "augmentation": ["none", {"name": augmentation, "code_switch": {
                "languages": ["de"], "dictionaries": "builtin:fixtures/dictionaries"}}],
        },
        "targets": targets,
        "languages": languages,
        "data": {"root": "builtin:fixtures/data"},
        "compute": {"gpus": 0},
    }
    return yaml.safe_dump(spec, sort_keys=False)


def make_plan(tmp_path: Path, targets: list[str], languages: dict[str, list[str]], **kw: Any) -> Plan:
    return build(load_text(spec_text(tmp_path / "store", targets, languages, **kw), "rq.yaml"))


def task_summary(task: str, per_language_records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What the runtime writes for one task (xtrc_runtime.stage._task_summary), from the records."""
    info = registry.TASKS[task]
    per_language: dict[str, dict[str, float]] = {}
    for lang, records in per_language_records.items():
        if info.type == "tagging":
            per_language[lang] = rt.seqeval_from_counts([tuple(r["counts"]) for r in records])
        elif info.type == "classification":
            golds = [r["gold"] for r in records]
            preds = [r["prediction"] for r in records]
            per_language[lang] = {**rt.macro_f1(golds, preds, labels=list(info.labels)), **rt.accuracy(golds, preds)}
        else:
            names = records[0]["scores"]
            per_language[lang] = {m: float(np.mean([r["scores"][m] for r in records])) for m in names}
    average = rt.language_average(per_language)
    metric = next(m for m in info.metrics if m in average)
    return {"languages": per_language, "average": average, "headline": average[metric], "headline_metric": metric,
            "xtreme_score": rt.task_score(average, info.xtreme_score)}


def write_store(plan: Plan, make: RecordMaker, *, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Every cell stage: predictions, metrics.json and _SUCCESS (last), unless its key is in ``skip``."""
    root = Path(plan.experiment.storage.uri.removeprefix("file://"))
    written: set[str] = set()
    for (arm, seed, task), key in plan.cells.items():
        if key in written or key in skip:
            continue
        written.add(key)
        stage_dir = root / "stages" / key
        summaries = {}
        for ev in plan.stages[key].eval_tasks:
            per_language = {}
            for lang in ev.languages:
                records = make(arm, seed, ev.task, lang)
                path = stage_dir / "predictions" / ev.task / f"{lang}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")
                per_language[lang] = records
            summaries[ev.task] = task_summary(ev.task, per_language)
        metrics = {"key": key, "kind": plan.stages[key].kind, "status": "done", "seconds": 1.0, "run": {},
                   "train": {}, "tasks": summaries}
        (stage_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        (stage_dir / "_SUCCESS").write_bytes(b"")


def store_of(plan: Plan) -> Store:
    return Store(plan.experiment.storage.uri)


def levels(arm: str) -> tuple[int, int]:
    """(intermediate on, augmentation on) of an arm name like ``mnli+cs``."""
    inter, aug = arm.split("+")
    return int(inter != "none"), int(aug != "none")


def qa(ids: list[str], f1: np.ndarray, em: np.ndarray | None = None) -> list[dict[str, Any]]:
    em = f1 if em is None else em
    return [{"id": i, "prediction": "p", "gold": ["g"], "scores": {"exact_match": float(e), "f1": float(f)}}
            for i, f, e in zip(ids, f1, em)]


def comparison(report: Report, contrast: str, task: str) -> Comparison:
    return next(c for c in report.comparisons if c.contrast == contrast and c.task == task)


def hand_bootstrap(seed: int, task: str, languages: list[str], n: int, replicates: int,
                   arm_value: Callable[[str, np.ndarray], float], arms: dict[str, str]) -> dict[str, np.ndarray]:
    """The documented procedure, written out: per language one set of resampled indices for every arm
    and seed; an arm's replicate = mean over languages (and, inside ``arm_value``, seeds)."""
    idx = {lang: np.random.default_rng([seed, zlib.crc32(task.encode()), zlib.crc32(lang.encode())])
           .integers(0, n, size=(replicates, n)) for lang in languages}
    out = {}
    for role, arm in arms.items():
        out[role] = np.asarray([np.mean([arm_value(arm + "|" + lang, idx[lang][b]) for lang in languages])
                                for b in range(replicates)])
    return out


ROLES = {"baseline": "none+none", "intermediate_only": "mnli+none", "augmentation_only": "none+cs",
         "combined": "mnli+cs"}


# --- the research question ------------------------------------------------------------------------


def test_interaction_is_exact_when_effects_are_additive_per_example(tmp_path: Path) -> None:
    """f1_i = base_i(seed, lang) + 10·I + 5·A + c·I·A: every resample shifts every arm alike, so each
    contrast is a constant: C−I = 5 + c, C−A = 10 + c, interaction = c, with zero-width intervals."""
    plan = make_plan(tmp_path, ["xquad", "mlqa"], {"xquad": ["en", "de"], "mlqa": ["en", "de"]})
    interaction = {"xquad": 3.0, "mlqa": -1.0}

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        i, a = levels(arm)
        rng = np.random.default_rng([seed, len(task), len(lang)])
        base = rng.uniform(10, 70, size=60)
        f1 = base + 10 * i + 5 * a + interaction[task] * i * a
        return qa([f"{task}-{lang}-{k}" for k in range(60)], f1, np.where(base > 40, 100.0, 0.0))

    write_store(plan, make)
    report = build_report(collect(plan, store_of(plan)), bootstrap=300, seed=1)
    assert report.warnings == []
    for task in ("xquad", "mlqa"):
        c = interaction[task]
        for contrast, want in (("combined-intermediate", 5 + c), ("combined-augmentation", 10 + c),
                               ("interaction", c)):
            got = comparison(report, contrast, task)
            assert got.estimate == pytest.approx(want, abs=1e-9)
            assert got.low == pytest.approx(want, abs=1e-9) and got.high == pytest.approx(want, abs=1e-9)
    avg = comparison(report, "interaction", AVERAGE)
    assert avg.estimate == pytest.approx(1.0) and avg.low == pytest.approx(1.0) and avg.high == pytest.approx(1.0)
    assert "is positive" in avg.statement() and "+1.00 [+1.00, +1.00]" in avg.statement()
    beats = comparison(report, "combined-augmentation", AVERAGE).statement()
    assert beats.startswith("combined (mnli+cs) beats augmentation-only (none+cs) on the mean over tasks by +11.00")


def test_interaction_interval_matches_a_hand_computed_two_level_bootstrap(tmp_path: Path) -> None:
    """The documented procedure, written out: per language one set of resampled examples for every arm
    and seed; V = the examples part (bootstrap variance of the mean over seeds) + the between-seed
    variance of the per-seed contrasts over S less the within-seed example noise; t with
    Welch–Satterthwaite degrees of freedom."""
    seeds = [1, 2, 3]
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en", "de"]}, seeds=seeds)
    n, replicates, seed = 40, 200, 7
    scores: dict[str, np.ndarray] = {}

    def make(arm: str, s: int, task: str, lang: str) -> list[dict[str, Any]]:
        i, a = levels(arm)
        rng = np.random.default_rng([s, i, a, len(lang)])
        f1 = np.clip(rng.normal(40 + 6 * i + 4 * a + 3 * i * a + 4 * s * i * a, 25, size=n), 0, 100)
        scores[f"{arm}|{lang}|{s}"] = f1
        return qa([f"q{k}" for k in range(n)], f1)

    write_store(plan, make)
    report = build_report(collect(plan, store_of(plan)), bootstrap=replicates, seed=seed)
    got = comparison(report, "interaction", "xquad")

    signs = {"combined": 1, "intermediate_only": -1, "augmentation_only": -1, "baseline": 1}
    idx = {lang: np.random.default_rng([seed, zlib.crc32(b"xquad"), zlib.crc32(lang.encode())])
           .integers(0, n, size=(replicates, n)) for lang in ("en", "de")}
    per_seed = np.asarray([[sum(sign * np.mean([scores[f"{ROLES[role]}|{lang}|{s}"][idx[lang][b]].mean()
                                                for lang in ("en", "de")]) for role, sign in signs.items())
                            for s in seeds] for b in range(replicates)])
    d = np.asarray([sum(sign * np.mean([scores[f"{ROLES[role]}|{lang}|{s}"].mean() for lang in ("en", "de")])
                        for role, sign in signs.items()) for s in seeds])
    v_ex = per_seed.mean(axis=1).var(ddof=1)
    noise = (per_seed.var(axis=0, ddof=1).mean() - v_ex) * 3 / 2
    between = d.var(ddof=1) / 3
    v_seeds = between - noise / 3
    assert v_seeds > 0
    df = 2 * (v_ex + v_seeds) ** 2 / between ** 2
    point = {role: np.mean([scores[f"{arm}|{lang}|{s}"].mean() for lang in ("en", "de") for s in seeds])
             for role, arm in ROLES.items()}
    want = sum(sign * point[role] for role, sign in signs.items())
    half = t_quantile(0.975, df) * np.sqrt(v_ex + v_seeds)
    assert got.estimate == pytest.approx(want, abs=1e-9)
    assert (got.low, got.high) == (pytest.approx(want - half, abs=1e-9), pytest.approx(want + half, abs=1e-9))
    assert (got.examples_low, got.examples_high) == tuple(pytest.approx(q, abs=1e-9) for q in
                                                          np.quantile(per_seed.mean(axis=1), [0.025, 0.975]))
    # the seeds part is real here (the combined arm gains with the seed): wider than examples alone
    assert got.high - got.low > 1.2 * (got.examples_high - got.examples_low)

    # the paired t interval over seeds: per-seed contrasts of the stored headlines
    half_t = 4.302652729911275 * np.std(d, ddof=1) / np.sqrt(3)  # t(0.975, 2 df)
    assert (got.seeds_low, got.seeds_high) == (pytest.approx(np.mean(d) - half_t, abs=1e-6),
                                               pytest.approx(np.mean(d) + half_t, abs=1e-6))
    statement = got.statement()
    assert "over seeds alone (paired t, 3 seeds)" in statement
    data = json.loads(render(report, "json"))
    assert {c["ci_covers"] for c in data["comparisons"]} == {"seeds and test examples"}


@pytest.mark.parametrize(("df", "want"), [(1, 12.706204736), (2, 4.302652730), (3, 3.182446305), (4.5, 2.658912347),
                                          (10, 2.228138852), (1e9, 1.959963985)])
def test_t_quantiles_match_the_tables(df: float, want: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(want, rel=1e-8)


def test_bootstrap_is_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en"]})

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        rng = np.random.default_rng([seed, *levels(arm)])
        return qa([f"q{k}" for k in range(30)], rng.uniform(0, 100, 30))

    write_store(plan, make)
    a = render(build_report(collect(plan, store_of(plan), workers=1), bootstrap=100, seed=3), "json")
    b = render(build_report(collect(plan, store_of(plan), workers=16), bootstrap=100, seed=3), "json")
    c = render(build_report(collect(plan, store_of(plan)), bootstrap=100, seed=4), "json")
    assert a == b
    assert a != c


@pytest.mark.parametrize("n", [40])
def test_interval_contains_the_estimate_and_shrinks_with_more_examples(tmp_path: Path, n: int) -> None:
    widths = {}
    for size in (n, 10 * n):
        plan = make_plan(tmp_path / str(size), ["xquad"], {"xquad": ["en"]}, seeds=[1])

        def make(arm: str, seed: int, task: str, lang: str, size: int = size) -> list[dict[str, Any]]:
            i, a = levels(arm)
            rng = np.random.default_rng([size, i, a])
            hits = rng.random(size) < 0.4 + 0.1 * i + 0.05 * a
            return qa([f"q{k}" for k in range(size)], 100.0 * hits)

        write_store(plan, make)
        report = build_report(collect(plan, store_of(plan)), bootstrap=400, seed=0)
        for contrast in ("combined-intermediate", "combined-augmentation", "interaction"):
            c = comparison(report, contrast, "xquad")
            assert c.low <= c.estimate <= c.high
        c = comparison(report, "interaction", "xquad")
        widths[size] = c.high - c.low
    assert widths[10 * n] < 0.6 * widths[n]


def test_identical_arms_give_a_zero_width_interval_at_zero(tmp_path: Path) -> None:
    """Pairing: the same resampled examples for every arm, so arms with equal records never differ."""
    plan = make_plan(tmp_path, ["xquad", "panx"], {"xquad": ["en", "de"], "panx": ["en"]})

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        rng = np.random.default_rng([seed, len(lang), len(task)])  # the same in every arm
        if task == "panx":
            gold = rng.integers(0, 4, 50)
            tp = np.minimum(gold, rng.integers(0, 4, 50))
            return [{"id": f"s{k}", "prediction": [], "gold": [], "counts": [int(t), int(t) + 1, int(g)]}
                    for k, (t, g) in enumerate(zip(tp, gold))]
        return qa([f"q{k}" for k in range(50)], rng.uniform(0, 100, 50))

    write_store(plan, make)
    report = build_report(collect(plan, store_of(plan)), bootstrap=200, seed=0)
    assert report.warnings == []
    for c in report.comparisons:
        assert (c.estimate, c.low, c.high) == (pytest.approx(0, abs=1e-9),) * 3, c
        assert "no difference" in c.statement()


def test_classification_macro_f1_is_recomputed_on_each_resample(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en"]}, seeds=[1])
    labels = list(registry.TASKS["xnli"].labels)
    n, replicates, seed = 60, 150, 11
    rng = np.random.default_rng(5)
    gold = [labels[k] for k in rng.integers(0, 3, n)]
    preds: dict[str, list[str]] = {}

    def make(arm: str, s: int, task: str, lang: str) -> list[dict[str, Any]]:
        i, a = levels(arm)
        r = np.random.default_rng([i, a])
        # skewed predictions: mostly "entailment", so accuracy and macro-F1 part ways
        p = [g if r.random() < 0.3 + 0.2 * i + 0.1 * a else "entailment" for g in gold]
        preds[arm] = p
        return [{"id": f"x{k}", "prediction": pk, "gold": gk, "scores": {"accuracy": 100.0 * (pk == gk)}}
                for k, (pk, gk) in enumerate(zip(p, gold))]

    write_store(plan, make)
    results = collect(plan, store_of(plan))
    report = build_report(results, bootstrap=replicates, seed=seed)
    assert report.warnings == []  # the macro-F1 recomputed from the records equals metrics.json's
    assert report.headline == {"xnli": "f1"}
    base = next(v for arm, values in report.main.rows if arm == "none+none" for v in values)
    assert base.mean == pytest.approx(rt.macro_f1(gold, preds["none+none"], labels)["f1"])
    assert base.mean != pytest.approx(rt.accuracy(gold, preds["none+none"])["accuracy"], abs=0.5)

    def macro(arm_lang: str, idx: np.ndarray) -> float:
        arm = arm_lang.split("|")[0]
        return rt.macro_f1([gold[k] for k in idx], [preds[arm][k] for k in idx], labels)["f1"]

    def accuracy(arm_lang: str, idx: np.ndarray) -> float:
        arm = arm_lang.split("|")[0]
        return rt.accuracy([gold[k] for k in idx], [preds[arm][k] for k in idx])["accuracy"]

    for fn, should_match in ((macro, True), (accuracy, False)):
        reps = hand_bootstrap(seed, "xnli", ["en"], n, replicates, fn, ROLES)
        diff = reps["combined"] - reps["intermediate_only"] - reps["augmentation_only"] + reps["baseline"]
        lo, hi = np.quantile(diff, [0.025, 0.975])
        got = comparison(report, "interaction", "xnli")
        matches = bool(got.examples_low == pytest.approx(lo, abs=1e-9)
                       and got.examples_high == pytest.approx(hi, abs=1e-9))
        assert matches is should_match


# --- the main table ---------------------------------------------------------------------------------


def _mixed_store(tmp_path: Path, **kw: Any) -> Plan:
    plan = make_plan(tmp_path, ["xnli", "panx", "xquad", "tatoeba"],
                     {"xnli": ["en", "de"], "panx": ["en", "de"], "xquad": ["en", "de"], "tatoeba": ["de"]}, **kw)

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        i, a = levels(arm)
        rng = np.random.default_rng([seed, i, a, len(task), len(lang)])
        if task == "xnli":
            labels = registry.TASKS["xnli"].labels
            gold = [labels[k] for k in rng.integers(0, 3, 30)]
            pred = [g if rng.random() < 0.6 else labels[0] for g in gold]
            return [{"id": f"x{k}", "prediction": p, "gold": g, "scores": {"accuracy": 100.0 * (p == g)}}
                    for k, (p, g) in enumerate(zip(pred, gold))]
        if task == "panx":
            gold_n = rng.integers(0, 3, 30)
            tp = np.minimum(gold_n, rng.integers(0, 3, 30))
            return [{"id": f"s{k}", "prediction": ["O"], "gold": ["O"], "counts": [int(t), int(t) + 1, int(g)]}
                    for k, (t, g) in enumerate(zip(tp, gold_n))]
        if task == "tatoeba":
            return [{"id": f"t{k}", "prediction": f"t{k}", "gold": f"t{k}", "scores": {"accuracy": float(h)}}
                    for k, h in enumerate(100.0 * (rng.random(30) < 0.5))]
        return qa([f"q{k}" for k in range(30)], rng.uniform(0, 100, 30))

    write_store(plan, make)
    return plan


def test_delta_against_the_baseline_and_the_averages(tmp_path: Path) -> None:
    plan = _mixed_store(tmp_path)
    results = collect(plan, store_of(plan))
    report = build_report(results, bootstrap=50)
    assert report.warnings == []
    assert any("not the full benchmark" in n for n in report.notes)
    rows = {arm: dict(zip(report.main.columns, values)) for arm, values in report.main.rows}
    assert report.main.columns == ["xnli", "panx", "xquad", "tatoeba", AVERAGE, "xtreme"]

    def stored(arm: str, seed: int, task: str, what: str = "headline") -> float:
        key = plan.cells[(arm, seed, task)]
        root = Path(plan.experiment.storage.uri.removeprefix("file://"))
        return json.loads((root / "stages" / key / "metrics.json").read_text())["tasks"][task][what]

    for arm in ("none+cs", "mnli+none", "mnli+cs"):
        for task in ("xnli", "panx", "xquad", "tatoeba"):
            mine = [stored(arm, s, task) for s in (1, 2)]
            base = [stored("none+none", s, task) for s in (1, 2)]
            cell = rows[arm][task]
            assert cell.state == "done" and cell.n_seeds == 2
            assert cell.mean == pytest.approx(np.mean(mine))
            if plan.cells[(arm, 1, task)] == plan.cells[(arm, 2, task)]:  # the base model's retrieval stage:
                assert task == "tatoeba" and arm == "none+cs"           # one run for every seed, no spread
                assert mine[0] == mine[1] and cell.std is None and cell.runs == 1 and "±" not in cell.text()
            else:
                assert cell.std == pytest.approx(np.std(mine, ddof=1)) and cell.runs == 2
            assert cell.seeds == {1: pytest.approx(mine[0]), 2: pytest.approx(mine[1])}
            assert cell.delta == pytest.approx(np.mean(mine) - np.mean(base))
        # the XTREME score: QA counts (EM + F1)/2, classification accuracy; mean over tasks per seed
        per_seed = [np.mean([stored(arm, s, t, "xtreme_score") for t in ("xnli", "panx", "xquad", "tatoeba")])
                    for s in (1, 2)]
        assert rows[arm]["xtreme"].mean == pytest.approx(np.mean(per_seed))
        xquad = json.loads((Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" /
                            plan.cells[(arm, 1, "xquad")] / "metrics.json").read_text())["tasks"]["xquad"]
        assert xquad["xtreme_score"] == pytest.approx((xquad["average"]["exact_match"] + xquad["average"]["f1"]) / 2)
    assert all(v.delta is None for v in rows["none+none"].values())
    # XTREME-R scores tatoeba from the arm's SQuAD model, so augmentation reaches it: its own stage
    assert plan.cells[("none+cs", 1, "tatoeba")] != plan.cells[("none+none", 1, "tatoeba")]
    squad = plan.stages[plan.cells[("none+cs", 1, "tatoeba")]].init_from
    assert squad == plan.cells[("none+cs", 1, "xquad")]


def test_missing_failed_running_cells_and_no_average_over_a_subset(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad", "tatoeba"], {"xquad": ["en"], "tatoeba": ["de"]})

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        rng = np.random.default_rng([seed, *levels(arm), len(task)])
        if task == "tatoeba":
            return [{"id": f"t{k}", "prediction": "x", "gold": "x", "scores": {"accuracy": float(h)}}
                    for k, h in enumerate(100.0 * (rng.random(20) < 0.5))]
        return qa([f"q{k}" for k in range(20)], rng.uniform(0, 100, 20))

    missing = plan.cells[("mnli+cs", 2, "xquad")]
    failed = plan.cells[("none+cs", 1, "xquad")]
    running = plan.cells[("none+cs", 2, "xquad")]
    write_store(plan, make, skip={missing, failed, running})
    results = collect(plan, store_of(plan), status={failed: "failed", running: "running"})
    report = build_report(results, bootstrap=50)
    rows = {arm: dict(zip(report.main.columns, values)) for arm, values in report.main.rows}

    combined = rows["mnli+cs"]["xquad"]
    assert (combined.state, combined.mean, combined.not_done, combined.of) == ("missing", None, 1, 2)
    assert combined.seeds[1] is not None and combined.seeds[2] is None  # the done seed is kept, not averaged
    assert combined.text() == "missing (1/2 seeds)"
    aug = rows["none+cs"]["xquad"]
    assert (aug.state, aug.mean, aug.seed_states) == ("failed", None, {1: "failed", 2: "running"})
    for arm in ("mnli+cs", "none+cs"):
        for column in (AVERAGE, "xtreme"):
            value = rows[arm][column]
            assert value.mean is None and value.state != "done"
    assert rows["mnli+cs"][AVERAGE].text() == "missing (1/4 cells)"
    assert rows["none+cs"][AVERAGE].text() == "failed (2/4 cells)"
    assert rows["none+none"][AVERAGE].state == "done"
    # comparisons: available where all four arms are done (tatoeba), never on the average
    assert comparison(report, "interaction", "tatoeba").estimate is not None
    for task in ("xquad", AVERAGE):
        c = comparison(report, "interaction", task)
        assert c.estimate is None and c.low is None
        assert "not available" in c.statement() and "failed" in c.detail and "missing" in c.detail
    assert comparison(report, "combined-augmentation", "xquad").detail == \
        "mnli+cs: xquad missing (1/2 seeds); none+cs: xquad failed (2/2 seeds)"
    for fmt in FORMATS:
        text = render(report, fmt)
        assert "missing" in text and "failed" in text


def test_records_missing_give_estimates_without_intervals(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en"]}, seeds=[1])

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        return qa([f"q{k}" for k in range(10)], np.full(10, 10.0 * sum(levels(arm))))

    write_store(plan, make)
    key = plan.cells[("mnli+cs", 1, "xquad")]
    os.remove(Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" / key / "predictions/xquad/en.jsonl")
    report = build_report(collect(plan, store_of(plan)), bootstrap=50)
    c = comparison(report, "combined-intermediate", "xquad")
    assert c.estimate == pytest.approx(10.0) and c.interval is None
    assert "no interval" in c.statement()
    assert any("predictions/xquad/en.jsonl" in w for w in report.warnings)
    skipped = build_report(collect(plan, store_of(plan), predictions=False), bootstrap=50)
    assert comparison(skipped, "interaction", "xquad").detail.endswith("prediction records not read")


# --- formats, plot, CLI ---------------------------------------------------------------------------------


def test_every_format_is_produced_and_parses(tmp_path: Path) -> None:
    plan = _mixed_store(tmp_path, augmentation="code_sw")
    report = build_report(collect(plan, store_of(plan)), by="language", bootstrap=50)

    data = json.loads(render(report, "json"))
    cells = [c for c in data["cells"] if c["kind"] == "task"]
    assert len(cells) == 4 * 4
    for c in cells:
        assert {"arm", "column", "state", "mean", "std", "n_seeds", "seeds", "delta_vs_baseline"} <= set(c)
        assert c["n_seeds"] == 2 and set(c["seeds"]) == {"1", "2"}
    assert {c["contrast"] for c in data["comparisons"]} == {"combined-intermediate", "combined-augmentation",
                                                            "interaction"}
    assert all(c["ci_low"] <= c["estimate"] <= c["ci_high"] for c in data["comparisons"])
    assert len(data["by_language"]) == 4

    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert {r["section"] for r in rows} == {"cell", "aggregate", "language", "comparison"}
    assert all(r["state"] for r in rows)
    float(next(r for r in rows if r["section"] == "comparison")["ci_low"])

    markdown = render(report, "markdown")
    assert re.search(r"^\| --- (\| ---: )+\|$", markdown, re.M)
    assert "| mnli+code\\_sw" not in markdown and "| mnli+code_sw |" in markdown

    latex = render(report, "latex")
    assert latex.count(r"\begin{tabular}") == latex.count(r"\end{tabular}") >= 6
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"mnli+code\_sw" in latex and "mnli+code_sw" not in latex
    assert r"$\pm$" in latex

    table = render(report, "table")
    assert "mnli+code_sw" in table and "The answer" in table


def test_plot_writes_a_png(tmp_path: Path) -> None:
    plan = _mixed_store(tmp_path)
    results = collect(plan, store_of(plan))
    for tasks, name in ((None, "all.png"), (["xnli"], "xnli.png")):
        out = tmp_path / name
        plot(results, str(out), tasks=tasks)
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


def test_plot_without_matplotlib_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _mixed_store(tmp_path)
    results = collect(plan, store_of(plan))
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(XtrcError, match=r"pip install 'xtrc\[plot\]'"):
        plot(results, str(tmp_path / "x.png"))


def test_cli_report_reads_the_local_run_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`<key>.exit` non-zero → failed; `<key>.json` with a live pid → running; below a failed stage → blocked."""
    store = tmp_path / "store"
    spec = tmp_path / "rq.yaml"
    spec.write_text(spec_text(store, ["xquad"], {"xquad": ["en"]}), encoding="utf-8")
    plan = build(load_text(spec.read_text(), "rq.yaml"))

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        return qa([f"q{k}" for k in range(10)], np.full(10, 50.0))

    failed = plan.cells[("none+cs", 1, "xquad")]
    running = plan.cells[("none+cs", 2, "xquad")]
    upstream = plan.stages[plan.cells[("mnli+none", 1, "xquad")]].init_from
    assert upstream is not None
    blocked = {k for (arm, seed, _), k in plan.cells.items() if seed == 1 and arm.startswith("mnli")}
    write_store(plan, make, skip={failed, running, *blocked})
    state = store / ".local-runs"
    state.mkdir()
    (state / f"{failed}.exit").write_text("1")
    (state / f"{running}.json").write_text(json.dumps({"pid": os.getpid(), "gpus": [], "started": 0,
                                                       "attempts": 1}))
    (state / f"{upstream}.exit").write_text("2")

    assert main(["report", str(spec), "--format", "json", "--bootstrap", "20"]) == 0
    data = json.loads(capsys.readouterr().out)
    cells = {(c["arm"], c["column"]): c for c in data["cells"]}
    assert cells[("none+cs", "xquad")]["seed_states"] == {"1": "failed", "2": "running"}
    assert cells[("mnli+none", "xquad")]["seed_states"] == {"1": "blocked", "2": "done"}
    assert cells[("none+none", "xquad")]["state"] == "done"
    assert cells[("none+none", "xquad")]["mean"] == pytest.approx(50.0)

    assert main(["report", str(spec), "--task", "xquad", "--by", "language", "--plot",
                 str(tmp_path / "cli.png")]) == 0
    out = capsys.readouterr()
    assert "xquad by language" in out.out and (tmp_path / "cli.png").read_bytes().startswith(b"\x89PNG")
    assert main(["report", str(spec), "--task", "xnli"]) == 2
    assert "not a target task" in capsys.readouterr().err


_CHILD = """
import contextlib, io, json, sys
from xtrc.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = main(sys.argv[1:])
bad = [m for m in ('torch', 'transformers', 'datasets', 'matplotlib') if m in sys.modules]
print(json.dumps({"rc": rc, "bad": bad}))
"""


def test_report_never_imports_heavy_modules(tmp_path: Path) -> None:
    plan = _mixed_store(tmp_path)
    spec = tmp_path / "rq.yaml"
    spec.write_text(spec_text(tmp_path / "store", ["xnli", "panx", "xquad", "tatoeba"],
                              {"xnli": ["en", "de"], "panx": ["en", "de"], "xquad": ["en", "de"], "tatoeba": ["de"]}))
    assert build(load_text(spec.read_text(), "rq.yaml")).cells == plan.cells
    stubs = tmp_path / "tripwires"
    stubs.mkdir()
    for module in ("torch", "transformers", "datasets"):
        (stubs / f"{module}.py").write_text("", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(stubs)}
    for fmt in FORMATS:
        result = subprocess.run([sys.executable, "-c", _CHILD, "report", str(spec), "--format", fmt,
                                 "--bootstrap", "20"], capture_output=True, text=True, env=env, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"rc": 0, "bad": []}


# --- the results index ----------------------------------------------------------------------------


def index_entries(plan: Plan) -> dict[str, Any]:
    root = Path(plan.experiment.storage.uri.removeprefix("file://")) / "experiments" / "rq" / "results"
    entries: dict[str, Any] = {}
    for shard in root.glob("*.json"):
        entries.update(json.loads(shard.read_text())["stages"])
    return entries


def flat_qa(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
    return qa([f"{lang}-{k}" for k in range(4)], np.full(4, 40.0 + 10 * sum(levels(arm)) + seed))


def test_the_results_index_answers_until_a_stage_commits_again(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en", "de"]})
    write_store(plan, flat_qa)
    store = store_of(plan)
    stage_dir = tmp_path / "store" / "stages" / plan.cells[("mnli+cs", 1, "xquad")]
    key = stage_dir.name

    first = collect(plan, store, predictions=False)
    assert set(index_entries(plan)) == set(plan.cells.values())  # the first report filled the index

    (stage_dir / "metrics.json").unlink()  # from now on only the index holds this stage's metrics
    indexed = collect(plan, store, predictions=False)
    assert indexed.stages[key].state == "done" and indexed.stages[key].metrics == first.stages[key].metrics
    direct = collect(plan, store, predictions=False, cached=False)  # reads every stage itself
    assert direct.stages[key].state == "invalid" and "no metrics.json" in direct.warnings[0]

    # A re-run writes new metrics and a new marker: the entry is stale, read afresh and replaced.
    rerun = json.loads(json.dumps(first.stages[key].metrics))
    rerun["tasks"]["xquad"]["headline"] = 12.5
    (stage_dir / "_SUCCESS").unlink()
    (stage_dir / "metrics.json").write_text(json.dumps(rerun))
    (stage_dir / "_SUCCESS").write_text(json.dumps({"run": "second"}))
    assert collect(plan, store, predictions=False).stages[key].metrics["tasks"]["xquad"]["headline"] == 12.5
    assert index_entries(plan)[key]["metrics"]["tasks"]["xquad"]["headline"] == 12.5

    (stage_dir / "_SUCCESS").unlink()  # not done, whatever the index holds
    assert collect(plan, store, predictions=False).stages[key].state == "missing"


def test_a_broken_or_unwritable_index_changes_no_result(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en", "de"]})
    write_store(plan, flat_qa)
    store = store_of(plan)
    def answer(results: Any) -> dict[str, Any]:
        return {k: v for k, v in json.loads(render(build_report(results, bootstrap=50, seed=2), "json")).items()
                if k != "warnings"}

    expected = answer(collect(plan, store, cached=False))
    results_dir = tmp_path / "store" / "experiments" / "rq" / "results"
    assert not results_dir.exists()  # cached=False writes nothing

    collect(plan, store)
    broken = sorted(results_dir.glob("*.json"))[0]
    broken.write_text('{"version": 1, "stages": ')
    results = collect(plan, store)
    assert any(f"{broken.name} ignored" in w for w in results.warnings)
    assert answer(results) == expected
    assert json.loads(broken.read_text())["version"] == 1  # rewritten whole by the reader that re-read it

    for shard in results_dir.glob("*.json"):
        shard.unlink()
    results_dir.rmdir()
    results_dir.write_text("not a directory")  # every shard write fails
    results = collect(plan, store)
    assert any("not updated" in w for w in results.warnings)
    assert answer(results) == expected
