"""Translate-train: machine-translated training examples of a target task, from a path, the data
root or the hub."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from xtrc import tasks
from xtrc.spec import DataSource, TranslateTrain

from xtrc_runtime.data import (DataError, DataLocation, Example, normalize, parse_jsonl, parse_parquet, read_hub_source,
                               read_rows)


def load_translations(target_task: str, train_task: str, cfg: TranslateTrain, where: DataLocation,
                      *, seed: int) -> tuple[list[Example], dict[str, Any]]:
    """Machine-translated training examples of ``target_task`` for ``cfg.languages`` (a
    ``cfg.ratio`` share of each language's set), normalised as ``train_task`` rows."""
    info = tasks.TASKS[target_task]
    out: list[Example] = []
    sources: dict[str, str] = {}
    rows_per_lang: dict[str, int] = {}
    available: dict[str, int] = {}
    added: dict[str, int] = {}
    user_path = cfg.paths.get(target_task)
    by_language = _read_single_file(user_path, where.storage_options) if user_path else None
    for lang in dict.fromkeys(cfg.languages):
        if user_path is not None:
            if by_language is not None:
                if lang not in by_language:
                    raise DataError(f"translate-train file {user_path} has no rows with language {lang!r}")
                rows = by_language[lang]
            else:
                rows = read_rows(target_task, lang, "train",
                                 DataLocation(None, {target_task: DataSource(path=user_path)}, where.storage_options))
            sources[lang] = f"path:{user_path}"
        else:
            rows, sources[lang] = _rows_from_root_or_hub(target_task, lang, info, where)
        examples = []
        for i, row in enumerate(rows):
            example = _normalize(train_task, lang, row, i, sources[lang])
            if example is not None:
                examples.append(dataclasses.replace(example, id=f"tt-{lang}-{example.id}"))
        if rows and not examples:
            raise DataError(f"translate-train {lang} ({sources[lang]}): none of {len(rows)} rows is a usable "
                            f"{train_task} example")
        available[lang] = len(examples)
        keep = min(len(examples), max(1, round(cfg.ratio * len(examples)))) if examples else 0
        if keep < len(examples):
            chosen = sorted(random.Random(f"translate-train:{seed}:{target_task}:{lang}")
                            .sample(range(len(examples)), keep))
            examples = [examples[k] for k in chosen]
        rows_per_lang[lang] = len(rows)
        added[lang] = len(examples)
        out.extend(examples)
    stats: dict[str, Any] = {
        "method": "translate_train", "target_task": target_task, "train_task": train_task, "ratio": cfg.ratio,
        "seed": seed, "sources": sources, "rows": rows_per_lang, "examples_available": available,
        "examples_added_per_language": added, "examples_added": sum(added.values()),
    }
    return out, stats


def _read_single_file(path: str, options: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """Rows of a single translate-train file grouped by its ``language`` column; None for a directory."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path, **options)
    if not fs.isfile(root):
        if not fs.isdir(root):
            raise DataError(f"translate-train path {path} does not exist")
        return None
    data = fs.cat_file(root)
    rows = parse_parquet(data, root) if root.endswith(".parquet") else parse_jsonl(data, root)[0]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        if "language" not in row:
            raise DataError(f"translate-train file {path}: row {i} has no 'language' column (a single file "
                            "needs one; or lay the data out as {path}/{lang}/train.jsonl)")
        grouped.setdefault(str(row["language"]), []).append(row)
    return grouped


def _rows_from_root_or_hub(target_task: str, lang: str, info: tasks.TaskInfo,
                           where: DataLocation) -> tuple[list[dict[str, Any]], str]:
    looked: list[str] = []
    if where.data_root is not None:
        root = DataLocation(where.data_root, {}, where.storage_options)
        try:
            rows = read_rows(target_task, lang, "train", root, name="translate-train")
            return rows, f"data_root:{where.data_root.rstrip('/')}/{target_task}/{lang}/translate-train"
        except DataError as exc:
            looked.append(str(exc))
    translations = info.translations
    if translations is None or translations.source is None:
        why = "no translate-train data is registered for it" if translations is None else (
            f"its translations ({translations.description}) are not on the hub")
        raise DataError(f"no translate-train data for {target_task} ({lang}): {why}; give "
                        f"translate_train.paths.{target_task}" + (f" ({'; '.join(looked)})" if looked else ""))
    if lang not in translations.languages:
        raise DataError(f"{target_task} has translations only for {', '.join(translations.languages)}, not {lang!r}; "
                        f"give translate_train.paths.{target_task}")
    source = where.hub_source(translations.source)
    split = source.splits.get("train", "train")
    try:
        rows = read_hub_source(source, lang, split)
    except DataError as exc:
        raise DataError(f"translate-train: {exc}" + (f" ({'; '.join(looked)})" if looked else "")) from exc
    return rows, f"hub:{source.describe(lang, split)}"


def _normalize(train_task: str, lang: str, row: dict[str, Any], index: int, where: str) -> Example | None:
    try:
        example = normalize(train_task, lang, row, index)
        if example is None and train_task == "tydiqa":
            # TyDiQA's loader picks a language by id prefix ("arabic-..."); a translated file is
            # one language already and its ids may keep the English prefix or have none.
            rid = str(row.get("id", index))
            prefix = tasks.TYDIQA_ID_PREFIX.get(lang, lang)
            example = normalize(train_task, lang, dict(row, id=f"{prefix}-{rid}"), index)
            if example is not None:
                example = dataclasses.replace(example, id=rid)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"translate-train {lang} row {index} ({where}): {type(exc).__name__} {exc}; rows must be "
                        f"in the {train_task} schema") from exc
    return example
