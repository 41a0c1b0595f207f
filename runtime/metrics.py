"""Evaluation metrics, reimplemented exactly as the XTREME / XTREME-R reference scripts compute them.

Pure standard library (no torch, numpy or transformers), so the report stage and the unit tests can
import it anywhere.

Conventions:

* **Every score is on a 0-100 scale** (a float), per example as well as in aggregate.
* Aggregate functions return dicts keyed by the metric names used in ``xtrc.tasks`` (``f1``,
  ``exact_match``, ``accuracy``, ``precision``, ``recall``, ``map@20``, ``mrr@20``), so their
  results can be merged and handed to :func:`task_score`.
* Aggregates of per-example metrics are the plain mean of the per-example values that
  ``*_per_example`` returns, which is what a bootstrap resamples.

Sources reproduced (see ``domain.md`` §4):

* SQuAD v1.1 (``evaluate_squad.py``): XQuAD and TyDiQA-GoldP.
* MLQA (``mlqa_evaluation_v1.py``): MLQA, with the answer-language code.
* seqeval 1.2.2 defaults (micro average, ``mode=None``, conlleval-style chunking): PAN-X and
  UD-POS. UD-POS tags are read as if they were BIO tags (see :func:`get_entities`).
* XTREME ``evaluate.py``: accuracy, BUCC F1, the per-task score and the overall average;
  LAReQA mAP@20 and Mewsli-X MRR@20 as described in XTREME-R.
"""

from __future__ import annotations

import bisect
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence

__all__ = [
    "MLQA_LANGUAGES",
    "QAScores",
    "accuracy",
    "average_precision_at_k",
    "bucc_f1",
    "get_entities",
    "language_average",
    "macro_f1",
    "map_at_k",
    "mlqa",
    "mlqa_em",
    "mlqa_f1",
    "mlqa_normalize",
    "mlqa_per_example",
    "mrr_at_k",
    "seqeval_from_counts",
    "seqeval_per_sentence",
    "seqeval_scores",
    "squad",
    "squad_em",
    "squad_f1",
    "squad_normalize",
    "squad_per_example",
    "task_score",
    "xtreme_average",
]

QAScores = dict[str, dict[str, float]]
"""Per-example QA scores: ``{id: {"exact_match": 0.0 | 100.0, "f1": 0..100}}``."""
_PairScore = Callable[[str, str], float]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _f1(precision: float, recall: float) -> float:
    """2PR/(P+R), 0 when P+R is 0 (the convention of every script reproduced here)."""
    denominator = precision + recall
    return 2 * precision * recall / denominator if denominator else 0.0


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """Bag-of-tokens F1 in 0..1 as the SQuAD/MLQA scripts compute it (0 when nothing is shared,
    so two empty answers score 0)."""
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


# --------------------------------------------------------------------------------------------
# SQuAD v1.1
# --------------------------------------------------------------------------------------------

_ASCII_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(s: str) -> str:
    """SQuAD v1.1 ``normalize_answer``: lower-case, drop ASCII punctuation, replace the English
    articles a/an/the with a space, collapse whitespace (in that order)."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    text = _EN_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_em(pred: str, gold: str) -> float:
    """100.0 if the normalised strings are equal (two empty answers are equal), else 0.0."""
    return 100.0 if squad_normalize(pred) == squad_normalize(gold) else 0.0


def squad_f1(pred: str, gold: str) -> float:
    """Token F1 (0-100) over whitespace tokens of the normalised strings; 0 if none is shared."""
    return 100.0 * _token_f1(squad_normalize(pred).split(), squad_normalize(gold).split())


def _qa_per_example(
    predictions: Mapping[str, str],
    golds: Mapping[str, Sequence[str]],
    em_fn: _PairScore,
    f1_fn: _PairScore,
) -> QAScores:
    scores: QAScores = {}
    for qid, answers in golds.items():
        if isinstance(answers, str) or not answers:
            raise ValueError(f"question {qid!r}: gold answers must be a non-empty list of strings")
        if qid not in predictions:  # unanswered: scores 0 but still counts in the mean
            scores[qid] = {"exact_match": 0.0, "f1": 0.0}
            continue
        pred = predictions[qid]
        scores[qid] = {
            "exact_match": max(em_fn(pred, gold) for gold in answers),
            "f1": max(f1_fn(pred, gold) for gold in answers),
        }
    return scores


def _qa_aggregate(per_example: QAScores) -> dict[str, float]:
    if not per_example:
        raise ValueError("no gold questions to score")
    values = list(per_example.values())
    return {
        "exact_match": _mean([v["exact_match"] for v in values]),
        "f1": _mean([v["f1"] for v in values]),
    }


def squad_per_example(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]
) -> QAScores:
    """Per gold question: max EM and max F1 over its gold answers; an id missing from
    ``predictions`` scores 0. Prediction ids that are not gold questions are ignored."""
    return _qa_per_example(predictions, golds, squad_em, squad_f1)


def squad(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v1.1 ``evaluate``: ``{"exact_match", "f1"}``, the mean over all gold questions of
    :func:`squad_per_example`."""
    return _qa_aggregate(squad_per_example(predictions, golds))


# --------------------------------------------------------------------------------------------
# MLQA
# --------------------------------------------------------------------------------------------

MLQA_LANGUAGES: tuple[str, ...] = ("ar", "de", "en", "es", "hi", "vi", "zh")
"""Answer languages the MLQA script accepts; any other code raises ValueError."""

_MLQA_ARTICLES: Mapping[str, re.Pattern[str] | None] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "hi": None,
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # The script's pattern, verbatim. '^' after 'ال' can never match, so in effect every
    # 'ال' substring is replaced by a space, even inside words: "المال" -> " م " -> "م".
    "ar": re.compile("\\sال^|ال"),
    "zh": None,
}
_MLQA_WHITESPACE_LANGS = frozenset({"en", "es", "hi", "vi", "de", "ar"})


def _is_mlqa_punct(ch: str) -> bool:
    """Member of the script's PUNCT: Unicode category P* or ASCII ``string.punctuation``."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fa5"


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA ``mixed_segmentation``: each CJK ideograph in U+4E00..U+9FA5 and each punctuation
    character is a token of its own; the runs in between are whitespace-split."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _is_cjk(ch) or _is_mlqa_punct(ch):
            if run:
                tokens.extend(run.split())
                run = ""
            tokens.append(ch)
        else:
            run += ch
    if run:
        tokens.extend(run.split())
    return tokens


def _check_mlqa_lang(lang: str) -> None:
    if lang not in _MLQA_ARTICLES:
        raise ValueError(
            f"unknown MLQA answer language {lang!r}: the MLQA script supports only "
            f"{', '.join(MLQA_LANGUAGES)}"
        )


def mlqa_normalize(s: str, lang: str) -> str:
    """MLQA ``normalize_answer``: lower-case, drop Unicode P* and ASCII punctuation, remove the
    language's articles, then tokenise (whitespace, or mixed segmentation for zh) and join the
    tokens with single spaces."""
    _check_mlqa_lang(lang)
    text = s.lower()
    text = "".join(ch for ch in text if not _is_mlqa_punct(ch))
    articles = _MLQA_ARTICLES[lang]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = text.split() if lang in _MLQA_WHITESPACE_LANGS else _mixed_segmentation(text)
    return " ".join(t for t in tokens if t.strip() != "")


def mlqa_em(pred: str, gold: str, lang: str) -> float:
    """100.0 if the MLQA-normalised strings are equal, else 0.0."""
    return 100.0 if mlqa_normalize(pred, lang) == mlqa_normalize(gold, lang) else 0.0


def mlqa_f1(pred: str, gold: str, lang: str) -> float:
    """Token F1 (0-100) of the MLQA-normalised strings (zh: per-character tokens)."""
    return 100.0 * _token_f1(mlqa_normalize(pred, lang).split(), mlqa_normalize(gold, lang).split())


def mlqa_per_example(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]], lang: str
) -> QAScores:
    """As :func:`squad_per_example` with the MLQA normalisation for answer language ``lang``."""
    _check_mlqa_lang(lang)
    return _qa_per_example(
        predictions,
        golds,
        lambda p, g: mlqa_em(p, g, lang),
        lambda p, g: mlqa_f1(p, g, lang),
    )


def mlqa(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]], lang: str
) -> dict[str, float]:
    """MLQA ``evaluate``: ``{"exact_match", "f1"}``, the mean of :func:`mlqa_per_example`."""
    return _qa_aggregate(mlqa_per_example(predictions, golds, lang))


# --------------------------------------------------------------------------------------------
# seqeval 1.2.2, default arguments
# --------------------------------------------------------------------------------------------

Entity = tuple[str, int, int]
"""(type, start, end), both ends inclusive."""


def _split_tag(tag: str) -> tuple[str, str]:
    """seqeval 1.2.2 (suffix=False): prefix = first character; type = ``tag[1:]`` split once on
    '-' keeping the last part, or '_' if that is empty. So 'B-PER' -> ('B', 'PER'),
    'NOUN' -> ('N', 'OUN'), 'CCONJ'/'SCONJ' -> type 'CONJ', 'X' and 'O' -> type '_'."""
    if not tag:
        raise ValueError("empty tag: seqeval reads the first character as the chunk prefix")
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag not in ("O", ".") and prev_type != type_)
    )


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != type_)
    )


def get_entities(seq: Sequence[str]) -> list[Entity]:
    """Chunks of one tag sequence exactly as ``seqeval.metrics.sequence_labeling.get_entities``
    (1.2.2, ``suffix=False``), in order of their end.

    The conlleval rules apply to the prefix (first character): a chunk starts on B or S, on I/E
    after O/E/S, or on any non-O tag whose type differs from the previous one; so ``I-PER I-PER``
    is one PER and ``B-X B-X`` two chunks. Tags without a hyphen are cut the same way, so UPOS
    tags act as BIO tags: runs of an identical tag merge, S-initial tags (SCONJ, SYM) are single
    chunks, CCONJ/SCONJ share the type 'CONJ', and 'X' has the type '_' of 'O' (a run of X that
    ends its sentence never closes and is lost). Quirks such as a chunk reusing a stale start
    offset are reproduced, not fixed.

    For several sentences, concatenate them with an 'O' after each, as seqeval does.
    """
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[Entity] = []
    for i, chunk in enumerate([*seq, "O"]):
        tag, type_ = _split_tag(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _flatten(sentences: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    """seqeval's flattening (an 'O' after every sentence) and each sentence's start offset."""
    flat: list[str] = []
    starts: list[int] = []
    for sentence in sentences:
        starts.append(len(flat))
        flat.extend(sentence)
        flat.append("O")
    return flat, starts


def seqeval_per_sentence(
    golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]
) -> list[tuple[int, int, int]]:
    """Per sentence, ``(tp, n_pred, n_gold)`` entity counts whose sums are exactly seqeval's
    micro-average counts, so ``seqeval_from_counts(counts)`` equals :func:`seqeval_scores`.

    Entities are found on the whole flattened corpus (as seqeval does) and each is credited to
    the sentence holding its last token. A bootstrap resamples sentences (with replacement),
    sums the resampled triples and calls :func:`seqeval_from_counts`. With well-formed tags every
    entity lies inside one sentence, so this is exact; the only entities that reach back into an
    earlier sentence are seqeval's stale-offset artefacts (e.g. UPOS 'X' at a sentence start).
    """
    if not golds and not preds:
        raise ValueError("no sentences to score (seqeval rejects empty input too)")
    if len(golds) != len(preds) or any(len(g) != len(p) for g, p in zip(golds, preds)):
        raise ValueError(
            "golds and preds differ in number of sentences or in sentence lengths: "
            f"{[len(g) for g in golds]} vs {[len(p) for p in preds]}"
        )
    flat_gold, starts = _flatten(golds)
    flat_pred, _ = _flatten(preds)
    gold_entities = set(get_entities(flat_gold))
    pred_entities = set(get_entities(flat_pred))
    counts = [[0, 0, 0] for _ in golds]

    def sentence_of(entity: Entity) -> int:
        return bisect.bisect_right(starts, entity[2]) - 1

    for entity in pred_entities:
        counts[sentence_of(entity)][1] += 1
        if entity in gold_entities:
            counts[sentence_of(entity)][0] += 1
    for entity in gold_entities:
        counts[sentence_of(entity)][2] += 1
    return [(tp, n_pred, n_gold) for tp, n_pred, n_gold in counts]


def seqeval_from_counts(counts: Iterable[tuple[int, int, int]]) -> dict[str, float]:
    """Micro P/R/F1 (0-100) from summed ``(tp, n_pred, n_gold)`` triples, with seqeval's
    zero-division convention: P = 0 without predicted entities, R = 0 without gold entities,
    F1 = 0 when P + R = 0."""
    tp = n_pred = n_gold = 0
    for t, p, g in counts:
        tp, n_pred, n_gold = tp + t, n_pred + p, n_gold + g
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    return {"f1": 100 * _f1(precision, recall), "precision": 100 * precision, "recall": 100 * recall}


def seqeval_scores(
    golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]
) -> dict[str, float]:
    """``seqeval.metrics.{f1,precision,recall}_score(golds, preds)`` with default arguments
    (micro average over entity types, ``mode=None``), times 100."""
    return seqeval_from_counts(seqeval_per_sentence(golds, preds))


# --------------------------------------------------------------------------------------------
# Classification, multiple choice, retrieval
# --------------------------------------------------------------------------------------------


def _check_pairs(golds: Sequence[object], preds: Sequence[object]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        raise ValueError("nothing to score: no gold labels")


def accuracy(golds: Sequence[Hashable], preds: Sequence[Hashable]) -> dict[str, float]:
    """``{"accuracy"}``: 100 × the share of exact matches (labels, choice or sentence indices).
    Used for XNLI, PAWS-X, multiple choice (XCOPA, ...) and Tatoeba."""
    _check_pairs(golds, preds)
    return {"accuracy": 100.0 * sum(g == p for g, p in zip(golds, preds)) / len(golds)}


def macro_f1(
    golds: Sequence[Hashable],
    preds: Sequence[Hashable],
    labels: Iterable[Hashable] | None = None,
) -> dict[str, float]:
    """``{"f1"}``: unweighted mean of per-class F1 over the classes in ``golds`` ∪ ``labels``.

    Per class c: P = tp/#pred(c), 0 when c is never predicted; R = tp/#gold(c), 0 when c never
    occurs in golds; F1 = 2PR/(P+R), 0 when P + R = 0. A class from ``labels`` that is neither
    predicted nor gold is skipped. A predicted class outside that set counts only as an error.
    """
    _check_pairs(golds, preds)
    gold_count = Counter(golds)
    pred_count = Counter(preds)
    tp_count = Counter(g for g, p in zip(golds, preds) if g == p)
    classes = set(gold_count) | set(labels or ())
    per_class: list[float] = []
    for c in sorted(classes, key=repr):  # a fixed order: a set's order (string hashes) varies by process
        if not gold_count[c] and not pred_count[c]:
            continue
        precision = tp_count[c] / pred_count[c] if pred_count[c] else 0.0
        recall = tp_count[c] / gold_count[c] if gold_count[c] else 0.0
        per_class.append(100 * _f1(precision, recall))
    return {"f1": _mean(per_class)}


def bucc_f1(
    pred_pairs: Collection[tuple[str, str]], gold_pairs: Collection[tuple[str, str]]
) -> dict[str, float]:
    """XTREME ``bucc_f1`` over sets of (source id, target id) pairs: ``{"precision", "recall",
    "f1"}``, all 0 when no predicted pair is gold."""
    preds, golds = set(pred_pairs), set(gold_pairs)
    correct = len(preds & golds)
    if not correct:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = correct / len(preds), correct / len(golds)
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * _f1(precision, recall)}


def average_precision_at_k(ranked_ids: Sequence[str], relevant: Collection[str], k: int = 20) -> float:
    """AP@k (0-100) of one query: Σ over hits at rank i ≤ k of (hits so far)/i, divided by
    min(|relevant|, k). A repeated id counts once, at its first rank; no relevant ids gives 0."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = set(relevant)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    seen: set[str] = set()
    for rank, doc in enumerate(ranked_ids[:k], start=1):
        if doc in relevant and doc not in seen:
            hits += 1
            total += hits / rank
        seen.add(doc)
    return 100 * total / min(len(relevant), k)


def map_at_k(
    rankings: Mapping[str, Sequence[str]], relevant: Mapping[str, Collection[str]], k: int = 20
) -> dict[str, float]:
    """``{f"map@{k}"}``: mean AP@k over the queries in ``relevant`` (LAReQA); a query without a
    ranking scores 0."""
    if not relevant:
        raise ValueError("no queries to score")
    aps = [average_precision_at_k(rankings.get(q, ()), rel, k) for q, rel in relevant.items()]
    return {f"map@{k}": _mean(aps)}


def mrr_at_k(
    rankings: Mapping[str, Sequence[str]], gold: Mapping[str, str], k: int = 20
) -> dict[str, float]:
    """``{f"mrr@{k}"}``: mean over the queries in ``gold`` of 100/rank of the gold id within the
    top k (0 if absent or the query has no ranking). Mewsli-X's "mAP@20" with one gold entity."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not gold:
        raise ValueError("no queries to score")
    scores: list[float] = []
    for q, target in gold.items():
        top = list(rankings.get(q, ()))[:k]
        scores.append(100 / (top.index(target) + 1) if target in top else 0.0)
    return {f"mrr@{k}": _mean(scores)}


# --------------------------------------------------------------------------------------------
# XTREME aggregation (evaluate.py)
# --------------------------------------------------------------------------------------------


def task_score(metrics: Mapping[str, float], xtreme_score: str) -> float:
    """A task's XTREME score from its (language-averaged) metrics: the metric named by the task's
    ``xtreme_score``, or (EM + F1)/2 for ``"em_f1_mean"`` (the QA tasks)."""
    needed = ("exact_match", "f1") if xtreme_score == "em_f1_mean" else (xtreme_score,)
    missing = [m for m in needed if m not in metrics]
    if missing:
        raise KeyError(
            f"xtreme_score {xtreme_score!r} needs metric(s) {missing}, have {sorted(metrics)}"
        )
    if xtreme_score == "em_f1_mean":
        return (metrics["exact_match"] + metrics["f1"]) / 2
    return float(metrics[xtreme_score])


def language_average(per_language: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Plain mean over languages of each metric; every language must report the same metrics."""
    if not per_language:
        raise ValueError("no languages to average")
    names = {frozenset(m) for m in per_language.values()}
    if len(names) != 1:
        raise ValueError(
            "languages report different metrics: "
            + "; ".join(f"{lang}: {sorted(m)}" for lang, m in per_language.items())
        )
    metric_names = next(iter(per_language.values()))
    return {m: _mean([scores[m] for scores in per_language.values()]) for m in metric_names}


def xtreme_average(task_scores: Mapping[str, float], required: Sequence[str]) -> float | None:
    """Mean of the required tasks' scores, or None unless every one of them is present (XTREME
    reports the overall and group scores only when all their tasks are)."""
    if not required or any(task not in task_scores for task in required):
        return None
    return _mean([task_scores[task] for task in required])
