"""``builtin:tiny-xlmr``: an XLM-R-architecture model small enough to train in seconds on a CPU.

Nothing is downloaded. The tokenizer is a BPE model with XLM-R's special tokens and
SentencePiece-style word boundaries (``▁``), trained deterministically on a text corpus (the
stage's data); the weights are initialised from a fixed seed, so every stage that starts from
the tiny "base model" on the same data starts from the same model, as a real pretrained
checkpoint would.
"""

from __future__ import annotations

from typing import Iterable

BUILTIN_TINY = "builtin:tiny-xlmr"
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # XLM-R's ids 0..3, mask last
VOCAB_SIZE = 2000
HIDDEN = 64
LAYERS = 2
HEADS = 2
INTERMEDIATE = 128
MAX_POSITIONS = 514  # XLM-R: 512 tokens + padding offset
INIT_SEED = 0


def build_tokenizer(corpus: Iterable[str], vocab_size: int = VOCAB_SIZE):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  min_frequency=2, show_progress=False)
    tok.train_from_iterator(sorted(set(corpus)), trainer)  # sorted: the same corpus, the same vocab
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>", model_max_length=MAX_POSITIONS - 2,
    )


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
