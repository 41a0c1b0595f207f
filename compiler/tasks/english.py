"""English training tasks: the intermediate tasks of Phang et al. (2020) and the English sources
targets train on (MNLI for XNLI, SQuAD for the QA targets, SIQA and COPA for XCOPA)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from xtrc.tasks.info import HFSource, Recipe, Sizes, TaskInfo
from xtrc.tasks.shared import (
    BINARY_LABELS, CLASSIFICATION_METRICS, COPA_FIELDS, COPA_RECIPE, MC_METRICS, NLI_LABELS, QA_FIELDS,
    QA_METRICS, UNVERIFIED_ID,
)

_TRAIN_DEV: Mapping[str, str] = MappingProxyType({"train": "train", "dev": "validation"})
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

# sizes and mean_tokens are approximate: they feed the GPU-hour estimate only.
ENGLISH_TASKS: list[TaskInfo] = [
    TaskInfo(
        name="anli",
        title="ANLI (Adversarial NLI, rounds 1-3)",
        type="classification",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=NLI_LABELS,
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
        notes=f"{UNVERIFIED_ID} The paper's ANLI+ adds other NLI data [unverified]; this entry is "
        "plain ANLI r1-r3.",
    ),
    TaskInfo(
        name="mnli",
        title="MultiNLI",
        type="classification",
        roles=frozenset({"intermediate", "source"}),
        languages=("en",),
        metrics=CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=NLI_LABELS,
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
        notes=f"{UNVERIFIED_ID} Also XNLI's English training set.",
    ),
    TaskInfo(
        name="qqp",
        title="Quora Question Pairs",
        type="classification",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=CLASSIFICATION_METRICS,
        xtreme_score="accuracy",
        labels=BINARY_LABELS,
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
        notes=UNVERIFIED_ID,
    ),
    TaskInfo(
        name="squad",
        title="SQuAD v1.1",
        type="qa",
        roles=frozenset({"intermediate", "source"}),
        languages=("en",),
        metrics=QA_METRICS,
        xtreme_score="em_f1_mean",
        source=HFSource(
            dataset="rajpurkar/squad",
            cite="huggingface.co/datasets/rajpurkar/squad: Parquet, train/validation",
            splits=_TRAIN_DEV,
            fields=QA_FIELDS,
        ),
        sizes=Sizes(train=87599, dev=10570),
        mean_tokens=180,
        recipe=_INTERMEDIATE_QA_RECIPE,
        notes=f"{UNVERIFIED_ID} Also the English training set of XQuAD and MLQA.",
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
            fields=QA_FIELDS,
            quirks="unanswerable questions have empty answers.text/answer_start: the model needs "
            "the no-answer option",
        ),
        sizes=Sizes(train=130319, dev=11873),
        mean_tokens=180,
        recipe=_INTERMEDIATE_QA_RECIPE,
        notes=UNVERIFIED_ID,
    ),
    TaskInfo(
        name="hellaswag",
        title="HellaSwag",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=MC_METRICS,
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
        notes=UNVERIFIED_ID,
    ),
    TaskInfo(
        name="commonsenseqa",
        title="CommonsenseQA",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=MC_METRICS,
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
        notes=UNVERIFIED_ID,
    ),
    TaskInfo(
        name="cosmosqa",
        title="Cosmos QA",
        type="multiple_choice",
        roles=frozenset({"intermediate"}),
        languages=("en",),
        metrics=MC_METRICS,
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
        notes=UNVERIFIED_ID,
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
        metrics=MC_METRICS,
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
        recipe=COPA_RECIPE,
        notes=f"{UNVERIFIED_ID} First English training stage of XCOPA.",
    ),
    TaskInfo(
        name="copa",
        title="COPA (SuperGLUE)",
        type="multiple_choice",
        roles=frozenset({"source"}),
        languages=("en",),
        metrics=MC_METRICS,
        xtreme_score="accuracy",
        num_choices=2,
        source=HFSource(
            dataset="aps/super_glue",
            cite="huggingface.co/datasets/aps/super_glue: Parquet config copa",
            config="copa",
            splits=_TRAIN_DEV,
            fields=COPA_FIELDS,
            quirks="question is 'cause' or 'effect'; the test split is unlabelled (label -1)",
        ),
        sizes=Sizes(train=400, dev=100),
        mean_tokens=50,
        recipe=COPA_RECIPE,
        notes=f"{UNVERIFIED_ID} Second English training stage of XCOPA (after SIQA).",
    ),
]
