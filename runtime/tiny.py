"""``builtin:tiny-xlmr``: an XLM-R-architecture model small enough to train in seconds on a CPU.

Nothing is downloaded. The tokenizer is a BPE model with XLM-R's special tokens and
SentencePiece-style word boundaries (``▁``), trained deterministically on a text corpus (the text
of the tasks the stage config names); the weights are initialised from a fixed seed, so every
stage that starts from the tiny "base model" on the same text starts from the same model, as a
real pretrained checkpoint would.

The vocabulary always leaves room for merges: it holds every character of the corpus plus
``MERGES`` merged pieces (at least ``VOCAB_SIZE`` in all). A fixed cap below the alphabet's size
(real multilingual text has thousands of distinct characters) would leave BPE no merge at all,
a character-level model whose sequences are several times longer than planned.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Iterable

BUILTIN_TINY = "builtin:tiny-xlmr"
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # XLM-R's ids 0..3, mask last
VOCAB_SIZE = 2000
"""The smallest vocabulary (special tokens, characters and merges together)."""
MERGES = 12000
"""Merged pieces the vocabulary holds beyond the corpus's characters (BPE stops earlier when no
pair occurs twice). bench/tokenizer.py measures the resulting tokens per word against XLM-R's."""
TOKENIZER_FORMAT = 2
"""Bump when build_tokenizer makes a different tokenizer from the same text: cached ones go stale."""
HIDDEN = 64
LAYERS = 2
HEADS = 2
INTERMEDIATE = 128
MAX_POSITIONS = 514  # XLM-R: 512 tokens + padding offset
INIT_SEED = 0


def vocab_size_for(alphabet: int, requested: int = VOCAB_SIZE) -> int:
    """The vocabulary for a corpus of ``alphabet`` distinct characters: room for every character
    and for ``MERGES`` merges, and never below ``requested``."""
    return max(requested, len(SPECIAL_TOKENS) + alphabet + 1 + MERGES)  # + 1: the word boundary ▁


def _alphabet(texts: list[str]) -> set[str]:
    chars: set[str] = set()
    for text in texts:
        chars.update(unicodedata.normalize("NFKC", text))
    chars.discard(" ")
    return chars


def corpus_digest(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> str:
    """The content key of the tokenizer :func:`build_tokenizer` makes from ``texts``."""
    h = hashlib.sha256(json.dumps({"format": TOKENIZER_FORMAT, "vocab_size": vocab_size, "merges": MERGES}).encode())
    for text in sorted(set(texts)):
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE):  # -> tokenizers.Tokenizer
    """A BPE tokenizer trained on ``corpus`` (deterministic: the same texts, the same vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    texts = sorted(set(corpus))  # sorted: the same corpus, the same vocab
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size_for(len(_alphabet(texts)), vocab_size),
                                  special_tokens=list(SPECIAL_TOKENS), min_frequency=2, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


def wrap_tokenizer(tok):  # tokenizers.Tokenizer -> PreTrainedTokenizerFast
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>", model_max_length=MAX_POSITIONS - 2,
    )


def build_tokenizer(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE):  # -> PreTrainedTokenizerFast
    return wrap_tokenizer(train_tokenizer(corpus, vocab_size))


def build_encoder(vocab_size: int):  # -> XLMRobertaModel
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS, type_vocab_size=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(INIT_SEED)
    try:
        model = XLMRobertaModel(config, add_pooling_layer=False)
    finally:
        torch.random.set_rng_state(state)
    return model
