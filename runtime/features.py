"""Examples → model inputs, per task type, and batches with dynamic padding.

Tagging follows the XTREME recipe: only a word's first subword carries its label (the rest
are -100), and sentences longer than ``max_len - 2`` subwords are split into several features.
QA follows XTREME's ``processors/squad.py``: the question is truncated to ``max_query_len``
subwords and a long context is cut into windows whose starts are ``doc_stride`` tokens apart
(:func:`qa_windows`), keeping each token's character offsets for decoding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from xtrc_runtime.data import ChoiceExample, DualExample, Example, QAExample, SentenceExample, TaggingExample

IGNORE = -100
MEGABATCH_BATCHES = 50
"""Length grouping sorts within megabatches of at most this many batches, and of fewer where the
data would make fewer than MIN_MEGABATCHES (the Hugging Face Trainer's rule)."""
MIN_MEGABATCHES = 4


@dataclass
class Feature:
    input_ids: list[int] | list[list[int]]
    label: Any = None  # int (sentence, choice), list[int] (tags), (start, end) token indices (QA)
    example: int = 0  # index of the example this feature came from
    # QA: character offsets of context tokens (None elsewhere); tagging: word index per token
    offsets: list[tuple[int, int] | None] = field(default_factory=list)
    word_ids: list[int | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        ids = self.input_ids
        return max(len(c) for c in ids) if ids and isinstance(ids[0], list) else len(ids)

    @property
    def tokens(self) -> int:
        """Real (non-pad) tokens: the sum over choices for multiple choice."""
        ids = self.input_ids
        return sum(len(c) for c in ids) if ids and isinstance(ids[0], list) else len(ids)


def encode(examples: Sequence[Example], tokenizer: Any, max_len: int, *, labels: Sequence[str] = (),
           doc_stride: int = 128, max_query_len: int = 64) -> list[Feature]:
    if not examples:
        return []
    first = examples[0]
    if isinstance(first, DualExample):  # [query, candidate]; the label is unused (in-batch negatives)
        return [Feature(_dual_ids(e, tokenizer, max_len, max_query_len), 0, i) for i, e in enumerate(examples)]
    if isinstance(first, SentenceExample):
        index = {label: i for i, label in enumerate(labels)}
        enc = tokenizer([e.text_a for e in examples], [e.text_b or "" for e in examples] if first.text_b is not None
                        else None, truncation=True, max_length=max_len)
        return [Feature(ids, index.get(e.label, IGNORE), i) for i, (ids, e) in enumerate(zip(enc["input_ids"], examples))]
    if isinstance(first, ChoiceExample):
        out = []
        for i, e in enumerate(examples):
            enc = tokenizer([e.context] * len(e.choices), e.choices, truncation=True, max_length=max_len)
            out.append(Feature(enc["input_ids"], e.label, i))
        return out
    if isinstance(first, TaggingExample):
        return _encode_tagging(examples, tokenizer, max_len, {t: i for i, t in enumerate(labels)})
    if isinstance(first, QAExample):
        return _encode_qa(examples, tokenizer, max_len, doc_stride, max_query_len)
    raise TypeError(f"cannot encode {type(first).__name__} for training")


def _dual_ids(e: DualExample, tokenizer: Any, max_len: int, max_query_len: int) -> list[list[int]]:
    query = tokenizer(e.query, truncation=True, max_length=min(max_query_len, max_len))["input_ids"]
    if e.context is None:
        candidate = tokenizer(e.candidate, truncation=True, max_length=max_len)["input_ids"]
    else:
        candidate = tokenizer(e.candidate, e.context, truncation="longest_first", max_length=max_len)["input_ids"]
    return [query, candidate]


def _encode_tagging(examples: Sequence[Example], tokenizer: Any, max_len: int, index: dict[str, int]) -> list[Feature]:
    budget = max_len - 2
    out: list[Feature] = []
    for i, e in enumerate(examples):
        assert isinstance(e, TaggingExample)
        pieces = tokenizer(e.words, add_special_tokens=False, is_split_into_words=False)["input_ids"]
        # Split the sentence into segments of whole words that fit the budget (XTREME splits
        # long sentences before tokenisation, so no word is cut and every word is labelled).
        start = 0
        while start < len(e.words):
            end, used = start, 0
            while end < len(e.words) and (used + max(1, len(pieces[end])) <= budget or end == start):
                used += max(1, len(pieces[end]))
                end += 1
            ids, tags, words = [tokenizer.cls_token_id], [IGNORE], [None]
            for w in range(start, end):
                word_pieces = (pieces[w] or [tokenizer.unk_token_id])[: budget]
                ids.extend(word_pieces)
                tags.extend([index.get(e.tags[w], IGNORE)] + [IGNORE] * (len(word_pieces) - 1))
                words.extend([w] + [None] * (len(word_pieces) - 1))
            ids, tags, words = ids[: max_len - 1], tags[: max_len - 1], words[: max_len - 1]
            ids.append(tokenizer.sep_token_id)
            tags.append(IGNORE)
            words.append(None)
            out.append(Feature(ids, tags, i, word_ids=words))
            start = end
    return out


def qa_windows(doc_tokens: int, budget: int, doc_stride: int) -> list[tuple[int, int]]:
    """[start, end) of each context window, XTREME's ``processors/squad.py`` rule: window ``i``
    starts at ``i * doc_stride`` and holds up to ``budget`` tokens (what the sequence leaves after
    the question and special tokens); the first window that reaches the end is the last. A
    stride longer than the budget steps by the budget, so no token is skipped."""
    step = max(1, min(doc_stride, budget))
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + budget, doc_tokens)
        windows.append((start, end))
        if end >= doc_tokens:
            return windows
        start += step


def _pair_template(tokenizer: Any) -> tuple[list[int], list[int], list[int]]:
    """The special tokens a pair gets before, between and after its two sequences
    (XLM-R: ``<s>`` | ``</s></s>`` | ``</s>``), read off an encoded pair."""
    enc = tokenizer("a", "b")
    ids, seq = enc["input_ids"], enc.sequence_ids(0)
    first_a = seq.index(0)
    last_a = max(i for i, s in enumerate(seq) if s == 0)
    first_b = seq.index(1)
    last_b = max(i for i, s in enumerate(seq) if s == 1)
    return ids[:first_a], ids[last_a + 1:first_b], ids[last_b + 1:]


def _encode_qa(examples: Sequence[Example], tokenizer: Any, max_len: int, stride: int,
               max_query_len: int = 64) -> list[Feature]:
    """Question (truncated to ``max_query_len`` subwords) + one context window per feature."""
    prefix, middle, suffix = _pair_template(tokenizer)
    added = len(prefix) + len(middle) + len(suffix)
    # A short max_len still leaves the context at least half of what remains.
    query_cap = max(1, min(max_query_len, (max_len - added) // 2))
    out: list[Feature] = []
    for i, e in enumerate(examples):
        assert isinstance(e, QAExample)
        question = tokenizer(e.question.lstrip(), add_special_tokens=False)["input_ids"][:query_cap]
        doc = tokenizer(e.context, add_special_tokens=False, return_offsets_mapping=True)
        doc_ids, doc_offsets = doc["input_ids"], [tuple(o) for o in doc["offset_mapping"]]
        budget = max(1, max_len - len(question) - added)
        first = len(prefix) + len(question) + len(middle)
        for start, end in qa_windows(len(doc_ids), budget, stride):
            ids = [*prefix, *question, *middle, *doc_ids[start:end], *suffix]
            offsets: list[tuple[int, int] | None] = [None] * len(ids)
            offsets[first:first + end - start] = doc_offsets[start:end]
            label = (0, 0)  # the CLS token: no answer in this window
            if e.answers and end > start:
                text, start_char = e.answers[0]
                end_char = start_char + len(text)
                spans = [(t, span) for t, span in enumerate(offsets) if span is not None]
                start_tok = next((t for t, span in spans if span[1] > start_char), None)
                end_tok = next((t for t, span in reversed(spans) if span[0] < end_char), None)
                # The answer must lie wholly inside this window; otherwise the label is CLS.
                if (start_tok is not None and end_tok is not None and start_tok <= end_tok
                        and spans[0][1][0] <= start_char and spans[-1][1][1] >= end_char):
                    label = (start_tok, end_tok)
            out.append(Feature(ids, label, i, offsets=offsets))
    return out


# --- batching ----------------------------------------------------------------------------


def batches(features: Sequence[Feature], batch_size: int, *, seed: int | None, group_by_length: bool = True,
            skip: int = 0) -> Iterator[list[int]]:
    """Index batches over ``features``. With a seed: shuffled; grouped by length as the Hugging Face
    Trainer does (the shuffled data cut into megabatches, each sorted by length; see
    :func:`megabatch_batches`), and the batches of each megabatch then shuffled too. The order is
    a pure function of (seed, features), so a resumed run can ``skip`` exactly."""
    order = list(range(len(features)))
    if seed is None:
        groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        yield from groups[skip:]
        return
    rng = random.Random(seed)
    rng.shuffle(order)
    if not group_by_length:
        groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        yield from groups[skip:]
        return
    mega = batch_size * megabatch_batches(len(features), batch_size)
    groups = []
    within = random.Random(seed + 1)
    for m in range(0, len(order), mega):
        ranked = sorted(order[m:m + mega], key=lambda j: features[j].length, reverse=True)
        batches_of_mega = [ranked[i:i + batch_size] for i in range(0, len(ranked), batch_size)]
        within.shuffle(batches_of_mega)
        groups.extend(batches_of_mega)
    yield from groups[skip:]


def megabatch_batches(examples: int, batch_size: int) -> int:
    """Batches per length-sorted megabatch: MEGABATCH_BATCHES, or fewer so that the data makes at
    least MIN_MEGABATCHES. One megabatch over most of a small data set would sort it nearly
    globally, every batch one narrow length band, and training on such batches learns slower
    (bench/throughput.py's learning curves)."""
    return max(1, min(MEGABATCH_BATCHES, examples // (batch_size * MIN_MEGABATCHES)))


def collate(features: Sequence[Feature], pad_id: int, *, pad_to: int | None = None,
            multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest feature in the batch (or to ``pad_to``, the reference recipe)."""
    length = pad_to or max(f.length for f in features)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    first = features[0]
    # One tensor from padded lists: building a tensor per row costs more than the padding.
    if first.input_ids and isinstance(first.input_ids[0], list):  # multiple choice
        ids = torch.tensor([[_padded(c, length, pad_id) for c in f.input_ids] for f in features], dtype=torch.long)
    else:
        ids = torch.tensor([_padded(f.input_ids, length, pad_id) for f in features], dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": (ids != pad_id).long()}
    if first.label is None:
        return batch
    if isinstance(first.label, list):  # tagging
        batch["labels"] = torch.tensor([_padded(f.label, length, IGNORE) for f in features], dtype=torch.long)
    elif isinstance(first.label, tuple):  # QA
        batch["start_positions"] = torch.tensor([f.label[0] for f in features])
        batch["end_positions"] = torch.tensor([f.label[1] for f in features])
    else:
        batch["labels"] = torch.tensor([f.label for f in features])
    return batch


def _padded(row: list[Any], length: int, value: int) -> list[Any]:
    return row[:length] + [value] * (length - len(row))
