"""Training throughput of the runtime against the XTREME recipe and the Hugging Face Trainer, at
equal quality, in one command.

    python bench/throughput.py [--task panx] [--steps 300] [--train 3000] [--seeds 5]

Every path trains the built-in tiny XLM-R model (same initial weights, same data, same number of
optimizer steps of batch 32, same learning-rate schedule) on one thread, with the tokenizer
trained as the runtime trains it (on the text of the stage's training and test splits):

- reference: the XTREME scripts' recipe: every example padded to max_seq_length (128), fp32;
- runtime, ``group_by_length: false``: dynamic padding to each batch's longest example, batches
  drawn at random;
- runtime, ``group_by_length: true``: dynamic padding and length-grouped batches, as the HF Trainer
  groups them. One of the two is the task's default (``group_by_length`` in its registry entry;
  marked in the table);
- HF Trainer, with its length-grouped sampler and with random batches: ``transformers.Trainer``
  with dynamic padding (the second anchor: the faster of the two that keeps the reference's quality).

The paths run interleaved, seed by seed, so load from elsewhere hits all alike; the load average
is printed with each run. Throughput is the median over seeds of examples per CPU second of this
process (wall seconds beside it). Quality is test F1 (English and German) compared seed by seed
(the same seed gives every path the same initial weights): a runtime path whose 95% confidence
interval of the mean per-seed difference from the reference lies wholly below zero has dropped,
and the script exits 1 when that path is the task's default (the other paths' verdicts are
printed, not asserted). The dev F1 learning
curves of the runtime's paths are printed with the grouped minus ungrouped gap at each point
beside the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: one thread everywhere

import torch  # noqa: E402

from xtrc import tasks  # noqa: E402
from xtrc.stage import Hyperparameters  # noqa: E402
from xtrc_runtime import fixtures  # noqa: E402
from xtrc_runtime.data import DataLocation, example_texts, load  # noqa: E402
from xtrc_runtime.evaluate import evaluate, headline  # noqa: E402
from xtrc_runtime.features import encode  # noqa: E402
from xtrc_runtime.model import HeadSpec, TaskModel  # noqa: E402
from xtrc_runtime.tiny import build_encoder, build_tokenizer  # noqa: E402
from xtrc_runtime.train import Trainer, TrainTask, loss_for  # noqa: E402

REFERENCE_MAX_LEN = 128  # XTREME's train_panx.sh / train_udpos.sh / train_xnli.sh
BATCH = 32
LEARNING_RATE = 1e-3
CURVE_POINTS = 5
LANGUAGES = ("en", "de")
PATHS = ("reference (pad to 128)", "runtime, group_by_length: false", "runtime, group_by_length: true",
         "HF Trainer, group_by_length", "HF Trainer, random batches")
HF_PATHS = PATHS[3:]


def runtime_corpus(train_task: str, task: str, languages: tuple[str, ...], where: DataLocation) -> list[str]:
    """The strings the runtime trains the tiny tokenizer on for this stage: the text of the training
    task's English train and dev splits and of the target's test splits (xtrc_runtime.stage's
    default tokenizer corpus)."""
    parts = [(train_task, "en", "train"), (train_task, "en", "dev"), *((task, lang, "test") for lang in languages)]
    return [text for t, lang, split in parts for e in load(t, lang, split, where) for text in example_texts(e)]


class Setup:
    def __init__(self, task: str, train_size: int, root: Path):
        self.task = task
        self.where = DataLocation(data_root=str(root))
        self.train_task = tasks.TASKS[task].training_tasks[-1]
        self.info = tasks.TASKS[self.train_task]
        self.tokenizer = build_tokenizer(runtime_corpus(self.train_task, task, LANGUAGES, self.where))
        examples = load(self.train_task, "en", "train", self.where, train_size)
        self.features = encode(examples, self.tokenizer, REFERENCE_MAX_LEN, labels=self.info.labels)
        self.dev = load(self.train_task, "en", "dev", self.where)
        self.tests = {lang: load(task, lang, "test", self.where) for lang in LANGUAGES}

    def model(self, seed: int) -> TaskModel:
        torch.manual_seed(seed)
        return TaskModel(build_encoder(len(self.tokenizer)), {"target": HeadSpec(self.info.type, self.info.labels)})

    def score(self, model: TaskModel, language: str, examples: list[Any]) -> float:
        result = evaluate(model, "target", self.task, language, examples, self.tokenizer, max_len=REFERENCE_MAX_LEN,
                          doc_stride=128, batch_size=64, device=torch.device("cpu"), labels=self.info.labels)
        return headline(self.task, result.metrics)


def run_xtrc(setup: Setup, steps: int, seed: int, *, pad_to_max: bool, group: bool) -> dict[str, Any]:
    model = setup.model(seed)
    hp = Hyperparameters(learning_rate=LEARNING_RATE, batch_size=BATCH, grad_accum=1, epochs=1000, max_steps=steps,
                         max_seq_length=REFERENCE_MAX_LEN, warmup_ratio=0.1, weight_decay=0.01, precision="fp32",
                         eval_every_steps=max(1, steps // CURVE_POINTS), group_by_length=group)
    eval_cpu = eval_wall = 0.0
    curve: list[float] = []

    def dev_score(phase: int) -> None:  # the learning curve; its time is taken off the clock
        nonlocal eval_cpu, eval_wall
        start, cpu_start = time.perf_counter(), time.process_time()
        curve.append(setup.score(model, "en", setup.dev))
        eval_cpu += time.process_time() - cpu_start
        eval_wall += time.perf_counter() - start
        return None  # no model selection: every path is compared on its last weights, as HF's

    trainer = Trainer(model, hp, seed=seed, device=torch.device("cpu"), pad_id=setup.tokenizer.pad_token_id,
                      evaluate=dev_score, pad_to_max=pad_to_max)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train([[TrainTask(setup.train_task, "target", setup.features)]])
    wall, cpu = time.perf_counter() - start - eval_wall, time.process_time() - cpu_start - eval_cpu
    return {"examples": trainer.examples_seen, "tokens": trainer.tokens_seen, "wall": wall, "cpu": cpu, "curve": curve[:CURVE_POINTS],
            "final_model": model}


def run_hf(setup: Setup, steps: int, seed: int, output: Path, *, group: bool) -> dict[str, Any]:
    from torch import nn
    from transformers import DataCollatorWithPadding, Trainer as HFTrainer, TrainingArguments

    model = setup.model(seed)
    head = "target"

    class Wrapped(nn.Module):  # the HF Trainer calls model(**batch) and reads "loss"
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": loss_for(self.inner, head, {"input_ids": input_ids, "attention_mask": attention_mask,
                                                         "labels": labels})}

    rows = [{"input_ids": f.input_ids, "labels": f.label} for f in setup.features]
    tagging = setup.info.type == "tagging"
    if tagging:
        from transformers import DataCollatorForTokenClassification

        collator: Any = DataCollatorForTokenClassification(setup.tokenizer)
    else:
        collator = DataCollatorWithPadding(setup.tokenizer)
    args = TrainingArguments(output_dir=str(output), per_device_train_batch_size=BATCH, max_steps=steps,
                             learning_rate=LEARNING_RATE, warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0,
                             lr_scheduler_type="linear", seed=seed,
                             train_sampling_strategy="group_by_length" if group else "random",
                             data_seed=seed,
                             use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
                             eval_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
                             remove_unused_columns=False)
    trainer = HFTrainer(model=Wrapped(), args=args, train_dataset=rows, data_collator=collator)
    start, cpu_start = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # its closing metrics line
        trainer.train()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"examples": steps * BATCH, "tokens": None, "wall": wall, "cpu": cpu, "curve": [], "final_model": model}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="panx", help="a classification or tagging target (default panx)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train", type=int, default=3000, help="English training examples")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N (at least 3)")
    args = parser.parse_args()
    if args.seeds < 3:
        parser.error("--seeds must be at least 3: the quality tolerance comes from the seed-to-seed spread")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fixtures.generate(str(root), tasks=[args.task, *tasks.TASKS[args.task].training_tasks],
                          languages=("en", "de"), sizes=fixtures.Sizes(train=args.train, dev=200, test=400), seed=0)
        setup = Setup(args.task, args.train, root / "data")

        def one(path: str, steps: int, seed: int) -> dict[str, Any]:
            if path in HF_PATHS:
                return run_hf(setup, steps, seed, root / f"hf-{seed}", group=path == PATHS[3])
            return run_xtrc(setup, steps, seed, pad_to_max=path == PATHS[0], group=path == PATHS[2])

        for path in PATHS:  # warm-up: first-call costs must not land on any side
            one(path, 3, 0)
        for seed in range(1, args.seeds + 1):  # interleaved
            for path in PATHS:
                load_before = os.getloadavg()[0]
                r = one(path, args.steps, seed)
                model = r.pop("final_model")
                r["scores"] = {lang: setup.score(model, lang, test) for lang, test in setup.tests.items()}
                r["load"] = (load_before, os.getloadavg()[0])
                results[path].append(r)
                print(f"seed {seed}  {path:32s} {r['examples'] / r['cpu']:7.1f} examples/CPU-s "
                      f"({r['examples'] / r['wall']:7.1f}/wall-s)  F1 en {r['scores']['en']:6.2f} "
                      f"de {r['scores']['de']:6.2f}  load {r['load'][0]:.2f}->{r['load'][1]:.2f}", flush=True)
    return report(results, args)


_T975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13, 2.12, 2.11, 2.10,
         2.09, 2.09)
"""Two-sided 95% quantiles of Student's t for 1..20 degrees of freedom."""


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of the per-seed differences a - b and the half-width of its 95% confidence interval
    (same seed: same initial weights and data order, so the seed's own luck cancels)."""
    d = [x - y for x, y in zip(a, b)]
    df = len(d) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return statistics.mean(d), t * statistics.stdev(d) / math.sqrt(len(d))


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> int:
    n = args.seeds
    rate = {p: statistics.median(r["examples"] / r["cpu"] for r in rs) for p, rs in results.items()}
    wall = {p: statistics.median(r["examples"] / r["wall"] for r in rs) for p, rs in results.items()}
    f1 = {p: {lang: [r["scores"][lang] for r in rs] for lang in LANGUAGES} for p, rs in results.items()}
    ref, ungrouped, grouped = PATHS[:3]
    default = grouped if tasks.TASKS[args.task].group_by_length else ungrouped
    diffs = {p: {lang: paired(f1[p][lang], f1[ref][lang]) for lang in LANGUAGES} for p in PATHS[1:]}
    # A drop: the whole confidence interval of the paired difference lies below zero.
    drops = {p: [lang for lang, (d, half) in diffs[p].items() if d + half < 0] for p in PATHS[1:]}
    # The HF Trainer's best configuration: the faster of its paths that keeps the reference's quality.
    keeping = [p for p in HF_PATHS if not drops[p]] or list(HF_PATHS)
    hf = max(keeping, key=lambda p: rate[p])
    print()
    print(f"{'path (* the task default)':34s} {'ex/CPU-s':>9s} {'ex/wall-s':>10s} {'vs ref':>7s} {'vs HF':>6s}   "
          "F1 en   F1 de   F1 - reference, mean of per-seed differences +- 95% CI")
    for p in PATHS:
        verdict = "" if p == ref else "  ".join(f"{lang} {d:+.2f} +- {half:.2f}" for lang, (d, half) in diffs[p].items())
        if p != ref:
            verdict += f"  BELOW: {','.join(drops[p])}" if drops[p] else "  equal"
        mark = "* " if p == default else "  "
        print(f"{mark}{p:32s} {rate[p]:9.1f} {wall[p]:10.1f} {rate[p] / rate[ref]:6.2f}x {rate[p] / rate[hf]:5.2f}x "
              f"{statistics.mean(f1[p]['en']):7.2f} {statistics.mean(f1[p]['de']):7.2f}   {verdict}")
    print(f"HF Trainer's best at equal quality: {hf}" + ("" if not drops[hf] else " (both HF paths drop)"))
    sd = {lang: math.sqrt(statistics.mean(statistics.variance(f1[p][lang]) for p in PATHS)) for lang in LANGUAGES}
    print(f"seed-to-seed sd of one run's F1 (pooled over paths): en {sd['en']:.2f}, de {sd['de']:.2f}")
    for lang in LANGUAGES:
        d, half = paired(f1[grouped][lang], f1[ungrouped][lang])
        print(f"grouped - ungrouped, test F1 {lang}: {d:+.2f} +- {half:.2f}")
    seen = {p: (statistics.mean(r["examples"] for r in results[p]), statistics.mean(r["tokens"] for r in results[p]))
            for p in PATHS[:3]}
    print("trained on (mean over seeds): " + "; ".join(f"{p}: {e:.0f} examples, {t:.0f} real tokens"
                                                      for p, (e, t) in seen.items()))
    every = max(1, args.steps // CURVE_POINTS)
    points = min(len(r["curve"]) for p in PATHS[:3] for r in results[p])
    print(f"dev F1 (en) learning curve, every {every} steps:")
    for p in PATHS[:3]:
        print(f"  {p:30s} " + "  ".join(f"{statistics.mean(r['curve'][i] for r in results[p]):6.2f}"
                                        for i in range(points)))
    curve_sd = [math.sqrt(statistics.mean(statistics.variance([r["curve"][i] for r in results[p]])
                                          for p in (ungrouped, grouped))) for i in range(points)]
    print(f"  {'seed-to-seed sd':30s} " + "  ".join(f"{v:6.2f}" for v in curve_sd))
    gaps = [paired([r["curve"][i] for r in results[grouped]], [r["curve"][i] for r in results[ungrouped]])
            for i in range(points)]
    print(f"  {'grouped - ungrouped':30s} " + "  ".join(f"{g:+6.2f}" for g, _ in gaps))
    print(f"  {'  95% CI half-width':30s} " + "  ".join(f"{h:6.2f}" for _, h in gaps))
    outside = [f"step {every * (i + 1)}" for i, ((g, _), v) in enumerate(zip(gaps, curve_sd)) if abs(g) > v]
    print(f"  grouped within seed noise of ungrouped (|mean difference| <= one run's seed-to-seed sd) "
          f"{'at every point' if not outside else 'except at ' + ', '.join(outside)}")
    loads = [x for rs in results.values() for r in rs for x in r["load"]]
    print(f"goals: the default >= 3.5x the reference, >= 1.2x the HF Trainer's best, at equal quality; the default "
          f"({default}): {rate[default] / rate[ref]:.2f}x, {rate[default] / rate[hf]:.2f}x. "
          f"{args.steps} steps of batch {BATCH}, {n} seeds, task {args.task}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")
    if drops[default]:
        print(f"QUALITY DROP: the default ({default}) on {', '.join(drops[default])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
