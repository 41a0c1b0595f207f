"""The task registry: every task xtrc knows, as data, defined once.

Facts (languages, metrics, sources, recipes) follow ../shared/reference/domain.md; sizes are
approximate and used only for the GPU-hour estimate. The runtime reads the same entries to
load data, so a field named here is a field the loader really reads.

The records are defined in :mod:`xtrc.tasks.info`; the English training tasks in
:mod:`xtrc.tasks.english`, the cross-lingual targets in :mod:`xtrc.tasks.targets`.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Mapping

from xtrc.tasks.english import ENGLISH_TASKS
from xtrc.tasks.info import (
    TYDIQA_ID_PREFIX, Benchmark, HFSource, Recipe, Role, Sizes, TaskInfo, TaskType, Translations,
)
from xtrc.tasks.shared import COPA_PROMPT
from xtrc.tasks.targets import TARGET_TASKS

__all__ = [
    "ALIASES", "COPA_PROMPT", "GROUPS", "TASKS", "TYDIQA_ID_PREFIX", "Benchmark", "HFSource", "Recipe", "Role",
    "Sizes", "TaskInfo", "TaskType", "Translations", "expand", "get", "hub_datasets", "hub_sources", "resolve",
    "suggest",
]

TASKS: Mapping[str, TaskInfo] = MappingProxyType({t.name: t for t in [*ENGLISH_TASKS, *TARGET_TASKS]})

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
