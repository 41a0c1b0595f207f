"""XLM-R large fine-tuning on a GPU through xtrc's own trainer, against the XTREME reference recipe.

    python bench/gpu.py [--steps 30] [--reference-steps 3] [--tasks xnli,panx,squad]
                        [--batch-sizes 32,64,128] [--budget-s 240]
    python bench/gpu.py --tiny --cpu --steps 3      # the same code path on a CPU, in seconds

An encoder shaped like XLM-R large (24 layers x 1024, 16 heads, vocab 250,002; random weights,
nothing downloaded) is fine-tuned on synthetic batches whose lengths follow the task's real
length distribution (log-normal around the registry's mean subword count, cut at the recipe's
max length: XNLI-, PAN-X- and SQuAD-like). In the same process, for each task:

- xtrc: bf16 autocast over fp32 master weights, SDPA attention, fused AdamW, TF32, pinned
  non-blocking copies one batch ahead, dynamic padding to a multiple of 8, length-grouped
  batches of 32 (xtrc's default; ``--batch-sizes`` runs more sizes, each reported);
- reference: the XTREME scripts' recipe: fp32 without TF32, every example padded to max length,
  batches of 2 x 16 gradient accumulation (4 x 8 for QA); evaluation in fp32, padded, in fixed
  batches of 32 in data order.

Each run prints, as soon as it finishes: real-token (non-pad) throughput, MFU over real tokens
(the PaLM appendix-B convention, see :func:`flops`) against the device's dense bf16 peak from a
table by device name, peak memory, the milliseconds per optimizer step, whether SDPA ran a fused
kernel, evaluation throughput and the seconds each phase took; then the ratio to the reference.
A run that fails (out of memory, say) prints its error and the others still run (exit 1). No new
run starts once ``--budget-s`` seconds have passed. Without CUDA it prints one line and exits 0.

It imports no pydantic and no datasets (a GPU machine may have neither): the trainer reads its
settings from :class:`Recipe`, which carries the names of ``xtrc.stage.Hyperparameters``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import math
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

PEAK_BF16_TFLOPS = (  # dense (no sparsity), by a substring of torch.cuda.get_device_name()
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 6000 Ada", 364.0), ("RTX 4090", 165.0), ("A6000", 155.0),
    ("V100", 125.0), ("T4", 65.0),
)
LARGE = dict(vocab=250_002, hidden=1024, layers=24, heads=16, intermediate=4096)
TINY = dict(vocab=2000, hidden=64, layers=2, heads=2, intermediate=128)
XTRC_BATCH = 32  # xtrc's default batch size (Hyperparameters.batch_size)
REFERENCE_EVAL_BATCH = 32
WARM_STEPS = 3  # untimed optimizer steps first: cuBLAS handles, allocator growth, kernel choice
LEFT_ALLOCATED_GIB = 0.5  # more than this still allocated after a run: something outlived it


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


@dataclass(frozen=True)
class Recipe:
    """The settings xtrc's Trainer reads, under the names of ``xtrc.stage.Hyperparameters`` (a
    pydantic model; tests check that every recipe here validates as one)."""

    batch_size: int
    grad_accum: int
    max_steps: int
    max_seq_length: int
    precision: str  # "bf16" | "fp32"
    group_by_length: bool
    learning_rate: float = 2e-5
    epochs: float = 1000.0  # max_steps ends training
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_every_steps: int = 10**9
    early_stopping_patience: int = 0


def recipe(workload: Workload, *, reference: bool, batch_size: int, steps: int) -> Recipe:
    batch, accum = workload.reference_batch if reference else (batch_size, 1)
    return Recipe(batch_size=batch, grad_accum=accum, max_steps=steps, max_seq_length=workload.max_len,
                  precision="fp32" if reference else "bf16", group_by_length=not reference)


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


def flops(model: Any, shape: dict[str, int], sequence_tokens: list[int], *, training: bool = True) -> float:
    """Matmul FLOPs over real tokens, the PaLM appendix-B convention: a forward pass is 2 N T +
    4 L d T^2 for a sequence of T tokens, where N counts the encoder's weight matrices outside the
    embeddings (biases, LayerNorm and the embedding lookup do no matmuls) and the second term is
    QK^T and the attention-weighted values (bidirectional: the full T x T); training is 3x the
    forward (the backward computes gradients of inputs and of weights). The task head (under
    0.01% of the total for XLM-R large) is not counted. tests/integration/test_bench_gpu.py
    checks this against torch's FlopCounterMode on a real forward and backward."""
    n = sum(p.numel() for name, p in model.named_parameters() if p.ndim == 2 and "embeddings" not in name)
    forward = sum(2 * n * t + 4 * shape["layers"] * shape["hidden"] * t * t for t in sequence_tokens)
    return 3 * forward if training else forward


def run(workload: Workload, shape: dict[str, int], device: Any, *, reference: bool, batch_size: int, steps: int,
        train_size: int, eval_size: int) -> dict[str, Any]:
    """One timed training run and one timed evaluation, from a fresh model. The TF32 flags are
    what they were before when it returns, and the model and its optimizer are gone (collected,
    and on a GPU their memory released), so no two XLM-R-large-sized models are ever alive."""
    import torch

    try:
        with _tf32_restored():
            return _run(workload, shape, device, reference=reference, batch_size=batch_size, steps=steps,
                        train_size=train_size, eval_size=eval_size)
    finally:
        gc.collect()  # a reference cycle (an exception's traceback, say) must not keep 9 GB alive
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _run(workload: Workload, shape: dict[str, int], device: Any, *, reference: bool, batch_size: int, steps: int,
         train_size: int, eval_size: int) -> dict[str, Any]:
    import torch

    from xtrc import tasks
    from xtrc_runtime.evaluate import predict
    from xtrc_runtime.model import HeadSpec, TaskModel
    from xtrc_runtime.train import Trainer, TrainTask

    cuda = device.type == "cuda"
    info = tasks.TASKS[workload.task]
    train = features(workload.task, workload.max_len, train_size, shape["vocab"], seed=1)
    hp = recipe(workload, reference=reference, batch_size=batch_size, steps=steps)
    clock = time.perf_counter()
    model = TaskModel(encoder(shape, device), {"target": HeadSpec(info.type, info.labels)}).to(device)
    trainer = Trainer(model, hp, seed=1, device=device, pad_id=1, pad_to_max=reference)  # type: ignore[arg-type]
    warm = Trainer(model, dataclasses.replace(hp, max_steps=1 if reference else WARM_STEPS),  # type: ignore[arg-type]
                   seed=2, device=device, pad_id=1, pad_to_max=reference)
    # After the trainers (which turn TF32 on for a GPU): the reference runs plain fp32.
    _set_tf32(not reference)
    task = TrainTask(workload.task, "target", train)
    out: dict[str, Any] = {"attention": _attention_kernel(model, device, None if reference else torch.bfloat16)}
    _synchronize(device)
    out["init_s"] = time.perf_counter() - clock
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    clock = time.perf_counter()
    warm.train([[task]])  # first-call costs off the clock
    _synchronize(device)
    out["warm_s"] = time.perf_counter() - clock
    start = time.perf_counter()
    trainer.train([[task]])
    _synchronize(device)
    seconds = time.perf_counter() - start
    out["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    used = consumed(trainer, train, hp)
    if sum(used) != trainer.tokens_seen:  # the MFU would count other sequences than those trained on
        raise AssertionError(f"bench/gpu.py: the schedule replay gives {sum(used)} real tokens, "
                             f"the trainer counted {trainer.tokens_seen}")
    out.update(train_s=seconds, step_ms=1000 * seconds / steps,
               tokens_per_s=trainer.tokens_seen / seconds, examples_per_s=trainer.examples_seen / seconds,
               flops_per_s=flops(model.encoder, shape, used) / seconds,
               peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0)
    del warm, trainer  # the optimizers are gone already (Trainer.train drops them); the grads too

    test = features(workload.task, workload.max_len, eval_size, shape["vocab"], seed=3)
    real = [f.tokens for f in test]

    def evaluate(fs: list[Any]) -> None:
        if reference:
            _reference_predict(model, fs, max_len=workload.max_len)
        else:  # the batch size runtime/stage.py passes; on a GPU predict() grows it to a token budget
            predict(model, "target", fs, pad_id=1, batch_size=2 * hp.batch_size, device=device,
                    autocast=torch.bfloat16 if cuda else None)

    evaluate(test[:2 * hp.batch_size])  # warm-up
    _synchronize(device)
    start = time.perf_counter()
    evaluate(test)
    _synchronize(device)
    out["eval_s"] = time.perf_counter() - start
    out["eval_tokens_per_s"] = sum(real) / out["eval_s"]
    out["eval_flops_per_s"] = flops(model.encoder, shape, real, training=False) / out["eval_s"]
    return out


def _reference_predict(model: Any, features: list[Any], *, max_len: int) -> None:
    """XTREME's evaluation loop: data order, fixed batches, every example padded to max length,
    fp32 (no autocast) under no_grad."""
    import torch

    from xtrc_runtime.features import collate

    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for i in range(0, len(features), REFERENCE_EVAL_BATCH):
            chunk = features[i:i + REFERENCE_EVAL_BATCH]
            batch = collate(chunk, 1, pad_to=max_len)
            model("target", batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu()


def consumed(trainer: Any, train: list[Any], hp: Recipe) -> list[int]:
    """Real token counts of the sequences a finished run trained on, in schedule order: the
    Trainer's epochs concatenated (each a pure function of seed and epoch), cut at what it saw."""
    from xtrc_runtime.train import TrainTask, schedule

    flat: list[int] = []
    epoch = 0
    while len(flat) < trainer.examples_seen:
        order = schedule([TrainTask("t", "target", train)], hp.batch_size, trainer.seed, epoch,
                         group_by_length=trainer.group_by_length)
        flat += [i for _, batch in order for i in batch]
        epoch += 1
    return [train[i].tokens for i in flat[: trainer.examples_seen]]


def _attention_kernel(model: Any, device: Any, autocast: Any) -> str:
    """Whether a padded batch gets a fused SDPA kernel (flash, memory-efficient or cuDNN) or only
    the unfused math fallback that materialises every attention matrix, in training (attention
    dropout on) and in evaluation: one forward each with the fallback disabled."""
    import warnings

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    ids = torch.full((2, 64), 5, device=device)
    ids[1, 40:] = 1  # padding: transformers passes SDPA a mask
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    verdicts = []
    for mode in ("train", "eval"):
        model.train(mode == "train")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with torch.inference_mode(), sdpa_kernel(fused), \
                        torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    model("target", ids, (ids != 1).long())
                verdicts.append(f"{mode} fused")
            except Exception as error:  # a diagnosis, not a failure: training runs whatever SDPA picks
                # torch gives its reasons as warnings ("... not used because: ..." + the reason)
                reasons = [str(w.message).split(" (Triggered")[0] for w in caught
                           if "because" not in str(w.message)] or [str(error).splitlines()[0]]
                verdicts.append(f"{mode} not fused: {reasons[0][:70]}")
    model.train()
    return ", ".join(verdicts)


@contextlib.contextmanager
def _tf32_restored() -> Iterator[None]:
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _set_tf32(enabled: bool) -> None:
    """cuBLAS and cuDNN flags only (inert on a CPU, so a CPU test sees them too); the legacy API,
    which runtime/device.py uses: torch refuses to read one after the other set the state."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps of the xtrc path")
    parser.add_argument("--reference-steps", type=int, default=3, help="timed optimizer steps of the reference")
    parser.add_argument("--tasks", default="xnli,panx,squad")
    parser.add_argument("--batch-sizes", default=str(XTRC_BATCH),
                        help=f"xtrc's batch sizes to run, comma-separated, each reported with its ratio to the "
                             f"reference ({XTRC_BATCH} is xtrc's default)")
    parser.add_argument("--train", type=int, default=4000, help="synthetic training sequences per task")
    parser.add_argument("--eval", type=int, default=2000, help="synthetic evaluation sequences per task")
    parser.add_argument("--budget-s", type=float, default=240.0, help="start no new run after this many seconds")
    parser.add_argument("--tiny", action="store_true", help="the built-in tiny model's shape instead of XLM-R large")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (with --tiny: to exercise the code path)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    names = args.tasks.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        parser.error(f"--batch-sizes: {args.batch_sizes!r}: give positive integers, comma-separated, e.g. 32,64,128")

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
    import transformers

    print(f"device: {name}; peak bf16 dense {peak or 'unknown'} TFLOP/s; model "
          f"{'tiny' if args.tiny else 'XLM-R large shape'} ({shape['layers']} x {shape['hidden']}, vocab "
          f"{shape['vocab']:,}); torch {torch.__version__}, transformers {transformers.__version__}", flush=True)

    def mfu(flops_per_s: float) -> str:
        return f"{100 * flops_per_s / (peak * 1e12):5.1f}%" if peak else "  n/a"

    failed = False
    for task in names:
        workload = WORKLOADS[task]
        results: dict[str, dict[str, Any]] = {}
        runs = [(f"xtrc b{b}", False, b, args.steps) for b in sizes]
        runs.append(("reference", True, workload.reference_batch[0], args.reference_steps))
        for label, reference, batch, steps in runs:
            elapsed = time.perf_counter() - began
            if elapsed > args.budget_s:
                print(f"{task:6s} {label:12s} not run: --budget-s {args.budget_s:.0f} spent ({elapsed:.0f} s)", flush=True)
                continue
            try:
                r = run(workload, shape, device, reference=reference, batch_size=batch, steps=steps,
                        train_size=args.train, eval_size=args.eval)
            except Exception as error:  # one failed run (out of memory, say) must not cost the others' numbers
                failed = True
                print(f"{task:6s} {label:12s} FAILED: {type(error).__name__}: {str(error).splitlines()[0][:200]}",
                      flush=True)
                continue
            results[label] = r
            how = (f"fp32, pad {workload.max_len}, {batch} x {workload.reference_batch[1]}" if reference
                   else ("bf16" if device.type == "cuda" else "fp32") + f", dynamic pad, {batch} x 1")
            print(f"{task:6s} {label:12s} ({how}, tf32 {'on' if r['tf32'] else 'off'}, attention {r['attention']}) "
                  f"train {r['tokens_per_s']:10,.0f} real tokens/s  MFU {mfu(r['flops_per_s'])}  "
                  f"{r['step_ms']:7.1f} ms/step  peak {r['peak_gib']:5.1f} GiB  "
                  f"eval {r['eval_tokens_per_s']:10,.0f} real tokens/s  MFU {mfu(r['eval_flops_per_s'])}  "
                  f"[init {r['init_s']:.1f} s, warm {r['warm_s']:.1f} s, train {r['train_s']:.1f} s, "
                  f"eval {r['eval_s']:.1f} s; at {time.perf_counter() - began:.0f} s]", flush=True)
            if device.type == "cuda":
                left = torch.cuda.memory_allocated() / 2**30
                if left > LEFT_ALLOCATED_GIB:
                    print(f"{task:6s} warning: {left:.1f} GiB still allocated after the run", flush=True)
        ref = results.get("reference")
        ours = {k: v for k, v in results.items() if k != "reference"}
        if ref and ours:
            parts = [f"{label} train {r['tokens_per_s'] / ref['tokens_per_s']:.2f}x, "
                     f"eval {r['eval_tokens_per_s'] / ref['eval_tokens_per_s']:.2f}x" for label, r in ours.items()]
            print(f"{task:6s} ratio: {'; '.join(parts)} (goal: >= 4x, >= 30% MFU on H100/H200)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
