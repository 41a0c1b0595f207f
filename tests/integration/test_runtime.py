"""The training runtime for real: the built-in tiny model trained on generated fixtures, a local
``file://`` store, and the `xtrc-runtime` CLI.

Stages come from specs planned by the control plane (``xtrc.plan.build``), so the configs are
exactly what a Job would receive. Most stages run through the CLI's ``main`` in this process (one
torch import for the module instead of one per stage); killing and resuming, exit statuses and
`xtrc-runtime score` run as real subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from xtrc import loader, plan as planner, tasks  # noqa: E402
from xtrc.stage import StageConfig  # noqa: E402
from xtrc_runtime import cli  # noqa: E402
from xtrc_runtime.fixtures import Sizes, generate  # noqa: E402

pytestmark = pytest.mark.integration

FIXTURE_TASKS = ("mnli", "xnli", "siqa", "copa", "xcopa", "panx", "udpos", "squad", "xquad", "mlqa", "tydiqa",
                 "tatoeba", "bucc", "mewslix", "lareqa")
# English is always generated; zh and it are XCOPA languages, ru is a TyDiQA language.
FIXTURE_LANGUAGES = ("en", "de", "ru", "zh", "it")
SIZES = Sizes(train=160, dev=40, test=40)
STEP_LINE = re.compile(r"step (\d+)/(\d+)\s+loss ([0-9.]+)")
CHECKPOINT_LINE = re.compile(r"checkpoint at step (\d+)")
TMP_SUFFIX = re.compile(r"\.tmp-[0-9a-f]{8}$")
CHECKPOINT_FILES = {"model.pt", "optim.pt", "rng.pt", "position.json"}
MODEL_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "heads.json"}
SUBPROCESS_TIMEOUT = 300


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    generate(str(root), tasks=FIXTURE_TASKS, languages=FIXTURE_LANGUAGES, sizes=SIZES, seed=0)
    return root / "data"


def make_plan(store: Path, data_root: Path, *, targets: list[str], languages: dict[str, list[str]],
              intermediate: list[str] | None = None, seed: int = 1, benchmark: str = "xtreme-r",
              **overrides: Any) -> planner.Plan:
    """A spec for the tiny model on the fixtures, planned as `xtrc plan` would plan it."""
    defaults: dict[str, Any] = {
        "learning_rate": 1.0e-3, "batch_size": 16, "grad_accum": 1, "epochs": 10, "max_seq_length": 64,
        "doc_stride": 32, "warmup_ratio": 0.1, "weight_decay": 0.0, "precision": "fp32",
        "eval_every_steps": 20, "checkpoint_every_steps": 1000,
    }
    defaults.update(overrides)
    spec: dict[str, Any] = {
        "apiVersion": "xtrc.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "runtime-it"},
        "model": "builtin:tiny-xlmr",
        "storage": {"uri": f"file://{store}"},
        "seeds": [seed],
        "benchmark": benchmark,
        "targets": targets,
        "languages": languages,
        "training": {"defaults": defaults},
        "data": {"root": str(data_root)},
        "compute": {"gpus": 0},
    }
    if intermediate is not None:
        spec["factors"] = {"intermediate": intermediate}
    return planner.build(loader.load_text(json.dumps(spec), "runtime-it.yaml"))  # JSON is YAML


def only_stage(plan: planner.Plan, kind: str) -> StageConfig:
    stages = [s for s in plan.stages.values() if s.kind == kind]
    assert len(stages) == 1, [(s.kind, s.train_tasks, s.eval_tasks) for s in plan.stages.values()]
    return stages[0]


@dataclass
class Run:
    rc: int
    log: str
    stdout: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_stage(config: StageConfig | str) -> Run:
    """`xtrc-runtime run-stage --config JSON` through the CLI's main, in this process."""
    payload = config if isinstance(config, str) else config.to_json()
    logger = logging.getLogger("xtrc_runtime")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = cli.main(["run-stage", "--config", payload])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return Run(rc, stream.getvalue(), out.getvalue())


def runtime_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("xtrc-runtime")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "xtrc_runtime.cli", *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XTRC_DEBUG", None)  # a traceback instead of an exit status would defeat the point
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(runtime_command(*args), capture_output=True, text=True, env=subprocess_env(),
                          timeout=SUBPROCESS_TIMEOUT)


def stage_dir(config: StageConfig) -> Path:
    assert config.store.startswith("file://")
    return Path(config.store.removeprefix("file://")) / "stages" / config.key


def progress(log: str) -> list[list[tuple[int, int, float]]]:
    """The progress lines ``step N/M  loss X``, split into training phases."""
    phases: list[list[tuple[int, int, float]]] = []
    for m in STEP_LINE.finditer(log):
        step, total, loss = int(m.group(1)), int(m.group(2)), float(m.group(3))
        if not phases or step <= phases[-1][-1][0]:
            phases.append([])
        phases[-1].append((step, total, loss))
    return phases


def assert_loss_falls(phase: list[tuple[int, int, float]]) -> None:
    assert len(phase) >= 5, phase
    assert phase[-1][0] == phase[-1][1], f"the phase did not finish: {phase}"
    first = phase[0][2]
    last = [loss for _, _, loss in phase[-3:]]
    assert sum(last) / len(last) < first, f"loss did not fall: {phase}"


def expected_records(data_root: Path, task: str, language: str) -> int:
    """How many test examples the runtime should score for ``task`` in ``language``."""
    if task == "lareqa":
        path = data_root / task / language / "questions.jsonl"
    else:
        path = data_root / task / language / "test.jsonl"
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def check_outputs(config: StageConfig, data_root: Path) -> dict[str, Any]:
    """The store holds everything a done stage promises; returns metrics.json."""
    base = stage_dir(config)
    assert (base / "_SUCCESS").is_file()
    stage_json = json.loads((base / "stage.json").read_text())
    assert stage_json["key"] == config.key
    assert stage_json == json.loads(config.model_dump_json(exclude={"storage_options"}))
    metrics = json.loads((base / "metrics.json").read_text())
    assert metrics["key"] == config.key and metrics["kind"] == config.kind and metrics["status"] == "done"
    # Outputs a reader trusts are complete (a kill mid-checkpoint may leave garbage under checkpoints/).
    trusted = [p for p in base.rglob("*") if "checkpoints" not in p.relative_to(base).parts]
    assert not [p for p in trusted if TMP_SUFFIX.search(p.name)], "a temporary file was left behind"
    for ev in config.eval_tasks:
        info = tasks.TASKS[ev.task]
        summary = metrics["tasks"][ev.task]
        assert set(summary["languages"]) == set(ev.languages)
        for language in ev.languages:
            values = summary["languages"][language]
            for name in info.metrics:
                assert name in values, (ev.task, language, values)
                assert 0.0 <= values[name] <= 100.0, (ev.task, language, name, values[name])
            records = [json.loads(line) for line in
                       (base / "predictions" / ev.task / f"{language}.jsonl").read_text().splitlines()]
            assert len(records) == expected_records(data_root, ev.task, language)
            assert len({r["id"] for r in records}) == len(records)
            # Per-example scores, or (tp, predicted, gold) counts where the metric is not a mean of
            # per-example values (tagging's entity F1, BUCC's pair F1).
            counted = info.type == "tagging" or ev.task == "bucc"
            for r in records:
                assert {"id", "prediction", "gold"} <= set(r), r
                if info.type == "tagging":
                    assert len(r["prediction"]) == len(r["gold"])
                if counted:
                    assert len(r["counts"]) == 3 and all(isinstance(c, int) and c >= 0 for c in r["counts"]), r
                else:
                    assert r["scores"] and all(0.0 <= v <= 100.0 for v in r["scores"].values()), r
            # Aggregates that are means of per-example scores can be rebuilt from the records.
            for name in ("accuracy", "exact_match", "mrr@20", "map@20") + (("f1",) if info.type == "qa" else ()):
                if name in values and name in records[0].get("scores", {}):
                    mean = sum(r["scores"][name] for r in records) / len(records)
                    assert values[name] == pytest.approx(mean), (ev.task, language, name)
            if counted:  # micro precision and recall from the summed counts
                tp, n_pred, n_gold = (sum(r["counts"][i] for r in records) for i in range(3))
                assert values["precision"] == pytest.approx(100 * tp / n_pred if n_pred else 0.0)
                assert values["recall"] == pytest.approx(100 * tp / n_gold)
        assert 0.0 <= summary["headline"] <= 100.0
    if config.eval_tasks:  # the last progress record is evaluation's: every language scored, how many examples
        progress_record = json.loads((base / "progress.json").read_text())
        languages = sum(len(ev.languages) for ev in config.eval_tasks)
        assert progress_record["state"] == "evaluating", progress_record
        assert progress_record["languages_done"] == progress_record["languages_total"] == languages
        assert progress_record["examples"] == sum(expected_records(data_root, ev.task, lang)
                                                  for ev in config.eval_tasks for lang in ev.languages)
    return metrics


# --- 1. one real training run per task type ---------------------------------------------------

TARGETS: dict[str, dict[str, Any]] = {
    # classification: trains on MNLI, evaluates XNLI
    "xnli": {"targets": ["xnli"], "languages": {"xnli": ["en", "de"]}, "phases": 1},
    # multiple choice: SIQA, then COPA, one head; evaluates XCOPA
    # (the tiny model needs a larger step to pick up the choice-context pairs)
    "xcopa": {"targets": ["xcopa"], "languages": {"xcopa": ["zh", "it"]}, "phases": 2, "learning_rate": 3.0e-3},
    "panx": {"targets": ["panx"], "languages": {"panx": ["en", "de"]}, "phases": 1},
    "udpos": {"targets": ["udpos"], "languages": {"udpos": ["en", "de"]}, "phases": 1, "epochs": 6},
    # QA: XQuAD and MLQA both train on SQuAD with the same settings, so they share one stage
    "xquad": {"targets": ["xquad", "mlqa"], "languages": {"xquad": ["en", "de"], "mlqa": ["en", "de"]},
              "phases": 1, "epochs": 6},
    "tydiqa": {"targets": ["tydiqa"], "languages": {"tydiqa": ["en", "ru"]}, "phases": 1, "epochs": 6},
}
# Better than chance (XNLI: 33 % accuracy) or than tagging everything O (F1 0) in English.
BEATS_CHANCE = {"xnli": ("accuracy", 60.0), "panx": ("f1", 50.0), "udpos": ("f1", 50.0)}


@contextlib.contextmanager
def watched_progress(path: Path) -> Any:
    """Every distinct progress record seen at ``path`` (read every few milliseconds) while the block runs."""
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                record = None
            if record is not None and (not seen or record != seen[-1]):
                seen.append(record)
            stop.wait(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_stage_trains_and_evaluates(name: str, data_root: Path, tmp_path: Path) -> None:
    case = TARGETS[name]
    plan = make_plan(tmp_path / "store", data_root, targets=case["targets"], languages=case["languages"],
                     epochs=case.get("epochs", 10), learning_rate=case.get("learning_rate", 1.0e-3))
    config = only_stage(plan, "target")
    assert [ev.task for ev in config.eval_tasks] == case["targets"]

    with watched_progress(stage_dir(config) / "progress.json") as records:
        run = run_stage(config)
    evaluations_seen = [r for r in records if r.get("state") == "evaluating"]
    assert run.rc == 0, run.log
    assert run.summary["status"] == "done"

    phases = progress(run.log)
    assert len(phases) == case["phases"], run.log
    if name == "xnli":  # what `xtrc status` and the live view show, read through the store
        from xtrc.live import progress_text, read_progress
        from xtrc.store import Store

        assert progress_text(read_progress(Store(config.store), config.key)) == \
            f"eval done (2/2 languages, {2 * SIZES.test} examples)"
        # training's records, then evaluation's: one as each language starts, one when all are scored
        assert records[0].get("state") == "training" and records[-1] == evaluations_seen[-1], records
        [languages] = [ev.languages for ev in config.eval_tasks]
        written = [*((lang, i) for i, lang in enumerate(languages)), (languages[-1], len(languages))]
        seen = [(r["language"], r["languages_done"]) for r in evaluations_seen]
        assert seen[-1] == written[-1] and all(x in written for x in seen) and seen == sorted(seen, key=written.index)
    for phase in phases:  # XCOPA: SIQA's loss falls, then COPA's
        assert_loss_falls(phase)
    metrics = check_outputs(config, data_root)
    train = metrics["train"]
    assert train["steps"] == sum(p[-1][1] for p in phases)
    assert train["examples"] == {t: SIZES.train for t in config.train_tasks}
    if name in BEATS_CHANCE:
        metric, floor = BEATS_CHANCE[name]
        english = metrics["tasks"][name]["languages"]["en"][metric]
        assert english > floor, (name, metrics["tasks"][name]["languages"])


def test_retrieval_stages_from_the_base_model(data_root: Path, tmp_path: Path) -> None:
    # XTREME's protocol: Tatoeba and BUCC are scored from the pretrained model
    languages = {"tatoeba": ["de", "ru"], "bucc": ["de", "ru"]}
    plan = make_plan(tmp_path / "store", data_root, targets=list(languages), languages=languages, benchmark="xtreme")
    assert plan.count_by_kind() == {"intermediate": 0, "target": 0, "retrieval": 2}
    for config in plan.stages.values():
        assert config.init_from is None and not config.train_tasks
        run = run_stage(config)
        assert run.rc == 0, run.log
        assert not progress(run.log), "a retrieval stage does not train"
        metrics = check_outputs(config, data_root)
        assert "train" not in metrics
        assert not (stage_dir(config) / "checkpoints").exists()


def test_xtreme_r_trains_dual_encoders_and_scores_tatoeba_from_the_squad_model(data_root: Path,
                                                                              tmp_path: Path) -> None:
    languages = {"xquad": ["en", "de"], "tatoeba": ["de", "ru"], "mewslix": ["en", "de"], "lareqa": ["en", "de"]}
    plan = make_plan(tmp_path / "store", data_root, targets=list(languages), languages=languages, epochs=4)
    assert plan.count_by_kind() == {"intermediate": 0, "target": 3, "retrieval": 1}
    by_task = {ev.task: s for s in plan.stages.values() for ev in s.eval_tasks}
    squad, tatoeba = by_task["xquad"], by_task["tatoeba"]
    assert squad.save_model and tatoeba.init_from == squad.key
    assert by_task["lareqa"].train_tasks == ("squad",) and by_task["lareqa"].key != squad.key
    assert by_task["mewslix"].train_tasks == ("mewslix",)
    assert list(plan.stages).index(squad.key) < list(plan.stages).index(tatoeba.key)
    for task in ("mewslix", "lareqa"):  # in-batch-negatives training really trains
        run = run_stage(by_task[task])
        assert run.rc == 0, run.log
        [phase] = progress(run.log)
        assert_loss_falls(phase)
        metrics = check_outputs(by_task[task], data_root)
        assert metrics["selection"] == "last" and metrics["train"]["best_dev"] is None
        heads = json.loads((stage_dir(by_task[task]) / "model" / "heads.json").read_text()) if (
            stage_dir(by_task[task]) / "model").exists() else None
        assert heads is None, "a dual-encoder stage feeds nothing downstream: its model is not kept"
    run = run_stage(tatoeba)
    assert run.rc != 0 and "not done" in run.log, "tatoeba waits for its SQuAD model"
    assert run_stage(squad).rc == 0
    assert MODEL_FILES <= {p.name for p in (stage_dir(squad) / "model").iterdir()}
    assert run_stage(tatoeba).rc == 0
    check_outputs(tatoeba, data_root)


# --- 2 and 3. an intermediate checkpoint feeds a target and a retrieval stage ---------------


def test_intermediate_checkpoint_feeds_target_and_retrieval(data_root: Path, tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "store", data_root, targets=["panx", "tatoeba"], intermediate=["mnli"],
                     languages={"panx": ["en", "de"], "tatoeba": ["de", "ru"]}, benchmark="xtreme")
    intermediate = only_stage(plan, "intermediate")
    target = only_stage(plan, "target")
    retrieval = only_stage(plan, "retrieval")
    assert intermediate.train_tasks == ("mnli",)
    assert target.init_from == intermediate.key and retrieval.init_from == intermediate.key
    assert list(plan.stages).index(intermediate.key) == 0, "upstream stages come first"

    run = run_stage(intermediate)
    assert run.rc == 0, run.log
    assert_loss_falls(progress(run.log)[0])
    model = stage_dir(intermediate) / "model"
    assert MODEL_FILES <= {p.name for p in model.iterdir()}, sorted(p.name for p in model.iterdir())
    assert set(json.loads((model / "heads.json").read_text())) == {"mnli"}
    metrics = check_outputs(intermediate, data_root)
    assert metrics["train"]["best_dev"] is not None and "tasks" not in metrics

    run = run_stage(target)
    assert run.rc == 0, run.log
    assert_loss_falls(progress(run.log)[0])
    check_outputs(target, data_root)
    assert not (stage_dir(target) / "model").exists(), "a target stage's model is not kept"

    run = run_stage(retrieval)
    assert run.rc == 0, run.log
    from_checkpoint = check_outputs(retrieval, data_root)["tasks"]["tatoeba"]["languages"]

    # The same retrieval from the base model scores differently: the checkpoint was really used.
    base = make_plan(tmp_path / "base-store", data_root, targets=["tatoeba"],
                     languages={"tatoeba": ["de", "ru"]}, benchmark="xtreme")
    base_config = only_stage(base, "retrieval")
    assert base_config.init_from is None and base_config.key != retrieval.key
    assert run_stage(base_config).rc == 0
    from_base = check_outputs(base_config, data_root)["tasks"]["tatoeba"]["languages"]
    predictions = [(stage_dir(c) / "predictions" / "tatoeba" / f"{lang}.jsonl").read_bytes()
                   for c in (retrieval, base_config) for lang in ("de", "ru")]
    assert from_base != from_checkpoint or predictions[:2] != predictions[2:]


def test_target_before_its_intermediate_fails_transiently(data_root: Path, tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "store", data_root, targets=["panx"], intermediate=["mnli"],
                     languages={"panx": ["en"]}, epochs=1)
    intermediate = only_stage(plan, "intermediate")
    target = only_stage(plan, "target")
    proc = run_cli("run-stage", "--config", target.to_json())
    assert proc.returncode == 1, proc.stderr  # transient: the Job retries once the upstream is done
    assert f"upstream stage {intermediate.key} is not done" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "failed"
    assert not (stage_dir(target) / "_SUCCESS").exists()
    assert not (stage_dir(target) / "metrics.json").exists()


# --- 4. kill and resume: exactly the uninterrupted result -----------------------------------


def _store_is_consistent(config: StageConfig) -> int | None:
    """What a reader may see of a killed stage: nothing final, and a complete latest checkpoint.
    Returns the checkpointed step (None before the first checkpoint)."""
    base = stage_dir(config)
    assert not (base / "_SUCCESS").exists()
    assert not (base / "metrics.json").exists()
    assert not (base / "predictions").exists()
    latest_path = base / "checkpoints" / "latest.json"
    if not latest_path.exists():
        return None
    latest = json.loads(latest_path.read_text())  # always parses: it is moved into place whole
    assert not TMP_SUFFIX.search(latest["name"])
    checkpoint = base / "checkpoints" / latest["name"]
    names = {p.name for p in checkpoint.iterdir()}
    assert CHECKPOINT_FILES <= names, names
    assert not [n for n in names if TMP_SUFFIX.search(n)], names
    position = json.loads((checkpoint / "position.json").read_text())
    assert position["global_step"] == latest["step"]
    import torch

    for name in ("model.pt", "optim.pt"):  # complete files: they load
        torch.load(checkpoint / name, map_location="cpu", weights_only=True)
    return int(latest["step"])


def _start(config_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(runtime_command("run-stage", "--config", str(config_path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())


def _kill_after(proc: subprocess.Popen[str], at_step: int, delay: float) -> tuple[str, int]:
    """SIGKILL ``proc`` ``delay`` seconds after it logs a step or checkpoint at ``at_step`` or later."""
    assert proc.stderr is not None
    seen: list[str] = []
    watchdog = threading.Timer(SUBPROCESS_TIMEOUT, proc.kill)  # a hung stage must not hang the suite
    watchdog.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            m = STEP_LINE.search(line) or CHECKPOINT_LINE.search(line)
            if m and int(m.group(1)) >= at_step:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
        else:
            proc.wait()
            pytest.fail(f"the stage ended (exit {proc.returncode}) before step {at_step}:\n{''.join(seen)}")
        proc.communicate()
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL
    return "".join(seen), int(m.group(1))


def test_kill_and_resume_matches_an_uninterrupted_run(data_root: Path, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    languages = {"xnli": ["en", "de"]}
    plan = make_plan(tmp_path / "store", data_root, targets=["xnli"], languages=languages, epochs=10,
                     eval_every_steps=10, checkpoint_every_steps=5)
    config = only_stage(plan, "target")
    # The reference never checkpoints: checkpointing is not part of the key, so it must not change
    # the output either.
    reference = only_stage(make_plan(tmp_path / "reference", data_root, targets=["xnli"], languages=languages,
                                     epochs=10, eval_every_steps=10, checkpoint_every_steps=1000), "target")
    assert reference.key == config.key and reference.store != config.store
    config_file = tmp_path / "stage.json"
    config_file.write_text(config.to_json())

    # Two kills at seeded random steps, each a random moment after a progress or checkpoint line.
    first = rng.randint(8, 35)
    second = rng.randint(first + 15, 75)
    checkpointed: list[int] = []
    for at_step in (first, second):
        proc = _start(config_file)
        log, _ = _kill_after(proc, at_step, delay=rng.uniform(0.0, 0.05))
        if checkpointed:  # the second run resumed from the first run's latest checkpoint
            assert f"resumed from step {checkpointed[-1]} " in log, log
        step = _store_is_consistent(config)
        assert step is not None and step % 5 == 0 and step >= at_step - 5, log
        checkpointed.append(step)
    assert checkpointed[0] < checkpointed[1] < 100, checkpointed

    proc = _start(config_file)
    out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, err
    assert f"resumed from step {checkpointed[-1]} " in err, err

    ref = subprocess.run(runtime_command("run-stage", "--config", reference.to_json()), capture_output=True,
                         text=True, env=subprocess_env(), timeout=SUBPROCESS_TIMEOUT)
    assert ref.returncode == 0, ref.stderr
    assert "resumed" not in ref.stderr and "checkpoint at" not in ref.stderr

    resumed = check_outputs(config, data_root)
    uninterrupted = check_outputs(reference, data_root)
    assert resumed["tasks"] == uninterrupted["tasks"]
    assert resumed["train"] == uninterrupted["train"]
    for language in languages["xnli"]:
        rel = f"predictions/xnli/{language}.jsonl"
        assert (stage_dir(config) / rel).read_bytes() == (stage_dir(reference) / rel).read_bytes(), rel


def test_resume_after_training_ended_is_exact(data_root: Path, tmp_path: Path) -> None:
    """A stage killed after its last checkpoint (during the zero-shot evaluation, which is long on
    real data) resumes to the same result; here training stopped early, at a checkpointed eval."""
    config = only_stage(make_plan(tmp_path / "store", data_root, targets=["xnli"], languages={"xnli": ["en", "de"]},
                                  eval_every_steps=5, checkpoint_every_steps=5, early_stopping_patience=2),
                        "target")
    first = run_stage(config)
    assert first.rc == 0, first.log
    train = first.summary["train"]
    assert train["steps"] < 100 and train["steps"] % 5 == 0, "early stopping should have ended training"
    base = stage_dir(config)
    assert json.loads((base / "checkpoints" / "latest.json").read_text())["step"] == train["steps"]
    predictions = {p.name: p.read_bytes() for p in (base / "predictions" / "xnli").iterdir()}
    # What a kill during the final evaluation leaves behind: no metrics.json, no _SUCCESS.
    (base / "_SUCCESS").unlink()
    (base / "metrics.json").unlink()

    second = run_stage(config)
    assert second.rc == 0, second.log
    assert f"resumed from step {train['steps']} " in second.log
    assert not progress(second.log), "training had already stopped: it must not go on"
    assert second.summary["train"] == train
    assert second.summary["tasks"] == first.summary["tasks"]
    assert {p.name: p.read_bytes() for p in (base / "predictions" / "xnli").iterdir()} == predictions
    check_outputs(config, data_root)


# --- 5. exit statuses ---------------------------------------------------------------------


def test_edited_config_is_a_configuration_error(data_root: Path, tmp_path: Path) -> None:
    config = only_stage(make_plan(tmp_path / "store", data_root, targets=["tatoeba"],
                                  languages={"tatoeba": ["de"]}, benchmark="xtreme"), "retrieval")
    edited = json.loads(config.to_json())
    edited["hparams"]["max_seq_length"] = 32  # changes the output, but the key was not recomputed
    proc = run_cli("run-stage", "--config", json.dumps(edited))
    assert proc.returncode == 2, proc.stderr
    assert "does not hash to its key" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "config-error"
    assert not stage_dir(config).exists(), "nothing is written for a config that fails its key"


def test_missing_data_is_a_configuration_error(data_root: Path, tmp_path: Path) -> None:
    # A task path that does not exist (the tokenizer still finds the data root).
    spec_plan = make_plan(tmp_path / "store", data_root, targets=["panx"], languages={"panx": ["en"]}, epochs=1)
    config = only_stage(spec_plan, "target")
    data = {"panx": {"path": str(tmp_path / "no-such-panx"), "format": "auto"}}
    moved = StageConfig.model_validate({**json.loads(config.to_json()), "data": data, "key": ""}).with_key()
    run = run_stage(moved)
    assert run.rc == 2, run.log
    assert "no-such-panx" in run.log
    assert not (stage_dir(moved) / "_SUCCESS").exists()

    # A data root that does not exist.
    gone = StageConfig.model_validate({**json.loads(config.to_json()), "data_root": str(tmp_path / "nowhere"),
                                       "key": ""}).with_key()
    run = run_stage(gone)
    assert run.rc == 2, run.log
    assert run.summary["status"] == "config-error"


def test_done_stage_exits_at_once(data_root: Path, tmp_path: Path) -> None:
    config = only_stage(make_plan(tmp_path / "store", data_root, targets=["tatoeba"],
                                  languages={"tatoeba": ["de"]}, benchmark="xtreme"), "retrieval")
    assert run_stage(config).rc == 0
    success = stage_dir(config) / "_SUCCESS"
    metrics_before = (stage_dir(config) / "metrics.json").read_bytes()
    mtime = success.stat().st_mtime_ns
    proc = run_cli("run-stage", "--config", config.to_json())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"key": config.key, "status": "already-done"}
    assert "already done" in proc.stderr
    assert (stage_dir(config) / "metrics.json").read_bytes() == metrics_before
    assert success.stat().st_mtime_ns == mtime


# --- 6. `xtrc-runtime score` ----------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _score(tmp_path: Path, task: str, language: str, gold: Path, predictions: dict[str, Any]) -> dict[str, float]:
    path = tmp_path / f"{task}-{language}-{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in predictions.items()))
    proc = run_cli("score", "--task", task, "--language", language, str(path), str(gold))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_score_cli(data_root: Path, tmp_path: Path) -> None:
    approx = pytest.approx

    # PAN-X: ids are line numbers; tags are indices into the label list.
    labels = tasks.TASKS["panx"].labels
    gold = data_root / "panx" / "de" / "test.jsonl"
    rows = _rows(gold)
    tags = {str(i): [labels[t] for t in r["ner_tags"]] for i, r in enumerate(rows)}
    assert _score(tmp_path, "panx", "de", gold, tags) == {"f1": 100.0, "precision": 100.0, "recall": 100.0}
    # Tags given as label indices, as the hub's ner_tags are, are mapped (they crashed with a traceback).
    indices = {str(i): list(r["ner_tags"]) for i, r in enumerate(rows)}
    assert _score(tmp_path, "panx", "de", gold, indices) == {"f1": 100.0, "precision": 100.0, "recall": 100.0}
    all_o = {k: ["O"] * len(v) for k, v in tags.items()}
    assert _score(tmp_path, "panx", "de", gold, all_o)["f1"] == 0.0
    # Half the sentences right, half all O: precision 100, recall = entities found / all entities.
    half = {k: (v if int(k) % 2 == 0 else ["O"] * len(v)) for k, v in tags.items()}
    entities = {k: sum(t.startswith("B-") for t in v) for k, v in tags.items()}
    recall = sum(n for k, n in entities.items() if int(k) % 2 == 0) / sum(entities.values())
    scores = _score(tmp_path, "panx", "de", gold, half)
    assert scores["precision"] == approx(100.0)
    assert scores["recall"] == approx(100 * recall)
    assert scores["f1"] == approx(100 * 2 * recall / (1 + recall))

    # XNLI: label strings (or indices).
    gold = data_root / "xnli" / "de" / "test.jsonl"
    rows = _rows(gold)
    golds = {str(i): r["gold_label"] for i, r in enumerate(rows)}
    nli = tasks.TASKS["xnli"].labels  # label indices are accepted too
    mixed = {k: (v if int(k) % 2 else nli.index(v)) for k, v in golds.items()}
    assert _score(tmp_path, "xnli", "de", gold, mixed) == {"accuracy": 100.0, "f1": 100.0}
    share = sum(v == "entailment" for v in golds.values()) / len(golds)
    assert 0 < share < 1
    scores = _score(tmp_path, "xnli", "de", gold, {k: "entailment" for k in golds})
    assert scores["accuracy"] == approx(100 * share)
    # Entailment: precision = share, recall 1; the other two classes score 0 (never predicted).
    assert scores["f1"] == approx(100 * (2 * share / (share + 1)) / 3)

    # XQuAD: answer strings; half right, half empty (scored 0 but counted).
    gold = data_root / "xquad" / "de" / "test.jsonl"
    rows = _rows(gold)
    answers = {r["id"]: r["answers"]["text"][0] for r in rows}
    ids = sorted(answers)
    half = {k: answers[k] for k in ids[: len(ids) // 2]}
    half.update({k: "" for k in ids[len(ids) // 2:]})
    expected = 100 * (len(ids) // 2) / len(ids)
    assert _score(tmp_path, "xquad", "de", gold, half) == {"exact_match": approx(expected), "f1": approx(expected)}
    # Missing QA predictions are refused as for every other task (they used to score 0 and exit 0).
    for k in ids[3 * len(ids) // 4:]:
        del half[k]
    refused = tmp_path / "xquad-missing.jsonl"
    refused.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in half.items()))
    proc = run_cli("score", "--task", "xquad", "--language", "de", str(refused), str(gold))
    missing = len(ids) - len(half)
    assert proc.returncode == 2 and f"{missing} of {len(ids)} gold ids have no prediction" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # MLQA: the answer language's normalisation removes German articles; SQuAD's (XQuAD's) does not.
    gold = data_root / "mlqa" / "de" / "test.jsonl"
    rows = _rows(gold)
    answers = {r["id"]: r["answers"]["text"][0] for r in rows}
    with_article = {k: f"Der {v}." for k, v in answers.items()}
    assert _score(tmp_path, "mlqa", "de", gold, with_article) == {"exact_match": 100.0, "f1": 100.0}
    xquad_style = _score(tmp_path, "xquad", "de", gold, with_article)
    assert xquad_style["exact_match"] == 0.0
    # One extra token: per answer of k tokens, precision k/(k+1), recall 1, F1 2k/(2k+1).
    # k counts the gold's tokens as SQuAD normalises them (lower case, no punctuation, no a/an/the).
    assert all("der" not in v.lower().split() and not re.search(r"[^\w\s]", v) for v in answers.values())
    ks = [len([w for w in v.lower().split() if w not in ("a", "an", "the")]) for v in answers.values()]
    assert xquad_style["f1"] == approx(100 * sum(2 * k / (2 * k + 1) for k in ks) / len(ks))

    # Unknown task: a configuration error.
    proc = run_cli("score", "--task", "nosuchtask", "--language", "de", str(gold), str(gold))
    assert proc.returncode == 2 and "unknown task" in proc.stderr
    proc = run_cli("score", "--task", "xqaud", "--language", "de", str(gold), str(gold))
    assert proc.returncode == 2 and "did you mean 'xquad'?" in proc.stderr, proc.stderr
