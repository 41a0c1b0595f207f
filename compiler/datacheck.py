"""What data each stage reads, and `xtrc plan --check-data`.

The list of (task, language, split) a stage reads is defined here once: the runtime's preflight
validates exactly these before training, and ``xtrc plan --check-data`` sends the plan's stage
configs to ``xtrc-runtime check-data`` (a subprocess, so this package never imports
``datasets``), which validates them with the same code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from xtrc import protocol, tasks
from xtrc.stage import StageConfig

if TYPE_CHECKING:
    from xtrc.plan import Plan

EXIT_OK, EXIT_UNCHECKED, EXIT_GAPS = 0, 1, 2


@dataclass(frozen=True, order=True)
class Need:
    """One file (or hub split) a stage reads."""

    task: str
    language: str
    """``""`` for a task-wide file (the Mewsli-X entity catalogue)."""
    split: str
    name: str = ""
    """The file stem where it is not the split (``questions``, ``candidates``, ``entities``)."""
    optional: bool = False
    """A dev set used only for model selection: missing is not a gap (the stage trains without selection)."""

    @property
    def label(self) -> str:
        return f"{self.task} {self.language or '*'} {self.name or self.split}"

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "language": self.language, "split": self.split, "name": self.name,
                "optional": self.optional}


def stage_needs(config: StageConfig) -> list[Need]:
    """Every split and language ``config`` reads (translate-train and dictionaries aside:
    :func:`translation_targets` and ``augmentation.code_switch``)."""
    out: list[Need] = []
    evals = [e.task for e in config.eval_tasks]
    for i, task in enumerate(config.train_tasks):
        out.append(Need(task, "en", "train"))
        if task == "mewslix":  # training pairs name their entities in the catalogue
            out.append(Need("mewslix", "", "test", "entities"))
        if config.hparams.selection == "dev":  # the dev set that selects this phase's checkpoint
            last = i == len(config.train_tasks) - 1
            chosen = protocol.selection_task(evals, task, last) if config.kind == "target" else task
            out.append(Need(chosen, "en", "dev", optional=True))
    for ev in config.eval_tasks:
        if ev.task == "mewslix":
            out.append(Need("mewslix", "", "test", "entities"))
        for lang in ev.languages:
            if ev.task == "lareqa":
                out += [Need("lareqa", lang, "test", "questions"), Need("lareqa", lang, "test", "candidates")]
            else:
                out.append(Need(ev.task, lang, "test"))
            if ev.task == "bucc":  # the sample gold tunes the threshold: required (no test-optimal fallback)
                out.append(Need("bucc", lang, "dev"))
    return list(dict.fromkeys(out))


def translation_targets(config: StageConfig) -> list[tuple[str, str]]:
    """(target task whose translations are read, task trained on) for each training task of a
    stage with translate-train (XNLI's translations are MNLI rows)."""
    aug = config.augmentation
    if aug is None or aug.translate_train is None:
        return []
    cfg = aug.translate_train
    out = []
    for train_task in config.train_tasks:
        candidates = [e.task for e in config.eval_tasks] or [train_task]
        target = next((t for t in candidates if t in cfg.paths or tasks.TASKS[t].translations is not None),
                      candidates[0])
        out.append((target, train_task))
    return out


@dataclass
class Result:
    """The answer of ``xtrc-runtime check-data`` for one need."""

    label: str
    status: str
    """``ok``, ``gap`` (missing or invalid: the stage would fail) or ``unchecked`` (e.g. offline)."""
    detail: str = ""
    rows: int | None = None
    stages: tuple[str, ...] = ()
    """Keys of the stages that read it."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(str(data["label"]), str(data["status"]), str(data.get("detail", "")), data.get("rows"),
                   tuple(data.get("stages") or ()))

    def line(self) -> str:
        rows = f" ({self.rows:,} row{'s' if self.rows != 1 else ''})" if self.rows is not None else ""
        word = {"gap": "gap", "unchecked": "cannot check", "ok": "ok"}.get(self.status, self.status)
        return f"{word}: {self.label}{rows}" + (f": {self.detail}" if self.detail else "")


class CheckDataError(Exception):
    """The runtime's checker could not run (not installed, crashed)."""


def check_stages(stages: Iterable[StageConfig], *, timeout: float = 600.0) -> list[Result]:
    """Validate what ``stages`` read by running ``xtrc-runtime check-data`` (parallel and cached there)."""
    payload = json.dumps([json.loads(s.to_json()) for s in stages])
    command = _runtime_command() + ["check-data", "-"]
    try:
        done = subprocess.run(command, input=payload, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except FileNotFoundError as exc:
        raise CheckDataError(f"cannot run {command[0]}: {exc}; install xtrc[runtime] to check data") from None
    except subprocess.TimeoutExpired:
        raise CheckDataError(f"xtrc-runtime check-data did not finish in {timeout:.0f}s") from None
    try:
        answer = json.loads(done.stdout)
        return [Result.from_json(r) for r in answer["results"]]
    except (ValueError, KeyError, TypeError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise CheckDataError(f"xtrc-runtime check-data failed (exit {done.returncode}): "
                             + " | ".join(tail)) from None


def rejected_stages(plan: Plan, done: set[str]) -> tuple[dict[str, str], list[str]]:
    """(stage key → why its data fail the check, notes) for the stages of ``plan`` not done:
    the orchestration loop never submits a rejected stage (no GPU time on data that cannot work)."""
    todo = [stage for key, stage in plan.stages.items() if key not in done]
    if not plan.experiment.data.check or not todo:
        return {}, []
    try:
        results = check_stages(todo)
    except CheckDataError as exc:
        return {}, [f"data not checked before running ({exc}); each stage still validates its data before training"]
    rejected: dict[str, str] = {}
    for result in results:
        if result.status == "gap":
            for key in result.stages:
                rejected.setdefault(key, f"configuration error: data check: {result.label}: {result.detail}")
    unchecked = [r for r in results if r.status == "unchecked"]
    notes = [f"{len(unchecked)} split(s) could not be checked here ({unchecked[0].detail}); their stages "
             "validate them before training"] if unchecked else []
    return rejected, notes


class CheckedBackend:
    """A backend that reports the stages the data check rejected as failed, never submitting them."""

    def __init__(self, inner: Any, rejected: dict[str, str]):
        self.inner = inner
        self.rejected = rejected

    def submit(self, stage: StageConfig) -> None:
        if stage.key not in self.rejected:
            self.inner.submit(stage)

    def poll(self) -> dict[str, Any]:
        from xtrc.orchestrate import BackendStatus

        status = dict(self.inner.poll())
        for key, reason in self.rejected.items():
            status.setdefault(key, BackendStatus("failed", reason, attempts=0))
        return status

    def cancel(self) -> None:
        self.inner.cancel()

    def __getattr__(self, name: str) -> Any:  # log_path, env, …: the wrapped backend's
        return getattr(self.inner, name)


def exit_code(results: list[Result]) -> int:
    if any(r.status == "gap" for r in results):
        return EXIT_GAPS
    if any(r.status == "unchecked" for r in results):
        return EXIT_UNCHECKED
    return EXIT_OK


def _runtime_command() -> list[str]:
    """The installed ``xtrc-runtime`` next to this interpreter (a venv's bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "xtrc-runtime")
    return [here] if os.path.exists(here) else ["xtrc-runtime"]
