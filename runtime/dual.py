"""Dual-encoder data for XTREME-R's trained retrieval targets: query and candidate texts, training
pairs, and their features.

- Mewsli-X (``train_mewslix.sh``): English Wikipedia mention-entity pairs, the ``en/train`` split
  of the mewslix data in the mention schema of :mod:`xtrc_runtime.fixtures` (a row may carry its
  entity inline as ``entity``; otherwise ``entity_id`` is looked up in ``entities.jsonl``). The
  query is :func:`mention_query`, the candidate :func:`entity_text`.
- LAReQA (``train_lareqa.sh``): SQuAD v1.1 train; the query is the question, the candidate the
  sentence holding the first answer, encoded together with its context (XTREME's answer tower).

Queries are truncated to ``max_query_length`` subwords, candidates to ``max_seq_length``; one tower
encodes both (XTREME's ``BertForRetrieval``).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from xtrc_runtime.data import DataError, DataLocation, DualExample, Example, QAExample, read_rows

_MARKER_L, _MARKER_R = "{", "}"
_MARKED = re.compile(r"\{(.*?)\}")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def mention_query(m: dict[str, Any]) -> str:
    """``utils_mewslix.preprocess_mention``: the mention's sentence (when the row gives
    ``sentence_spans``; else the whole context) with the mention set off by ``{ }`` (existing
    ``{…}`` escaped to ``(…)``), and the mention prepended: ``"Smith: … for { Smith }, who …"``."""
    text, start, end = m["context"], int(m["mention_start"]), int(m["mention_end"])
    spans = [(s["start"], s["end"]) if isinstance(s, dict) else (s[0], s[1]) for s in m.get("sentence_spans") or ()]
    sentence = next(((a, b) for a, b in spans if a <= start < b and a < end <= b), None)
    if sentence is not None:
        text, start, end = text[sentence[0]:sentence[1]], start - sentence[0], end - sentence[0]
    mention = text[start:end]
    left = _MARKED.sub(r"(\1)", text[:start])
    right = _MARKED.sub(r"(\1)", text[end:])
    query = f"{mention}: {left} {_MARKER_L} {mention} {_MARKER_R} {right}"
    return " ".join(query.splitlines()).replace("  ", " ").strip()


def entity_text(e: dict[str, Any]) -> str:
    """``utils_mewslix.preprocess_entity_description``: the description, whitespace normalised."""
    return " ".join(e["description"].splitlines()).replace("  ", " ").strip()


def mewslix_pairs(where: DataLocation, limit: int | None = None) -> list[Example]:
    rows = read_rows("mewslix", "en", "train", where)
    if limit:
        rows = rows[:limit]
    catalogue: dict[str, dict[str, Any]] = {}
    if any("entity" not in r for r in rows):
        catalogue = {e["entity_id"]: e for e in read_rows("mewslix", "", "test", where, name="entities")}
    out: list[Example] = []
    for i, row in enumerate(rows):
        entity = row.get("entity") or catalogue.get(row["entity_id"])
        if entity is None:
            raise DataError(f"mewslix en/train row {i} ({row.get('id', '?')}): entity {row['entity_id']!r} is "
                            "neither inline (entity) nor in entities.jsonl")
        out.append(DualExample(str(row.get("id", i)), mention_query(row), entity_text(entity)))
    return out


def answer_sentence(context: str, start: int) -> str:
    """The sentence of ``context`` holding character ``start``: cut after sentence-final
    punctuation followed by whitespace."""
    begin = 0
    for match in _SENTENCE_END.finditer(context):
        if match.start() > start:
            return context[begin:match.start()].strip()
        begin = match.end()
    return context[begin:].strip()


def squad_pairs(examples: Sequence[Example]) -> list[Example]:
    """(question, answer sentence + context) pairs of the answerable SQuAD examples."""
    out: list[Example] = []
    for e in examples:
        if isinstance(e, DualExample):
            out.append(e)
        elif isinstance(e, QAExample) and e.answers:
            out.append(DualExample(e.id, e.question, answer_sentence(e.context, e.answers[0][1]), e.context))
    return out
