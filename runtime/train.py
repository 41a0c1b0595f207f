"""The training loop: warmup + linear decay, gradient accumulation, dev-set selection with early
stopping, and checkpoints that resume exactly (model, optimizer, scheduler, RNG, data position).

A stage trains in phases (XCOPA: SIQA, then COPA); a phase trains one task, or several mixed in
proportion to their size with a cap (multi-task intermediate training). The batch order of
every epoch is a pure function of (seed, phase, epoch), so the data position is just
(phase, epoch, batch index).
"""

from __future__ import annotations

import io
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch
from torch.nn import functional as F

from xtrc_runtime.device import pad_multiple, prepare_device, to_device
from xtrc_runtime.features import Feature, batches, collate
from xtrc_runtime.model import TaskModel

if TYPE_CHECKING:  # annotations only: training needs no pydantic (bench/gpu.py runs where it is not installed)
    from xtrc.stage import Hyperparameters

log = logging.getLogger("xtrc_runtime")
PROGRESS_EVERY_S = 1.0


@dataclass
class TrainTask:
    name: str
    head: str
    features: list[Feature]
    cap: int | None = None  # multi-task: at most this many examples per epoch
    resample: Callable[[int], list[Feature]] | None = None
    """Features for an epoch, when they change per epoch (dynamic code-switching); deterministic
    in the epoch, so a resumed run sees the same data. Must keep the number of features."""
    _epoch: int = field(default=0, repr=False)

    def for_epoch(self, epoch: int) -> list[Feature]:
        if self.resample is not None and epoch != self._epoch:
            self.features, self._epoch = self.resample(epoch), epoch
        return self.features


@dataclass
class Position:
    phase: int = 0
    epoch: int = 0
    batch: int = 0  # batches already consumed in this epoch
    step: int = 0  # optimizer steps in this phase
    global_step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Checkpointing:
    every_steps: int
    every_minutes: float
    save: Callable[[Path, int], None]  # uploads a local checkpoint directory
    local_dir: Path


def loss_for(model: TaskModel, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    kind = model.heads[head].spec.type
    logits = model(head, batch["input_ids"], batch["attention_mask"])
    if kind == "qa":
        start, end = logits[..., 0], logits[..., 1]
        return (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
    if kind == "retrieval":  # in-batch negatives: each query's own candidate is the class (BertForRetrieval)
        vectors = F.normalize(logits.float(), dim=-1)
        similarity = vectors[:, 0] @ vectors[:, 1].T * model.heads[head].scale
        return F.cross_entropy(similarity, torch.arange(similarity.shape[0], device=similarity.device))
    if kind == "tagging":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    return F.cross_entropy(logits, batch["labels"])


def schedule(phase: Sequence[TrainTask], batch_size: int, seed: int, epoch: int, *,
             group_by_length: bool = True) -> list[tuple[int, list[int]]]:
    """(task index, feature indices) for every batch of one epoch, in order."""
    per_task: list[list[list[int]]] = []
    for t, task in enumerate(phase):
        task_seed = seed * 1000 + epoch * 10 + t
        groups = list(batches(task.for_epoch(epoch), batch_size, seed=task_seed, group_by_length=group_by_length))
        if task.cap is not None:
            groups = groups[: max(1, math.ceil(task.cap / batch_size))]
        per_task.append(groups)
    if len(phase) == 1:
        return [(0, g) for g in per_task[0]]
    # Mixed: every task's batches appear once per epoch, interleaved at random, so each task is
    # sampled in proportion to its (capped) size.
    order = [t for t, groups in enumerate(per_task) for _ in groups]
    random.Random(seed * 7919 + epoch).shuffle(order)
    cursors = [0] * len(phase)
    out = []
    for t in order:
        out.append((t, per_task[t][cursors[t]]))
        cursors[t] += 1
    return out


class Trainer:
    def __init__(self, model: TaskModel, hp: Hyperparameters, *, seed: int, device: torch.device,
                 pad_id: int, evaluate: Callable[[int], float | None] | None = None,
                 checkpointing: Checkpointing | None = None, pad_to_max: bool = False,
                 group_by_length: bool | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None):
        self.model = model
        self.parameters = list(model.parameters())  # listed once: model.parameters() walks every module
        self.on_progress = on_progress  # at most every PROGRESS_EVERY_S, and at logged steps
        self._steps_before = 0
        self.hp = hp
        self.seed = seed
        self.device = device
        self.pad_id = pad_id
        self.evaluate = evaluate
        self.checkpointing = checkpointing
        self.pad_to_max = pad_to_max  # the XTREME reference recipe (for benchmarks)
        self.group_by_length = (hp.group_by_length if group_by_length is None else group_by_length) and not pad_to_max
        self.autocast_dtype = _autocast_dtype(hp.precision, device)
        prepare_device(device)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a no-op then).
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.examples_seen = 0
        self.tokens_seen = 0  # real (non-pad) tokens trained on
        self._reported = 0.0  # when on_progress was last called

    # --- public ----------------------------------------------------------------------------
    def train(self, phases: Sequence[Sequence[TrainTask]], resume_dir: Path | None = None) -> Position:
        pos = Position()
        optimizer = scheduler = None
        if resume_dir is not None:
            pos, optimizer, scheduler = self._restore(resume_dir, phases)
        last_save = time.monotonic()
        started = time.monotonic()
        self._steps_before = pos.step  # resumed: the rate counts only this run's steps
        for phase_index in range(pos.phase, len(phases)):
            phase = phases[phase_index]
            total = self._total_steps(phase)
            if optimizer is None or pos.phase != phase_index:
                # A new phase selects its own best model on its own task's dev set.
                pos = Position(phase=phase_index, global_step=pos.global_step, history=pos.history)
                started, self._steps_before = time.monotonic(), 0  # each phase's ETA from its own rate
                self.best_state = None
                optimizer, scheduler = self._optimizer(total)
            self.model.train()
            # A checkpoint taken at the eval that stopped training early resumes stopped, not training on.
            stop = self._patience_exhausted(pos)
            while pos.step < total and not stop:
                order = schedule(phase, self.hp.batch_size, self.seed + 7 * phase_index, pos.epoch,
                                 group_by_length=self.group_by_length)
                accumulated = 0
                for task_index, indices, batch in self._prefetched(phase, order[pos.batch:]):
                    task = phase[task_index]
                    with torch.autocast(self.device.type, dtype=self.autocast_dtype,
                                        enabled=self.autocast_dtype is not None):
                        loss = loss_for(self.model, task.head, batch) / self.hp.grad_accum
                    self.scaler.scale(loss).backward()
                    self.examples_seen += len(indices)
                    self.tokens_seen += sum(task.features[i].tokens for i in indices)
                    pos.batch += 1
                    accumulated += 1
                    if accumulated < self.hp.grad_accum and pos.batch < len(order):
                        continue
                    accumulated = 0
                    self.scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(self.parameters, 1.0, foreach=True)
                    self.scaler.step(optimizer)
                    self.scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    pos.step += 1
                    pos.global_step += 1
                    self._progress(pos, total, loss.detach() * self.hp.grad_accum, started, len(phases))
                    if self.evaluate and pos.step % self.hp.eval_every_steps == 0:
                        stop = self._evaluate(pos)
                    if self._due(pos, last_save):
                        self._checkpoint(pos, optimizer, scheduler)
                        last_save = time.monotonic()
                    if stop or pos.step >= total:
                        break
                else:
                    pos.epoch += 1
                    pos.batch = 0
            if self.evaluate and (not pos.history or pos.history[-1]["step"] != pos.global_step):
                self._evaluate(pos)
            if self.best_state is not None:  # the next phase (or the stage's output) starts from the best
                self.model.load_state_dict(self.best_state)
            optimizer = None
        return pos

    # --- internals -------------------------------------------------------------------------
    def _prefetched(self, phase: Sequence[TrainTask], order: Sequence[tuple[int, list[int]]]
                    ) -> Iterator[tuple[int, list[int], dict[str, torch.Tensor]]]:
        """Batches on the device, one ahead: while the GPU runs step i, the CPU collates batch i+2
        and queues its copy (pinned memory, non-blocking), so the step never waits on the host."""
        pending = None
        for task_index, indices in order:
            features = phase[task_index].features
            batch = to_device(collate([features[i] for i in indices], self.pad_id,
                                      pad_to=self.hp.max_seq_length if self.pad_to_max else None,
                                      multiple_of=pad_multiple(self.device)), self.device)
            if pending is not None:
                yield pending
            pending = (task_index, indices, batch)
        if pending is not None:
            yield pending

    def _total_steps(self, phase: Sequence[TrainTask]) -> int:
        """Optimizer steps of a phase: its epochs (or max_steps) of accumulated batches."""
        batches_per_epoch = len(schedule(phase, self.hp.batch_size, self.seed, 0, group_by_length=self.group_by_length))
        steps_per_epoch = max(1, math.ceil(batches_per_epoch / self.hp.grad_accum))
        total = math.ceil(steps_per_epoch * self.hp.epochs)
        return min(total, self.hp.max_steps) if self.hp.max_steps else total

    def _optimizer(self, total: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "bias" in name else decay).append(p)
        # One fused kernel over every parameter (CUDA, and CPU since torch 2.4): the per-tensor
        # loop of the default implementation is a tenth of a small model's CPU step.
        fused = self.device.type in ("cuda", "cpu")
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hp.learning_rate, fused=fused,
        )
        warmup = int(total * self.hp.warmup_ratio)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _evaluate(self, pos: Position) -> bool:
        """Score on dev; keep the best weights; True when early stopping says stop."""
        assert self.evaluate is not None
        self.model.eval()
        score = self.evaluate(pos.phase)
        self.model.train()
        pos.history.append({"step": pos.global_step, "phase": pos.phase, "dev": score})
        if score is None:
            return False
        improved = pos.best_score is None or score > pos.best_score
        log.info("eval step %d: dev %.2f%s", pos.global_step, score,
                 " (best so far)" if improved else f" (best {pos.best_score:.2f} at step {pos.best_step})")
        if improved:
            pos.best_score, pos.best_step = score, pos.global_step
            pos.evals_without_improvement = 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            return False
        pos.evals_without_improvement += 1
        return self._patience_exhausted(pos)

    def _patience_exhausted(self, pos: Position) -> bool:
        patience = self.hp.early_stopping_patience
        return bool(patience) and pos.evals_without_improvement >= patience

    def _due(self, pos: Position, last_save: float) -> bool:
        c = self.checkpointing
        if c is None:
            return False
        return pos.global_step % c.every_steps == 0 or (time.monotonic() - last_save) / 60 >= c.every_minutes

    def _checkpoint(self, pos: Position, optimizer: Any, scheduler: Any) -> None:
        c = self.checkpointing
        assert c is not None
        if c.local_dir.exists():
            shutil.rmtree(c.local_dir)
        c.local_dir.mkdir(parents=True)
        torch.save(self.model.state_dict(), c.local_dir / "model.pt")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": self.scaler.state_dict()}, c.local_dir / "optim.pt")
        if self.best_state is not None:
            torch.save(self.best_state, c.local_dir / "best.pt")
        rng = {"python": random.getstate(), "torch": torch.random.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, c.local_dir / "rng.pt")
        (c.local_dir / "position.json").write_text(json.dumps(asdict(pos), sort_keys=True))
        c.save(c.local_dir, pos.global_step)
        log.info("checkpoint at step %d", pos.global_step)

    def _restore(self, directory: Path, phases: Sequence[Sequence[TrainTask]]) -> tuple[Position, Any, Any]:
        pos = Position(**json.loads((directory / "position.json").read_text()))
        self.model.load_state_dict(_load(directory / "model.pt"))
        if (directory / "best.pt").exists():
            self.best_state = _load(directory / "best.pt")
        optimizer, scheduler = self._optimizer(self._total_steps(phases[pos.phase]))
        state = _load(directory / "optim.pt")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        rng = torch.load(directory / "rng.pt", weights_only=False)
        random.setstate(rng["python"])
        torch.random.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        log.info("resumed from step %d (phase %d, epoch %d, batch %d)", pos.global_step, pos.phase, pos.epoch, pos.batch)
        return pos, optimizer, scheduler

    def _progress(self, pos: Position, total: int, loss: torch.Tensor, started: float, phases: int) -> None:
        # Reading the loss waits for the GPU to finish the step: at most once a second, and at the
        # logged steps, so the steps in between queue up behind each other.
        now = time.monotonic()
        elapsed = now - started
        done_here = pos.step - self._steps_before if pos.step > self._steps_before else pos.step
        remaining = (total - pos.step) * (elapsed / max(1, done_here))
        every = max(1, total // 10)
        logged = pos.step % every == 0 or pos.step == total
        reported = self.on_progress is not None and (logged or now - self._reported >= PROGRESS_EVERY_S)
        if not (logged or reported):
            return
        value = float(loss)
        if reported:
            self._reported = now
            self.on_progress({"phase": pos.phase + 1, "phases": phases, "step": pos.step, "total": total,  # type: ignore[misc]
                              "eta_seconds": round(remaining, 1), "loss": round(value, 4)})
        if logged:
            rate = self.examples_seen / elapsed if elapsed > 0 else 0.0
            log.info("step %d/%d  loss %.4f  %.1f examples/s  ETA %s", pos.step, total, value, rate,
                     time.strftime("%H:%M:%S", time.gmtime(remaining)))


def _load(path: Path) -> Any:
    with open(path, "rb") as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
