"""Retrieval scoring: sentence vectors from one layer of the encoder, cosine similarity.

Pooling follows XTREME's ``third_party/evaluate_retrieval.py`` and ``run_*.sh``:

- Tatoeba, and Mewsli-X / LAReQA scored from an encoder that was not trained as a dual encoder:
  mean over the attention mask (special tokens included) of ``hidden_states[retrieval_layer(L)]``.
  Each English sentence queries the non-English sentences; accuracy.
- BUCC: the first token (CLS) of ``hidden_states[BUCC_LAYER]`` (``--pool_type cls
  --specific_layer 7`` for every model). Ratio-margin scores over the k=4 nearest neighbours both
  ways, then ``utils_retrieve.mine_bitext``'s one-to-one "max" mining: forward and backward best
  candidates sorted by score, a pair kept only when neither sentence is taken yet. The threshold
  is tuned on the dev (sample) gold as ``bucc_optimize`` does (midway between the best-F1 score
  and the next); a dev set that cannot be loaded is an error, never a silent fallback to the
  test-optimal threshold. The hub's bucc18 holds only the gold pairs, so the pools here are those
  sentences, not the full monolingual corpora.
- Mewsli-X: each mention, marked and prepended as ``utils_mewslix.preprocess_mention`` does,
  ranks the entity catalogue (descriptions, ``preprocess_entity_description``); MRR@20.
- LAReQA: each question ranks the multilingual pool of answer sentences (encoded with their
  context when the data gives one); mAP@20.

A stage that trained a dual encoder (a ``retrieval`` head) embeds with that head instead: the
normalised CLS vector of the last layer, as XTREME's ``BertForRetrieval``.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch

from xtrc_runtime import metrics
from xtrc_runtime.data import DataError, DataLocation, PairExample, counts_of, load, load_counted, read_rows
from xtrc_runtime.dual import entity_text, mention_query
from xtrc_runtime.evaluate import Result
from xtrc_runtime.model import TaskModel

MARGIN_K = 4
TOP_K = 20
BUCC_SPECIFIC_LAYER = 7
"""``run_bucc2018.sh`` passes ``--specific_layer 7`` for every model."""


def retrieval_layer(num_layers: int) -> int:
    """The index into HF ``hidden_states`` (0 = embeddings) that XTREME mean-pools.

    XTREME indexes ``hidden_states[-num_layers:][specific_layer]``: specific layer 7 of mBERT's 12
    (``hidden_states[8]``) and 13 of XLM-R large's 24 (``hidden_states[14]``). Both are
    ``num_layers // 2 + 2``; shallower models are capped at their last layer.
    """
    return max(1, min(num_layers, num_layers // 2 + 2))


def bucc_layer(num_layers: int) -> int:
    """``hidden_states[-num_layers:][7]`` = ``hidden_states[8]`` (capped at the last layer)."""
    return max(1, min(num_layers, BUCC_SPECIFIC_LAYER + 1))


Pooling = Literal["mean", "cls"]
Text = str | tuple[str, str]
"""One text, or a (sentence, context) pair encoded together."""


@torch.no_grad()
def embed(model: TaskModel, tokenizer: Any, texts: Sequence[Text], *, max_len: int, batch_size: int,
          device: torch.device, pooling: Pooling = "mean", layer: int | None = None,
          head: str | None = None) -> torch.Tensor:
    """L2-normalised sentence vectors, in input order: through a dual-encoder ``head`` when given,
    else ``pooling`` of ``hidden_states[layer]`` (default: :func:`retrieval_layer`)."""
    model.eval()
    if layer is None:
        layer = retrieval_layer(model.encoder.config.num_hidden_layers)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) if isinstance(texts[i], str) else len(texts[i][0]) + len(texts[i][1]))
    out = torch.empty(len(texts), model.encoder.config.hidden_size)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        chunk = [texts[i] for i in idx]
        if isinstance(chunk[0], str):
            enc = tokenizer(chunk, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        else:
            enc = tokenizer([t[0] for t in chunk], [t[1] for t in chunk], truncation="longest_first",
                            max_length=max_len, padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        if head is not None:
            vectors = model.encode(head, ids, mask)
        else:
            vectors = model.embed(ids, mask, layer, pooling=pooling)
        out[idx] = torch.nn.functional.normalize(vectors.float(), dim=-1).cpu()
    return out


def run(task: str, language: str, where: DataLocation, model: TaskModel, tokenizer: Any, *, max_len: int,
        batch_size: int, device: torch.device, limit: int | None, languages: Sequence[str],
        head: str | None = None) -> Result:
    """Score ``task`` in ``language``; ``head`` names a trained dual-encoder head to embed with."""
    depth = model.encoder.config.num_hidden_layers

    def vectors(texts: Sequence[Text], pooling: Pooling = "mean", layer: int | None = None) -> torch.Tensor:
        return embed(model, tokenizer, texts, max_len=max_len, batch_size=batch_size, device=device,
                     pooling=pooling, layer=layer, head=head)

    # A cap (max_eval_examples) limits the queries only: the candidate pool stays whole, since a
    # smaller pool is an easier task. BUCC scores pairs over its whole pool, so it takes no cap.
    if task == "tatoeba":
        pairs, counts = load_counted(task, language, "test", where)
        pairs = [e for e in pairs if isinstance(e, PairExample)]
        queries, counts = _cap_queries(pairs, counts, limit)
        result = tatoeba(pairs, vectors([p.source for p in pairs]), vectors([p.target for p in queries]))
        return Result(result.metrics, result.records, counts)
    if task == "bucc":
        layer = bucc_layer(depth)
        test, counts = load_counted(task, language, "test", where)
        test = [e for e in test if isinstance(e, PairExample)]
        if limit and len(test) > limit:
            counts["cap"] = {"max_eval_examples": limit, "left_out": 0,
                             "not_applied": "BUCC's F1 is over pairs of the whole pool"}
        try:
            dev = [e for e in load(task, language, "dev", where) if isinstance(e, PairExample)]
        except DataError as exc:
            raise DataError(f"bucc ({language}): the dev (sample) gold tunes the mining threshold and could not "
                            f"be loaded: {exc}") from exc
        if not dev:
            raise DataError(f"bucc ({language}): the dev (sample) gold is empty; it tunes the mining threshold")
        threshold = bucc_threshold(dev, vectors([p.source for p in dev], "cls", layer),
                                   vectors([p.target for p in dev], "cls", layer))
        result = bucc(test, vectors([p.source for p in test], "cls", layer),
                      vectors([p.target for p in test], "cls", layer), threshold)
        return Result(result.metrics, result.records, counts)
    if task == "mewslix":
        mentions, counts = counts_of(read_rows(task, language, "test", where), limit)
        entities = read_rows(task, "", "test", where, name="entities")
        result = mewslix(mentions, entities, vectors([mention_query(m) for m in mentions]),
                         vectors([entity_text(e) for e in entities]))
        return Result(result.metrics, result.records, {**counts, "pool": len(entities)})
    if task == "lareqa":
        questions, counts = counts_of(read_rows(task, language, "test", where, name="questions"), limit)
        pool = [c for lang in languages for c in read_rows(task, lang, "test", where, name="candidates")]
        result = lareqa(questions, pool, vectors([q["question"] for q in questions]),
                        vectors([candidate_text(c) for c in pool]))
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


def mine(source: torch.Tensor, target: torch.Tensor, k: int = MARGIN_K) -> list[tuple[float, int, int]]:
    """``mine_bitext(mode='mine', retrieval='max', margin='ratio')``: (score, source, target) pairs,
    best first, each sentence in at most one pair.

    Each source sentence's best target among its k nearest neighbours by ratio margin
    ``cos(x, y) / ((mean_knn(x) + mean_knn(y)) / 2)``, and each target's best source likewise;
    the two lists are merged by descending score and a pair is kept only when neither of its
    sentences is in a pair already."""
    sim = source @ target.T
    k_fwd, k_bwd = min(k, sim.shape[1]), min(k, sim.shape[0])
    fwd_sim, fwd_ind = sim.topk(k_fwd, dim=1)
    bwd_sim, bwd_ind = sim.T.topk(k_bwd, dim=1)
    fwd_mean, bwd_mean = fwd_sim.mean(1), bwd_sim.mean(1)
    fwd_scores = fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_ind]) / 2)
    bwd_scores = bwd_sim / ((bwd_mean[:, None] + fwd_mean[bwd_ind]) / 2)
    best_f, best_b = fwd_scores.argmax(1), bwd_scores.argmax(1)
    candidates = [(float(fwd_scores[i, best_f[i]]), i, int(fwd_ind[i, best_f[i]])) for i in range(sim.shape[0])]
    candidates += [(float(bwd_scores[j, best_b[j]]), int(bwd_ind[j, best_b[j]]), j) for j in range(sim.shape[1])]
    # Stable sort on the score alone: ties keep numpy's argsort order (forward list first).
    order = sorted(range(len(candidates)), key=lambda n: -candidates[n][0])
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    out = []
    for n in order:
        score, i, j = candidates[n]
        if i not in seen_src and j not in seen_tgt:
            seen_src.add(i)
            seen_tgt.add(j)
            out.append((score, i, j))
    return out


def _best_threshold(candidates: list[tuple[float, int, int]], gold: set[tuple[int, int]]) -> float:
    """``bucc_optimize``: the score midway between the candidate where F1 peaks and the next."""
    best_f1, threshold, hits = 0.0, 0.0, 0
    for n, (score, i, j) in enumerate(candidates, start=1):
        hits += (i, j) in gold
        if hits:
            f1 = 2 * hits / (n + len(gold))
            if f1 > best_f1:
                best_f1 = f1
                following = candidates[n][0] if n < len(candidates) else score
                threshold = (score + following) / 2
    return threshold


def bucc_threshold(pairs: Sequence[PairExample], source: torch.Tensor, target: torch.Tensor) -> float:
    return _best_threshold(mine(source, target), {(i, i) for i in range(len(pairs))})


def bucc(pairs: Sequence[PairExample], source: torch.Tensor, target: torch.Tensor, threshold: float) -> Result:
    candidates = mine(source, target)
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


def candidate_text(c: dict[str, Any]) -> Text:
    """A LAReQA candidate: its sentence, paired with its context when the row has one."""
    return (c["sentence"], c["context"]) if c.get("context") else c["sentence"]


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
