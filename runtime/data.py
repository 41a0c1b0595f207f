"""Task data: read rows in each task's real schema, from the hub or any fsspec path, and
normalise them into a few example types the features and metrics understand.

Where rows come from, first match wins:
1. ``data[task].path`` in the stage config: a directory laid out like a data root for that task
   (``{path}/{lang}/{split}.jsonl|parquet``) or a single file;
2. ``data_root``: ``{root}/{task}/{lang}/{split}.jsonl|parquet`` (what the fixture generator writes);
3. the Hugging Face hub id and config in the task registry (the real sources).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from xtrc import tasks
from xtrc.revisions import pin_name

if TYPE_CHECKING:  # annotations only: reading data and training need no pydantic
    from xtrc.spec import DataSource
    from xtrc.stage import StageConfig

Split = Literal["train", "dev", "test"]

COPA_QUESTIONS = ("cause", "effect")
"""The question values of COPA/XCOPA rows; the text a model sees is ``tasks.COPA_PROMPT``."""



class DataError(Exception):
    """Missing or malformed task data: a configuration error (the stage must not be retried)."""


class DataUnreachable(Exception):
    """The data's server could not be reached: transient (a retry may succeed)."""


_NETWORK_ERRORS = ("ConnectError", "ConnectionError", "ConnectTimeout", "Timeout", "NameResolutionError",
                   "MaxRetryError", "RemoteDisconnected", "ProtocolError")


def caused_by(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """Whether ``test`` holds for ``exc`` or an exception that caused it (the first ten of the chain)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if test(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a network failure rather than an answer about the data."""
    return caused_by(exc, lambda seen: any(name in type(seen).__name__ for name in _NETWORK_ERRORS))


def is_rust_panic(exc: BaseException) -> bool:
    """A Rust library (tokenizers, safetensors) panicked: ``pyo3_runtime.PanicException`` derives
    from BaseException, so ``except Exception`` misses it. Its input decides it, so it is never
    worth a retry."""
    return type(exc).__name__ == "PanicException"


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


@dataclass
class DualExample:
    """A (query, candidate) pair for dual-encoder training: a marked Mewsli-X mention and its
    entity's description, or a SQuAD question and its answer sentence (with the context)."""

    id: str
    query: str
    candidate: str
    context: str | None = None


Example = SentenceExample | ChoiceExample | TaggingExample | QAExample | PairExample | DualExample


@dataclass
class DataLocation:
    data_root: str | None = None
    overrides: dict[str, DataSource] = field(default_factory=dict)
    storage_options: dict[str, Any] = field(default_factory=dict)
    hub_revisions: dict[str, str] = field(default_factory=dict)
    """The registry's dataset@revision → the commit sha to read (StageConfig.hub_revisions)."""
    tables: dict[tuple[str, str, str], Table] = field(default_factory=dict, repr=False, compare=False)
    """Tables already read (task, language, file stem): a stage reads each file once (preflight
    reads them all before training; training and evaluation reuse them)."""

    def __post_init__(self) -> None:
        self.data_root = resolve(self.data_root) if self.data_root else None
        self.overrides = {t: s.model_copy(update={"path": resolve(s.path)}) for t, s in self.overrides.items()}

    def on_hub(self, task: str) -> bool:
        """Whether ``task``'s rows come from the hub (no override, no data root)."""
        return task not in self.overrides and self.data_root is None

    def hub_source(self, source: tasks.HFSource) -> tasks.HFSource:
        """``source`` at the commit the planner pinned (its own revision when none was pinned:
        a stage config written by hand, or a command run outside a plan)."""
        sha = self.hub_revisions.get(pin_name("dataset", source.dataset, source.revision))
        return dataclasses.replace(source, revision=sha) if sha else source


@dataclass
class Table:
    """Rows of one file (or hub split) in the task's registry schema, and where each came from."""

    origin: str
    """The file path, or ``dataset@revision config [split]`` for the hub."""
    rows: list[dict[str, Any]]
    lines: list[int] | None = None
    """1-based line of each row in a JSONL file; None where rows have no lines (Parquet, hub)."""

    def where(self, index: int) -> str:
        """``FILE:LINE`` of row ``index`` (``ORIGIN:row N`` without lines)."""
        return f"{self.origin}:{self.lines[index]}" if self.lines is not None else f"{self.origin}:row {index + 1}"


def same_scheme_options(config: StageConfig, options: dict[str, Any]) -> dict[str, Any]:
    """Store credentials apply to data paths on the same kind of store only."""
    scheme = config.store.split("://", 1)[0]
    paths = [p for p in [config.data_root, *(s.path for s in config.data.values())]
             if p and not p.startswith("builtin:")]
    if paths and all(p.split("://", 1)[0] == scheme for p in paths if "://" in p) and all("://" in p for p in paths):
        return options
    return {}


def example_texts(example: Example) -> list[str]:
    """The text a model reads of ``example`` (no ids, no labels): what a tokenizer is trained on."""
    if isinstance(example, SentenceExample):
        return [example.text_a] + ([example.text_b] if example.text_b else [])
    if isinstance(example, ChoiceExample):
        return [example.context, *example.choices]
    if isinstance(example, TaggingExample):
        return [" ".join(example.words)]
    if isinstance(example, QAExample):
        return [example.question, example.context]
    return [example.source, example.target]


def resolve(path: str) -> str:
    """A data path as fsspec can open it: ``builtin:fixtures…`` becomes generated local data."""
    from xtrc_runtime.fixtures import BUILTIN_PREFIX, resolve_builtin

    return resolve_builtin(path) if path.startswith(BUILTIN_PREFIX) else path


def read_rows(task: str, language: str, split: Split, where: DataLocation, *, name: str = "") -> list[dict[str, Any]]:
    """Rows of ``task`` in ``language`` (``{split}`` or another file name) in the task's own schema."""
    return read_table(task, language, split, where, name=name).rows


def read_table(task: str, language: str, split: Split, where: DataLocation, *, name: str = "") -> Table:
    """Like :func:`read_rows`, with the origin of every row; read once per location."""
    stem = name or split
    cached = where.tables.get((task, language, stem))
    if cached is not None:
        return cached
    override = where.overrides.get(task)
    if override is not None:
        table = _read_path(override.path, language, stem, override.format, where.storage_options)
    elif where.data_root is not None:
        table = _read_path(f"{where.data_root.rstrip('/')}/{task}", language, stem, "auto", where.storage_options)
    else:
        table = _read_hub(task, language, split, where)
    where.tables[(task, language, stem)] = table
    return table


def data_file(base: str, language: str, stem: str, options: dict[str, Any],
              attempts: int = 6) -> tuple[Any, str | None, list[str]]:
    """(filesystem, the file that holds ``stem`` rows or None, the candidates looked at)."""
    import fsspec

    from xtrc_runtime.storage import retry

    fs, root = fsspec.core.url_to_fs(base, **options)
    if retry(lambda: fs.isfile(root), f"isfile {root}", attempts=attempts):
        return fs, root, [root]
    folder = f"{root}/{language}" if language else root  # no language: a task-wide file
    candidates = [f"{folder}/{stem}.{ext}" for ext in ("jsonl", "parquet")]
    for path in candidates:
        if retry(lambda p=path: fs.exists(p), f"exists {path}", attempts=attempts):
            return fs, path, candidates
    return fs, None, candidates


def _read_path(base: str, language: str, stem: str, fmt: str, options: dict[str, Any]) -> Table:
    from xtrc_runtime.storage import retry

    fs, path, candidates = data_file(base, language, stem, options)
    if path is None:
        raise DataError(f"no {stem} data for language {language!r}: looked for {' or '.join(candidates)}")
    data = retry(lambda: fs.cat_file(path), f"read {path}")  # only the transfer is retried, never parsing
    if path.endswith(".parquet") or fmt == "parquet":
        return Table(path, parse_parquet(data, path))
    rows, lines = parse_jsonl(data, path)
    return Table(path, rows, lines)


def parse_jsonl(data: bytes, path: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a JSONL file and the line of each; a UTF-8 byte-order mark is accepted. A line
    that is not a JSON object is a :class:`DataError` naming ``path:line``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte {data[exc.start]:#04x}); save the file as UTF-8") from None
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}:{exc.colno}: not valid JSON ({exc.msg}); each line must be one "
                            "JSON object") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: a {type(row).__name__}, not a JSON object; each line must be one "
                            "JSON object with the task's fields")
        rows.append(row)
        lines.append(number)
    return rows, lines


def parse_parquet(data: bytes, path: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(data)).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


def _read_hub(task: str, language: str, split: Split, where: DataLocation) -> Table:
    info = tasks.TASKS[task]
    source = info.source_for(language)
    if source is None:
        raise DataError(f"{task!r} has no public source; give data.tasks.{task}.path in the spec")
    source = where.hub_source(source)
    split_name = source.splits.get(split)
    if split_name is None:
        raise DataError(f"{task!r} ({source.dataset}) has no {split} split")
    return Table(source.describe(language, split_name), read_hub_source(source, language, split_name))


def read_hub_source(source: tasks.HFSource, language: str, split_name: str) -> list[dict[str, Any]]:
    """Rows of one hub source in the registry's column names and label strings."""
    import datasets

    rows: list[dict[str, Any]] = []
    for data_dir in source.data_dirs_for(language):
        try:
            data = datasets.load_dataset(source.dataset, source.config_for(language), split=split_name,
                                         revision=source.revision, data_dir=data_dir)
        except Exception as exc:  # the hub's errors are many; all but network ones mean "not available here"
            if is_network_error(exc):
                raise DataUnreachable(f"cannot reach the hub for {source.describe(language, split_name)}: "
                                      f"{exc}") from exc
            raise DataError(f"cannot load {source.describe(language, split_name)}: {exc}") from exc
        rows.extend(data.to_list())
    return [to_registry_schema(source, row) for row in rows]


def to_registry_schema(source: tasks.HFSource, row: dict[str, Any]) -> dict[str, Any]:
    """A source row renamed to the registry's columns, its tags as label strings, dropped tags removed."""
    if not source.columns and not source.label_names:
        return row
    out = {source.columns.get(k, k): v for k, v in row.items()}
    if source.label_names:
        column = source.columns.get(source.fields[-1], source.fields[-1])
        names = source.label_names
        tags = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in out[column]]
        if source.drop_label is not None and "tokens" in out:
            keep = [i for i, t in enumerate(tags) if t != source.drop_label]
            out["tokens"] = [out["tokens"][i] for i in keep]
            tags = [tags[i] for i in keep]
        out[column] = tags
    return out


SKIPPED_BY_LOADER = "skipped by the task's loader (unlabelled rows, or rows of another language)"


def load(task: str, language: str, split: Split, where: DataLocation, limit: int | None = None) -> list[Example]:
    """Examples of ``task`` (canonical name) in ``language``, normalised; at most ``limit``."""
    return load_counted(task, language, split, where, limit)[0]


def load_counted(task: str, language: str, split: Split, where: DataLocation,
                 limit: int | None = None) -> tuple[list[Example], dict[str, Any]]:
    """:func:`load`, and what happened to the source's rows (recorded in metrics.json): ``rows``
    in the source, ``dropped`` by reason, ``evaluated`` (used), and ``cap`` when ``limit`` left
    examples out (``{"max_eval_examples": N, "left_out": M}``), else None."""
    rows = read_rows(task, language, split, where)
    examples = [normalize(task, language, row, i) for i, row in enumerate(rows)]
    kept = [e for e in examples if e is not None]
    return _capped(kept, len(rows), limit)


def _capped(kept: list[Any], rows: int, limit: int | None) -> tuple[list[Any], dict[str, Any]]:
    used = kept[:limit] if limit else kept
    counts: dict[str, Any] = {
        "rows": rows,
        "dropped": {SKIPPED_BY_LOADER: rows - len(kept)} if rows > len(kept) else {},
        "evaluated": len(used),
        "cap": {"max_eval_examples": limit, "left_out": len(kept) - len(used)} if len(used) < len(kept) else None,
    }
    return used, counts


def counts_of(items: list[Any], limit: int | None) -> tuple[list[Any], dict[str, Any]]:
    """The counts of :func:`load_counted` for rows that need no normalising (retrieval queries)."""
    return _capped(items, len(items), limit)


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
        context = tasks.COPA_PROMPT.format(premise=row["premise"], question=row["question"])
        return ChoiceExample(rid, context, [row["choice1"], row["choice2"]], label)
    if info.type == "tagging":
        column = {"udpos": "pos_tags", "panx": "ner_tags"}.get(task, "tags")
        if not row["tokens"]:
            return None  # an empty sentence: skipped (the preflight counts it)
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
