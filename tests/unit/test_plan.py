from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import pytest
import yaml

from xtrc import protocol, tasks
from xtrc.cli import main
from xtrc.loader import load, load_text
from xtrc.plan import Plan, build
from xtrc.spec import Experiment
from xtrc.stage import RUNTIME_MAJOR, StageConfig, compute_key

from tests.fakehub import FakeHub, Served


@pytest.fixture(autouse=True)
def _reachable_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The shipped specs read hub data: their plan resolves its revisions (offline it exits 1),
    here against a local fake hub that knows every repository."""
    served = Served(FakeHub(any_repo=True))
    monkeypatch.setenv("HF_ENDPOINT", served.endpoint)
    yield
    served.close()


SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"
SPEC_NAMES = ("smoke", "combined", "phang2020")
HEAVY = ("torch", "transformers", "datasets")


@pytest.fixture(autouse=True)
def _no_store_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XTRC_STORE", raising=False)


def _spec_path(name: str) -> Path:
    return SPECS_DIR / f"{name}.yaml"


def _plan(name: str) -> Plan:
    return build(load(_spec_path(name)))


def _variant(name: str, mutate: Callable[[dict[str, Any]], None]) -> Experiment:
    spec = yaml.safe_load(_spec_path(name).read_text(encoding="utf-8"))
    mutate(spec)
    return load_text(yaml.safe_dump(spec), f"{name}-variant.yaml")


def _keys(plan: Plan, kind: str | None = None) -> list[str]:
    return [k for k, s in plan.stages.items() if kind is None or s.kind == kind]


def _payload(stage: StageConfig) -> dict[str, Any]:
    payload: Any = stage.key_payload()
    parsed: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
    return parsed


def _targets(exp: Experiment) -> list[str]:
    return tasks.expand(exp.targets)


def _cell_stage(plan: Plan, arm: str, seed: int, task: str) -> StageConfig:
    return plan.stages[plan.cells[(arm, seed, task)]]


def test_phang2020_needs_the_minimum_number_of_stages() -> None:
    exp = load(_spec_path("phang2020"))
    english_training = {"xnli": "mnli", "pawsx": "pawsx", "udpos": "udpos", "panx": "panx",
                        "xquad": "squad", "mlqa": "squad", "tydiqa": "tydiqa"}
    retrieval = {"bucc", "tatoeba"}
    assert set(_targets(exp)) == set(english_training) | retrieval
    assert [level.name for level in exp.factors.intermediate if level.is_none] == ["none"]
    assert [level.name for level in exp.factors.augmentation] == ["none"]
    levels = sum(1 for level in exp.factors.intermediate if not level.is_none)
    seeds = len(exp.seeds)
    groups = len(set(english_training.values()))
    assert (levels, seeds, groups) == (10, 1, 6)

    # intermediate: 10 levels (9 tasks + all9) x 1 seed                          = 10
    # target:       11 checkpoints (base + 10) x 1 seed x 6 English training sets = 66
    #               (xnli, pawsx, udpos, panx, xquad+mlqa on SQuAD, tydiqa)
    # retrieval:    2 tasks x (1 base model, no seed + 10 levels x 1 seed)        = 22
    expected = {
        "intermediate": levels * seeds,
        "target": (1 + levels) * seeds * groups,
        "retrieval": len(retrieval) * (1 + levels * seeds),
    }
    assert expected == {"intermediate": 10, "target": 66, "retrieval": 22}

    plan = build(exp)
    assert plan.count_by_kind() == expected
    assert len(plan.stages) == 98
    # a per-arm pipeline: 10 intermediates + 11 arms x 1 seed x 9 targets = 109
    assert plan.naive_stage_count == 109

    three = build(exp.model_copy(update={"seeds": [1, 2, 3]}))
    # intermediate: 10 x 3 = 30; target: 11 x 3 x 6 = 198; retrieval: 2 x (1 + 10 x 3) = 62
    assert three.count_by_kind() == {"intermediate": 30, "target": 198, "retrieval": 62}
    assert len(three.stages) == 290
    # 30 intermediates + 11 arms x 3 seeds x 9 targets = 327
    assert three.naive_stage_count == 327
    assert set(plan.stages) <= set(three.stages)


def _minimum(exp: Experiment, english_training: dict[str, str], from_squad: set[str]) -> dict[str, int]:
    """Stage counts when every target trains (XTREME-R's protocol): retrieval targets in
    ``from_squad`` are scored from each arm's SQuAD stage, so once per arm and seed."""
    assert set(_targets(exp)) == set(english_training) | from_squad
    assert [lv.name for lv in exp.factors.intermediate if lv.is_none] == ["none"]
    assert all(lv.is_none or lv.apply_to == "target" for lv in exp.factors.augmentation)
    levels = sum(1 for lv in exp.factors.intermediate if not lv.is_none)
    augmentations = len(exp.factors.augmentation)
    seeds = len(exp.seeds)
    groups = len(set(english_training.values()))
    return {
        "intermediate": levels * seeds,
        "target": (1 + levels) * augmentations * seeds * groups,
        "retrieval": len(from_squad) * (1 + levels) * augmentations * seeds,
    }


def test_smoke_stage_counts() -> None:
    exp = load(_spec_path("smoke"))
    expected = _minimum(exp, {"xnli": "mnli", "panx": "panx", "xquad": "squad"}, {"tatoeba"})
    # intermediate: 1 level (mnli) x 2 seeds; code-switching is target-only, so both aug arms share it = 2
    # target: 2 checkpoints x 2 aug levels x 2 seeds x 3 training sets (mnli for xnli, panx, squad for xquad) = 24
    # retrieval: tatoeba from each arm's SQuAD model (XTREME-R's run_tatoeba.sh): 2 x 2 x 2 seeds = 8
    assert expected == {"intermediate": 2, "target": 24, "retrieval": 8}
    plan = build(exp)
    assert plan.count_by_kind() == expected
    # naive: 2 intermediate arms x 2 seeds + 4 arms x 2 seeds x 4 targets = 4 + 32 = 36
    assert plan.naive_stage_count == 36


def test_combined_stage_counts() -> None:
    exp = load(_spec_path("combined"))
    # Mewsli-X and LAReQA train dual encoders (on mention-entity pairs and on SQuAD): LAReQA
    # trains on SQuAD like XQuAD/MLQA but with another objective, so it is a group of its own.
    english_training = {"xnli": "mnli", "xcopa": "siqa+copa", "udpos": "udpos", "panx": "panx",
                        "xquad": "squad", "mlqa": "squad", "tydiqa": "tydiqa", "mewslix": "mewslix",
                        "lareqa": "squad-dual"}
    expected = _minimum(exp, english_training, {"tatoeba"})
    # intermediate: 1 level (phang9 multi-task) x 3 seeds = 3
    # target: 2 checkpoints x 2 aug levels x 3 seeds x 8 training sets
    #         (mnli, siqa+copa, udpos, panx, squad for xquad+mlqa, tydiqa, mewslix, squad dual) = 96
    # retrieval: tatoeba x 2 checkpoints x 2 aug levels x 3 seeds = 12
    assert expected == {"intermediate": 3, "target": 96, "retrieval": 12}
    plan = build(exp)
    assert plan.count_by_kind() == expected
    assert len(plan.stages) == 111
    # naive: 2 intermediate arms x 3 seeds + 4 arms x 3 seeds x 10 targets = 6 + 120 = 126
    assert plan.naive_stage_count == 126


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_dag_order_upstreams_and_cells(name: str) -> None:
    plan = _plan(name)
    exp = plan.experiment
    targets = _targets(exp)
    order = {key: i for i, key in enumerate(plan.stages)}
    for key, stage in plan.stages.items():
        assert stage.key == key
        for up in stage.upstream:
            assert up in plan.stages
            assert order[up] < order[key]
            # a retrieval stage scored from the SQuAD model starts from that target stage
            assert plan.stages[up].kind == "intermediate" or (
                stage.kind == "retrieval" and plan.stages[up].save_model)
        if stage.kind == "intermediate":
            assert stage.upstream == ()
            assert stage.seed in exp.seeds
        if stage.kind == "retrieval":
            assert stage.seed is None and stage.train_tasks == ()

    assert set(plan.cells) == {(arm.name, seed, task)
                               for arm, seed, task in itertools.product(plan.arms, exp.seeds, targets)}
    used_intermediates: set[str] = set()
    for arm, seed in itertools.product(plan.arms, exp.seeds):
        intermediates = [k for k, s in plan.stages.items()
                         if s.kind == "intermediate" and s.seed == seed and arm.name in plan.arms_by_stage[k]]
        if arm.intermediate.is_none:
            assert intermediates == []
        else:
            assert len(intermediates) == 1
            assert plan.stages[intermediates[0]].train_tasks == tuple(tasks.expand(arm.intermediate.tasks))
        for task in targets:
            key = plan.cells[(arm.name, seed, task)]
            stage = plan.stages[key]
            assert arm.name in plan.arms_by_stage[key]
            assert task in [e.task for e in stage.eval_tasks]
            rule = protocol.for_target(exp.benchmark, task)
            assert stage.kind == rule.stage
            if stage.kind == "target" or rule.init == "arm":
                assert stage.upstream == tuple(intermediates)
            else:
                [squad] = stage.upstream
                assert plan.stages[squad].train_tasks == ("squad",) and plan.stages[squad].save_model
                assert plan.stages[squad].seed == seed and plan.stages[squad].upstream == tuple(intermediates)
            if stage.kind == "target":
                assert stage.seed == seed
        used_intermediates.update(intermediates)
    assert used_intermediates == set(_keys(plan, "intermediate"))
    assert set(plan.cells.values()) == set(_keys(plan, "target")) | set(_keys(plan, "retrieval"))


def test_changing_salt_changes_every_key() -> None:
    before = _plan("smoke")
    after = build(_variant("smoke", lambda d: d.update(salt="rerun-1")))
    assert len(after.stages) == len(before.stages)
    assert set(after.stages).isdisjoint(before.stages)


def test_store_does_not_change_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(_spec_path("combined"))
    assert main(["plan", spec, "--json", "--no-store"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["plan", spec, "--json", "--no-store", "--store", str(tmp_path)]) == 0
    moved = json.loads(capsys.readouterr().out)
    assert default["store"] != moved["store"]
    assert [row["key"] for row in moved["dag"]] == [row["key"] for row in default["dag"]]

    before = _plan("combined")
    after = build(_variant("combined", lambda d: d["storage"].update(uri="memory://elsewhere", options={})))
    assert list(after.stages) == list(before.stages)
    assert {s.store for s in after.stages.values()} == {"memory://elsewhere"}


def test_compute_does_not_change_keys() -> None:
    before = _plan("combined")

    def more(d: dict[str, Any]) -> None:
        d["compute"].update(gpus=2, memory="128Gi", queue="team-b", cpu="16", max_parallel=4, retries=1)

    def unqueued(d: dict[str, Any]) -> None:
        d["compute"].update(gpus=0)
        del d["compute"]["queue"]

    for mutate in (more, unqueued):
        after = build(_variant("combined", mutate))
        assert list(after.stages) == list(before.stages)


def test_learning_rate_changes_targets_not_base_retrieval() -> None:
    before = _plan("smoke")
    after = build(_variant("smoke", lambda d: d["training"]["defaults"].update(learning_rate=2.0e-3)))
    assert set(_keys(after, "target")).isdisjoint(_keys(before, "target"))
    assert len(_keys(after, "target")) == len(_keys(before, "target"))
    # tatoeba is scored from the SQuAD model (XTREME-R), a target stage: it changes too
    assert set(_keys(after, "retrieval")).isdisjoint(_keys(before, "retrieval"))
    xtreme = build(_variant("smoke", lambda d: d.update(benchmark="xtreme")))
    xtreme_after = build(_variant("smoke", lambda d: (d.update(benchmark="xtreme"),
                                                      d["training"]["defaults"].update(learning_rate=2.0e-3))))
    # under XTREME's protocol tatoeba is scored from the base model: that stage stays
    base_retrieval = [k for k in _keys(xtreme, "retrieval") if not xtreme.stages[k].upstream]
    assert len(base_retrieval) == 1
    assert set(base_retrieval) <= set(xtreme_after.stages)


def test_checkpoint_frequency_does_not_change_keys() -> None:
    before = _plan("smoke")
    after = build(_variant("smoke", lambda d: d["training"]["defaults"].update(
        checkpoint_every_steps=50, checkpoint_every_minutes=5)))
    assert list(after.stages) == list(before.stages)
    trained = [s for s in after.stages.values() if s.kind != "retrieval"]
    assert trained and all(s.hparams.checkpoint_every_steps == 50 for s in trained)


def test_target_only_augmentation_leaves_intermediates_alone() -> None:
    before = _plan("smoke")

    def weaker(d: dict[str, Any]) -> None:
        [cs] = [lv for lv in d["factors"]["augmentation"] if isinstance(lv, dict)]
        cs["code_switch"]["word_prob"] = 0.25

    after = build(_variant("smoke", weaker))
    assert _keys(after, "intermediate") == _keys(before, "intermediate")
    exp = before.experiment
    # tatoeba responds to the augmentation through the arm's SQuAD model
    for arm, seed, task in itertools.product(before.arms, exp.seeds, ("xnli", "panx", "xquad", "tatoeba")):
        old, new = before.cells[(arm.name, seed, task)], after.cells[(arm.name, seed, task)]
        if arm.augmentation.name == "cs":
            assert old != new
        else:
            assert old == new


def _hub_model(d: dict[str, Any]) -> None:
    d["model"] = "FacebookAI/xlm-roberta-base"


def test_adding_a_target_keeps_other_keys_unless_it_merges() -> None:
    # A pretrained model's stages do not depend on the other targets (the built-in model's do:
    # its tokenizer learns from the experiment's text, see the next test).
    before = build(_variant("smoke", _hub_model))
    with_pawsx = build(_variant("smoke", lambda d: (_hub_model(d), d["targets"].append("pawsx"))))
    assert set(before.stages) < set(with_pawsx.stages)
    assert len(with_pawsx.stages) == len(before.stages) + len(before.arms) * len(before.experiment.seeds)

    with_mlqa = build(_variant("smoke", lambda d: (_hub_model(d), d["targets"].append("mlqa"))))
    assert len(with_mlqa.stages) == len(before.stages)
    for arm, seed in itertools.product(before.arms, before.experiment.seeds):
        cell = (arm.name, seed)
        # xquad and mlqa both train on SQuAD: one stage trains once and evaluates both, so its key changes.
        assert with_mlqa.cells[(*cell, "xquad")] != before.cells[(*cell, "xquad")]
        assert with_mlqa.cells[(*cell, "xquad")] == with_mlqa.cells[(*cell, "mlqa")]
        for task in ("xnli", "panx"):
            assert with_mlqa.cells[(*cell, task)] == before.cells[(*cell, task)]
        # tatoeba is scored from that SQuAD stage's model, so it follows it
        tatoeba = with_mlqa.stages[with_mlqa.cells[(*cell, "tatoeba")]]
        assert tatoeba.upstream == (with_mlqa.cells[(*cell, "xquad")],)
    assert _keys(with_mlqa, "intermediate") == _keys(before, "intermediate")


def test_builtin_model_stages_share_one_tokenizer_corpus() -> None:
    """Every stage that starts from the built-in model trains its tokenizer on the same text (the
    experiment's tasks and languages), so every arm starts from the same base model; stages that
    start from a checkpoint take its tokenizer and name no corpus."""
    plan = _plan("smoke")
    base = [s for s in plan.stages.values() if s.init_from is None]
    corpora = {s.tokenizer_corpus for s in base}
    assert len(corpora) == 1
    corpus = corpora.pop()
    assert ("mnli", "en", "train") in corpus and ("squad", "en", "train") in corpus
    assert ("xnli", "ru", "test") in corpus and ("tatoeba", "de", "test") in corpus
    assert all(task in {"mnli", "squad", "panx", "xnli", "xquad", "tatoeba"} for task, _, _ in corpus)
    assert all(s.tokenizer_corpus == () for s in plan.stages.values() if s.init_from is not None)
    with_pawsx = build(_variant("smoke", lambda d: d["targets"].append("pawsx")))
    assert ("pawsx", "de", "test") in next(iter(with_pawsx.stages.values())).tokenizer_corpus
    hub = build(_variant("smoke", _hub_model))
    assert all(s.tokenizer_corpus == () for s in hub.stages.values())


def test_identical_stages_in_different_experiments_share_keys() -> None:
    smoke = _plan("smoke")
    renamed = build(_variant("smoke", lambda d: d["metadata"].update(name="smoke-copy", description="other")))
    assert list(renamed.stages) == list(smoke.stages)

    phang = _plan("phang2020")
    subset = build(_variant("phang2020", lambda d: (d["metadata"].update(name="mnli-only"),
                                                    d["factors"].update(intermediate=["none", "mnli"]))))
    assert subset.count_by_kind() == {"intermediate": 1, "target": 12, "retrieval": 4}
    assert set(subset.stages) <= set(phang.stages)


def test_keys_are_content_hashes_with_the_runtime_major_version() -> None:
    plan = _plan("smoke")
    again = _plan("smoke")
    assert list(again.stages) == list(plan.stages)
    for key, stage in plan.stages.items():
        payload = _payload(stage)
        assert payload["runtime_major"] == RUNTIME_MAJOR
        assert "store" not in payload and "storage_options" not in payload and "key" not in payload
        assert compute_key(stage.key_payload()) == key
        bumped = stage.model_copy(update={"runtime_major": RUNTIME_MAJOR + 1}).with_key()
        assert bumped.key != key


@pytest.mark.parametrize("name", ("combined", "phang2020"))
def test_cli_plan_json_without_store(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(_spec_path(name)), "--json", "--no-store"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    plan = _plan(name)
    assert summary["experiment"] == name
    assert summary["stages"]["total"] == len(plan.stages)
    assert summary["stages"]["by_kind"] == plan.count_by_kind()
    assert summary["stages"]["done"] is None
    assert summary["stages"]["to_run"] == len(plan.stages)
    assert summary["stages"]["naive_per_arm"] == plan.naive_stage_count
    assert [row["key"] for row in summary["dag"]] == list(plan.stages)
    assert summary["gpu_hours"]["remaining"] == summary["gpu_hours"]["total"] > 0


def test_cli_plan_counts_done_stages_in_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan("combined")
    done = [_keys(plan, "intermediate")[0], _keys(plan, "target")[0]]
    for key in (*done, "0" * 20):
        (tmp_path / "stages" / key).mkdir(parents=True)
        (tmp_path / "stages" / key / "_SUCCESS").write_bytes(b"")
    (tmp_path / "stages" / _keys(plan, "retrieval")[0]).mkdir()

    assert main(["plan", str(_spec_path("combined")), "--json", "--store", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "cannot read store" not in captured.err  # (offline: the S3 data paths only give provisional-key warnings)
    summary = json.loads(captured.out)
    total = len(plan.stages)
    assert summary["stages"]["total"] == total
    assert summary["stages"]["done"] == 2
    assert summary["stages"]["to_run"] == total - 2
    assert summary["stages"]["to_run_by_kind"] == {"intermediate": 2, "target": 95, "retrieval": 12}
    assert {row["key"] for row in summary["dag"] if row["done"]} == set(done)
    assert 0 < summary["gpu_hours"]["remaining"] < summary["gpu_hours"]["total"]


def _tripwires(tmp_path: Path) -> Path:
    stubs = tmp_path / "tripwires"
    stubs.mkdir()
    for module in HEAVY:
        (stubs / f"{module}.py").write_text("", encoding="utf-8")
    return stubs


_CHILD = """
import contextlib, io, json, sys
from xtrc.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as exc:
        rc = exc.code
bad = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]
print(json.dumps({"rc": rc, "bad": bad}))
"""


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["validate", *(str(_spec_path(n)) for n in SPEC_NAMES)],
    ["plan", str(_spec_path("combined")), "--no-store"],
    ["plan", str(_spec_path("smoke")), "--json", "--store", "{tmp}"],
    ["render", str(_spec_path("combined"))],
], ids=["help", "validate", "plan", "plan-store", "render"])
def test_light_commands_never_import_heavy_modules(argv: list[str], tmp_path: Path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path / "store")) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(_tripwires(tmp_path))}
    env.pop("XTRC_STORE", None)
    result = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"rc": 0, "bad": []}


def test_cli_schema_is_a_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"apiVersion", "metadata", "factors", "targets", "compute"} <= set(schema["properties"])
    assert {"apiVersion", "kind", "metadata", "storage", "targets"} <= set(schema["required"])


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_shipped_specs_validate_against_the_schema(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    spec = yaml.safe_load(_spec_path(name).read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(spec)]
    assert errors == []


def test_shipped_schema_file_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert (SPECS_DIR / "xtrc.schema.json").read_text() == capsys.readouterr().out
