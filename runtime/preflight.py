"""Preflight: read and validate every split a stage will use before any training.

One implementation of data validation serves two callers: a stage (``run-stage`` validates
everything it reads, train, dev, test, translate-train and dictionaries, and fails with exit 2
before training) and ``xtrc-runtime check-data`` (what ``xtrc plan --check-data`` runs: every
need of a plan, in parallel, cached; hub splits are checked from their metadata, not downloaded).

A problem reads ``FILE:LINE: field: what to do``; the first few are shown with the count of all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from xtrc import tasks
from xtrc.datacheck import Need, stage_needs, translation_targets
from xtrc.stage import StageConfig

from xtrc_runtime.data import (
    COPA_QUESTIONS, DataError, DataLocation, Table, caused_by, is_network_error, read_table,
)

log = logging.getLogger("xtrc_runtime")

SHOWN = 5
"""Problems quoted per file; the rest are counted."""
HUB_CACHE_SECONDS = 24 * 3600
"""How long a hub split's metadata check is trusted (revisions move rarely; a stage reads anyway)."""


@dataclass
class Check:
    need: Need
    origin: str = ""
    rows: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows the task's recipe skips, by reason (empty sentences, unlabelled rows, other languages)."""
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    error: str | None = None
    """The data could not be read at all (missing, not JSON, not loadable)."""
    unchecked: str | None = None
    """Why it could not be checked here (hub unreachable)."""
    stages: list[str] = field(default_factory=list)
    """Keys of the stages that read it (check-data)."""

    @property
    def status(self) -> str:
        if self.error is not None and not (self.need.optional and self.error.startswith("missing")):
            return "gap"
        if self.problem_count:
            return "gap"
        return "unchecked" if self.unchecked is not None else "ok"

    def detail(self) -> str:
        if self.error is not None:
            return self.error
        if self.problem_count:
            more = self.problem_count - len(self.problems)
            return "; ".join(self.problems) + (f"; and {more} more" if more > 0 else "")
        return self.unchecked or ""

    def to_json(self) -> dict[str, Any]:
        return {"label": self.need.label, "status": self.status, "detail": self.detail(), "rows": self.rows,
                "origin": self.origin, "skipped": self.skipped, "stages": self.stages}


# --- row validation ---------------------------------------------------------------------------

Problem = tuple[str, str]
"""(field, what to do)."""


def _text(row: dict[str, Any], *names: str) -> list[Problem]:
    out = []
    for name in names:
        if name not in row:
            out.append((name, "missing; add it (a string)"))
        elif not isinstance(row[name], str):
            out.append((name, f"is {type(row[name]).__name__}, not a string"))
    return out


def _index(row: dict[str, Any], name: str, count: int, *, offset: int = 0) -> list[Problem]:
    """``row[name]`` must be an integer (or its digits as a string) in ``offset..offset+count-1``."""
    if name not in row:
        return [(name, "missing; add the label")]
    value = row[name]
    try:
        number = int(value)
    except (TypeError, ValueError):
        return [(name, f"{value!r} is not a label index")]
    if isinstance(value, bool) or not offset <= number < offset + count:
        return [(name, f"{value!r} is outside {offset}..{offset + count - 1}; use one of those")]
    return []


def _label(row: dict[str, Any], name: str, labels: tuple[str, ...],
           aliases: dict[str, str] | None = None) -> list[Problem]:
    if name not in row:
        return [(name, "missing; add the label")]
    value = row[name]
    text = str(value)
    if text in labels or (aliases and text in aliases):
        return []
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return []
    return [(name, f"{value!r} is not a label of this task; use one of {', '.join(labels)}")]


def _tagging(task: str, row: dict[str, Any], labels: tuple[str, ...]) -> list[Problem]:
    column = {"udpos": "pos_tags", "panx": "ner_tags"}.get(task, "tags")
    tokens, tags = row.get("tokens"), row.get(column)
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return [("tokens", "must be a list of strings")]
    if not isinstance(tags, list):
        return [(column, "missing or not a list; give one tag per token")]
    if len(tags) != len(tokens):
        return [(column, f"{len(tags)} tags for {len(tokens)} tokens; give exactly one tag per token")]
    for i, tag in enumerate(tags):
        if isinstance(tag, bool) or not isinstance(tag, (int, str)):
            return [(f"{column}[{i}]", f"{tag!r} is not a tag")]
        if labels and not (tag in labels or (isinstance(tag, int) and 0 <= tag < len(labels))):
            return [(f"{column}[{i}]", f"{tag!r} is not a label of {task}; use one of {' '.join(labels)} "
                                       f"(or its index 0..{len(labels) - 1})")]
    return []


def _qa(row: dict[str, Any]) -> list[Problem]:
    out = _text(row, "question", "context")
    answers = row.get("answers")
    if answers is None:
        return out
    if not isinstance(answers, dict) or not isinstance(answers.get("text"), list) \
            or not isinstance(answers.get("answer_start"), list):
        return [*out, ("answers", "must be {\"text\": [str], \"answer_start\": [int]}")]
    texts, starts = answers["text"], answers["answer_start"]
    if len(texts) != len(starts):
        return [*out, ("answers", f"{len(texts)} texts for {len(starts)} answer_start values; give one start per text")]
    context = row.get("context") if isinstance(row.get("context"), str) else ""
    for i, (text, start) in enumerate(zip(texts, starts)):
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
            out.append((f"answers[{i}]", "text must be a string and answer_start an integer"))
        elif context[start:start + len(text)] != text:
            found = context.find(text)
            hint = f" (the text occurs at {found})" if found >= 0 else " (the text is not in the context)"
            out.append((f"answers.answer_start[{i}]", f"context[{start}:{start + len(text)}] is not "
                                                      f"{text[:40]!r}{hint}; fix answer_start"))
    return out


def row_problems(task: str, language: str, row: dict[str, Any]) -> tuple[str | None, list[Problem]]:
    """(why the recipe skips this row, or None; the row's problems) in ``task``'s registry schema."""
    info = tasks.TASKS[task]
    if task in ("mnli", "anli", "qqp"):
        a, b = ("question1", "question2") if task == "qqp" else ("premise", "hypothesis")
        if isinstance(row.get("label"), int) and row["label"] < 0:
            return "unlabelled", []
        return None, _text(row, a, b) + _index(row, "label", len(info.labels))
    if task == "xnli":
        if row.get("language", language) != language:
            return "another language", []
        return None, _text(row, "sentence1", "sentence2") + _label(row, "gold_label", info.labels,
                                                                   {"contradictory": "contradiction"})
    if task == "pawsx":
        return None, _text(row, "sentence1", "sentence2") + _label(row, "label", info.labels)
    if task == "hellaswag":
        endings = row.get("endings")
        bad = [] if isinstance(endings, list) and len(endings) == 4 else [("endings", "must be a list of 4 strings")]
        if row.get("label") in ("", None):
            return "unlabelled", []
        return None, _text(row, "ctx") + bad + _index(row, "label", 4)
    if task == "commonsenseqa":
        choices = row.get("choices")
        if not isinstance(choices, dict) or not isinstance(choices.get("label"), list):
            return None, [("choices", "must be {\"label\": [A-E], \"text\": [str]}")]
        if row.get("answerKey") in ("", None):
            return "unlabelled", []
        if row.get("answerKey") not in choices["label"]:
            return None, [("answerKey", f"{row.get('answerKey')!r} is not one of {choices['label']}")]
        return None, _text(row, "question")
    if task == "cosmosqa":
        if isinstance(row.get("label"), int) and row["label"] < 0:
            return "unlabelled", []
        return None, _text(row, "context", "question", "answer0", "answer1", "answer2", "answer3") \
            + _index(row, "label", 4)
    if task == "siqa":
        return None, _text(row, "context", "question", "answerA", "answerB", "answerC") \
            + _index(row, "label", 3, offset=1)
    if task in ("copa", "xcopa"):
        if isinstance(row.get("label"), int) and row["label"] < 0:
            return "unlabelled", []
        out = _text(row, "premise", "choice1", "choice2", "question") + _index(row, "label", 2)
        if isinstance(row.get("question"), str) and row["question"] not in COPA_QUESTIONS:
            out.append(("question", f"{row['question']!r} must be 'cause' or 'effect'"))
        return None, out
    if info.type == "tagging":
        if isinstance(row.get("tokens"), list) and not row["tokens"]:
            return "empty sentence", []
        return None, _tagging(task, row, info.labels)
    if info.type == "qa":
        if task == "tydiqa" and not str(row.get("id", "")).startswith(
                tasks.TYDIQA_ID_PREFIX.get(language, language) + "-"):
            return "another language", []
        return None, _qa(row)
    if task in ("tatoeba", "bucc"):
        return None, _text(row, "source_sentence", "target_sentence")
    raise DataError(f"no row check for task {task!r}")


def _file_problems(need: Need, row: dict[str, Any]) -> list[Problem]:
    """Checks of the files retrieval tasks read in their own schemas."""
    if need.task == "mewslix":
        if need.name == "entities":
            return _text(row, "entity_id", "title", "description")
        out = _text(row, "id", "context", "entity_id")
        start, end = row.get("mention_start"), row.get("mention_end")
        if start is not None or end is not None:
            context = row.get("context") if isinstance(row.get("context"), str) else ""
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(context)):
                out.append(("mention_start", f"{start!r}..{end!r} is not a span of the context "
                                             f"(0..{len(context)}); fix the offsets"))
        return out
    if need.task == "lareqa":
        if need.name == "questions":
            ids = row.get("answer_ids")
            bad = [] if isinstance(ids, list) and ids else [("answer_ids", "must be a non-empty list of candidate ids")]
            return _text(row, "id", "question") + bad
        return _text(row, "id", "sentence")
    return []


def check_table(need: Need, table: Table) -> Check:
    """Every row of ``table`` against ``need.task``'s schema."""
    result = Check(need, origin=table.origin, rows=len(table.rows))
    own_schema = need.task in ("mewslix", "lareqa")
    for i, row in enumerate(table.rows):
        if own_schema:
            skip, problems = None, _file_problems(need, row)
        else:
            skip, problems = row_problems(need.task, need.language, row)
        if skip is not None:
            result.skipped[skip] = result.skipped.get(skip, 0) + 1
        for name, what in problems:
            result.problem_count += 1
            if len(result.problems) < SHOWN:
                result.problems.append(f"{table.where(i)}: {name}: {what}")
    kept = len(table.rows) - sum(result.skipped.values())
    if not result.problem_count and table.rows and kept == 0 and need.split != "dev":
        result.error = f"{table.origin}: all {len(table.rows)} rows are skipped ({_counts(result.skipped)})"
    elif not table.rows and not need.optional:
        result.error = f"{table.origin}: no rows"
    return result


def _counts(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))


# --- one stage ----------------------------------------------------------------------------------

def check_need(need: Need, where: DataLocation) -> Check:
    """Read ``need`` (the stage's own reader, so the stage reuses what was read) and validate it."""
    try:
        table = read_table(need.task, need.language, need.split, where, name=need.name)  # type: ignore[arg-type]
    except DataError as exc:
        text = str(exc)
        return Check(need, error=("missing: " + text) if text.startswith(("no ", "'")) else text)
    return check_table(need, table)


def preflight(config: StageConfig, where: DataLocation, *, dictionaries: Callable[[], Any] | None = None,
              translations: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """Read and validate everything ``config`` reads; a :class:`DataError` listing every gap
    (first problems and counts) before any training. Returns rows and skips per split."""
    started = time.monotonic()
    checks = [check_need(need, where) for need in stage_needs(config)]
    gaps = [c for c in checks if c.status == "gap"]
    extra: list[str] = []
    for target, train_task in translation_targets(config):
        if translations is not None:
            try:
                translations(target, train_task)
            except (DataError, ValueError) as exc:
                extra.append(f"translate-train {target}: {exc}")
    if dictionaries is not None:
        try:
            dictionaries()
        except (DataError, ValueError, OSError) as exc:
            extra.append(f"code_switch.dictionaries: {exc}")
    if gaps or extra:
        lines = [f"{c.need.label}: {c.detail()}" for c in gaps] + extra
        raise DataError(f"preflight: {len(lines)} data problem(s) before training:\n  " + "\n  ".join(lines))
    summary = {c.need.label: {"rows": c.rows, **({"skipped": c.skipped} if c.skipped else {})}
               for c in checks if c.rows is not None}
    log.info("preflight: %d splits valid in %.1fs", len(summary), time.monotonic() - started)
    return summary


# --- check-data (a whole plan) ------------------------------------------------------------------

def check_data(configs: Iterable[StageConfig], *, jobs: int = 8, cache_dir: str | None = None) -> list[Check]:
    """Every need of ``configs`` (deduplicated by data location), checked in parallel; hub splits
    from their metadata, fsspec data by reading and validating the files (cached by identity)."""
    from xtrc_runtime.data import same_scheme_options

    work: dict[tuple[str, Need], tuple[Need, DataLocation, Any]] = {}
    readers: dict[tuple[str, Need], list[str]] = {}

    def add(item: tuple[str, Need], where: DataLocation, key: str, extra: Any = None) -> None:
        work.setdefault(item, (item[1], where, extra))
        readers.setdefault(item, []).append(key)

    locations: dict[str, DataLocation] = {}
    for config in configs:
        spot = json.dumps([config.data_root, {k: v.model_dump() for k, v in config.data.items()},
                           config.hub_revisions], sort_keys=True)
        where = locations.get(spot)
        if where is None:
            where = locations[spot] = DataLocation(config.data_root, dict(config.data),
                                                   same_scheme_options(config, config.storage_options),
                                                   dict(config.hub_revisions))
        for need in stage_needs(config):
            add(("hub" if where.on_hub(need.task) else spot, need), where, config.key)  # a hub split: one for all
        aug = config.augmentation
        if aug is not None and aug.code_switch is not None:
            cs = aug.code_switch
            need = Need("dictionaries", ",".join(dict.fromkeys(cs.languages)), "", cs.dictionaries)
            add((spot, need), where, config.key, cs)
        if aug is not None and aug.translate_train is not None:
            tt = aug.translate_train
            for target, train_task in translation_targets(config):
                for lang in dict.fromkeys(tt.languages):
                    need = Need(target, lang, "train", "translate-train")
                    add((spot + json.dumps(tt.paths, sort_keys=True), need), where, config.key, (tt, train_task))
    cache = cache_dir or os.path.join(_cache_root(), "check-data")
    hub = None if not any(w.on_hub(n.task) for n, w, _ in work.values()) else _hub_reachable()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        checks = list(pool.map(lambda item: _check_cached(*item, cache, hub), work.values()))
    for check, item in zip(checks, readers.values()):
        check.stages = item
    return checks


def _cache_root() -> str:
    from xtrc.store import local_cache_dir

    return local_cache_dir()


def _hub_reachable(timeout: float = 3.0) -> str | None:
    """None when the hub answers; else why not (one probe for the whole check, not one per split)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname} unreachable ({exc})"
    return None


def _no_access(exc: BaseException) -> bool:
    """No credentials or permission here (a pod may have them: its Secret is mounted there)."""
    return isinstance(exc, PermissionError) or type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError")


def _check_cached(need: Need, where: DataLocation, extra: Any, cache: str, hub_down: str | None) -> Check:
    try:
        if need.task == "dictionaries":
            return _check_dictionaries(need, where, extra)
        if need.name == "translate-train":
            return _check_translations(need, where, extra, cache, hub_down)
        if where.on_hub(need.task):
            if hub_down is not None:
                return _cached_hub(need, where, cache) or Check(need, unchecked=f"hub not checked: {hub_down}")
            return _check_hub(need, where, cache)
        return _check_file(need, where, cache)
    except Exception as exc:  # a checker bug or an unreachable store must show as a line, not hide the rest
        if is_network_error(exc) or _no_access(exc):
            return Check(need, unchecked=f"not checked: cannot reach the data here ({type(exc).__name__}: {exc})")
        return Check(need, error=f"{type(exc).__name__}: {exc}")


def _remember(cache: str, key: str, check: Check | None = None, ttl: float | None = None) -> Check | None:
    path = os.path.join(cache, hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
    if check is None:
        try:
            if ttl is not None and time.time() - os.path.getmtime(path) > ttl:
                return None
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            return Check(Need(**data["need"]), **{k: v for k, v in data.items() if k != "need"})
        except (OSError, ValueError, TypeError, KeyError):
            return None
    if check.status == "ok":  # only good answers are cached: a fixed file is rechecked at once
        os.makedirs(cache, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"need": check.need.to_json(), "origin": check.origin, "rows": check.rows,
                       "skipped": check.skipped}, f)
        os.replace(tmp, path)
    return check


def _check_file(need: Need, where: DataLocation, cache: str) -> Check:
    from xtrc_runtime.data import data_file

    override = where.overrides.get(need.task)
    base = override.path if override is not None else f"{str(where.data_root).rstrip('/')}/{need.task}"
    fs, path, candidates = data_file(base, need.language, need.name or need.split, where.storage_options, attempts=1)
    if path is None:
        return Check(need, error=f"missing: no {need.name or need.split} data for language {need.language!r}: "
                                 f"looked for {' or '.join(candidates)}")
    info = fs.info(path)
    version = info.get("ETag") or info.get("mtime") or info.get("LastModified")
    identity = json.dumps([path, info.get("size"), str(version), need.to_json()], sort_keys=True, default=str)
    cached = _remember(cache, "file:" + identity)
    if cached is not None:
        return cached
    result = check_need(need, where)
    _remember(cache, "file:" + identity, result)
    return result


def _offline(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    offline = (LocalEntryNotFoundError, OfflineModeIsEnabled)
    return caused_by(exc, lambda seen: isinstance(seen, offline)) or is_network_error(exc)


def _check_dictionaries(need: Need, where: DataLocation, cs: Any) -> Check:
    from xtrc_runtime.augment import load_dictionaries
    from xtrc_runtime.data import resolve

    try:
        loaded = load_dictionaries(resolve(cs.dictionaries), cs.languages, where.storage_options or None)
    except (ValueError, OSError) as exc:
        if is_network_error(exc) or _no_access(exc):
            raise
        return Check(need, error=str(exc))
    return Check(need, origin=cs.dictionaries, rows=sum(len(d) for d in loaded.values()))


def _check_translations(need: Need, where: DataLocation, extra: Any, cache: str, hub_down: str | None) -> Check:
    """Translate-train rows: read and normalised as the stage does (a path, the data root), or the
    registry's hub translations from their metadata."""
    from xtrc_runtime.augment import load_translations

    tt, train_task = extra
    translations = tasks.TASKS[need.task].translations
    local = need.task in tt.paths or where.data_root is not None
    if not local and translations is not None and translations.source is not None \
            and need.language in translations.languages:
        if hub_down is not None:
            return Check(need, unchecked=f"hub not checked: {hub_down}")
        return _check_hub(need, where, cache, translations.source)
    one = tt.model_copy(update={"languages": [need.language], "ratio": 1.0})
    try:
        examples, stats = load_translations(need.task, train_task, one, where, seed=0)
    except DataError as exc:
        return Check(need, error=str(exc))
    return Check(need, origin=str(stats["sources"].get(need.language, "")), rows=len(examples))


def _hub_key(need: Need, source: tasks.HFSource | None = None) -> str:
    source = source or tasks.TASKS[need.task].source_for(need.language)
    split = source.splits.get(need.split, need.split) if source is not None else need.split
    where = source.describe(need.language, split) if source is not None else need.task
    return "hub:" + json.dumps([where, need.to_json()], sort_keys=True)


def _cached_hub(need: Need, where: DataLocation, cache: str) -> Check | None:
    """A recent good answer for ``need`` (offline, it still counts: the hub said so within a day)."""
    source = tasks.TASKS[need.task].source_for(need.language)
    return _remember(cache, _hub_key(need, where.hub_source(source) if source else None), ttl=HUB_CACHE_SECONDS)


def _check_hub(need: Need, where_data: DataLocation, cache: str, source: tasks.HFSource | None = None) -> Check:
    source = source or tasks.TASKS[need.task].source_for(need.language)
    if source is None:
        return Check(need, error=f"{need.task!r} has no public source; give data.tasks.{need.task}.path")
    source = where_data.hub_source(source)  # the commit the plan pinned (a cached answer is per commit)
    split = source.splits.get(need.split)
    if split is None:
        if need.optional:
            return Check(need, error=f"missing: {source.dataset} has no {need.split} split")
        return Check(need, error=f"{source.dataset} has no {need.split} split; give data.tasks.{need.task}.path")
    where = source.describe(need.language, split)
    key = _hub_key(need, source)
    cached = _remember(cache, key, ttl=HUB_CACHE_SECONDS)
    if cached is not None:
        return cached
    rows = 0
    try:
        import datasets

        for data_dir in source.data_dirs_for(need.language):
            builder = datasets.load_dataset_builder(source.dataset, source.config_for(need.language),
                                                    revision=source.revision, data_dir=data_dir)
            features = builder.info.features
            missing = [f for f in source.fields if features is not None and f not in features]
            if missing:
                return Check(need, origin=where, error=f"{where}: no column {', '.join(missing)} "
                                                       f"(has {', '.join(features)})")
            splits = builder.info.splits or {}
            if splits and split not in splits:
                return Check(need, origin=where, error=f"{where}: no split {split!r} (has {', '.join(splits)})")
            rows = rows + splits[split].num_examples if splits and rows is not None else None
    except Exception as exc:  # the hub's errors are many: offline ones say nothing about the data
        if _offline(exc):
            return Check(need, origin=where, unchecked=f"hub unreachable, {where} not checked")
        return Check(need, origin=where, error=f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    result = Check(need, origin=where, rows=rows or None)
    return _remember(cache, key, result, ttl=HUB_CACHE_SECONDS) or result
