"""What `xtrc report` checks before it shows a number: metrics recomputed from the prediction
records, results-index entries checked against their stage key, degenerate predictions flagged."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report import comparison, index_entries, levels, make_plan, qa, spec_text, store_of, write_store

from xtrc import tasks as registry
from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc.report import build_report, collect, render

XNLI = list(registry.TASKS["xnli"].labels)


def xnli_records(arm: str, seed: int, task: str, lang: str, *, collapse: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    i, a = levels(arm)
    rng = np.random.default_rng([seed, i, a, len(lang)])
    gold = [XNLI[k] for k in np.random.default_rng(len(lang)).integers(0, 3, 90)]
    if arm in collapse:
        pred = [XNLI[0]] * len(gold)
    else:
        pred = [g if rng.random() < 0.5 + 0.1 * i + 0.1 * a else XNLI[int(rng.integers(0, 3))] for g in gold]
    return [{"id": f"x{k}", "prediction": p, "gold": g, "scores": {"accuracy": 100.0 * (p == g)}}
            for k, (p, g) in enumerate(zip(pred, gold))]


def stage_dir(plan: Plan, arm: str, seed: int, task: str) -> Path:
    return Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" / plan.cells[(arm, seed, task)]


def rewrite_metrics(path: Path, change: Any) -> None:
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))


def cells(report: Any) -> dict[tuple[str, str], Any]:
    return {(arm, col): v for arm, values in report.main.rows for col, v in zip(report.main.columns, values)}


def test_a_plausible_but_wrong_metric_makes_the_cell_invalid_with_or_without_bootstrap(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, xnli_records)
    path = stage_dir(plan, "mnli+cs", 1, "xnli") / "metrics.json"

    def shift(metrics: dict[str, Any]) -> None:  # 5 points more in de, headline still the language mean
        entry = metrics["tasks"]["xnli"]
        entry["languages"]["de"]["f1"] += 5.0
        entry["headline"] = float(np.mean([m["f1"] for m in entry["languages"].values()]))

    rewrite_metrics(path, shift)
    for bootstrap in (0, 50):
        report = build_report(collect(plan, store_of(plan)), bootstrap=bootstrap)
        cell = cells(report)[("mnli+cs", "xnli")]
        assert cell.state == "invalid" and cell.mean is None and cell.text() == "invalid (1/2 seeds)"
        assert any("recomputed from its prediction records" in w and "de" in w for w in report.warnings)
        assert comparison(report, "interaction", "xnli").estimate is None
    assert cells(report)[("mnli+none", "xnli")].state == "done"


def test_an_index_entry_holding_another_stages_metrics_is_invalid(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xquad"], {"xquad": ["en"]})

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        return qa([f"q{k}" for k in range(8)], np.full(8, 30.0 + 10 * sum(levels(arm))))

    write_store(plan, make)
    store = store_of(plan)
    collect(plan, store)  # fills the index
    victim, donor = plan.cells[("none+none", 1, "xquad")], plan.cells[("mnli+cs", 1, "xquad")]
    shards = Path(plan.experiment.storage.uri.removeprefix("file://")) / "experiments" / "rq" / "results"
    assert index_entries(plan)[victim]["key"] == victim  # entries carry their key
    shard = shards / f"{victim[0]}.json"
    data = json.loads(shard.read_text())
    data["stages"][victim]["metrics"] = index_entries(plan)[donor]["metrics"]  # plausible, but another stage's
    shard.write_text(json.dumps(data))
    report = build_report(collect(plan, store), bootstrap=0)
    assert cells(report)[("none+none", "xquad")].text() == "invalid (1/2 seeds)"
    assert any(f"stage {victim}: its results name stage '{donor}'" in w for w in report.warnings)

    # an entry that names another key (or none) is not trusted at all: the stage is read afresh
    data["stages"][victim] = {**index_entries(plan)[donor], "marker": data["stages"][victim]["marker"]}
    shard.write_text(json.dumps(data))
    report = build_report(collect(plan, store), bootstrap=0)
    assert cells(report)[("none+none", "xquad")].state == "done"
    assert index_entries(plan)[victim]["key"] == victim


def test_a_collapsed_baseline_is_marked_and_the_verdict_says_so(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, lambda *a: xnli_records(*a, collapse={"none+none"}))
    report = build_report(collect(plan, store_of(plan)), bootstrap=100)
    base = cells(report)[("none+none", "xnli")]
    assert base.degenerate and base.text().endswith("†")
    assert not cells(report)[("mnli+cs", "xnli")].degenerate
    assert any("none+none xnli" in w and "predicts 'entailment' for 100% of 180 examples" in w
               for w in report.warnings)
    interaction = comparison(report, "interaction", "xnli")
    assert "rests on degenerate cells (none+none xnli)" in interaction.statement()
    # combined − intermediate-only does not involve the baseline: no caveat
    assert "degenerate" not in comparison(report, "combined-intermediate", "xnli").statement()
    table = render(report, "table")
    assert "†" in table and "degenerate" in table
    latex = render(report, "latex")
    assert r"$^\dagger$" in latex and "†" not in latex


def test_chance_level_predictions_are_flagged() -> None:
    from xtrc.report.collect import parse_records
    from xtrc.report.verify import degenerate_reason

    rng = np.random.default_rng(0)
    gold = [XNLI[k] for k in rng.integers(0, 3, 600)]
    guess = [XNLI[k] for k in rng.integers(0, 3, 600)]
    good = [g if rng.random() < 0.6 else p for g, p in zip(gold, guess)]

    def records(pred: list[str]) -> Any:
        return parse_records("\n".join(json.dumps({"id": str(k), "prediction": p, "gold": g,
                                                   "scores": {"accuracy": 100.0 * (p == g)}})
                                       for k, (p, g) in enumerate(zip(pred, gold))), "xnli")

    assert "at chance" in degenerate_reason("xnli", [records(guess)])
    assert degenerate_reason("xnli", [records(good)]) == ""


def test_the_xtreme_r_score_leaves_out_pawsx_and_restricted_languages_get_a_note(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli", "pawsx"], {"xnli": ["en", "de"]})
    labels = list(registry.TASKS["pawsx"].labels)

    def make(arm: str, seed: int, task: str, lang: str) -> list[dict[str, Any]]:
        if task == "xnli":
            return xnli_records(arm, seed, task, lang)
        rng = np.random.default_rng([seed, *levels(arm), len(lang)])
        gold = [labels[k] for k in rng.integers(0, 2, 40)]
        return [{"id": f"p{k}", "prediction": g if rng.random() < 0.8 else labels[0], "gold": g,
                 "scores": {"accuracy": 0.0}} for k, g in enumerate(gold)]

    write_store(plan, lambda *a: [dict(r, scores={"accuracy": 100.0 * (r["prediction"] == r["gold"])})
                                  for r in make(*a)])
    report = build_report(collect(plan, store_of(plan)), bootstrap=0)
    assert report.warnings == []
    row = cells(report)
    for arm in ("none+none", "mnli+cs"):
        xnli_score = np.mean([json.loads((stage_dir(plan, arm, s, "xnli") / "metrics.json").read_text())
                              ["tasks"]["xnli"]["xtreme_score"] for s in (1, 2)])
        assert row[(arm, "xtreme")].mean == pytest.approx(xnli_score)  # PAWS-X is not an XTREME-R task
        assert row[(arm, "average")].mean != pytest.approx(xnli_score)
    notes = " ".join(report.notes)
    assert "pawsx left out: not XTREME-R tasks" in notes
    assert "mean over tasks: the plain mean of the 2 targets' headline metrics" in notes
    assert "languages: restricts xnli to 2 of 15 languages" in notes


def test_a_capped_test_set_is_named_in_a_note(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, xnli_records)
    for key in set(plan.cells.values()):
        path = Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" / key / "metrics.json"
        rewrite_metrics(path, lambda m: m["tasks"]["xnli"].update(examples={
            "en": {"rows": 5010, "evaluated": 90, "cap": {"max_eval_examples": 90, "left_out": 4920}},
            "de": {"rows": 90, "evaluated": 90, "cap": {"not_applied": True}}}))
    report = build_report(collect(plan, store_of(plan)), bootstrap=0)
    assert any(n == "xnli is scored on part of its test sets (max_eval_examples; evaluated/available): en 90/5010"
               for n in report.notes), report.notes
