"""`xtrc-runtime score`: score any system's predictions with xtrc's own metric code.

Predictions are JSONL ``{"id", "prediction"}``: a label (name or index) for classification, a
choice index for multiple choice, a list of tags for tagging, an answer string for QA, the id of
the matched sentence for Tatoeba/BUCC, and a ranked list of ids for Mewsli-X and LAReQA. Gold is
JSONL in the task's own schema (ids are the rows' ``id`` fields, or their line numbers).
"""

from __future__ import annotations

import json
from typing import Any

from xtrc import tasks
from xtrc_runtime import metrics
from xtrc_runtime.data import ChoiceExample, PairExample, QAExample, SentenceExample, TaggingExample, normalize


def _jsonl(path: str) -> list[dict[str, Any]]:
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score_files(task: str, language: str, predictions_path: str, gold_path: str) -> dict[str, float]:
    """Scores of ``task`` in ``language``; ValueError when a gold id has no prediction."""
    predictions = {str(r["id"]): r["prediction"] for r in _jsonl(predictions_path)}
    rows = _jsonl(gold_path)
    info = tasks.TASKS[task]
    if task in ("mewslix", "lareqa"):
        ids = [str(r["id"]) for r in rows]
        _require_all(ids, predictions)
        if task == "mewslix":
            return metrics.mrr_at_k({str(r["id"]): list(predictions[str(r["id"])]) for r in rows},
                                    {str(r["id"]): r["entity_id"] for r in rows})
        return metrics.map_at_k({str(r["id"]): list(predictions[str(r["id"])]) for r in rows},
                                {str(r["id"]): set(r["answer_ids"]) for r in rows})
    examples = [e for i, row in enumerate(rows) if (e := normalize(task, language, row, i)) is not None]
    if not examples:
        raise ValueError(f"no gold examples for {task} ({language}) in {gold_path}")
    _require_all([e.id for e in examples], predictions)
    first = examples[0]
    labels = list(info.labels)

    def label(v: Any) -> str:
        """A label given by name, or by its index in the task's label list."""
        if isinstance(v, int) and not isinstance(v, bool) and labels:
            if not 0 <= v < len(labels):
                raise ValueError(f"label index {v} is outside {task}'s {len(labels)} labels")
            return labels[v]
        return str(v)

    if isinstance(first, QAExample):
        golds = {e.id: [a for a, _ in e.answers] or [""] for e in examples}  # type: ignore[union-attr]
        answers = {e.id: str(predictions[e.id]) for e in examples}
        return metrics.mlqa(answers, golds, language) if task == "mlqa" else metrics.squad(answers, golds)
    if isinstance(first, SentenceExample):
        golds_s = [e.label for e in examples]  # type: ignore[union-attr]
        preds_s = [label(predictions[e.id]) for e in examples]
        return {**metrics.macro_f1(golds_s, preds_s, labels=labels or None), **metrics.accuracy(golds_s, preds_s)}
    if isinstance(first, ChoiceExample):
        return metrics.accuracy([e.label for e in examples], [int(predictions[e.id]) for e in examples])  # type: ignore[union-attr]
    if isinstance(first, TaggingExample):
        predicted = {e.id: [label(t) for t in predictions[e.id]] for e in examples}
        return metrics.seqeval_scores([list(e.tags) for e in examples],  # type: ignore[union-attr]
                                      [predicted[e.id] for e in examples])
    if isinstance(first, PairExample):
        if task == "bucc":
            pred_pairs = {(e.id, str(predictions[e.id])) for e in examples if predictions[e.id] is not None}
            return metrics.bucc_f1(pred_pairs, {(e.id, e.id) for e in examples})
        return metrics.accuracy([e.id for e in examples], [str(predictions[e.id]) for e in examples])
    raise ValueError(f"cannot score {task}")


def _require_all(ids: list[str], predictions: dict[str, Any]) -> None:
    """Every task refuses to score when gold ids have no prediction (a missing one is not a zero)."""
    missing = [i for i in ids if i not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} of {len(ids)} gold ids have no prediction (first: {missing[0]!r}); "
                         "give one prediction per gold id")
