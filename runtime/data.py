"""Task data: read rows in each task's real schema, from the hub or any fsspec path, and
normalise them into a few example types the features and metrics understand.

Where rows come from, first match wins:
1. ``data[task].path`` in the stage config: a directory laid out like a data root for that task
   (``{path}/{lang}/{split}.jsonl|parquet``) or a single file;
2. ``data_root``: ``{root}/{task}/{lang}/{split}.jsonl|parquet`` (what the fixture generator writes);
3. the Hugging Face hub id and config in the task registry (the real sources).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from xtrc import tasks
from xtrc.spec import DataSource

Split = Literal["train", "dev", "test"]

COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}


class DataError(Exception):
    """Missing or malformed task data: a configuration error (the stage must not be retried)."""


@dataclass
class SentenceExample:
    id: str
    text_a: str
    text_b: str | None
    label: str


@dataclass
class ChoiceExample:
    id: str
    context: str
    choices: list[str]
    label: int


@dataclass
class TaggingExample:
    id: str
    words: list[str]
    tags: list[str]


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (text, char start); empty = unanswerable


@dataclass
class PairExample:
    """A translation pair for bitext retrieval (Tatoeba, BUCC): ``source`` non-English, ``target`` English."""

    id: str
    source: str
    target: str


Example = SentenceExample | ChoiceExample | TaggingExample | QAExample | PairExample


@dataclass
class DataLocation:
    data_root: str | None = None
    overrides: dict[str, DataSource] = field(default_factory=dict)
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_root = resolve(self.data_root) if self.data_root else None
        self.overrides = {t: s.model_copy(update={"path": resolve(s.path)}) for t, s in self.overrides.items()}


def resolve(path: str) -> str:
    """A data path as fsspec can open it: ``builtin:fixtures…`` becomes generated local data."""
    from xtrc_runtime.fixtures import BUILTIN_PREFIX, resolve_builtin

    return resolve_builtin(path) if path.startswith(BUILTIN_PREFIX) else path


def read_rows(task: str, language: str, split: Split, where: DataLocation, *, name: str = "") -> list[dict[str, Any]]:
    """Rows of ``task`` in ``language`` (``{split}`` or another file name) in the task's own schema."""
    stem = name or split
    override = where.overrides.get(task)
    if override is not None:
        return _read_path(override.path, language, stem, override.format, where.storage_options)
    if where.data_root is not None:
        return _read_path(f"{where.data_root.rstrip('/')}/{task}", language, stem, "auto", where.storage_options)
    return _read_hub(task, language, split)


def _read_path(base: str, language: str, stem: str, fmt: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(base, **options)
    if fs.isfile(root):
        candidates = [root]
    else:
        folder = f"{root}/{language}" if language else root  # no language: a task-wide file
        candidates = [f"{folder}/{stem}.{ext}" for ext in ("jsonl", "parquet")]
    from xtrc_runtime.storage import retry

    for path in candidates:
        if retry(lambda p=path: fs.exists(p), f"exists {path}"):
            if path.endswith(".parquet") or fmt == "parquet":
                import pyarrow.parquet as pq

                def read_parquet(p: str = path) -> list[dict[str, Any]]:
                    with fs.open(p, "rb") as f:
                        return pq.read_table(f).to_pylist()
                return retry(read_parquet, f"read {path}")

            def read_jsonl(p: str = path) -> list[dict[str, Any]]:
                with fs.open(p, "rt", encoding="utf-8") as f:
                    return [json.loads(line) for line in f if line.strip()]
            return retry(read_jsonl, f"read {path}")
    raise DataError(f"no {stem} data for language {language!r}: looked for {' or '.join(candidates)}")


def _read_hub(task: str, language: str, split: Split) -> list[dict[str, Any]]:
    info = tasks.TASKS[task]
    source = info.source
    if source is None:
        raise DataError(f"{task!r} has no public source; give data.tasks.{task}.path in the spec")
    split_name = source.splits.get(split)
    if split_name is None:
        raise DataError(f"{task!r} ({source.dataset}) has no {split} split")
    import datasets

    try:
        data = datasets.load_dataset(source.dataset, source.config_for(language), split=split_name)
    except Exception as exc:  # the hub's errors are many; they all mean "not available here"
        raise DataError(f"cannot load {source.dataset} {source.config_for(language)} [{split_name}]: {exc}") from exc
    return data.to_list()


def load(task: str, language: str, split: Split, where: DataLocation, limit: int | None = None) -> list[Example]:
    """Examples of ``task`` (canonical name) in ``language``, normalised; at most ``limit``."""
    rows = read_rows(task, language, split, where)
    examples = [normalize(task, language, row, i) for i, row in enumerate(rows)]
    examples = [e for e in examples if e is not None]
    return examples[:limit] if limit else examples


def normalize(task: str, language: str, row: dict[str, Any], index: int) -> Example | None:
    """One row in ``task``'s real schema → an example; None for rows the task's recipe skips."""
    info = tasks.TASKS[task]
    rid = str(row.get("id", row.get("idx", row.get("uid", index))))
    labels = info.labels
    if task in ("mnli", "anli", "qqp"):
        a, b = ("question1", "question2") if task == "qqp" else ("premise", "hypothesis")
        label = int(row["label"])
        if label < 0:
            return None  # unlabelled test rows
        return SentenceExample(rid, row[a], row[b], labels[label])
    if task in ("xnli", "pawsx"):
        if task == "xnli" and row.get("language", language) != language:
            return None
        label = str(row["gold_label" if task == "xnli" else "label"])
        return SentenceExample(rid, row["sentence1"], row["sentence2"], "contradiction" if label == "contradictory" else label)
    if task == "hellaswag":
        return ChoiceExample(rid, row["ctx"], list(row["endings"]), int(row["label"]))
    if task == "commonsenseqa":
        keys = list(row["choices"]["label"])
        return ChoiceExample(rid, row["question"], list(row["choices"]["text"]), keys.index(row["answerKey"]))
    if task == "cosmosqa":
        choices = [row[f"answer{i}"] for i in range(4)]
        return ChoiceExample(rid, f"{row['context']} {row['question']}", choices, int(row["label"]))
    if task == "siqa":
        choices = [row["answerA"], row["answerB"], row["answerC"]]
        return ChoiceExample(rid, f"{row['context']} {row['question']}", choices, int(row["label"]) - 1)
    if task in ("copa", "xcopa"):
        label = int(row["label"])
        if label < 0:
            return None
        question = COPA_QUESTIONS.get(row["question"], row["question"])
        return ChoiceExample(rid, f"{row['premise']} {question}", [row["choice1"], row["choice2"]], label)
    if info.type == "tagging":
        column = {"udpos": "pos_tags", "panx": "ner_tags"}.get(task, "tags")
        tags = [labels[t] if isinstance(t, int) else str(t) for t in row[column]]
        return TaggingExample(rid, [str(w) for w in row["tokens"]], tags)
    if info.type == "qa":
        if task == "tydiqa":
            prefix = tasks.TYDIQA_ID_PREFIX.get(language, language) + "-"
            if not rid.startswith(prefix):
                return None
        answers = row.get("answers") or {"text": [], "answer_start": []}
        pairs = [(str(t), int(s)) for t, s in zip(answers["text"], answers["answer_start"])]
        return QAExample(rid, row["question"], row["context"], pairs)
    if task in ("tatoeba", "bucc"):
        return PairExample(rid, row["source_sentence"].strip(), row["target_sentence"].strip())
    raise DataError(f"no row normaliser for task {task!r}")
