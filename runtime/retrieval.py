"""Retrieval without training: mean-pooled hidden states of one layer, cosine similarity.

- Tatoeba: each English sentence queries the non-English sentences; accuracy.
- BUCC: ratio-margin scores (k=4 neighbours both ways), forward and backward best pairs, a
  threshold chosen on the dev (sample) gold, F1 over predicted pairs. The hub's bucc18 holds only
  the gold pairs, so the pools here are those sentences, not the full monolingual corpora.
- Mewsli-X: each mention context ranks the entity catalogue; MRR@20.
- LAReQA: each question ranks the multilingual pool of answer sentences; mAP@20.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from xtrc_runtime import metrics
from xtrc_runtime.data import DataLocation, PairExample, counts_of, load, load_counted, read_rows
from xtrc_runtime.evaluate import Result
from xtrc_runtime.model import TaskModel

MARGIN_K = 4
TOP_K = 20


def retrieval_layer(num_layers: int) -> int:
    """XTREME's layer: hidden_states[14] of XLM-R large's 24 layers (7/12 of the depth)."""
    return max(1, round(num_layers * 7 / 12))


@torch.no_grad()
def embed(model: TaskModel, tokenizer: Any, texts: Sequence[str], *, max_len: int, batch_size: int,
          device: torch.device) -> torch.Tensor:
    """L2-normalised sentence vectors, in input order."""
    model.eval()
    layer = retrieval_layer(model.encoder.config.num_hidden_layers)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.encoder.config.hidden_size)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_len, padding=True,
                        return_tensors="pt")
        vectors = model.embed(enc["input_ids"].to(device), enc["attention_mask"].to(device), layer)
        out[idx] = torch.nn.functional.normalize(vectors.float(), dim=-1).cpu()
    return out


def run(task: str, language: str, where: DataLocation, model: TaskModel, tokenizer: Any, *, max_len: int,
        batch_size: int, device: torch.device, limit: int | None, languages: Sequence[str]) -> Result:
    def vectors(texts: Sequence[str]) -> torch.Tensor:
        return embed(model, tokenizer, texts, max_len=max_len, batch_size=batch_size, device=device)

    # A cap (max_eval_examples) limits the queries only: the candidate pool stays whole, since a
    # smaller pool is an easier task. BUCC scores pairs over its whole pool, so it takes no cap.
    if task == "tatoeba":
        pairs, counts = load_counted(task, language, "test", where)
        pairs = [e for e in pairs if isinstance(e, PairExample)]
        queries, counts = _cap_queries(pairs, counts, limit)
        result = tatoeba(pairs, vectors([p.source for p in pairs]), vectors([p.target for p in queries]))
        return Result(result.metrics, result.records, counts)
    if task == "bucc":
        test, counts = load_counted(task, language, "test", where)
        test = [e for e in test if isinstance(e, PairExample)]
        if limit and len(test) > limit:
            counts["cap"] = {"max_eval_examples": limit, "left_out": 0,
                             "not_applied": "BUCC's F1 is over pairs of the whole pool"}
        try:
            dev = [e for e in load(task, language, "dev", where) if isinstance(e, PairExample)]
        except Exception:
            dev = []
        threshold = None
        if dev:
            threshold = bucc_threshold(dev, vectors([p.source for p in dev]), vectors([p.target for p in dev]))
        result = bucc(test, vectors([p.source for p in test]), vectors([p.target for p in test]), threshold)
        return Result(result.metrics, result.records, counts)
    if task == "mewslix":
        mentions, counts = counts_of(read_rows(task, language, "test", where), limit)
        entities = read_rows(task, "", "test", where, name="entities")
        contexts = [_mark_mention(m) for m in mentions]
        catalogue = [f"{e['title']}. {e['description']}" for e in entities]
        result = mewslix(mentions, entities, vectors(contexts), vectors(catalogue))
        return Result(result.metrics, result.records, {**counts, "pool": len(entities)})
    if task == "lareqa":
        questions, counts = counts_of(read_rows(task, language, "test", where, name="questions"), limit)
        pool = [c for lang in languages for c in read_rows(task, lang, "test", where, name="candidates")]
        result = lareqa(questions, pool, vectors([q["question"] for q in questions]),
                        vectors([c["sentence"] for c in pool]))
        return Result(result.metrics, result.records, {**counts, "pool": len(pool)})
    raise ValueError(f"{task!r} is not a retrieval task")


def _cap_queries(pairs: list[PairExample], counts: dict[str, Any],
                 limit: int | None) -> tuple[list[PairExample], dict[str, Any]]:
    queries = pairs[:limit] if limit else pairs
    counts = {**counts, "evaluated": len(queries), "pool": len(pairs),
              "cap": {"max_eval_examples": limit, "left_out": len(pairs) - len(queries)}
              if len(queries) < len(pairs) else None}
    return queries, counts


def tatoeba(pairs: Sequence[PairExample], source: torch.Tensor, target: torch.Tensor) -> Result:
    """English sentence i (the first ``len(target)`` pairs: the queries) retrieves among every
    pair's non-English sentence (``source``: the whole pool); gold is pair i."""
    predicted = (target @ source.T).argmax(-1).tolist()
    golds = list(range(target.shape[0]))
    records = [{"id": p.id, "prediction": pairs[i].id, "gold": p.id, "scores": {"accuracy": 100.0 * (i == g)}}
               for p, i, g in zip(pairs, predicted, golds)]
    return Result(metrics.accuracy(golds, predicted), records)


def _margin_candidates(source: torch.Tensor, target: torch.Tensor) -> list[tuple[float, int, int]]:
    sim = source @ target.T
    k = min(MARGIN_K, sim.shape[0], sim.shape[1])
    src_avg = sim.topk(k, dim=1).values.mean(1)
    tgt_avg = sim.topk(k, dim=0).values.mean(0)
    margin = sim / ((src_avg[:, None] + tgt_avg[None, :]) / 2)
    pairs = {(i, int(margin[i].argmax())) for i in range(margin.shape[0])}
    pairs |= {(int(margin[:, j].argmax()), j) for j in range(margin.shape[1])}
    return sorted(((float(margin[i, j]), i, j) for i, j in pairs), reverse=True)


def _best_threshold(candidates: list[tuple[float, int, int]], gold: set[tuple[int, int]]) -> float:
    best_f1, best_t, hits = -1.0, candidates[-1][0] if candidates else 0.0, 0
    for n, (score, i, j) in enumerate(candidates, start=1):
        hits += (i, j) in gold
        f1 = 2 * hits / (n + len(gold)) if gold else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, score
    return best_t


def bucc_threshold(pairs: Sequence[PairExample], source: torch.Tensor, target: torch.Tensor) -> float:
    return _best_threshold(_margin_candidates(source, target), {(i, i) for i in range(len(pairs))})


def bucc(pairs: Sequence[PairExample], source: torch.Tensor, target: torch.Tensor, threshold: float | None) -> Result:
    candidates = _margin_candidates(source, target)
    gold = {(i, i) for i in range(len(pairs))}
    if threshold is None:  # no dev gold to tune on: the optimum on test (reported as such)
        threshold = _best_threshold(candidates, gold)
    predicted = {(i, j) for score, i, j in candidates if score >= threshold}
    ids = [p.id for p in pairs]
    scores = metrics.bucc_f1({(ids[i], ids[j]) for i, j in predicted}, {(x, x) for x in ids})
    by_source: dict[int, list[int]] = {}
    for i, j in sorted(predicted):
        by_source.setdefault(i, []).append(j)
    # counts [tp, n_pred, n_gold] per source sentence sum to the pair counts behind the F1, so a
    # bootstrap over sentences can recompute it exactly.
    records = [{"id": p.id, "prediction": [ids[j] for j in by_source.get(i, [])], "gold": p.id,
                "counts": [int(i in by_source.get(i, [])), len(by_source.get(i, [])), 1]}
               for i, p in enumerate(pairs)]
    return Result({**scores, "threshold": threshold}, records)


def _mark_mention(m: dict[str, Any]) -> str:
    return m["context"]


def mewslix(mentions: Sequence[dict[str, Any]], entities: Sequence[dict[str, Any]], queries: torch.Tensor,
            catalogue: torch.Tensor) -> Result:
    ids = [e["entity_id"] for e in entities]
    top = (queries @ catalogue.T).topk(min(TOP_K, len(ids)), dim=-1).indices.tolist()
    rankings = {m["id"]: [ids[j] for j in row] for m, row in zip(mentions, top)}
    gold = {m["id"]: m["entity_id"] for m in mentions}
    records = []
    for m in mentions:
        ranked = rankings[m["id"]]
        rr = 100.0 / (ranked.index(m["entity_id"]) + 1) if m["entity_id"] in ranked else 0.0
        records.append({"id": m["id"], "prediction": ranked[:5], "gold": m["entity_id"], "scores": {"mrr@20": rr}})
    return Result(metrics.mrr_at_k(rankings, gold, k=TOP_K), records)


def lareqa(questions: Sequence[dict[str, Any]], pool: Sequence[dict[str, Any]], queries: torch.Tensor,
           candidates: torch.Tensor) -> Result:
    ids = [c["id"] for c in pool]
    top = (queries @ candidates.T).topk(min(TOP_K, len(ids)), dim=-1).indices.tolist()
    rankings = {q["id"]: [ids[j] for j in row] for q, row in zip(questions, top)}
    relevant = {q["id"]: set(q["answer_ids"]) for q in questions}
    records = [{"id": q["id"], "prediction": rankings[q["id"]][:5], "gold": sorted(relevant[q["id"]]),
                "scores": {"map@20": metrics.average_precision_at_k(rankings[q["id"]], relevant[q["id"]], TOP_K)}}
               for q in questions]
    return Result(metrics.map_at_k(rankings, relevant, k=TOP_K), records)
