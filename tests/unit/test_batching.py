"""Batch order and shapes of the training and evaluation paths (CPU and GPU rules alike; no GPU needed)."""

from __future__ import annotations

import random

import pytest
import torch

from xtrc_runtime.device import pad_multiple
from xtrc_runtime.evaluate import EVAL_TOKENS_PER_BATCH, eval_batches
from xtrc_runtime.features import MEGABATCH_BATCHES, Feature, batches, collate


def features(n: int, seed: int = 0) -> list[Feature]:
    r = random.Random(seed)
    return [Feature(list(range(2, 2 + r.randint(3, 120))), 0, i) for i in range(n)]


def test_grouped_batches_cover_every_feature_once_and_sort_within_megabatches() -> None:
    data = features(4000)
    got = list(batches(data, 8, seed=3))
    flat = [i for b in got for i in b]
    assert sorted(flat) == list(range(len(data)))
    mega = MEGABATCH_BATCHES
    for m in range(0, len(got), mega):
        block = got[m:m + mega]
        # Inside a megabatch the batches partition one length-sorted run: lengths never interleave.
        spans = sorted((min(data[i].length for i in b), max(data[i].length for i in b)) for b in block)
        assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))
    # ... and the batches of a megabatch are shuffled, not served longest first.
    first = [max(data[i].length for i in b) for b in got[:mega]]
    assert first != sorted(first, reverse=True) and first != sorted(first)


def test_grouping_cuts_padding_and_is_a_pure_function_of_the_seed() -> None:
    data = features(4000)

    def padded(groups: list[list[int]]) -> int:
        return sum(len(b) * max(data[i].length for i in b) for b in groups)

    grouped, plain = list(batches(data, 16, seed=1)), list(batches(data, 16, seed=1, group_by_length=False))
    assert padded(grouped) < 0.7 * padded(plain)
    assert grouped == list(batches(data, 16, seed=1))
    assert grouped != list(batches(data, 16, seed=2))
    assert list(batches(data, 16, seed=1, skip=5)) == grouped[5:]


def test_eval_batches_on_a_cpu_are_fixed_size_and_on_a_gpu_fill_a_token_budget() -> None:
    lengths = [f.length for f in features(3000)]
    cpu = eval_batches(lengths, 64, torch.device("cpu"))
    assert {len(b) for b in cpu[:-1]} == {64}
    gpu = eval_batches(lengths, 64, torch.device("cuda"))  # only the rule: nothing runs on a GPU
    assert sorted(i for b in gpu for i in b) == list(range(len(lengths)))
    assert len(gpu) < len(cpu) / 2
    for b in gpu:
        assert len(b) >= 64 or b is gpu[-1]
        assert len(b) == 64 or len(b) * max(lengths[i] for i in b) <= EVAL_TOKENS_PER_BATCH
    flat = [lengths[i] for b in gpu for i in b]
    assert flat == sorted(flat)


@pytest.mark.parametrize(("device", "width"), [("cpu", 7), ("cuda", 8)])
def test_gpu_batches_pad_to_a_multiple_of_8_and_cpu_batches_exactly(device: str, width: int) -> None:
    batch = collate([Feature([5, 6, 7, 8, 9, 10, 11], 1), Feature([5, 6], 0)], pad_id=1,
                    multiple_of=pad_multiple(torch.device(device)))
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"].sum().item() == 9


def test_an_encoder_without_sdpa_is_refused() -> None:
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xtrc_runtime.model import HeadSpec, TaskModel

    config = XLMRobertaConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=16, attn_implementation="eager")
    with pytest.raises(RuntimeError, match="sdpa"):
        TaskModel(XLMRobertaModel(config, add_pooling_layer=False), {"t": HeadSpec("classification", ("a", "b"))})
    config = XLMRobertaConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=16, attn_implementation="sdpa")
    TaskModel(XLMRobertaModel(config, add_pooling_layer=False), {"t": HeadSpec("classification", ("a", "b"))})
