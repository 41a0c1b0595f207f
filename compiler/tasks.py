"""The task registry: every task xtrc knows, as data, defined once.

Facts (languages, metrics, sources, recipes) follow ../shared/reference/domain.md; sizes are
approximate and used only for the GPU-hour estimate. The runtime reads the same entries to
load data, so a field named here is a field the loader really reads.
"""

from __future__ import annotations

import difflib
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
    """The reference fine-tuning recipe for a task (XTREME's ``scripts/train_*.sh``)."""

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


# --- the registry ------------------------------------------------------------------------

_NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
_BINARY_LABELS: tuple[str, ...] = ("0", "1")
_PANX_LABELS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
_UPOS_LABELS: tuple[str, ...] = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)

_CLASSIFICATION_METRICS: tuple[str, ...] = ("f1", "accuracy")
_MC_METRICS: tuple[str, ...] = ("accuracy",)
_TAGGING_METRICS: tuple[str, ...] = ("f1", "precision", "recall")
_QA_METRICS: tuple[str, ...] = ("f1", "exact_match")

_QA_FIELDS: tuple[str, ...] = ("id", "title", "context", "question", "answers")
_XQUAD_FIELDS: tuple[str, ...] = ("id", "context", "question", "answers")
_PAIR_FIELDS: tuple[str, ...] = ("source_sentence", "target_sentence", "source_lang", "target_lang")
_COPA_FIELDS: tuple[str, ...] = ("premise", "choice1", "choice2", "question", "label")
_TRAIN_DEV: Mapping[str, str] = MappingProxyType({"train": "train", "dev": "validation"})
_TRAIN_DEV_TEST: Mapping[str, str] = MappingProxyType(
    {"train": "train", "dev": "validation", "test": "test"}
)

_XNLI_LANGS: tuple[str, ...] = (
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
)
_PAWSX_LANGS: tuple[str, ...] = ("de", "en", "es", "fr", "ja", "ko", "zh")
_UDPOS_LANGS: tuple[str, ...] = (
    "af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu",
    "id", "it", "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl", "tr", "ur",
    "vi", "yo", "zh",
    "lt", "pl", "uk", "wo", "ro",
)
_PANX_LANGS: tuple[str, ...] = (
    "ar", "he", "vi", "id", "jv", "ms", "tl", "eu", "ml", "ta", "te", "af", "nl", "en", "de",
    "el", "bn", "hi", "mr", "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko",
    "th", "sw", "yo", "my", "zh", "kk", "tr", "et", "fi", "hu",
    "qu", "pl", "uk", "az", "lt", "pa", "gu", "ro",
)
_XQUAD_LANGS: tuple[str, ...] = (
    "en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi",
    "ro",
)
_MLQA_LANGS: tuple[str, ...] = ("en", "es", "de", "ar", "hi", "vi", "zh")
_TYDIQA_LANGS: tuple[str, ...] = ("en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
_BUCC_LANGS: tuple[str, ...] = ("de", "fr", "ru", "zh")
_TATOEBA_LANGS: tuple[str, ...] = (
    "ar", "he", "vi", "id", "jv", "tl", "eu", "ml", "ta", "te", "af", "nl", "de", "el", "bn",
    "hi", "mr", "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko", "th", "sw",
    "zh", "kk", "tr", "et", "fi", "hu",
    "az", "lt", "pl", "uk", "ro",
)
_XCOPA_LANGS: tuple[str, ...] = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
_MEWSLIX_LANGS: tuple[str, ...] = (
    "ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk",
)
_LAREQA_LANGS: tuple[str, ...] = (
    "ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh",
)

_UDPOS_CONFIG_NAMES: Mapping[str, str] = MappingProxyType({
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
    "lt": "Lithuanian", "pl": "Polish", "uk": "Ukrainian", "wo": "Wolof", "ro": "Romanian",
})
_TATOEBA_CONFIG_NAMES: Mapping[str, str] = MappingProxyType({
    "af": "afr", "ar": "ara", "bn": "ben", "bg": "bul", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn",
    "az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr", "ro": "ron",
})

# XTREME's "batch 2×16 (grad-acc)" is read as 16 examples per step with 2 accumulation steps,
# i.e. 32 per update; "4×8" for QA likewise as 8 per step with 4 accumulation steps.
_TAGGING_RECIPE = Recipe(
    learning_rate=2e-5, epochs=10, batch_size=16, grad_accum=2, max_seq_length=128,
)
_XNLI_RECIPE = Recipe(
    learning_rate=3e-5, epochs=5, batch_size=16, grad_accum=2, max_seq_length=128,
)
_PAWSX_RECIPE = Recipe(
    learning_rate=2e-5, epochs=5, batch_size=16, grad_accum=2, max_seq_length=128,
)
_QA_RECIPE = Recipe(
    learning_rate=3e-5, epochs=3, batch_size=8, grad_accum=4, max_seq_length=384,
    warmup_ratio=0.1, weight_decay=1e-4, doc_stride=128, max_query_length=64,
)
# scripts/train_xcopa.sh: XLM-R large, lr 3e-5, 5 epochs for each of SIQA and COPA, 2 x 16, 128.
_COPA_RECIPE = Recipe(
    learning_rate=3e-5, epochs=5, batch_size=16, grad_accum=2, max_seq_length=128,
)
# scripts/train_mewslix.sh (the configured mBERT settings; its XLM-R large branch is marked as
# untuned): lr 2e-5, 2 epochs, max length 64, 64 per GPU x 4 accumulation, no warmup or decay.
_MEWSLIX_RECIPE = Recipe(
    learning_rate=2e-5, epochs=2, batch_size=64, grad_accum=4, max_seq_length=64, max_query_length=64,
)
# scripts/train_lareqa.sh (its last assignments win): lr 5e-5, 3 epochs, 4 x 4, queries 96 and
# answers 256 subwords, no warmup or decay.
_LAREQA_RECIPE = Recipe(
    learning_rate=5e-5, epochs=3, batch_size=4, grad_accum=4, max_seq_length=256, max_query_length=96,
)
_INTERMEDIATE_RECIPE = Recipe(
    learning_rate=1e-5, epochs=2, batch_size=4, grad_accum=8, max_seq_length=256,
    warmup_ratio=0.1,
)
_INTERMEDIATE_MC_RECIPE = Recipe(
    learning_rate=1e-5, epochs=3, batch_size=4, grad_accum=8, max_seq_length=256,
    warmup_ratio=0.1,
)
_INTERMEDIATE_QA_RECIPE = Recipe(
    learning_rate=1e-5, epochs=2, batch_size=4, grad_accum=8, max_seq_length=384,
    warmup_ratio=0.1, doc_stride=128, max_query_length=64,
)

COPA_PROMPT = "{premise} What was the {question}?"
"""XTREME's ``run_xcopa.py``: the premise, then "What was the cause?" or "What was the effect?"."""

_QA_WARMUP_NOTE = "XTREME uses 500 warmup steps; warmup_ratio 0.1 approximates it."

_MLQA_TRANSLATE_TRAIN = HFSource(
    dataset="facebook/mlqa",
    revision="refs/pr/5",
    config="mlqa-translate-train.{lang}",
    splits=MappingProxyType({"train": "train"}),
    fields=_XQUAD_FIELDS,
    quirks="main holds a loading script that datasets >= 4 refuses, so the Parquet conversion of pull "
    "request 5 is read; columns context, question, answers, id (no title)",
    cite="huggingface.co/datasets/facebook/mlqa/discussions/5: 'Convert dataset to Parquet', "
    "mlqa-translate-train.<lang>/train-00000-of-00001.parquet",
)

# --- sources of the languages XTREME-R added (google/xtreme holds only XTREME's) ----------

_WIKIANN = HFSource(
    dataset="unimelb-nlp/wikiann",
    config="{lang}",
    splits=_TRAIN_DEV_TEST,
    fields=("tokens", "ner_tags"),
    quirks="the same tokens/ner_tags schema and ClassLabel order as google/xtreme PAN-X.* (both are "
    "Rahimi et al.'s WikiANN splits)",
    cite="huggingface.co/datasets/unimelb-nlp/wikiann: Parquet, one config per language code, "
    "train/validation/test, ner_tags O B-PER I-PER B-ORG I-ORG B-LOC I-LOC",
)
_XQUAD_RO = HFSource(
    dataset="google/xquad",
    config="xquad.ro",
    splits=MappingProxyType({"test": "validation"}),
    fields=_XQUAD_FIELDS,
    quirks="the only split (validation, 1,190 rows) is the test set",
    cite="huggingface.co/datasets/google/xquad: Parquet, config xquad.ro, split validation",
)
_UD_TREEBANKS: Mapping[str, str] = MappingProxyType({
    "lt": "lt_alksnis+lt_hse", "pl": "pl_lfg+pl_pdb+pl_pud", "uk": "uk_iu", "wo": "wo_wtb",
    "ro": "ro_nonstandard+ro_rrt+ro_simonero",
})
_UD_UPOS_ORDER: tuple[str, ...] = (
    "NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN", "PRON",
    "X", "_", "ADV", "INTJ", "VERB", "AUX",
)
_UD_2_7 = HFSource(
    dataset="universal-dependencies/universal_dependencies",
    revision="refs/convert/parquet",
    data_dir="{Language}",
    config_by_language=_UD_TREEBANKS,
    splits=MappingProxyType({"test": "test"}),
    fields=("tokens", "upos"),
    columns=MappingProxyType({"upos": "pos_tags"}),
    label_names=_UD_UPOS_ORDER,
    drop_label="_",
    quirks="UD v2.7 (the version XTREME-R used); main holds a loading script, so the hub's own Parquet "
    "export (refs/convert/parquet, one folder per treebank) is read; every treebank of the language is "
    "concatenated as XTREME's udpos preprocessing does; upos is a ClassLabel in the script's order "
    "(with '_' for multiword-token ranges, which are dropped)",
    cite="huggingface.co/datasets/universal-dependencies/universal_dependencies: README configs "
    "(lt_alksnis, lt_hse, pl_lfg, pl_pdb, pl_pud, uk_iu, wo_wtb, ro_nonstandard, ro_rrt, ro_simonero) and "
    "tree refs/convert/parquet/<treebank>/ (parquet-converter commits)",
)
_TATOEBA_LASER = HFSource(
    dataset="mteb/tatoeba-bitext-mining",
    config="{Language}-eng",
    config_by_language=_TATOEBA_CONFIG_NAMES,
    splits=MappingProxyType({"test": "test"}),
    fields=("sentence1", "sentence2"),
    columns=MappingProxyType({"sentence1": "source_sentence", "sentence2": "target_sentence"}),
    quirks="the LASER Tatoeba v1 test files XTREME-R used (1,000 pairs a language); sentence1 is the "
    "non-English side, sentence2 English",
    cite="huggingface.co/datasets/mteb/tatoeba-bitext-mining: JSON, configs <iso3>-eng (aze-eng, "
    "lit-eng, pol-eng, ukr-eng, ron-eng), split test; source facebookresearch/LASER data/tatoeba/v1",
)
_UNVERIFIED_ID = "[unverified id]"

# sizes and mean_tokens are approximate: they feed the GPU-hour estimate only.
_TASKS: list[TaskInfo] = [
    TaskInfo(
        name="anli",
        title="ANLI (Adversarial NLI, rounds 1-3)",
        type="classification",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=_CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=_NLI_LABELS,
        source=HFSource(
            dataset="facebook/anli",
            cite="huggingface.co/datasets/facebook/anli: Parquet, splits train_r1..test_r3",
            splits=MappingProxyType({
                "train": "train_r1+train_r2+train_r3",
                "dev": "dev_r1+dev_r2+dev_r3",
                "test": "test_r1+test_r2+test_r3",
            }),
            fields=("premise", "hypothesis", "label"),
            quirks="splits are per round (train_r1, train_r2, train_r3, dev_r1, …); concatenate "
            "the rounds named with '+'; label is a ClassLabel index "
            "(entailment, neutral, contradiction)",
        ),
        sizes=Sizes(train=162865, dev=3200),
        mean_tokens=90,
        recipe=_INTERMEDIATE_RECIPE,
        notes=f"{_UNVERIFIED_ID} The paper's ANLI+ adds other NLI data [unverified]; this entry is "
        "plain ANLI r1-r3.",
    ),
    TaskInfo(
        name="mnli",
        title="MultiNLI",
        type="classification",
        roles=frozenset({"intermediate", "source"}),
        languages=("en",),
        metrics=_CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=_NLI_LABELS,
        source=HFSource(
            dataset="nyu-mll/glue",
            cite="huggingface.co/datasets/nyu-mll/glue: Parquet configs mnli, qqp",
            config="mnli",
            splits=MappingProxyType({"train": "train", "dev": "validation_matched"}),
            fields=("premise", "hypothesis", "label"),
            quirks="the GLUE test split is unlabelled (label -1); dev is validation_matched; "
            "label is a ClassLabel index (entailment, neutral, contradiction)",
        ),
        sizes=Sizes(train=392702, dev=9815),
        mean_tokens=60,
        recipe=_INTERMEDIATE_RECIPE,
        notes=f"{_UNVERIFIED_ID} Also XNLI's English training set.",
    ),
    TaskInfo(
        name="qqp",
        title="Quora Question Pairs",
        type="classification",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=_CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=_BINARY_LABELS,
        source=HFSource(
            dataset="nyu-mll/glue",
            cite="huggingface.co/datasets/nyu-mll/glue: Parquet configs mnli, qqp",
            config="qqp",
            splits=_TRAIN_DEV,
            fields=("question1", "question2", "label"),
            quirks="the GLUE test split is unlabelled (label -1); label is a ClassLabel index "
            "(0 not_duplicate, 1 duplicate)",
        ),
        sizes=Sizes(train=363846, dev=40430),
        mean_tokens=40,
        recipe=_INTERMEDIATE_RECIPE,
        notes=_UNVERIFIED_ID,
    ),
    TaskInfo(
        name="squad",
        title="SQuAD v1.1",
        type="qa",
        roles=frozenset({"intermediate", "source"}),
        languages=("en",),
        metrics=_QA_METRICS,
        xtreme_score="em_f1_mean",
        source=HFSource(
            dataset="rajpurkar/squad",
            cite="huggingface.co/datasets/rajpurkar/squad: Parquet, train/validation",
            splits=_TRAIN_DEV,
            fields=_QA_FIELDS,
        ),
        sizes=Sizes(train=87599, dev=10570),
        mean_tokens=180,
        recipe=_INTERMEDIATE_QA_RECIPE,
        notes=f"{_UNVERIFIED_ID} Also the English training set of XQuAD and MLQA.",
    ),
    TaskInfo(
        name="squad_v2",
        title="SQuAD v2.0",
        type="qa",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=("f1", "exact_match", "has_answer_f1", "no_answer_f1"),
        xtreme_score="em_f1_mean",
        source=HFSource(
            dataset="rajpurkar/squad_v2",
            cite="huggingface.co/datasets/rajpurkar/squad_v2: Parquet, train/validation",
            splits=_TRAIN_DEV,
            fields=_QA_FIELDS,
            quirks="unanswerable questions have empty answers.text/answer_start: the model needs "
            "the no-answer option",
        ),
        sizes=Sizes(train=130319, dev=11873),
        mean_tokens=180,
        recipe=_INTERMEDIATE_QA_RECIPE,
        notes=_UNVERIFIED_ID,
    ),
    TaskInfo(
        name="hellaswag",
        title="HellaSwag",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        num_choices=4,
        source=HFSource(
            dataset="Rowan/hellaswag",
            cite="huggingface.co/datasets/Rowan/hellaswag: converted to Parquet (indirect evidence)",
            splits=_TRAIN_DEV,
            fields=("ctx", "endings", "label"),
            quirks="label is a string index ('0'-'3'); the test split is unlabelled",
        ),
        sizes=Sizes(train=39905, dev=10042),
        mean_tokens=240,
        recipe=_INTERMEDIATE_MC_RECIPE,
        notes=_UNVERIFIED_ID,
    ),
    TaskInfo(
        name="commonsenseqa",
        title="CommonsenseQA",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        num_choices=5,
        source=HFSource(
            dataset="tau/commonsense_qa",
            cite="huggingface.co/datasets/tau/commonsense_qa: Parquet, train/validation/test",
            splits=_TRAIN_DEV,
            fields=("question", "choices", "answerKey"),
            quirks="choices is {label: [A-E], text: [...]}; answerKey is a letter A-E; the test "
            "split is unlabelled",
        ),
        sizes=Sizes(train=9741, dev=1221),
        mean_tokens=125,
        recipe=_INTERMEDIATE_MC_RECIPE,
        notes=_UNVERIFIED_ID,
    ),
    TaskInfo(
        name="cosmosqa",
        title="Cosmos QA",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        num_choices=4,
        source=HFSource(
            dataset="allenai/cosmos_qa",
            revision="refs/pr/6",
            splits=_TRAIN_DEV,
            fields=("context", "question", "answer0", "answer1", "answer2", "answer3", "label"),
            quirks="label is an index 0-3; the test split is unlabelled; main holds a loading script that "
            "datasets >= 4 refuses, so the Parquet conversion of pull request 6 is read (train 25,262, "
            "validation 2,985, the script's features)",
            cite="huggingface.co/datasets/allenai/cosmos_qa/discussions/6: 'Convert dataset to Parquet', "
            "data/{train,validation,test}-00000-of-00001.parquet, README dataset_info",
        ),
        sizes=Sizes(train=25262, dev=2985),
        mean_tokens=480,
        recipe=_INTERMEDIATE_MC_RECIPE,
        notes=_UNVERIFIED_ID,
    ),
    TaskInfo(
        name="ccg",
        title="CCG supertagging (CCGbank)",
        type="tagging",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=("accuracy",),
        xtreme_score="accuracy",
        labels=(),
        source=None,
        needs_data_path=True,
        sizes=Sizes(train=39604, dev=1913),
        mean_tokens=35,
        recipe=_INTERMEDIATE_RECIPE,
        notes="CCGbank is LDC-licensed, so no public source exists: give a data path with "
        "tokens/tags records; the supertag set comes from the user's data. Selected and scored on "
        "token accuracy, as jiant does.",
    ),
    TaskInfo(
        name="siqa",
        title="Social IQa",
        type="multiple_choice",
        roles=frozenset({"source"}),
        languages=("en",),
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        num_choices=3,
        source=HFSource(
            dataset="lighteval/siqa",
            splits=_TRAIN_DEV,
            fields=("context", "question", "answerA", "answerB", "answerC", "label"),
            quirks="label is a 1-based string ('1'-'3'); allenai/social_i_qa holds a loading script that "
            "datasets >= 4 refuses; this Parquet mirror has its columns and sizes (train 33,410, "
            "validation 1,954), hash-checked identical by lm-evaluation-harness",
            cite="huggingface.co/datasets/lighteval/siqa: data/train-*.parquet, data/validation-*.parquet",
        ),
        sizes=Sizes(train=33410, dev=1954),
        mean_tokens=120,
        recipe=_COPA_RECIPE,
        notes=f"{_UNVERIFIED_ID} First English training stage of XCOPA.",
    ),
    TaskInfo(
        name="copa",
        title="COPA (SuperGLUE)",
        type="multiple_choice",
        roles=frozenset({"source"}),
        languages=("en",),
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        num_choices=2,
        source=HFSource(
            dataset="aps/super_glue",
            cite="huggingface.co/datasets/aps/super_glue: Parquet config copa",
            config="copa",
            splits=_TRAIN_DEV,
            fields=_COPA_FIELDS,
            quirks="question is 'cause' or 'effect'; the test split is unlabelled (label -1)",
        ),
        sizes=Sizes(train=400, dev=100),
        mean_tokens=50,
        recipe=_COPA_RECIPE,
        notes=f"{_UNVERIFIED_ID} Second English training stage of XCOPA (after SIQA).",
    ),
    TaskInfo(
        name="xnli",
        title="XNLI",
        type="classification",
        roles=frozenset({"target"}),
        languages=_XNLI_LANGS,
        metrics=_CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        train_on=("mnli",),
        labels=_NLI_LABELS,
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="XNLI",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=("language", "sentence1", "sentence2", "gold_label"),
            quirks="one config holds all 15 languages: filter on the language column; there is no "
            "train split (the English training data is MNLI); gold_label is a string",
        ),
        translations=Translations(
            languages=tuple(lang for lang in _XNLI_LANGS if lang != "en"),
            source=HFSource(
                dataset="facebook/xnli",
                config="{lang}",
                splits=MappingProxyType({"train": "train"}),
                fields=("premise", "hypothesis", "label"),
                quirks="the MNLI schema: label is a ClassLabel index (entailment, neutral, contradiction)",
                cite="huggingface.co/datasets/facebook/xnli: Parquet, config per language, split train "
                "(392,702 rows, XNLI-MT 1.0)",
            ),
            description="XNLI-MT 1.0: MNLI train machine-translated, each language's train split",
        ),
        sizes=Sizes(dev=2490, test_per_language=5010),
        mean_tokens=60,
        recipe=_XNLI_RECIPE,
    ),
    TaskInfo(
        name="pawsx",
        title="PAWS-X",
        type="classification",
        roles=frozenset({"target"}),
        languages=_PAWSX_LANGS,
        metrics=_CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme"}),
        labels=_BINARY_LABELS,
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="PAWS-X.{lang}",
            splits=_TRAIN_DEV_TEST,
            fields=("sentence1", "sentence2", "label"),
            quirks="label is a string '0'/'1'; only PAWS-X.en's train is human data, the other "
            "languages' train split is the machine-translated translated_train.tsv",
        ),
        translations=Translations(
            languages=("de", "es", "fr", "ja", "ko", "zh"),
            source=HFSource(
                dataset="google/xtreme",
                cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
                config="PAWS-X.{lang}",
                splits=MappingProxyType({"train": "train"}),
                fields=("sentence1", "sentence2", "label"),
            ),
            description="translated_train.tsv served as each language's train split",
        ),
        sizes=Sizes(train=49175, dev=2000, test_per_language=2000),
        mean_tokens=70,
        recipe=_PAWSX_RECIPE,
    ),
    TaskInfo(
        name="udpos",
        title="UD-POS (Universal Dependencies part-of-speech tagging)",
        type="tagging",
        roles=frozenset({"target"}),
        languages=_UDPOS_LANGS,
        xtreme_r_added=("lt", "pl", "uk", "wo", "ro"),
        metrics=_TAGGING_METRICS,
        xtreme_score="f1",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        labels=_UPOS_LABELS,
        source=HFSource(
            dataset="google/xtreme",
            config="udpos.{Language}",
            config_by_language=_UDPOS_CONFIG_NAMES,
            splits=_TRAIN_DEV_TEST,
            fields=("tokens", "pos_tags"),
            quirks="pos_tags is a ClassLabel index into the 17 UPOS tags; Tagalog, Thai and Yoruba "
            "have test only and Kazakh has no validation; the script drops '_' tokens, skips "
            "Arabic-NYUAD and keeps subtokens instead of XTREME's fused forms",
            cite="huggingface.co/datasets/google/xtreme: Parquet configs udpos.<Language> (converted 2024-02)",
        ),
        sources_by_language=MappingProxyType({lang: _UD_2_7 for lang in _UD_TREEBANKS}),
        sizes=Sizes(train=21253, dev=3974, test_per_language=2000),
        mean_tokens=30,
        recipe=_TAGGING_RECIPE,
        notes="Scored with seqeval F1 as in XTREME, not token accuracy.",
    ),
    TaskInfo(
        name="panx",
        title="PAN-X (WikiANN NER)",
        type="tagging",
        roles=frozenset({"target"}),
        languages=_PANX_LANGS,
        xtreme_r_added=("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro"),
        metrics=_TAGGING_METRICS,
        xtreme_score="f1",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        labels=_PANX_LABELS,
        source=HFSource(
            dataset="google/xtreme",
            config="PAN-X.{lang}",
            splits=_TRAIN_DEV_TEST,
            fields=("tokens", "ner_tags"),
            quirks="ner_tags is a ClassLabel index (O B-PER I-PER B-ORG I-ORG B-LOC I-LOC)",
            cite="huggingface.co/datasets/google/xtreme: Parquet configs PAN-X.<lang> (converted 2024-02)",
        ),
        sources_by_language=MappingProxyType(
            {lang: _WIKIANN for lang in ("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro")}),
        sizes=Sizes(train=20000, dev=10000, test_per_language=5000),
        mean_tokens=30,
        recipe=_TAGGING_RECIPE,
    ),
    TaskInfo(
        name="xquad",
        title="XQuAD",
        type="qa",
        roles=frozenset({"target"}),
        languages=_XQUAD_LANGS,
        xtreme_r_added=("ro",),
        metrics=_QA_METRICS,
        xtreme_score="em_f1_mean",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        train_on=("squad",),
        source=HFSource(
            dataset="google/xtreme",
            config="XQuAD.{lang}",
            splits=MappingProxyType({"test": "validation"}),
            fields=_XQUAD_FIELDS,
            quirks="the only split (validation) is the test set; context and answer text are stripped",
            cite="huggingface.co/datasets/google/xtreme: Parquet configs XQuAD.<lang> (converted 2024-02)",
        ),
        sources_by_language=MappingProxyType({"ro": _XQUAD_RO}),
        translations=Translations(
            languages=("ar", "de", "es", "hi", "vi", "zh"),
            source=_MLQA_TRANSLATE_TRAIN,
            description="MLQA translate-train: SQuAD v1.1 train+dev into six languages",
        ),
        sizes=Sizes(test_per_language=1190),
        mean_tokens=190,
        recipe=_QA_RECIPE,
        notes=_QA_WARMUP_NOTE,
    ),
    TaskInfo(
        name="mlqa",
        title="MLQA",
        type="qa",
        roles=frozenset({"target"}),
        languages=_MLQA_LANGS,
        metrics=_QA_METRICS,
        xtreme_score="em_f1_mean",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        train_on=("squad",),
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="MLQA.{lang}.{lang}",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=_QA_FIELDS,
            quirks="context language = question language; score with the MLQA script and the "
            "answer language code",
        ),
        translations=Translations(
            languages=("ar", "de", "es", "hi", "vi", "zh"),
            source=_MLQA_TRANSLATE_TRAIN,
            description="MLQA translate-train: SQuAD v1.1 train+dev into six languages",
        ),
        sizes=Sizes(test_per_language=5000),
        mean_tokens=200,
        recipe=_QA_RECIPE,
        notes=_QA_WARMUP_NOTE,
    ),
    TaskInfo(
        name="tydiqa",
        title="TyDiQA-GoldP",
        type="qa",
        roles=frozenset({"target"}),
        languages=_TYDIQA_LANGS,
        metrics=_QA_METRICS,
        xtreme_score="em_f1_mean",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="tydiqa",
            splits=MappingProxyType({"train": "train", "test": "validation"}),
            fields=_QA_FIELDS,
            quirks="all 9 languages mixed; select by id prefix (english-, arabic-, bengali-, "
            "finnish-, indonesian-, korean-, russian-, swahili-, telugu-); the GoldP validation "
            "split is the test set; train on the english- rows only",
        ),
        translations=Translations(
            languages=tuple(lang for lang in _TYDIQA_LANGS if lang != "en"),
            source=None,
            description="XTREME translate-train (GCS bucket xtreme_translations); provide a path",
        ),
        sizes=Sizes(train=3696, test_per_language=700),
        mean_tokens=150,
        recipe=_QA_RECIPE,
        notes=_QA_WARMUP_NOTE,
    ),
    TaskInfo(
        name="bucc",
        title="BUCC 2018 bitext mining",
        type="retrieval",
        roles=frozenset({"target"}),
        languages=_BUCC_LANGS,
        metrics=("f1", "precision", "recall"),
        xtreme_score="f1",
        benchmarks=frozenset({"xtreme"}),
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="bucc18.{lang}",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=_PAIR_FIELDS,
            quirks="holds only the gold pairs, not the monolingual pools, so mining cannot be "
            "reproduced from it (full data: comparable.limsi.fr/bucc2018); source_lang/target_lang "
            "hold sentence ids; validation is the sample gold, test the training gold",
        ),
        sizes=Sizes(test_per_language=3000),
        mean_tokens=40,
        notes="No training: evaluated directly on the (intermediate) checkpoint.",
    ),
    TaskInfo(
        name="tatoeba",
        title="Tatoeba sentence retrieval",
        type="retrieval",
        roles=frozenset({"target"}),
        languages=_TATOEBA_LANGS,
        xtreme_r_added=("az", "lt", "pl", "uk", "ro"),
        metrics=("accuracy",),
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        source=HFSource(
            dataset="google/xtreme",
            config="tatoeba.{Language}",
            config_by_language=_TATOEBA_CONFIG_NAMES,
            splits=MappingProxyType({"test": "validation"}),
            fields=_PAIR_FIELDS,
            quirks="lines keep a trailing newline: strip; source_sentence is the non-English side, "
            "target_sentence English (the query side)",
            cite="huggingface.co/datasets/google/xtreme: Parquet configs tatoeba.<iso3> (converted 2024-02)",
        ),
        sources_by_language=MappingProxyType({lang: _TATOEBA_LASER for lang in ("az", "lt", "pl", "uk", "ro")}),
        sizes=Sizes(test_per_language=1000),
        mean_tokens=20,
        notes="No training: evaluated directly on the (intermediate) checkpoint. English is the "
        "query side; languages lists the non-English side.",
    ),
    TaskInfo(
        name="xcopa",
        title="XCOPA",
        type="multiple_choice",
        roles=frozenset({"target"}),
        languages=_XCOPA_LANGS,
        metrics=_MC_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme-r"}),
        train_on=("siqa", "copa"),
        num_choices=2,
        source=HFSource(
            dataset="cambridgeltl/xcopa",
            cite="huggingface.co/datasets/cambridgeltl/xcopa: Parquet, config per language",
            config="{lang}",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=_COPA_FIELDS,
            quirks="question is 'cause' or 'effect'",
        ),
        sizes=Sizes(dev=100, test_per_language=500),
        mean_tokens=50,
        recipe=_COPA_RECIPE,
        notes=f"{_UNVERIFIED_ID} Trained on SIQA, then COPA (XTREME scripts/train_xcopa.sh).",
    ),
    TaskInfo(
        name="mewslix",
        title="Mewsli-X entity linking",
        type="retrieval",
        roles=frozenset({"target"}),
        languages=_MEWSLIX_LANGS,
        metrics=("mrr@20",),
        xtreme_score="mrr@20",
        benchmarks=frozenset({"xtreme-r"}),
        source=None,
        needs_data_path=True,
        sizes=Sizes(train=115000, test_per_language=2500),  # train: order of magnitude [unverified]
        mean_tokens=64,
        recipe=_MEWSLIX_RECIPE,
        notes="Not on the hub: Mewsli-X comes from google-research/"
        "dense_representations_for_entity_retrieval (mel) and must be prepared into JSONL "
        "(Mention/Context/Entity records) at a path. XTREME-R fine-tunes a dual encoder on the "
        "English training pairs (wikipedia_pairs-train.jsonl) as the en/train split.",
    ),
    TaskInfo(
        name="lareqa",
        title="LAReQA (XQuAD-R)",
        type="retrieval",
        roles=frozenset({"target"}),
        languages=_LAREQA_LANGS,
        metrics=("map@20",),
        xtreme_score="map@20",
        benchmarks=frozenset({"xtreme-r"}),
        source=None,
        needs_data_path=True,
        train_on=("squad",),
        sizes=Sizes(test_per_language=1190),
        mean_tokens=48,
        recipe=_LAREQA_RECIPE,
        notes="Not on the hub: XQuAD-R comes from google-research-datasets/lareqa "
        "(xquad-r/{lang}.json) and must be provided at a path. XTREME-R trains a dual encoder on "
        "SQuAD v1.1; scored in evaluate_retrieval.py, not evaluate.py.",
    ),
]

TASKS: Mapping[str, TaskInfo] = MappingProxyType({t.name: t for t in _TASKS})

ALIASES: Mapping[str, str] = MappingProxyType({
    "pan-x": "panx",
    "wikiann": "panx",
    "ner": "panx",
    "ud-pos": "udpos",
    "pos": "udpos",
    "paws-x": "pawsx",
    "tydiqa-goldp": "tydiqa",
    "tydi": "tydiqa",
    "mewsli-x": "mewslix",
    "squad1.1": "squad",
    "squad_v1": "squad",
    "squad-v1": "squad",
    "squad2": "squad_v2",
    "squad-v2": "squad_v2",
    "squad_v2.0": "squad_v2",
    "commonsense_qa": "commonsenseqa",
    "csqa": "commonsenseqa",
    "cosmos_qa": "cosmosqa",
    "social_i_qa": "siqa",
    "bucc2018": "bucc",
    "bucc18": "bucc",
    "anli+": "anli",
})
"""Other spellings users write → canonical task name."""

GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "xtreme-r": (
        "xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "mewslix",
        "lareqa",
    ),
    "xtreme": ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba"),
    "phang2020": (
        "anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa", "ccg",
    ),
    "xtreme-r-classification": ("xnli", "xcopa"),
    "xtreme-r-tagging": ("udpos", "panx"),
    "xtreme-r-qa": ("xquad", "mlqa", "tydiqa"),
    "xtreme-r-retrieval": ("tatoeba", "mewslix", "lareqa"),
})
"""Group names usable wherever a list of tasks is expected."""


def resolve(name: str) -> str:
    """Canonical task name for ``name`` (case-insensitive, aliases allowed); KeyError if unknown."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise KeyError(name)
    return key


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """Canonical task names for a list of task and group names, in order, without repeats."""
    out: list[str] = []
    for name in names:
        members = GROUPS.get(name.strip().lower())
        for task in members if members is not None else (resolve(name),):
            if task not in out:
                out.append(task)
    return out


def suggest(name: str) -> str | None:
    """The closest known task or group name, for a did-you-mean."""
    known = list(TASKS) + list(ALIASES) + list(GROUPS)
    close = difflib.get_close_matches(name.strip().lower(), known, n=1, cutoff=0.6)
    return close[0] if close else None


def get(name: str) -> TaskInfo:
    return TASKS[resolve(name)]


def hub_sources() -> list[HFSource]:
    """Every hub source of the registry: tasks' own, per-language ones and translations."""
    out: list[HFSource] = []
    for info in TASKS.values():
        out += [s for s in (info.source, *info.sources_by_language.values()) if s is not None]
        if info.translations is not None and info.translations.source is not None:
            out.append(info.translations.source)
    return out


def hub_datasets() -> dict[str, set[str]]:
    """Hub dataset id → the revisions the registry reads it at (``main`` when it pins none)."""
    out: dict[str, set[str]] = {}
    for source in hub_sources():
        out.setdefault(source.dataset, set()).add(source.revision or "main")
    return out
