"""MUSE bilingual dictionaries, as code-switching reads them."""

from __future__ import annotations

import re
from typing import Any, Sequence


Dictionary = dict[str, tuple[str, ...]]
"""Lower-cased English word → its translations in file order (each possibly several words)."""


def load_dictionaries(path: str, languages: Sequence[str],
                      storage_options: dict[str, Any] | None = None) -> dict[str, Dictionary]:
    """MUSE-format dictionaries for ``languages`` from ``path``: an fsspec directory holding
    ``en-<lang>.txt`` files, or one file (then exactly one language). A line is the English
    word, whitespace, and the translation (the rest of the line, possibly several words)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    languages = list(dict.fromkeys(languages))
    if fs.isfile(root):
        if len(languages) != 1:
            raise ValueError(f"{path} is one dictionary file but {len(languages)} languages were asked for "
                             f"({', '.join(languages)}); give a directory holding en-<lang>.txt files")
        named = re.fullmatch(r"en-([A-Za-z]{2,3})\.txt", root.rstrip("/").rsplit("/", 1)[-1])
        if named and named.group(1).lower() != languages[0]:
            raise ValueError(f"dictionary file {path} is named for language {named.group(1)!r}, "
                             f"not {languages[0]!r}")
        files = {languages[0]: root}
    elif fs.isdir(root):
        files = {lang: f"{root.rstrip('/')}/en-{lang}.txt" for lang in languages}
        missing = [f for f in files.values() if not fs.isfile(f)]
        if missing:
            raise ValueError(f"no dictionary file {', '.join(missing)} (the dictionaries path holds en-<lang>.txt "
                             f"files, MUSE format)")
    else:
        raise ValueError(f"no dictionary at {path}: neither a file nor a directory")
    out: dict[str, Dictionary] = {}
    for lang, file in files.items():
        entries: dict[str, list[str]] = {}
        with fs.open(file, "rt", encoding="utf-8-sig") as f:
            for line in f:
                parts = line.split(None, 1)
                if len(parts) < 2:
                    continue
                translation = " ".join(parts[1].split())
                known = entries.setdefault(parts[0].lower(), [])
                if translation not in known:
                    known.append(translation)
        out[lang] = {word: tuple(ts) for word, ts in entries.items()}
    return out
