"""The zero-shot cross-lingual target tasks of XTREME and XTREME-R: languages, sources, recipes."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from xtrc.tasks.info import HFSource, Recipe, Sizes, TaskInfo, Translations
from xtrc.tasks.shared import (
    BINARY_LABELS, CLASSIFICATION_METRICS, COPA_FIELDS, COPA_RECIPE, MC_METRICS, NLI_LABELS, QA_FIELDS,
    QA_METRICS, UNVERIFIED_ID,
)

_PANX_LABELS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
_UPOS_LABELS: tuple[str, ...] = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)

_TAGGING_METRICS: tuple[str, ...] = ("f1", "precision", "recall")
_XQUAD_FIELDS: tuple[str, ...] = ("id", "context", "question", "answers")
_PAIR_FIELDS: tuple[str, ...] = ("source_sentence", "target_sentence", "source_lang", "target_lang")
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

# sizes and mean_tokens are approximate: they feed the GPU-hour estimate only.
TARGET_TASKS: list[TaskInfo] = [
    TaskInfo(
        name="xnli",
        title="XNLI",
        type="classification",
        roles=frozenset({"target"}),
        languages=_XNLI_LANGS,
        metrics=CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        train_on=("mnli",),
        labels=NLI_LABELS,
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
        metrics=CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme"}),
        labels=BINARY_LABELS,
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
        # Length-grouped batches cost zero-shot accuracy here, even with length independent of the
        # tag mix and a random-key grouping control at par (bench/throughput.py --task udpos).
        group_by_length=False,
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
        metrics=QA_METRICS,
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
        metrics=QA_METRICS,
        xtreme_score="em_f1_mean",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        train_on=("squad",),
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="MLQA.{lang}.{lang}",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=QA_FIELDS,
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
        metrics=QA_METRICS,
        xtreme_score="em_f1_mean",
        benchmarks=frozenset({"xtreme", "xtreme-r"}),
        source=HFSource(
            dataset="google/xtreme",
            cite="huggingface.co/datasets/google/xtreme: Parquet (converted 2024-02), the last script's configs",
            config="tydiqa",
            splits=MappingProxyType({"train": "train", "test": "validation"}),
            fields=QA_FIELDS,
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
        metrics=MC_METRICS,
        xtreme_score="accuracy",
        benchmarks=frozenset({"xtreme-r"}),
        train_on=("siqa", "copa"),
        num_choices=2,
        source=HFSource(
            dataset="cambridgeltl/xcopa",
            cite="huggingface.co/datasets/cambridgeltl/xcopa: Parquet, config per language",
            config="{lang}",
            splits=MappingProxyType({"dev": "validation", "test": "test"}),
            fields=COPA_FIELDS,
            quirks="question is 'cause' or 'effect'",
        ),
        sizes=Sizes(dev=100, test_per_language=500),
        mean_tokens=50,
        recipe=COPA_RECIPE,
        notes=f"{UNVERIFIED_ID} Trained on SIQA, then COPA (XTREME scripts/train_xcopa.sh).",
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
