"""Code-switching and translate-train (xtrc_runtime.augment): unit and property tests.

The property tests build sentences from a small random source vocabulary (letters a-f) and a
random dictionary whose translations use other letters (and some CJK characters), so every
switched word is recognisable in the output. An oracle written here re-derives every possible
output of each input word (kept, or one of its translations with the casing rule applied) and a
small parser checks the output is such a sequence, counting the switches.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtrc.spec import CodeSwitch, TranslateTrain
from xtrc_runtime import fixtures
from xtrc_runtime.augment import CodeSwitcher, inside_tag, load_dictionaries, load_translations
from xtrc_runtime.augment_cli import main_augment
from xtrc_runtime.data import (
    ChoiceExample,
    DataError,
    DataLocation,
    PairExample,
    QAExample,
    SentenceExample,
    TaggingExample,
    load,
)

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- generators -----------------------------------------------------------------------------

SOURCE_LETTERS = "abcdef"
LEADS = ["", "", "", "(", '"', "¿"]
TRAILS = ["", "", "", ",", ".", ")", "?!", "…", "'"]
PUNCT = [".", ",", "-", "!", "(", ")"]
SEPARATORS = [" ", " ", " ", "  ", "\n", " \t"]
TAGS = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "NOUN", "VERB", r"(S\NP)/NP"]


TARGET_WORDS = ["gh", "Kst", "mäø", "犬", "猫語", "vwx", "Ruz", "yHk", "ø", "pnt", "GHK", "zä", "ämu", "s"]
ENTRIES = st.lists(st.tuples(st.integers(0, 15), st.lists(st.integers(0, 10**5), min_size=1, max_size=3)),
                   max_size=12)


def decode_translation(code: int) -> str:
    """1-3 target words (mixed case, accented Latin, CJK) from one integer."""
    code, n = divmod(code, 3)
    words = []
    for _ in range(n + 1):
        code, k = divmod(code, len(TARGET_WORDS))
        words.append(TARGET_WORDS[k])
    return " ".join(words)
VOCAB = st.lists(st.text(SOURCE_LETTERS, min_size=1, max_size=4), min_size=3, max_size=12, unique=True)
LANGS = st.lists(st.sampled_from(["de", "es", "ru", "zh"]), min_size=1, max_size=3, unique=True)
CODES = st.integers(0, 10**6)


@st.composite
def worlds(draw: Any) -> tuple[list[str], dict[str, dict[str, tuple[str, ...]]]]:
    """A source vocabulary and dictionaries for 1-3 languages (some words in none of them)."""
    vocab = draw(VOCAB)
    dictionaries: dict[str, dict[str, tuple[str, ...]]] = {}
    for lang in draw(LANGS):
        table = dictionaries[lang] = {}
        for index, codes in draw(ENTRIES):
            translations = tuple(dict.fromkeys(decode_translation(c) for c in codes))
            table.setdefault(vocab[index % len(vocab)], translations)
    return vocab, dictionaries


UNKNOWN = ["q", "qa", "fq", "aqb"]
CASES = ["lower", "lower", "title", "upper"]


def decode_token(code: int, vocab: list[str]) -> tuple[str, str]:
    """One whitespace word and the whitespace after it, from one integer (0 = simplest:
    a lower-case vocabulary word, one space)."""
    code, kind = divmod(code, 10)
    code, index = divmod(code, 16)
    code, case = divmod(code, len(CASES))
    code, lead = divmod(code, len(LEADS))
    code, trail = divmod(code, len(TRAILS))
    separator = SEPARATORS[code % len(SEPARATORS)]
    if kind == 9:
        return PUNCT[index % len(PUNCT)], separator
    core = UNKNOWN[index % len(UNKNOWN)] if kind == 8 else vocab[index % len(vocab)]
    core = {"upper": core.upper(), "title": core[:1].upper() + core[1:]}.get(CASES[case], core)
    return LEADS[lead] + core + TRAILS[trail], separator


@st.composite
def tokens(draw: Any, vocab: list[str], min_size: int = 1, max_size: int = 14) -> list[str]:
    """Whitespace words: vocabulary words in any casing with punctuation attached, unknown
    words, bare punctuation."""
    codes = draw(st.lists(CODES, min_size=min_size, max_size=max_size))
    return [decode_token(c, vocab)[0] for c in codes]


@st.composite
def texts(draw: Any, vocab: list[str], min_size: int = 1, max_size: int = 14) -> str:
    codes = draw(st.lists(CODES, min_size=min_size, max_size=max_size))
    pieces = [decode_token(c, vocab) for c in codes]
    return "".join(w + sep for w, sep in pieces[:-1]) + pieces[-1][0]


@st.composite
def qa_examples(draw: Any, vocab: list[str]) -> QAExample:
    """Contexts with 0-4 answers: whole words, cores without their punctuation (answers at the
    start/end of the context and next to punctuation), and arbitrary character spans that may
    cut a word."""
    context = draw(texts(vocab, 1, 16))
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
    answers = []
    for code in draw(st.lists(CODES, max_size=4)):
        code, kind = divmod(code, 4)
        code, a = divmod(code, 1000)
        b = code % 1000
        if kind == 3:
            s = a % len(context)
            e = s + 1 + b % (len(context) - s)
        else:
            i = a % len(words)
            j = min(len(words) - 1, i + b % 4)
            if kind == 2:  # first or last word
                i, j = (0, j) if b % 2 else (i, len(words) - 1)
            s, e = words[i][0], words[j][1]
            if kind >= 1:  # trim punctuation: the answer is adjacent to it
                while s < e and not context[s].isalnum():
                    s += 1
                while e > s and not context[e - 1].isalnum():
                    e -= 1
            if s == e:
                s, e = words[i]
        answers.append((context[s:e], s))
    return QAExample("q", draw(texts(vocab, 1, 6)), context, answers)


@st.composite
def tagging_examples(draw: Any, vocab: list[str]) -> TaggingExample:
    codes = draw(st.lists(CODES, min_size=1, max_size=14))
    tags = [TAGS[(c * 2654435761 >> 7) % len(TAGS)] for c in codes]
    return TaggingExample("t", [decode_token(c, vocab)[0] for c in codes], tags)


@st.composite
def sentence_examples(draw: Any, vocab: list[str]) -> SentenceExample:
    b = draw(st.one_of(st.none(), texts(vocab)))
    return SentenceExample("s", draw(texts(vocab)), b, draw(st.sampled_from(["entailment", "neutral", "0", "1"])))


@st.composite
def choice_examples(draw: Any, vocab: list[str]) -> ChoiceExample:
    choices = draw(st.lists(texts(vocab, 1, 5), min_size=2, max_size=5))
    return ChoiceExample("c", draw(texts(vocab)), choices, draw(st.integers(0, len(choices) - 1)))


SETTINGS = st.tuples(st.sampled_from([1.0, 0.5, 0.0]), st.sampled_from([1.0, 0.3, 0.0]),
                     st.sampled_from(["example", "word"]), st.booleans())


@st.composite
def settings_(draw: Any, langs: list[str]) -> CodeSwitch:
    ratio, word_prob, per, dynamic = draw(SETTINGS)
    return CodeSwitch(languages=langs, dictionaries="unused", ratio=ratio, word_prob=word_prob, per=per,
                      dynamic=dynamic)


SEED_EPOCH = st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 5))


@st.composite
def cases(draw: Any) -> tuple[CodeSwitch, dict, list, int, int]:
    vocab, dictionaries = draw(worlds())
    cfg = draw(settings_(list(dictionaries)))
    example = st.one_of(qa_examples(vocab), tagging_examples(vocab), sentence_examples(vocab), choice_examples(vocab))
    examples = draw(st.lists(example, min_size=1, max_size=6))
    seed, epoch = draw(SEED_EPOCH)
    return cfg, dictionaries, examples, seed, epoch


# --- oracle ---------------------------------------------------------------------------------

def expected_case(core: str, translation: str) -> str:
    """The casing rule, for the generated cores (lower, Capitalised, UPPER) and translations."""
    if core.islower():
        return translation.lower()
    if len(core) >= 2 and core.isupper():
        return translation.upper()
    return translation[0].upper() + translation[1:]


def split_core(token: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"([^\w]*)(.*?)([^\w]*)", token)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)


def candidates(token: str, dictionaries: dict) -> list[str]:
    """Every switched rendering of a whitespace word (empty when no dictionary has it)."""
    lead, core, trail = split_core(token)
    out = []
    for table in dictionaries.values():
        for t in table.get(core.lower(), ()):
            out.append(lead + expected_case(core, t) + trail)
    return out


def parse_text(before: str, after: str, dictionaries: dict, must_switch: bool = False) -> int | None:
    """Number of switched words if ``after`` is ``before`` with some words switched, else None."""
    parts = re.split(r"(\s+)", before)

    @lru_cache(maxsize=None)
    def go(k: int, p: int) -> int | None:
        if k == len(parts):
            return 0 if p == len(after) else None
        part = parts[k]
        if k % 2 == 1 or not part:
            return go(k + 1, p + len(part)) if after.startswith(part, p) else None
        options = [(r, 1) for r in candidates(part, dictionaries)]
        if not (must_switch and options):
            options.append((part, 0))
        for rendered, n in options:
            if after.startswith(rendered, p):
                rest = go(k + 1, p + len(rendered))
                if rest is not None:
                    return rest + n
        return None

    return go(0, 0)


def parse_tagging(before: TaggingExample, after: TaggingExample, dictionaries: dict,
                  must_switch: bool = False) -> int | None:
    @lru_cache(maxsize=None)
    def go(i: int, j: int) -> int | None:
        if i == len(before.words):
            return 0 if j == len(after.words) else None
        word, tag = before.words[i], before.tags[i]
        options = [(r.split(" "), 1) for r in candidates(word, dictionaries)]
        if not (must_switch and options):
            options.append(([word], 0))
        for pieces, n in options:
            k = len(pieces)
            tags = [tag] + [("I-" + tag[2:]) if tag.startswith("B-") else tag] * (k - 1)
            if after.words[j:j + k] == pieces and after.tags[j:j + k] == tags:
                rest = go(i + 1, j + k)
                if rest is not None:
                    return rest + n
        return None

    return go(0, 0)


def parse_example(before: Any, after: Any, dictionaries: dict, must_switch: bool = False) -> int | None:
    assert type(before) is type(after) and before.id == after.id
    if isinstance(before, TaggingExample):
        return parse_tagging(before, after, dictionaries, must_switch)
    if isinstance(before, SentenceExample):
        pairs = [(before.text_a, after.text_a)]
        assert (before.text_b is None) == (after.text_b is None)
        if before.text_b is not None:
            pairs.append((before.text_b, after.text_b))
        assert after.label == before.label
    elif isinstance(before, ChoiceExample):
        assert after.label == before.label and len(after.choices) == len(before.choices)
        pairs = [(before.context, after.context), *zip(before.choices, after.choices)]
    else:
        pairs = [(before.question, after.question), (before.context, after.context)]
    total = 0
    for b, a in pairs:
        n = parse_text(b, a, dictionaries, must_switch)
        if n is None:
            return None
        total += n
    return total


# --- properties -----------------------------------------------------------------------------

@PROPS
@given(cases())
def test_switch_properties(case: tuple) -> None:
    cfg, dictionaries, examples, seed, epoch = case
    original = json.dumps([dataclasses.asdict(e) for e in examples])
    switcher = CodeSwitcher(cfg, dictionaries)
    out, stats = switcher.switch(examples, seed=seed, epoch=epoch)
    assert json.dumps([dataclasses.asdict(e) for e in examples]) == original  # input untouched
    assert len(out) == len(examples)
    json.dumps(stats)  # JSON-serialisable

    switched_words = 0
    for before, after in zip(examples, out):
        n = parse_example(before, after, dictionaries)
        assert n is not None, (before, after)
        switched_words += n
        if isinstance(after, TaggingExample):
            assert len(after.words) == len(after.tags)
        if isinstance(after, QAExample):
            assert len(after.answers) == len(before.answers)
            for text, start in after.answers:
                assert after.context[start:start + len(text)] == text
    # statistics add up
    assert stats["words_switched"] == switched_words
    assert sum(stats["words_switched_per_language"].values()) == stats["words_switched"]
    assert stats["examples"] == len(examples)
    assert stats["examples_switched"] <= stats["examples_selected"] <= stats["examples"]
    changed = sum(1 for b, a in zip(examples, out) if a != b)
    assert changed <= stats["examples_switched"]
    if cfg.per == "example":
        assert sum(stats["examples_switched_per_language"].values()) == stats["examples_switched"]
    assert set(stats["dictionary_coverage"]) == set(cfg.languages)
    assert all(0.0 <= c <= 1.0 for c in stats["dictionary_coverage"].values())

    # deterministic; the epoch matters only with dynamic
    again, stats_again = switcher.switch(examples, seed=seed, epoch=epoch)
    assert again == out and stats_again == stats
    if not cfg.dynamic:
        assert switcher.switch(examples, seed=seed, epoch=epoch + 1)[0] == out

    if cfg.ratio == 0 or cfg.word_prob == 0:
        assert out == examples and stats["words_switched"] == 0


@PROPS
@given(worlds(), st.data())
def test_everything_switched_at_ratio_and_word_prob_one(world: tuple, data: st.DataObject) -> None:
    vocab, dictionaries = world
    cfg = CodeSwitch(languages=list(dictionaries), dictionaries="unused", ratio=1.0, word_prob=1.0, per="word")
    examples = data.draw(st.lists(st.one_of(tagging_examples(vocab), sentence_examples(vocab),
                                            choice_examples(vocab)), min_size=1, max_size=4))
    # per word, CoSDA-ML draws the language over all dictionaries and keeps a word the drawn one
    # lacks: when every language's dictionary holds every entry, every known word is switched.
    union: dict[str, tuple[str, ...]] = {}
    for table in dictionaries.values():
        for word, ts in table.items():
            union[word] = tuple(dict.fromkeys(union.get(word, ()) + tuple(ts)))
    full = {lang: union for lang in dictionaries}
    out, stats = CodeSwitcher(cfg, full).switch(examples, seed=data.draw(st.integers(0, 99)), epoch=0)
    for before, after in zip(examples, out):
        assert parse_example(before, after, full, must_switch=True) is not None, (before, after)
    # one language, per example: every word in that dictionary switched
    lang = next(iter(dictionaries))
    single = CodeSwitcher(CodeSwitch(languages=[lang], dictionaries="unused", ratio=1.0, word_prob=1.0),
                          {lang: dictionaries[lang]})
    out, _ = single.switch(examples, seed=1, epoch=0)
    for before, after in zip(examples, out):
        assert parse_example(before, after, {lang: dictionaries[lang]}, must_switch=True) is not None


@PROPS
@given(worlds(), st.data())
def test_qa_answers_found_at_their_offsets(world: tuple, data: st.DataObject) -> None:
    vocab, dictionaries = world
    cfg = CodeSwitch(languages=list(dictionaries), dictionaries="unused", ratio=1.0,
                     word_prob=data.draw(st.sampled_from([0.5, 1.0])), per=data.draw(st.sampled_from(["example", "word"])))
    examples = data.draw(st.lists(qa_examples(vocab), min_size=1, max_size=5))
    out, _ = CodeSwitcher(cfg, dictionaries).switch(examples, seed=data.draw(st.integers(0, 999)), epoch=0)
    for before, after in zip(examples, out):
        assert parse_example(before, after, dictionaries) is not None
        for (old_text, old_start), (text, start) in zip(before.answers, after.answers):
            assert after.context[start:start + len(text)] == text
            # the answer is the switched text of the same words
            assert parse_text(old_text, text, dictionaries) is not None or old_text == text


# --- unit tests: code-switching -------------------------------------------------------------

DICTS = {"de": {"dog": ("hund",), "new": ("neu",), "york": ("njork stadt",), "city": ("Stadt",),
                "berlin": ("berlin",), "the": ("der", "die"), "big": ("Gross",)},
         "zh": {"dog": ("狗",), "city": ("城市",), "big": ("大",)}}


def switcher(langs: list[str] = ["de"], **kw: Any) -> CodeSwitcher:  # noqa: B006
    kw = {"ratio": 1.0, "word_prob": 1.0, **kw}
    return CodeSwitcher(CodeSwitch(languages=langs, dictionaries="unused", **kw), DICTS)


def test_casing_rule() -> None:
    ex = SentenceExample("1", "Dog dog DOG Big big BIG Berlin", "CITY City city", "x")
    [out], _ = switcher().switch([ex], seed=0, epoch=0)
    assert out.text_a == "Hund hund HUND Gross gross GROSS Berlin"  # dictionary's "Gross" lowered for "big"
    assert out.text_b == "STADT Stadt stadt"
    [out], _ = switcher(["zh"]).switch([ex], seed=0, epoch=0)
    assert out.text_a == "狗 狗 狗 大 大 大 Berlin"  # uncased script: as written; berlin not in zh
    assert out.text_b == "城市 城市 城市"


def test_punctuation_stays_around_replaced_word_and_whitespace_is_kept() -> None:
    ex = SentenceExample("1", '"Dog," said  the\tdog.\n(big)', None, "x")
    [out], stats = switcher().switch([ex], seed=0, epoch=0)
    assert re.fullmatch(r'"Hund," said  d(er|ie)\thund\.\n\(gross\)', out.text_a)
    assert out.text_b is None and out.label == "x"
    assert stats["words_switched"] == 4 and stats["words"] == 5


def test_missing_words_untouched() -> None:
    ex = SentenceExample("1", "cat eats fish", "Cats", "x")
    [out], stats = switcher(["de", "zh"], per="word").switch([ex], seed=0, epoch=0)
    assert out is ex and stats["words_switched"] == 0 and stats["examples_switched"] == 0


def test_tagging_multiword_translation_takes_inside_labels() -> None:
    ex = TaggingExample("1", ["In", "New", "York", "(York)", "dog", "York"], ["O", "B-LOC", "I-LOC", "B-LOC", "NOUN", "O"])
    [out], stats = switcher().switch([ex], seed=0, epoch=0)
    assert out.words == ["In", "Neu", "Njork", "stadt", "(Njork", "stadt)", "hund", "Njork", "stadt"]
    assert out.tags == ["O", "B-LOC", "I-LOC", "I-LOC", "B-LOC", "I-LOC", "NOUN", "O", "O"]
    assert ex.words == ["In", "New", "York", "(York)", "dog", "York"]  # input untouched
    assert stats["words_switched"] == 5
    assert inside_tag("B-PER") == "I-PER" and inside_tag("I-PER") == "I-PER"
    assert inside_tag("O") == "O" and inside_tag("NOUN") == "NOUN" and inside_tag(r"(S\NP)/NP") == r"(S\NP)/NP"


def test_qa_answers_follow_the_switch() -> None:
    context = "The big dog lives in New York, the big city."
    answers = [("The big dog", 0), ("New York", 21), ("big city.", 35), ("York, the big city.", 25), ("dog", 8)]
    ex = QAExample("q", "Where does the dog live?", context, answers)
    [out], _ = switcher().switch([ex], seed=0, epoch=0)
    assert re.fullmatch(r"Where does d(er|ie) hund live\?", out.question)
    assert re.fullmatch(r"D(er|ie) gross hund lives in Neu Njork stadt, d(er|ie) gross stadt\.", out.context)
    for text, start in out.answers:
        assert out.context[start:start + len(text)] == text
    texts = [text for text, _ in out.answers]
    assert texts[0] == out.context[:len(texts[0])] and texts[0].endswith(" gross hund")
    assert texts[1:3] == ["Neu Njork stadt", "gross stadt."]
    assert re.fullmatch(r"Njork stadt, d(er|ie) gross stadt\.", texts[3]) and texts[4] == "hund"
    assert ex.context == context and ex.answers == answers  # input untouched


def test_qa_word_cut_by_an_answer_boundary_is_never_switched() -> None:
    ex = QAExample("q", "q", "the dog city", [("og cit", 5)])  # cuts "dog" and "city"
    [out], _ = switcher().switch([ex], seed=0, epoch=0)
    assert out.context[:3] in ("der", "die") and out.context[3:] == " dog city"
    assert out.answers == [("og cit", 5)]
    ex2 = QAExample("q", "q", "dog bigdog dog", [("dog", 0), ("og", 12)])  # the second cuts the last dog
    [out2], _ = switcher().switch([ex2], seed=0, epoch=0)
    assert out2.context == "hund bigdog dog" and out2.answers == [("hund", 0), ("og", 13)]
    ex3 = QAExample("q", "q", "(dog), big", [("dog", 1), ("big", 7), ("(dog),", 0)])  # punctuation cut: fine
    [out3], _ = switcher().switch([ex3], seed=0, epoch=0)
    assert out3.context == "(hund), gross" and out3.answers == [("hund", 1), ("gross", 8), ("(hund),", 0)]


def test_qa_answer_that_does_not_match_its_context_is_left_alone() -> None:
    ex = QAExample("q", "q", "the dog saw the big city", [("cat", 4), ("big city", 16)])
    [out], _ = switcher().switch([ex], seed=0, epoch=0)
    assert re.fullmatch(r"d(er|ie) dog saw d(er|ie) gross stadt", out.context)
    (bad, bad_start), (good, good_start) = out.answers
    assert bad == "cat" and out.context[bad_start:bad_start + 3] == "dog"
    assert good == "gross stadt" and out.context[good_start:] == good


def test_choice_and_sentence_fields_all_switched_labels_kept() -> None:
    choice = ChoiceExample("c", "The dog", ["big dog", "a city"], 1)
    pair = SentenceExample("p", "dog", "city", "entailment")
    out, stats = switcher().switch([choice, pair], seed=0, epoch=0)
    assert out[0].choices == ["gross hund", "a stadt"] and out[0].label == 1
    assert out[1].text_a == "hund" and out[1].text_b == "stadt" and out[1].label == "entailment"
    assert stats["examples_switched_per_language"] == {"de": 2}


def test_dynamic_resamples_each_epoch_static_does_not() -> None:
    ex = SentenceExample("1", " ".join(["dog", "big", "city"] * 80), None, "x")
    dyn = switcher(["de", "zh"], word_prob=0.5, per="word")
    e0, _ = dyn.switch([ex], seed=7, epoch=0)
    e1, _ = dyn.switch([ex], seed=7, epoch=1)
    assert e0 != e1 and e0 == dyn.switch([ex], seed=7, epoch=0)[0]
    assert e0 != dyn.switch([ex], seed=8, epoch=0)[0]
    static = switcher(["de", "zh"], word_prob=0.5, per="word", dynamic=False)
    s0, st0 = static.switch([ex], seed=7, epoch=0)
    s3, st3 = static.switch([ex], seed=7, epoch=3)
    assert s0 == s3 and st0["epoch"] == st3["epoch"] == 0


def test_ratio_selects_about_that_share_and_replaces() -> None:
    examples = [SentenceExample(str(i), "the dog", None, "x") for i in range(2000)]
    out, stats = switcher(ratio=0.3).switch(examples, seed=1, epoch=0)
    assert len(out) == len(examples)  # replace, not add
    assert 500 < stats["examples_selected"] < 700
    assert stats["examples_switched"] == stats["examples_selected"] == sum(1 for a, b in zip(out, examples) if a != b)
    assert [e.id for e in out] == [e.id for e in examples]
    # an example's switches depend on (seed, epoch, position) only, not on the others
    tail, _ = switcher(ratio=0.3).switch(examples[:100], seed=1, epoch=0)
    assert tail == out[:100]


def test_per_example_uses_one_language_per_example() -> None:
    examples = [SentenceExample(str(i), "dog city big", None, "x") for i in range(200)]
    out, stats = switcher(["de", "zh"]).switch(examples, seed=2, epoch=0)
    seen = {e.text_a for e in out}
    assert seen == {"hund stadt gross", "狗 城市 大"}
    assert sum(stats["examples_switched_per_language"].values()) == 200
    assert stats["words_switched_per_language"]["de"] + stats["words_switched_per_language"]["zh"] == 600


def test_coverage_statistic() -> None:
    ex = SentenceExample("1", "The dog, the cat.", "Berlin!", "x")
    _, stats = switcher(["de", "zh"]).switch([ex], seed=0, epoch=0)
    assert stats["word_types"] == 4  # the dog cat berlin
    assert stats["dictionary_coverage"] == {"de": 0.75, "zh": 0.25}


def test_unsupported_example_type_and_missing_dictionary() -> None:
    with pytest.raises(TypeError):
        switcher().switch([PairExample("1", "a", "b")], seed=0, epoch=0)
    with pytest.raises(ValueError, match="fr"):
        CodeSwitcher(CodeSwitch(languages=["fr"], dictionaries="x"), DICTS)


# --- dictionaries ---------------------------------------------------------------------------

def test_load_dictionaries_parses_muse(tmp_path: Path) -> None:
    (tmp_path / "en-de.txt").write_text("Berlin berlin\ndog Hund\ndog hund2\ncat  ka   bo \nlonely\n\ndog Hund\n",
                                        encoding="utf-8")
    (tmp_path / "en-zh.txt").write_text("dog\t狗\n", encoding="utf-8")
    d = load_dictionaries(str(tmp_path), ["de", "zh"])
    assert d["de"] == {"berlin": ("berlin",), "dog": ("Hund", "hund2"), "cat": ("ka bo",)}
    assert d["zh"] == {"dog": ("狗",)}
    assert load_dictionaries(str(tmp_path / "en-zh.txt"), ["zh"]) == {"zh": {"dog": ("狗",)}}
    with pytest.raises(ValueError, match=r"en-fr\.txt"):
        load_dictionaries(str(tmp_path), ["de", "fr"])
    with pytest.raises(ValueError, match="one dictionary file"):
        load_dictionaries(str(tmp_path / "en-zh.txt"), ["zh", "de"])
    with pytest.raises(ValueError, match="named for language"):
        load_dictionaries(str(tmp_path / "en-zh.txt"), ["de"])
    with pytest.raises(ValueError, match="no dictionary"):
        load_dictionaries(str(tmp_path / "nowhere"), ["de"])


def test_load_dictionaries_through_fsspec() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    with fs.open("/muse-test/en-es.txt", "w") as f:
        f.write("dog perro\n")
    try:
        assert load_dictionaries("memory://muse-test", ["es"]) == {"es": {"dog": ("perro",)}}
    finally:
        fs.rm("/muse-test", recursive=True)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    fixtures.generate(str(root), tasks=["panx", "mnli", "squad"], languages=("en", "de", "es"),
                      sizes=fixtures.Sizes(train=50, dev=10, test=10))
    return root


def test_fixture_dictionaries(fixture_root: Path) -> None:
    d = load_dictionaries(str(fixture_root / "dictionaries"), ["de", "es"])
    for lang in ("de", "es"):
        table = d[lang]
        assert len(table) > 100
        assert all(word == word.lower() for word in table)
        assert any(" " in t for ts in table.values() for t in ts)  # multi-word translations
        assert any(len(ts) > 1 for ts in table.values())  # second translations
        assert any(t[:1].isupper() for ts in table.values() for t in ts)
    with pytest.raises(ValueError, match=r"en-ru\.txt"):
        load_dictionaries(str(fixture_root / "dictionaries"), ["ru"])


def test_switch_fixture_data(fixture_root: Path) -> None:
    where = DataLocation(str(fixture_root / "data"))
    d = load_dictionaries(str(fixture_root / "dictionaries"), ["de", "es"])
    cs = CodeSwitcher(CodeSwitch(languages=["de", "es"], dictionaries="x", word_prob=0.7, per="word"), d)
    for task in ("panx", "mnli", "squad"):
        examples = load(task, "en", "train", where)
        out, stats = cs.switch(examples, seed=1, epoch=0)
        assert stats["words_switched"] > 0
        assert 0.5 < stats["dictionary_coverage"]["de"] < 1.0
        for before, after in zip(examples, out):
            assert parse_example(before, after, d) is not None
            if isinstance(after, QAExample):
                assert all(after.context[s:s + len(t)] == t for t, s in after.answers)
    # names the dictionary lower-cases keep their capital
    names = {w.lower() for e in load("panx", "en", "train", where) for w, t in zip(e.words, e.tags) if t != "O"}
    lowered = [w for w in names if w in d["de"] and d["de"][w][0][:1].islower()]
    assert lowered
    ex = TaggingExample("n", [lowered[0].capitalize()], ["B-PER"])
    [out], _ = CodeSwitcher(CodeSwitch(languages=["de"], dictionaries="x", word_prob=1.0), d).switch([ex], seed=0,
                                                                                                      epoch=0)
    assert out.words[0][:1].isupper() or not out.words[0][:1].isalpha()


# --- translate-train ------------------------------------------------------------------------

def mnli_rows(n: int, lang: str) -> list[dict]:
    return [{"premise": f"{lang} premise {i}", "hypothesis": f"{lang} hypothesis {i}", "label": i % 3, "idx": i}
            for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_translations_from_user_directory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tt" / "de" / "train.jsonl", mnli_rows(40, "de"))
    write_jsonl(tmp_path / "tt" / "es" / "train.jsonl", mnli_rows(10, "es"))
    cfg = TranslateTrain.model_validate({"languages": ["de", "es"], "ratio": 0.5, "paths": {"xnli": str(tmp_path / "tt")}})
    examples, stats = load_translations("xnli", "mnli", cfg, DataLocation(), seed=1)
    assert stats["examples_added_per_language"] == {"de": 20, "es": 5} and stats["examples_added"] == 25
    assert stats["examples_available"] == {"de": 40, "es": 10} and stats["rows"] == {"de": 40, "es": 10}
    assert len(examples) == 25 and all(isinstance(e, SentenceExample) for e in examples)
    de = [e for e in examples if e.id.startswith("tt-de-")]
    assert len(de) == 20
    labels = ("entailment", "neutral", "contradiction")
    for e in de:  # labels carry over; file order kept
        i = int(e.id.rsplit("-", 1)[1])
        assert e.text_a == f"de premise {i}" and e.label == labels[i % 3]
    assert [int(e.id.rsplit("-", 1)[1]) for e in de] == sorted(int(e.id.rsplit("-", 1)[1]) for e in de)
    assert load_translations("xnli", "mnli", cfg, DataLocation(), seed=1)[0] == examples
    assert load_translations("xnli", "mnli", cfg, DataLocation(), seed=2)[0] != examples
    json.dumps(stats)
    cfg_fr = TranslateTrain.model_validate({"languages": ["fr"], "paths": {"xnli": str(tmp_path / "tt")}})
    with pytest.raises(DataError, match="fr"):
        load_translations("xnli", "mnli", cfg_fr, DataLocation(), seed=1)


def test_translations_from_single_file_with_language_column(tmp_path: Path) -> None:
    rows = [dict(r, language="de") for r in mnli_rows(6, "de")] + [dict(r, language="es") for r in mnli_rows(4, "es")]
    write_jsonl(tmp_path / "all.jsonl", rows)
    cfg = TranslateTrain.model_validate({"languages": ["es"], "paths": {"xnli": str(tmp_path / "all.jsonl")}})
    examples, stats = load_translations("xnli", "mnli", cfg, DataLocation(), seed=0)
    assert [e.text_a for e in examples] == [f"es premise {i}" for i in range(4)]
    write_jsonl(tmp_path / "nolang.jsonl", mnli_rows(3, "de"))
    cfg = TranslateTrain.model_validate({"languages": ["de"], "paths": {"xnli": str(tmp_path / "nolang.jsonl")}})
    with pytest.raises(DataError, match="language"):
        load_translations("xnli", "mnli", cfg, DataLocation(), seed=0)


def test_translations_from_data_root(tmp_path: Path) -> None:
    rows = [{"sentence1": f"s1 {i}", "sentence2": f"s2 {i}", "label": str(i % 2)} for i in range(9)]
    write_jsonl(tmp_path / "root" / "pawsx" / "de" / "translate-train.jsonl", rows)
    cfg = TranslateTrain.model_validate({"languages": ["de"], "ratio": 0.34})
    examples, stats = load_translations("pawsx", "pawsx", cfg, DataLocation(str(tmp_path / "root")), seed=3)
    assert len(examples) == 3 and stats["examples_added_per_language"] == {"de": 3}
    assert stats["sources"]["de"].startswith("data_root:")
    assert all(e.label == str(int(e.text_a.split()[1]) % 2) for e in examples)


def test_translations_from_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class Split:
        def to_list(self) -> list[dict]:
            return [{"id": "a1", "title": "t", "context": "Ein Hund bellt .", "question": "Was bellt ?",
                     "answers": {"text": ["Ein Hund"], "answer_start": [0]}}]

    def load_dataset(name: str, config: str, split: str, revision: str | None = None,
                     data_dir: str | None = None) -> Split:
        calls.append((name, config, split, revision, data_dir))
        return Split()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    cfg = TranslateTrain.model_validate({"languages": ["de"]})
    # a data root without the file falls through to the hub
    examples, stats = load_translations("xquad", "squad", cfg, DataLocation(str(tmp_path)), seed=0)
    # main holds a loading script: the Parquet conversion of the hub's pull request 5 is read
    assert calls == [("facebook/mlqa", "mlqa-translate-train.de", "train", "refs/pr/5", None)]
    assert examples == [QAExample("tt-de-a1", "Was bellt ?", "Ein Hund bellt .", [("Ein Hund", 0)])]
    assert stats["sources"]["de"].startswith("hub:facebook/mlqa")


def test_translations_without_any_source() -> None:
    cfg = TranslateTrain.model_validate({"languages": ["de"]})
    with pytest.raises(DataError, match="translate_train.paths.tydiqa"):
        load_translations("tydiqa", "tydiqa", TranslateTrain.model_validate({"languages": ["ar"]}), DataLocation(),
                          seed=0)
    with pytest.raises(DataError, match="translations only for"):
        load_translations("pawsx", "pawsx", TranslateTrain.model_validate({"languages": ["ru"]}), DataLocation(), seed=0)


def test_tydiqa_translations_keep_rows_whatever_their_id_prefix(tmp_path: Path) -> None:
    row = {"title": "t", "context": "a b", "question": "q", "answers": {"text": ["a"], "answer_start": [0]}}
    write_jsonl(tmp_path / "tt" / "ar" / "train.jsonl",
                [dict(row, id="english-1-0"), dict(row, id="arabic-2-0"), dict(row, id="77")])
    cfg = TranslateTrain.model_validate({"languages": ["ar"], "paths": {"tydiqa": str(tmp_path / "tt")}})
    examples, _ = load_translations("tydiqa", "tydiqa", cfg, DataLocation(), seed=0)
    assert [e.id for e in examples] == ["tt-ar-english-1-0", "tt-ar-arabic-2-0", "tt-ar-77"]


def test_translations_bad_schema(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "tt" / "de" / "train.jsonl", [{"text": "x"}])
    cfg = TranslateTrain.model_validate({"languages": ["de"], "paths": {"xnli": str(tmp_path / "tt")}})
    with pytest.raises(DataError, match="mnli schema"):
        load_translations("xnli", "mnli", cfg, DataLocation(), seed=0)


# --- CLI ------------------------------------------------------------------------------------

def test_cli_code_switch(fixture_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = fixture_root / "data" / "panx" / "en" / "train.jsonl"
    out = tmp_path / "out.jsonl"
    settings_json = json.dumps({"languages": ["de", "es"], "dictionaries": str(fixture_root / "dictionaries"),
                                "word_prob": 0.5})
    rc = main_augment(["--task", "panx", "--code-switch", settings_json, "--seed", "3", "--epoch", "1",
                       str(source), str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0
    stats = json.loads(err[-1])
    assert stats["method"] == "code_switch" and stats["examples"] == 50 and stats["words_switched"] > 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 50 and all(len(r["words"]) == len(r["tags"]) for r in rows)
    rc = main_augment(["--task", "panx", "--code-switch", settings_json, "--seed", "3", "--epoch", "1",
                       str(source), str(tmp_path / "again.jsonl")])
    assert rc == 0 and (tmp_path / "again.jsonl").read_text() == out.read_text()


def test_cli_translate_train(fixture_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "tt" / "de" / "train.jsonl", mnli_rows(10, "de"))
    out = tmp_path / "out.jsonl"
    settings_json = json.dumps({"languages": ["de"], "ratio": 0.5, "paths": {"xnli": str(tmp_path / "tt")}})
    rc = main_augment(["--task", "xnli", "--translate-train", settings_json,
                       str(fixture_root / "data" / "mnli" / "en" / "train.jsonl"), str(out)])
    assert rc == 0
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert stats["examples_added"] == 5
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 55 and sum(r["id"].startswith("tt-de-") for r in rows) == 5


@pytest.mark.parametrize("args, message", [
    (["--task", "panx", "--code-switch", "{not json"], "not JSON"),
    (["--task", "panx", "--code-switch", '{"languages": ["de"], "dictionaries": "D", "word_prob": 2}'], "word_prob"),
    (["--task", "nosuch", "--code-switch", '{"languages": ["de"], "dictionaries": "D"}'], "unknown task"),
    (["--task", "panx", "--code-switch", '{"languages": ["ru"], "dictionaries": "D"}'], "en-ru.txt"),
    (["--task", "xcopa", "--code-switch", '{"languages": ["de"], "dictionaries": "D"}'], "siqa then copa"),
    (["--task", "mnli", "--code-switch", '{"languages": ["de"], "dictionaries": "D"}'], "not a mnli row"),
    (["--task", "panx"], "one of the arguments"),
    (["--task", "tatoeba", "--code-switch", '{"languages": ["de"], "dictionaries": "D"}'], "retrieval"),
])
def test_cli_bad_input_exits_2_with_one_line(args: list[str], message: str, fixture_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace('"D"', json.dumps(str(fixture_root / "dictionaries"))) for a in args]
    rc = main_augment([*args, str(fixture_root / "data" / "panx" / "en" / "train.jsonl"), str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
