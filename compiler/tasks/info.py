"""The registry's record types: a task, its hub source, translations, reference recipe and sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping


TaskType = Literal["classification", "multiple_choice", "tagging", "qa", "retrieval"]
Role = Literal["intermediate", "target", "source"]
Benchmark = Literal["xtreme", "xtreme-r"]

_EMPTY: Mapping[str, str] = MappingProxyType({})

def _empty() -> Mapping[str, str]:
    return _EMPTY

@dataclass(frozen=True)
class HFSource:
    """Where the real data lives on the Hugging Face hub, and which columns the runtime reads."""

    dataset: str
    """Hub id, e.g. ``google/xtreme``."""
    config: str | None = None
    """Config name; ``{lang}`` is replaced by the language code, ``{Language}`` by
    ``config_by_language[lang]`` (e.g. ``udpos.{Language}`` → ``udpos.English``)."""
    config_by_language: Mapping[str, str] = field(default_factory=_empty)
    splits: Mapping[str, str] = field(default_factory=_empty)
    """Role (``train``, ``dev``, ``test``) → split name in the dataset. A missing role means
    the source has no such split."""
    fields: tuple[str, ...] = ()
    """The dataset's columns that the runtime reads (the fixture schema too)."""
    quirks: str = ""
    """What the loader must do beyond reading the columns (filters, stripping, label maps)."""
    revision: str | None = None
    """A pinned git revision (a ``refs/convert/parquet`` export, a ``refs/pr/N`` conversion or a
    commit) where the repository's main branch still holds a loading script that datasets ≥ 4
    refuses to run."""
    data_dir: str | None = None
    """A folder inside the repository (same placeholders as ``config``); ``+`` joins several
    folders whose rows are concatenated (UD: every treebank of a language, as XTREME does)."""
    columns: Mapping[str, str] = field(default_factory=_empty)
    """Source column → the task's registry column, for mirrors that name a column differently."""
    label_names: tuple[str, ...] = ()
    """ClassLabel order of the source's tag/label column where it differs from the task's
    labels; rows are converted to label strings (and ``drop_label`` tokens removed)."""
    drop_label: str | None = None
    """A tag whose tokens the loader removes (UD's ``_`` for multiword-token ranges)."""
    cite: str = ""
    """Where the facts above come from: the dataset card, tree or commit that was checked."""

    def _fill(self, template: str, language: str) -> str:
        mapped = self.config_by_language.get(language, language)
        return template.replace("{Language}", mapped).replace("{lang}", language)

    def config_for(self, language: str) -> str | None:
        return None if self.config is None else self._fill(self.config, language)

    def data_dirs_for(self, language: str) -> tuple[str | None, ...]:
        """The folders to read for ``language`` (``(None,)``: the whole config)."""
        if self.data_dir is None:
            return (None,)
        return tuple(self._fill(self.data_dir, language).split("+"))

    def describe(self, language: str, split: str) -> str:
        """``dataset[@revision] config[/dir] [split]`` for messages."""
        at = f"@{self.revision}" if self.revision else ""
        where = " ".join(x for x in (self.config_for(language), self._fill(self.data_dir, language)
                                     if self.data_dir else None) if x)
        return f"{self.dataset}{at} {where} [{split}]".replace("  ", " ")

@dataclass(frozen=True)
class Translations:
    """Machine-translated English training data that translate-train can add."""

    languages: tuple[str, ...]
    source: HFSource | None
    """None when the translations exist only outside the hub (a user path is then required)."""
    description: str = ""

@dataclass(frozen=True)
class Recipe:
    """The reference fine-tuning recipe for a task (XTREME's ``scripts/train_*.sh``). XTREME's
    "batch 2×16 (grad-acc)" is read as 16 examples per step with 2 accumulation steps, i.e. 32 per
    update; "4×8" for QA likewise as 8 per step with 4 accumulation steps."""

    learning_rate: float
    epochs: float
    batch_size: int
    grad_accum: int
    max_seq_length: int
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    doc_stride: int | None = None
    max_query_length: int | None = None
    """QA questions and dual-encoder queries are truncated to this many subwords."""

@dataclass(frozen=True)
class Sizes:
    """Approximate example counts, for the GPU-hour estimate only."""

    train: int = 0
    dev: int = 0
    test_per_language: int = 0

@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    type: TaskType
    roles: frozenset[Role]
    languages: tuple[str, ...]
    """Evaluation languages (zero-shot) for targets; ``("en",)`` for intermediate/source tasks."""
    xtreme_r_added: tuple[str, ...] = ()
    """Languages XTREME-R added to this task; XTREME evaluates ``languages`` without them."""
    metrics: tuple[str, ...] = ()
    """Every metric the runtime computes; the first is the headline (F1 wherever defined)."""
    xtreme_score: str = ""
    """How the task counts in the XTREME(-R) average: a metric name, or ``em_f1_mean`` for QA."""
    benchmarks: frozenset[Benchmark] = frozenset()
    train_on: tuple[str, ...] = ()
    """English training task(s), in order, for targets trained on another task's data
    (XNLI → MNLI, XQuAD → SQuAD, XCOPA → SIQA then COPA). Empty: the task's own English train."""
    labels: tuple[str, ...] = ()
    num_choices: int | None = None
    source: HFSource | None = None
    sources_by_language: Mapping[str, HFSource] = field(default_factory=_empty)  # type: ignore[assignment]
    """Languages whose data live in another hub repository than ``source`` (XTREME-R's additions)."""
    needs_data_path: bool = False
    """True when no public source exists (CCG): a spec must give a data path."""
    translations: Translations | None = None
    sizes: Sizes = field(default_factory=Sizes)
    mean_tokens: int = 128
    """Approximate mean subword length of one example (estimate only)."""
    recipe: Recipe | None = None
    group_by_length: bool = True
    """The default of ``group_by_length`` for this task's stages (a spec's value still wins): off
    where grouped batches measurably cost quality (bench/throughput.py, README's Benchmarks)."""
    notes: str = ""

    def languages_for(self, benchmark: Benchmark) -> tuple[str, ...]:
        """Evaluation languages under XTREME-R (all) or XTREME (without the XTREME-R additions)."""
        if benchmark == "xtreme":
            return tuple(lang for lang in self.languages if lang not in self.xtreme_r_added)
        return self.languages

    def source_for(self, language: str) -> HFSource | None:
        """The hub source of ``language``'s rows (None: a data path is required, see ``notes``)."""
        return self.sources_by_language.get(language, self.source)

    @property
    def trains(self) -> bool:
        """Whether the task trains with a task head of its own. Retrieval tasks do not; whether
        they train at all (XTREME-R's dual encoders) is the benchmark protocol's call
        (:mod:`xtrc.protocol`)."""
        return self.type != "retrieval"

    @property
    def training_tasks(self) -> tuple[str, ...]:
        return self.train_on or (self.name,)

TYDIQA_ID_PREFIX: Mapping[str, str] = MappingProxyType({
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
})
"""TyDiQA-GoldP mixes its languages in one split; a row's id starts with ``<name>-``."""
