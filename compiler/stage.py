"""The stage contract shared by the planner (xtrc) and the runtime (xtrc_runtime).

A :class:`StageConfig` is everything one stage needs, resolved: no defaults left to look up,
no reference to arms or experiments. Its key is a hash of the canonical JSON of the fields
that determine the stage's output (:meth:`StageConfig.key_payload`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from xtrc.spec import CodeSwitch, DataSource, TranslateTrain

RUNTIME_MAJOR = 0
"""Bump when the runtime's outputs change for the same inputs: every key changes with it."""
KEY_LENGTH = 20
IMAGE_ENV = "XTRC_IMAGE"
"""The image reference a stage pod runs (set by its Job); the runtime records it in metrics.json."""
"""Hex digits of sha256 kept: 80 bits, no collision in any plausible store."""

StageKind = Literal["intermediate", "target", "retrieval"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyperparameters(_Frozen):
    """Resolved training settings for one stage (see spec.Training for the precedence)."""

    learning_rate: float = 2e-5
    batch_size: int = 32
    grad_accum: int = 1
    epochs: float = 3.0
    max_steps: int | None = None
    max_seq_length: int = 128
    doc_stride: int = 128
    max_query_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    eval_every_steps: int = 1000
    checkpoint_every_steps: int = 500
    checkpoint_every_minutes: float = 30.0
    early_stopping_patience: int = 0
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    group_by_length: bool = True
    selection: Literal["last", "dev"] = "dev"


NOT_IN_KEY = frozenset({"checkpoint_every_steps", "checkpoint_every_minutes"})
"""Hyperparameters that do not change a stage's output (resume is exact), so not in its key."""


class Augmentation(_Frozen):
    """The augmentation one stage applies (already filtered by the level's apply_to)."""

    level: str
    code_switch: CodeSwitch | None = None
    translate_train: TranslateTrain | None = None


class EvalTask(_Frozen):
    task: str
    languages: tuple[str, ...]


class StageConfig(_Frozen):
    kind: StageKind
    key: str = ""
    model: str = Field(description="Base model: hub id, fsspec model directory, or builtin:tiny-xlmr.")
    init_from: str | None = Field(None, description="Upstream stage key whose model/ to start from.")
    train_tasks: tuple[str, ...] = Field((), description="English training task(s); several = multi-task.")
    eval_tasks: tuple[EvalTask, ...] = ()
    hparams: Hyperparameters = Hyperparameters()
    multitask_cap: int | None = None
    save_model: bool = Field(False, description="Keep model/ of a target stage (a downstream stage starts from it).")
    augmentation: Augmentation | None = None
    data: dict[str, DataSource] = Field(default_factory=dict, description="Data overrides per task.")
    data_root: str | None = None
    tokenizer_corpus: tuple[tuple[str, str, str], ...] = Field(
        (), description="builtin:tiny-xlmr from scratch: the (task, language, split) whose text trains its "
        "tokenizer; the planner names the experiment's, so every stage starts from the same base model, as from "
        "a pretrained one. Empty: the stage's own tasks.")
    data_fingerprint: dict[str, str] = Field(
        default_factory=dict, description="What the stage reads, by content: per task its files (size and "
        "ETag/mtime, or a content hash), dictionaries, the model directory, or hub ids with the commit sha "
        "their revision was resolved to at plan time (xtrc.fingerprint, xtrc.revisions).")
    hub_revisions: dict[str, str] = Field(
        default_factory=dict, description="The commit the runtime reads of each hub dataset: the registry's "
        "dataset@revision (xtrc.revisions.pin_name) → its resolved sha. Not in the key: data_fingerprint "
        "holds the same shas, so a sha pinned in the spec and the same sha resolved from a branch give one key.")
    model_revision: str | None = Field(
        None, description="The commit sha of a hub base model the stage loads (None: not a hub model, or the "
        "stage starts from an upstream stage). Not in the key (data_fingerprint holds it).")
    seed: int | None = Field(None, description="None for stages whose output does not depend on a seed.")
    salt: str = ""
    runtime_major: int = RUNTIME_MAJOR
    store: str = Field("", description="Store root; not part of the key (the same stage may live anywhere).")
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data", "storage_options", "data_fingerprint", "hub_revisions")
    @classmethod
    def _sorted(cls, value: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(value.items()))

    @property
    def upstream(self) -> tuple[str, ...]:
        return (self.init_from,) if self.init_from else ()

    def key_payload(self) -> str:
        """Canonical JSON of everything that determines the output (fields in declaration
        order, mappings sorted): the key is its hash."""
        return self.model_dump_json(exclude=_KEY_EXCLUDE)

    def with_key(self) -> StageConfig:
        return self.model_copy(update={"key": compute_key(self.key_payload())})

    def to_json(self) -> str:
        """The inline form that travels in the Job (and `xtrc-runtime run-stage --config`)."""
        return self.model_dump_json()


_KEY_EXCLUDE: dict[str, Any] = {
    "key": True, "store": True, "storage_options": True, "hub_revisions": True, "model_revision": True,
    "hparams": {name: True for name in NOT_IN_KEY},
}


def compute_key(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]
