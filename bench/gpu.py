"""XLM-R large fine-tuning on a GPU through xtrc's own trainer, against the XTREME reference recipe.

    python bench/gpu.py [--steps 30] [--reference-steps 3] [--tasks xnli,panx,squad]
    python bench/gpu.py --tiny --cpu --steps 3      # the same code path on a CPU, in seconds

An encoder shaped like XLM-R large (24 layers x 1024, 16 heads, vocab 250,002; random weights,
nothing downloaded) is fine-tuned on synthetic batches whose lengths follow the task's real
length distribution (log-normal around the registry's mean subword count, cut at the recipe's
max length: XNLI-, PAN-X- and SQuAD-like). In the same process, for each task:

- xtrc: bf16 autocast over fp32 master weights, SDPA attention, fused AdamW, TF32, pinned
  non-blocking copies one batch ahead, dynamic padding to a multiple of 8, length-grouped
  batches of 32;
- reference: the XTREME scripts' recipe: fp32, every example padded to max length, batches of
  2 x 16 gradient accumulation (4 x 8 for QA).

It prints real-token (non-pad) throughput, MFU over real tokens (6 N per token for the
non-embedding parameters, plus the attention term 12 L d T for a sequence of T real tokens),
against the device's dense bf16 peak from a table by device name, peak memory, the ratio, and
evaluation throughput (sorted by length, large batches, inference mode). Without CUDA it prints
one line and exits 0.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

PEAK_BF16_TFLOPS = (  # dense (no sparsity), by a substring of torch.cuda.get_device_name()
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 6000 Ada", 364.0), ("RTX 4090", 165.0), ("A6000", 155.0),
    ("V100", 125.0), ("T4", 65.0),
)
LARGE = dict(vocab=250_002, hidden=1024, layers=24, heads=16, intermediate=4096)
TINY = dict(vocab=2000, hidden=64, layers=2, heads=2, intermediate=128)


@dataclass(frozen=True)
class Workload:
    task: str  # the registry task whose length distribution and head type it copies
    max_len: int
    reference_batch: tuple[int, int]  # (batch size, gradient accumulation) of the XTREME scripts


WORKLOADS = {
    "xnli": Workload("xnli", 128, (2, 16)),
    "panx": Workload("panx", 128, (2, 16)),
    "squad": Workload("squad", 384, (4, 8)),
}


def peak_tflops(name: str) -> float | None:
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def lengths(task: str, max_len: int, n: int, seed: int) -> list[int]:
    """Real lengths in subwords: log-normal with the registry's mean, cut to [8, max_len]."""
    from xtrc import tasks

    mean, sigma = tasks.TASKS[task].mean_tokens, 0.5
    mu = math.log(mean) - sigma ** 2 / 2
    r = random.Random(seed)
    return [min(max_len, max(8, round(r.lognormvariate(mu, sigma)))) for _ in range(n)]


def features(task: str, max_len: int, n: int, vocab: int, seed: int) -> list[Any]:
    from xtrc import tasks
    from xtrc_runtime.features import IGNORE, Feature

    info = tasks.TASKS[task]
    r = random.Random(seed + 1)
    out = []
    for i, length in enumerate(lengths(task, max_len, n, seed)):
        ids = [0] + [r.randrange(5, vocab) for _ in range(length - 2)] + [2]
        if info.type == "tagging":
            label: Any = [IGNORE] + [r.randrange(len(info.labels)) for _ in range(length - 2)] + [IGNORE]
        elif info.type == "qa":
            start = r.randrange(1, length - 1)
            label = (start, min(length - 2, start + r.randrange(0, 5)))
        else:
            label = r.randrange(len(info.labels))
        out.append(Feature(ids, label, i))
    return out


def encoder(shape: dict[str, int], device: Any) -> Any:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(vocab_size=shape["vocab"], hidden_size=shape["hidden"],
                              num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                              intermediate_size=shape["intermediate"], max_position_embeddings=514,
                              type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                              attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: no 2 GB copy from the host
        return XLMRobertaModel(config, add_pooling_layer=False)


def flops(model: Any, shape: dict[str, int], feature_tokens: list[int]) -> float:
    """Training FLOPs over real tokens: 6 N T per sequence plus attention 12 L d T^2."""
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    n = sum(p.numel() for p in model.parameters()) - embedding
    return sum(6 * n * t + 12 * shape["layers"] * shape["hidden"] * t * t for t in feature_tokens)


def run(workload: Workload, shape: dict[str, int], device: Any, *, reference: bool, steps: int,
        train_size: int, eval_size: int) -> dict[str, float]:
    import torch

    from xtrc import tasks
    from xtrc.stage import Hyperparameters
    from xtrc_runtime.evaluate import predict
    from xtrc_runtime.model import HeadSpec, TaskModel
    from xtrc_runtime.train import Trainer, TrainTask

    info = tasks.TASKS[workload.task]
    train = features(workload.task, workload.max_len, train_size, shape["vocab"], seed=1)
    batch, accum = workload.reference_batch if reference else (32, 1)
    hp = Hyperparameters(learning_rate=2e-5, batch_size=batch, grad_accum=accum, epochs=1000, max_steps=steps,
                         max_seq_length=workload.max_len, warmup_ratio=0.1, weight_decay=0.01,
                         precision="fp32" if reference else "bf16", eval_every_steps=10**9,
                         group_by_length=not reference)
    model = TaskModel(encoder(shape, device), {"target": HeadSpec(info.type, info.labels)}).to(device)
    cuda = device.type == "cuda"
    trainer = Trainer(model, hp, seed=1, device=device, pad_id=1, pad_to_max=reference)
    warm = Trainer(model, hp.model_copy(update={"max_steps": 1}), seed=2, device=device, pad_id=1,
                   pad_to_max=reference)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = not reference  # the reference ran plain fp32
        torch.backends.cudnn.allow_tf32 = not reference
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    task = TrainTask(workload.task, "target", train)
    warm.train([[task]])  # first-call costs (cuBLAS handles, allocator growth) off the clock
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.train([[task]])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    used = _consumed(trainer, train, hp)
    out = {"tokens_per_s": trainer.tokens_seen / seconds, "examples_per_s": trainer.examples_seen / seconds,
           "flops_per_s": flops(model.encoder, shape, used) / seconds,
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}

    test = features(workload.task, workload.max_len, eval_size, shape["vocab"], seed=3)
    real = sum(f.tokens for f in test)
    autocast = None if reference or not cuda else torch.bfloat16
    eval_batch = 32 if reference else hp.batch_size * 2
    if reference:  # the reference pads every example to max length as well
        test = [type(f)(f.input_ids + [1] * (workload.max_len - len(f.input_ids)), f.label, f.example) for f in test]
    predict(model, "target", test[:eval_batch], pad_id=1, batch_size=eval_batch, device=device, autocast=autocast)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    predict(model, "target", test, pad_id=1, batch_size=eval_batch, device=device, autocast=autocast)
    if cuda:
        torch.cuda.synchronize()
    out["eval_tokens_per_s"] = real / (time.perf_counter() - start)
    del model, trainer, warm
    if cuda:
        torch.cuda.empty_cache()
    return out


def _consumed(trainer: Any, train: list[Any], hp: Any) -> list[int]:
    """Real token counts of the sequences the timed run trained on (its examples, in schedule order)."""
    from xtrc_runtime.train import TrainTask, schedule

    order = schedule([TrainTask("t", "target", train)], hp.batch_size, trainer.seed, 0,
                     group_by_length=trainer.group_by_length)
    flat = [i for _, b in order for i in b]
    while len(flat) < trainer.examples_seen:  # more than one epoch
        flat += flat
    return [train[i].tokens for i in flat[: trainer.examples_seen]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps of the xtrc path")
    parser.add_argument("--reference-steps", type=int, default=3, help="timed optimizer steps of the reference")
    parser.add_argument("--tasks", default="xnli,panx,squad")
    parser.add_argument("--train", type=int, default=4000, help="synthetic training sequences per task")
    parser.add_argument("--eval", type=int, default=2000, help="synthetic evaluation sequences per task")
    parser.add_argument("--tiny", action="store_true", help="the built-in tiny model's shape instead of XLM-R large")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (with --tiny: to exercise the code path)")
    args = parser.parse_args(argv)

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("bench/gpu.py: skipped: no CUDA device (use --tiny --cpu to exercise the code path on a CPU)")
        return 0
    if args.cpu:
        torch.set_num_threads(1)
    device = torch.device("cpu" if args.cpu else "cuda")
    shape = TINY if args.tiny else LARGE
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(name) if device.type == "cuda" else None
    print(f"device: {name}; peak bf16 dense {peak or 'unknown'} TFLOP/s; model "
          f"{'tiny' if args.tiny else 'XLM-R large shape'} ({shape['layers']} x {shape['hidden']}, vocab "
          f"{shape['vocab']:,}); torch {torch.__version__}")

    def mfu(r: dict[str, float]) -> str:
        return f"{100 * r['flops_per_s'] / (peak * 1e12):5.1f}%" if peak else "  n/a"

    for name_ in args.tasks.split(","):
        workload = WORKLOADS[name_]
        common = dict(train_size=args.train, eval_size=args.eval)
        fast = run(workload, shape, device, reference=False, steps=args.steps, **common)
        ref = run(workload, shape, device, reference=True, steps=args.reference_steps, **common)
        ours = "xtrc (bf16, SDPA, fused AdamW, dynamic pad)" if device.type == "cuda" else "xtrc (CPU: fp32, dynamic pad)"
        for label, r in ((ours, fast),
                         (f"reference (fp32, pad {workload.max_len}, {workload.reference_batch[0]} x "
                          f"{workload.reference_batch[1]})", ref)):
            print(f"{name_:6s} {label:48s} train {r['tokens_per_s']:10,.0f} real tokens/s  MFU {mfu(r)}  "
                  f"peak {r['peak_gib']:5.1f} GiB  eval {r['eval_tokens_per_s']:10,.0f} real tokens/s")
        print(f"{name_:6s} ratio: train {fast['tokens_per_s'] / ref['tokens_per_s']:.2f}x, "
              f"eval {fast['eval_tokens_per_s'] / ref['eval_tokens_per_s']:.2f}x (goal: >= 4x, >= 30% MFU on H100/H200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
