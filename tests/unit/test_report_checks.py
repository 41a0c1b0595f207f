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


# --- the check kept in the results index -------------------------------------------------------


def shard_of(plan: Plan, key: str) -> Path:
    root = Path(plan.experiment.storage.uri.removeprefix("file://"))
    return root / "experiments" / "rq" / "results" / f"{key[0]}.json"


def edit_entry(plan: Plan, key: str, change: Any) -> None:
    """Change one results-index entry in place, its stamp left as it is."""
    shard = shard_of(plan, key)
    data = json.loads(shard.read_text())
    change(data["stages"][key])
    shard.write_text(json.dumps(data))


def drop_predictions(plan: Plan) -> None:
    root = Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages"
    for key in set(plan.cells.values()):
        for path in sorted((root / key / "predictions").rglob("*.jsonl")):
            path.unlink()


def recommit(plan: Plan, key: str, run: str) -> None:
    """The stage committed again (as a re-run after its _SUCCESS was deleted): a new marker."""
    success = Path(plan.experiment.storage.uri.removeprefix("file://")) / "stages" / key / "_SUCCESS"
    success.unlink()
    success.write_text(json.dumps({"run": run}))


def test_a_cell_is_checked_once_per_commit_and_the_kept_check_is_reused(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, lambda *a: xnli_records(*a, collapse={"none+none"}))
    store = store_of(plan)
    first = build_report(collect(plan, store, predictions=False), bootstrap=0)
    entries = index_entries(plan)
    assert all(e["verified"]["xnli"]["recomputed"].keys() == {"en", "de"} and len(e["stamp"]) == 64
               for e in entries.values())

    drop_predictions(plan)  # from now on a report that reads any prediction record warns about it
    second = build_report(collect(plan, store, predictions=False), bootstrap=0)
    assert second.warnings == first.warnings and not any("no predictions/" in w for w in second.warnings)
    assert render(second, "json") == render(first, "json")
    assert cells(second)[("none+none", "xnli")].degenerate  # the degenerate mark is kept with the check

    # A new commit of one stage (new marker) is checked from its records again: they are gone now.
    victim = plan.cells[("mnli+cs", 1, "xnli")]
    recommit(plan, victim, "second")
    third = collect(plan, store, predictions=False)
    missing = [w for w in third.warnings if "no predictions/" in w]
    assert missing and all(w.startswith(f"stage {victim}:") for w in missing)
    assert "stamp" not in index_entries(plan)[victim]  # its new entry: nothing complete was found to keep

    # Reading the index from scratch (cached=False) keeps nothing and trusts nothing kept.
    direct = collect(plan, store, predictions=False, cached=False)
    assert sum("no predictions/" in w for w in direct.warnings) == 2 * len(set(plan.cells.values()))


def test_a_tampered_index_entry_is_checked_again_and_caught(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, xnli_records)
    store = store_of(plan)
    collect(plan, store, predictions=False)  # every cell checked, the check kept
    key = plan.cells[("mnli+cs", 1, "xnli")]

    def shift(entry: dict[str, Any], *, kept_too: bool) -> None:  # plausible: the headline stays the mean
        task = entry["metrics"]["tasks"]["xnli"]
        task["languages"]["de"]["f1"] += 5.0
        task["headline"] = float(np.mean([m["f1"] for m in task["languages"].values()]))
        if kept_too:  # the kept recomputation changed to agree, the stamp left as it was
            entry["verified"]["xnli"]["recomputed"]["de"] += 5.0

    original = shard_of(plan, key).read_text()
    for kept_too in (False, True):
        shard_of(plan, key).write_text(original)
        edit_entry(plan, key, lambda e: shift(e, kept_too=kept_too))
        report = build_report(collect(plan, store, predictions=False), bootstrap=0)
        assert cells(report)[("mnli+cs", "xnli")].text() == "invalid (1/2 seeds)", kept_too
        assert any(w.startswith(f"stage {key}: xnli de: f1 is") and "recomputed from its prediction records" in w
                   for w in report.warnings), report.warnings
        assert sum("invalid" in w for w in report.warnings) == 1

    # The same entry with a stamp that does not bind it (a stamp copied from another cell) is no better.
    donor = plan.cells[("none+none", 1, "xnli")]
    shard_of(plan, key).write_text(original)
    edit_entry(plan, key, lambda e: (shift(e, kept_too=True), e.update(stamp=index_entries(plan)[donor]["stamp"])))
    report = build_report(collect(plan, store, predictions=False), bootstrap=0)
    assert cells(report)[("mnli+cs", "xnli")].state == "invalid"


def test_a_wrong_metrics_json_is_caught_at_the_first_check_and_stays_caught(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, xnli_records)
    path = stage_dir(plan, "mnli+cs", 1, "xnli") / "metrics.json"
    rewrite_metrics(path, lambda m: m["tasks"]["xnli"]["languages"]["en"].update(f1=99.0))
    rewrite_metrics(path, lambda m: m["tasks"]["xnli"].update(headline=float(np.mean(
        [v["f1"] for v in m["tasks"]["xnli"]["languages"].values()]))))
    store = store_of(plan)
    for _ in range(2):  # the first report checks from the records; the second from what it kept
        report = build_report(collect(plan, store, predictions=False), bootstrap=0)
        assert cells(report)[("mnli+cs", "xnli")].state == "invalid"
        assert any("en: f1 is 99.0000 in metrics.json" in w for w in report.warnings)
        drop_predictions(plan)


def test_the_loop_checks_a_backlog_of_cells_a_few_per_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop started on a store full of unchecked cells keeps passing (and submitting) while it
    works through them: each pass checks at most CHECKS_PER_PASS cells."""
    from xtrc import orchestrate
    from xtrc.results_index import ResultsIndex

    plan = make_plan(tmp_path, ["xnli"], {"xnli": ["en", "de"]})
    write_store(plan, xnli_records)
    store = store_of(plan)
    index = ResultsIndex(store, plan.experiment.metadata.name)
    done = {key: marker for key, marker in store.done_markers().items() if key in set(plan.cells.values())}
    monkeypatch.setattr(orchestrate, "CHECKS_PER_PASS", 2)
    checked: dict[str, str] = {}
    passes = []
    while len(checked) < len(done):
        new = orchestrate._check_new_cells(plan, store, index, done, checked)
        assert 0 < len(new) <= 2
        checked.update(new)
        passes.append(new)
    assert len(passes) == -(-len(done) // 2) and len(done) > 2
    index.save()
    assert all("stamp" in entry for entry in index_entries(plan).values())
