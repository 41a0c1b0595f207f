"""Examples → model inputs, per task type, and batches with dynamic padding.

Tagging follows the XTREME recipe: only a word's first subword carries its label (the rest
are -100), and sentences longer than ``max_len - 2`` subwords are split into several features.
QA uses a document stride over long contexts, keeping each token's character offsets for decoding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from xtrc_runtime.data import ChoiceExample, Example, QAExample, SentenceExample, TaggingExample

IGNORE = -100
GROUP_WINDOW_BATCHES = 8
"""Length grouping sorts within windows of this many batches: wide enough to cut most padding,
narrow enough that batches still mix lengths across the data (wider windows slowed learning in
bench/throughput.py)."""


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


def encode(examples: Sequence[Example], tokenizer: Any, max_len: int, *, labels: Sequence[str] = (),
           doc_stride: int = 128) -> list[Feature]:
    if not examples:
        return []
    first = examples[0]
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
        return _encode_qa(examples, tokenizer, max_len, doc_stride)
    raise TypeError(f"cannot encode {type(first).__name__} for training")


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


def _encode_qa(examples: Sequence[Example], tokenizer: Any, max_len: int, stride: int) -> list[Feature]:
    questions = [e.question.lstrip() for e in examples]  # type: ignore[union-attr]
    contexts = [e.context for e in examples]  # type: ignore[union-attr]
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_len,
                    stride=min(stride, max_len // 2), return_overflowing_tokens=True, return_offsets_mapping=True)
    out: list[Feature] = []
    for f, ids in enumerate(enc["input_ids"]):
        i = enc["overflow_to_sample_mapping"][f]
        sequence_ids = enc.sequence_ids(f)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][f], sequence_ids)]
        e = examples[i]
        assert isinstance(e, QAExample)
        label = (0, 0)  # the CLS token: no answer in this window
        if e.answers:
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
    """Index batches over ``features``. With a seed: shuffled, and grouped by length so a
    batch pads little (sorted within windows of GROUP_WINDOW_BATCHES batches, then the batches
    shuffled);
    the order is a pure function of (seed, features), so a resumed run can ``skip`` exactly."""
    order = list(range(len(features)))
    if seed is not None:
        rng = random.Random(seed)
        rng.shuffle(order)
        if group_by_length:
            window = batch_size * GROUP_WINDOW_BATCHES
            order = [i for w in range(0, len(order), window)
                     for i in sorted(order[w:w + window], key=lambda j: features[j].length)]
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if seed is not None and group_by_length:
        random.Random(seed + 1).shuffle(groups)
    yield from groups[skip:]


def collate(features: Sequence[Feature], pad_id: int, *, pad_to: int | None = None,
            multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest feature in the batch (or to ``pad_to``, the reference recipe)."""
    length = pad_to or max(f.length for f in features)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    first = features[0]
    if first.input_ids and isinstance(first.input_ids[0], list):  # multiple choice
        ids = torch.full((len(features), len(first.input_ids), length), pad_id, dtype=torch.long)
        for b, f in enumerate(features):
            for c, choice in enumerate(f.input_ids):
                ids[b, c, : len(choice)] = torch.tensor(choice[:length])  # type: ignore[arg-type]
    else:
        ids = torch.full((len(features), length), pad_id, dtype=torch.long)
        for b, f in enumerate(features):
            ids[b, : f.length] = torch.tensor(f.input_ids[:length])
    batch = {"input_ids": ids, "attention_mask": (ids != pad_id).long()}
    if first.label is None:
        return batch
    if isinstance(first.label, list):  # tagging
        tags = torch.full((len(features), length), IGNORE, dtype=torch.long)
        for b, f in enumerate(features):
            tags[b, : len(f.label)] = torch.tensor(f.label[:length])
        batch["labels"] = tags
    elif isinstance(first.label, tuple):  # QA
        batch["start_positions"] = torch.tensor([f.label[0] for f in features])
        batch["end_positions"] = torch.tensor([f.label[1] for f in features])
    else:
        batch["labels"] = torch.tensor([f.label for f in features])
    return batch
