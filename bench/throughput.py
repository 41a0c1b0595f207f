"""Training throughput of the runtime against the XTREME reference recipe, in one command.

    python bench/throughput.py [--task panx] [--steps 150] [--train 3000]

Both runs train the same built-in tiny XLM-R model (same initial weights, same data, same
number of optimizer steps, same seed) with the runtime's Trainer:

- reference: every example padded to max_seq_length (XTREME's scripts: 128), batches in
  shuffled order, fp32;
- runtime: dynamic padding to the longest example of each batch (the runtime's default), fp32;
- runtime + group_by_length: also batches of similar length (an opt-in setting).

It prints examples/s of each (median over seeds), their ratio (goal: >= 2.5x), and both final
F1 scores on the English and German test sets (mean over seeds), so the speed is compared at
equal quality.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from xtrc import tasks
from xtrc.stage import Hyperparameters
from xtrc_runtime import fixtures
from xtrc_runtime.data import DataLocation, load
from xtrc_runtime.evaluate import evaluate, headline
from xtrc_runtime.features import encode
from xtrc_runtime.model import HeadSpec, TaskModel
from xtrc_runtime.tiny import build_encoder, build_tokenizer
from xtrc_runtime.train import Trainer, TrainTask

REFERENCE_MAX_LEN = 128  # XTREME's train_panx.sh / train_udpos.sh / train_xnli.sh


def run(task: str, steps: int, train_size: int, seed: int, pad_to_max: bool,
        root: Path, group_by_length: bool = False) -> tuple[float, float, dict[str, float]]:
    """(examples per wall second, examples per CPU second of this process, test F1 by language)."""
    where = DataLocation(data_root=str(root / "data"))
    train_task = tasks.TASKS[task].training_tasks[-1]
    corpus = [line for path in sorted((root / "data").rglob("*.jsonl")) for line in path.read_text().splitlines()]
    tokenizer = build_tokenizer(corpus)
    torch.manual_seed(seed)
    info = tasks.TASKS[train_task]
    model = TaskModel(build_encoder(len(tokenizer)), {"target": HeadSpec(info.type, info.labels)})
    hp = Hyperparameters(learning_rate=1e-3, batch_size=32, grad_accum=1, epochs=1000, max_steps=steps,
                         max_seq_length=REFERENCE_MAX_LEN, warmup_ratio=0.1, weight_decay=0.01, precision="fp32",
                         eval_every_steps=10**9, group_by_length=group_by_length)
    examples = load(train_task, "en", "train", where, train_size)
    features = encode(examples, tokenizer, REFERENCE_MAX_LEN, labels=info.labels)
    trainer = Trainer(model, hp, seed=seed, device=torch.device("cpu"), pad_id=tokenizer.pad_token_id,
                      pad_to_max=pad_to_max)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train([[TrainTask(train_task, "target", features)]])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    scores = {}
    for language in ("en", "de"):
        test = load(task, language, "test", where)
        result = evaluate(model, "target", task, language, test, tokenizer, max_len=REFERENCE_MAX_LEN,
                          doc_stride=128, batch_size=64, device=torch.device("cpu"), labels=info.labels)
        scores[language] = headline(task, result.metrics)
    return trainer.examples_seen / seconds, trainer.examples_seen / cpu_seconds, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="panx", help="a classification or tagging target (default panx)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train", type=int, default=3000, help="English training examples")
    parser.add_argument("--seeds", type=int, default=2, help="runs of each (seeds 1..N): median speed, mean F1")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fixtures.generate(str(root), tasks=[args.task, *tasks.TASKS[args.task].training_tasks],
                          languages=("en", "de"), sizes=fixtures.Sizes(train=args.train, dev=100, test=300), seed=0)
        paths = {"reference (pad to 128, fp32)": (True, False),
                 "runtime (dynamic padding)": (False, False),
                 "runtime + group_by_length": (False, True)}
        for pad, group in paths.values():  # warm-up: first-call costs must not land on any side
            run(args.task, 3, args.train, 0, pad, root, group)
        runs: dict[str, list] = {name: [] for name in paths}
        for seed in range(1, args.seeds + 1):  # interleaved, so load from elsewhere hits all alike
            for name, (pad, group) in paths.items():
                runs[name].append(run(args.task, args.steps, args.train, seed, pad, root, group))
        results = {}
        for name, rs in runs.items():
            rate, cpu_rate = statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)
            scores = {lang: statistics.mean(r[2][lang] for r in rs) for lang in ("en", "de")}
            results[name] = (rate, cpu_rate, scores)
            print(f"{name:44s} {rate:8.1f} examples/s ({cpu_rate:7.1f} per CPU-second)   "
                  f"{args.task} F1 en {scores['en']:.2f}  de {scores['de']:.2f}")
    (ref_rate, ref_cpu, ref_scores), *others = results.values()
    for name, (rate, cpu, scores) in list(results.items())[1:]:
        print(f"{name}: {rate / ref_rate:.2f}x wall, {cpu / ref_cpu:.2f}x CPU against the reference (goal >= 2.5x "
              f"at equal metrics); F1 difference en {scores['en'] - ref_scores['en']:+.2f}, "
              f"de {scores['de'] - ref_scores['de']:+.2f}")
    print(f"{args.steps} steps of batch 32, {args.seeds} seeds, torch {torch.__version__}, {torch.get_num_threads()} threads")

if __name__ == "__main__":
    main()
