"""Predict, decode and score one task in one language: metrics plus per-example records.

Every record carries the example id, the prediction, the gold and per-example scores, so
the report can bootstrap confidence intervals by resampling examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from xtrc import tasks
from xtrc_runtime import metrics
from xtrc_runtime.data import ChoiceExample, Example, QAExample, SentenceExample, TaggingExample
from xtrc_runtime.features import Feature, collate, encode
from xtrc_runtime.device import pad_multiple, to_device
from xtrc_runtime.model import TaskModel

MAX_ANSWER_TOKENS = 30
N_BEST = 20


@dataclass
class Result:
    metrics: dict[str, float]
    records: list[dict[str, Any]]
    counts: dict[str, Any] | None = None
    """What happened to the source's rows (data.load_counted), when the caller knows."""


EVAL_TOKENS_PER_BATCH = 32_768
"""On a GPU, an evaluation batch grows (from the sorted-by-length order) up to this many padded
tokens: no gradients or optimizer state, so batches far larger than training's fit."""


def eval_batches(lengths: Sequence[int], batch_size: int, device: torch.device) -> list[list[int]]:
    """Feature indices sorted by length, cut into batches: ``batch_size`` each on a CPU, as many as
    fit EVAL_TOKENS_PER_BATCH (never fewer than ``batch_size``) on a GPU."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if device.type != "cuda":
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending: the last member of a batch is its longest
        if current and len(current) >= batch_size and (len(current) + 1) * lengths[i] > EVAL_TOKENS_PER_BATCH:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


@torch.inference_mode()
def predict(model: TaskModel, head: str, features: Sequence[Feature], *, pad_id: int, batch_size: int,
            device: torch.device, autocast: torch.dtype | None = None) -> list[torch.Tensor]:
    """Logits per feature (on the CPU), in feature order; batches sorted by length."""
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(features)
    for idx in eval_batches([f.length for f in features], batch_size, device):
        batch = to_device(collate([features[i] for i in idx], pad_id, multiple_of=pad_multiple(device)), device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(head, batch["input_ids"], batch["attention_mask"]).float().cpu()
        for j, i in enumerate(idx):
            length = features[i].length
            out[i] = logits[j, :length] if logits.dim() == 3 else logits[j]
    return [t for t in out if t is not None]


def evaluate(model: TaskModel, head: str, task: str, language: str, examples: Sequence[Example], tokenizer: Any,
             *, max_len: int, doc_stride: int, batch_size: int, device: torch.device,
             labels: Sequence[str] = (), autocast: torch.dtype | None = None, max_query_len: int = 64) -> Result:
    features = encode(examples, tokenizer, max_len, labels=labels, doc_stride=doc_stride, max_query_len=max_query_len)
    logits = predict(model, head, features, pad_id=tokenizer.pad_token_id, batch_size=batch_size,
                     device=device, autocast=autocast)
    first = examples[0]
    if isinstance(first, SentenceExample):
        return _sentences(examples, logits, labels)
    if isinstance(first, ChoiceExample):
        return _choices(examples, logits)
    if isinstance(first, TaggingExample):
        return _tagging(examples, features, logits, labels, token_accuracy=tasks.TASKS[task].metrics[0] == "accuracy")
    if isinstance(first, QAExample):
        return _qa(task, language, examples, features, logits, no_answer=task == "squad_v2")
    raise TypeError(f"cannot evaluate {type(first).__name__}")


def _sentences(examples: Sequence[Example], logits: list[torch.Tensor], labels: Sequence[str]) -> Result:
    golds = [e.label for e in examples]  # type: ignore[union-attr]
    preds = [labels[int(x.argmax())] for x in logits]
    scores = {**metrics.macro_f1(golds, preds, labels=list(labels)), **metrics.accuracy(golds, preds)}
    records = [{"id": e.id, "prediction": p, "gold": g, "scores": {"accuracy": 100.0 * (p == g)}}
               for e, p, g in zip(examples, preds, golds)]
    return Result(scores, records)


def _choices(examples: Sequence[Example], logits: list[torch.Tensor]) -> Result:
    golds = [e.label for e in examples]  # type: ignore[union-attr]
    preds = [int(x.argmax()) for x in logits]
    records = [{"id": e.id, "prediction": p, "gold": g, "scores": {"accuracy": 100.0 * (p == g)}}
               for e, p, g in zip(examples, preds, golds)]
    return Result(metrics.accuracy(golds, preds), records)


def _tagging(examples: Sequence[Example], features: Sequence[Feature], logits: list[torch.Tensor],
             labels: Sequence[str], *, token_accuracy: bool = False) -> Result:
    """seqeval F1 (XTREME's POS and NER); with ``token_accuracy`` (CCG, as jiant scores it) the
    share of words whose tag is right instead."""
    predicted: list[list[str]] = [["O" if "O" in labels else labels[0]] * len(e.words) for e in examples]  # type: ignore[union-attr]
    for feature, out in zip(features, logits):
        best = out.argmax(-1).tolist()
        for position, word in enumerate(feature.word_ids):
            if word is not None:
                predicted[feature.example][word] = labels[best[position]]
    golds = [list(e.tags) for e in examples]  # type: ignore[union-attr]
    if token_accuracy:
        flat_gold = [t for g in golds for t in g]
        flat_pred = [t for p in predicted for t in p]
        records = [{"id": e.id, "prediction": p, "gold": g,
                    "scores": {"accuracy": 100.0 * sum(a == b for a, b in zip(g, p)) / max(1, len(g))}}
                   for e, p, g in zip(examples, predicted, golds)]
        return Result(metrics.accuracy(flat_gold, flat_pred), records)
    counts = metrics.seqeval_per_sentence(golds, predicted)
    records = [{"id": e.id, "prediction": p, "gold": g, "counts": list(c)}
               for e, p, g, c in zip(examples, predicted, golds, counts)]
    return Result(metrics.seqeval_from_counts(counts), records)


def _qa(task: str, language: str, examples: Sequence[Example], features: Sequence[Feature],
        logits: list[torch.Tensor], *, no_answer: bool) -> Result:
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for feature, out in zip(features, logits):
        e = examples[feature.example]
        assert isinstance(e, QAExample)
        start, end = out[:, 0], out[:, 1]
        null_score = float(start[0] + end[0])
        null[feature.example] = min(null.get(feature.example, null_score), null_score)
        starts = torch.topk(start, min(N_BEST, len(start))).indices.tolist()
        ends = torch.topk(end, min(N_BEST, len(end))).indices.tolist()
        for s in starts:
            for t in ends:
                if s > t or t - s + 1 > MAX_ANSWER_TOKENS:
                    continue
                if feature.offsets[s] is None or feature.offsets[t] is None:
                    continue
                score = float(start[s] + end[t])
                if feature.example not in best or score > best[feature.example][0]:
                    a, b = feature.offsets[s][0], feature.offsets[t][1]  # type: ignore[index]
                    best[feature.example] = (score, e.context[a:b].strip())
    predictions: dict[str, str] = {}
    for i, e in enumerate(examples):
        score, text = best.get(i, (float("-inf"), ""))
        predictions[e.id] = "" if no_answer and null.get(i, float("-inf")) > score else text
    golds = {e.id: [a for a, _ in e.answers] or [""] for e in examples}  # type: ignore[union-attr]
    if task == "mlqa":
        per_example = metrics.mlqa_per_example(predictions, golds, language)
    else:
        per_example = metrics.squad_per_example(predictions, golds)
    if no_answer:  # SQuAD 2.0's rule for unanswerable questions: both scores 100 for an empty prediction
        for e in examples:
            if not e.answers:  # type: ignore[union-attr]
                hit = 100.0 * (predictions[e.id] == "")
                per_example[e.id] = {"exact_match": hit, "f1": hit}
    aggregate = {name: sum(s[name] for s in per_example.values()) / len(per_example)
                 for name in ("exact_match", "f1")}
    records = [{"id": e.id, "prediction": predictions[e.id], "gold": golds[e.id], "scores": per_example[e.id]}
               for e in examples]
    return Result(aggregate, records)


def headline(task: str, scores: dict[str, float]) -> float:
    """The task's headline metric (the first in the registry that was computed)."""
    for name in tasks.TASKS[task].metrics:
        if name in scores:
            return scores[name]
    return next(iter(scores.values()))
