"""Metric definitions (domain.md §4), hand-computed cases plus property tests against seqeval."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtrc import tasks
from xtrc_runtime import metrics as m

approx = pytest.approx


# ----------------------------------------------------------------------------- SQuAD v1.1


def test_squad_normalize_steps_and_order() -> None:
    assert m.squad_normalize("  The Quick,  brown FOX! ") == "quick brown fox"
    # punctuation goes before articles: "a-b" -> "ab" (articles first would give "b")
    assert m.squad_normalize("a-b") == "ab"
    assert m.squad_normalize("An apple and the pear") == "apple and pear"
    assert m.squad_normalize("theatre") == "theatre"  # \b: only whole words
    # only ASCII punctuation: inverted question marks, guillemets, CJK marks survive
    assert m.squad_normalize("¿Qué?") == "¿qué"
    assert m.squad_normalize("«Paris»") == "«paris»"
    assert m.squad_normalize("北京大学。") == "北京大学。"


def test_squad_both_empty_em_1_f1_0() -> None:
    assert m.squad_normalize("The") == "" == m.squad_normalize("a ...")
    assert m.squad_em("The", "a ...") == 100.0
    assert m.squad_f1("The", "a ...") == 0.0
    assert m.squad_per_example({"q": "the"}, {"q": ["an"]}) == {"q": {"exact_match": 100.0, "f1": 0.0}}


def test_squad_f1_hand_computed() -> None:
    # pred -> [cat, sat, on, mat], gold -> [cat, on, mat]: P 3/4, R 1
    assert m.squad_f1("the cat sat on the mat", "a cat on a mat") == approx(100 * 6 / 7)
    assert m.squad_em("the cat sat on the mat", "a cat on a mat") == 0.0
    # multiset overlap: common = {x: 1, y: 1}
    assert m.squad_f1("x x y", "x y y") == approx(100 * 2 / 3)
    assert m.squad_f1("x", "y") == 0.0
    assert m.squad_f1("", "y") == 0.0


def test_squad_max_over_golds_each_metric_separately() -> None:
    per = m.squad_per_example({"q": "x y"}, {"q": ["x y z", "w"]})
    assert per["q"] == {"exact_match": 0.0, "f1": approx(80.0)}
    per = m.squad_per_example({"q": "A big cat"}, {"q": ["big", "big cat."]})
    assert per["q"] == {"exact_match": 100.0, "f1": 100.0}


def test_squad_unanswered_ids_score_zero_and_extra_ids_ignored() -> None:
    golds = {"q1": ["Paris"], "q2": ["Rome"]}
    preds = {"q1": "paris.", "q3": "Rome"}
    per = m.squad_per_example(preds, golds)
    assert per == {"q1": {"exact_match": 100.0, "f1": 100.0}, "q2": {"exact_match": 0.0, "f1": 0.0}}
    assert m.squad(preds, golds) == {"exact_match": 50.0, "f1": 50.0}


def test_squad_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no gold questions"):
        m.squad({}, {})
    with pytest.raises(ValueError, match="non-empty list"):
        m.squad({"q": "x"}, {"q": []})
    with pytest.raises(ValueError, match="non-empty list"):
        m.squad({"q": "x"}, {"q": "x"})  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- MLQA


def test_chinese_example_squad_0_mlqa_72_7() -> None:
    pred, gold = "北京大学", "北京大学图书馆"
    assert m.squad_f1(pred, gold) == 0.0
    assert m.mlqa_normalize(gold, "zh") == "北 京 大 学 图 书 馆"
    # 4 shared characters: P = 1, R = 4/7, F1 = 8/11
    assert m.mlqa_f1(pred, gold, "zh") == approx(800 / 11)
    assert round(m.mlqa_f1(pred, gold, "zh"), 1) == 72.7
    assert m.mlqa({"q": pred}, {"q": [gold]}, "zh") == {"exact_match": 0.0, "f1": approx(800 / 11)}
    # full-width punctuation: kept by SQuAD, removed by MLQA
    assert m.squad_em("北京大学。", "北京大学") == 0.0
    assert m.mlqa_em("北京大学。", "北京大学", "zh") == 100.0


def test_mlqa_mixed_segmentation() -> None:
    assert m.mlqa_normalize("2008年北京 Olympic  Games", "zh") == "2008 年 北 京 olympic games"
    assert m.mlqa_normalize("the book", "zh") == "the book"  # no articles for zh
    # a character outside U+4E00..U+9FA5 stays inside its whitespace run
    assert m.mlqa_normalize("\u9fa6\u9fa6 中", "zh") == "\u9fa6\u9fa6 中"


def test_mlqa_arabic_deletes_every_al_substring() -> None:
    assert m.mlqa_normalize("المال", "ar") == "م"
    assert m.mlqa_normalize("الكتاب", "ar") == "كتاب"
    assert m.mlqa_normalize("بالمال", "ar") == "ب م"  # each "ال" becomes a space
    assert m.mlqa_f1("بالمال", "م", "ar") == approx(100 * 2 / 3)
    assert m.mlqa_normalize("The book", "ar") == "the book"  # English articles stay


def test_mlqa_spanish_german_vietnamese_articles() -> None:
    assert m.mlqa_normalize("El perro y LOS gatos", "es") == "perro y gatos"
    assert m.mlqa_normalize("unas casas, unos libros", "es") == "casas libros"
    assert m.mlqa_normalize("Der Hund und die Katze", "de") == "hund und katze"
    assert m.mlqa_normalize("einem Mann, des Hauses", "de") == "mann hauses"
    assert m.mlqa_normalize("Derby", "de") == "derby"
    assert m.mlqa_normalize("cái bàn của tôi", "vi") == "bàn tôi"
    assert m.mlqa_normalize("The book", "hi") == "the book"  # no articles for hi
    assert m.mlqa_normalize("The book", "en") == "book"
    # the SQuAD script knows only English articles
    assert m.squad_normalize("El perro") == "el perro"
    assert m.mlqa_em("los gatos", "gatos", "es") == 100.0
    assert m.mlqa_em("los gatos", "gatos", "en") == 0.0


def test_mlqa_unicode_punctuation() -> None:
    assert m.mlqa_normalize("¿Qué?", "es") == "qué"
    assert m.mlqa_normalize("«Paris»", "en") == "paris"
    assert m.mlqa_normalize("Paris—London", "en") == "parislondon"  # em dash is Pd
    assert m.mlqa_em("«Paris»", "Paris", "en") == 100.0
    assert m.squad_em("«Paris»", "Paris") == 0.0
    assert m.mlqa_em("¿Dónde?", "dónde", "es") == 100.0
    assert m.squad_em("¿Dónde?", "dónde") == 0.0
    assert m.mlqa_normalize("$5 + 3", "en") == "5 3"  # ASCII punctuation too (Sc, Sm)
    assert m.mlqa_normalize("€5", "en") == "€5"  # Unicode symbols (S*) are not P*


def test_mlqa_both_empty_and_unanswered() -> None:
    assert m.mlqa_em("los", "las", "es") == 100.0
    assert m.mlqa_f1("los", "las", "es") == 0.0
    assert m.mlqa({"q1": "x"}, {"q1": ["x"], "q2": ["y"]}, "de") == {"exact_match": 50.0, "f1": 50.0}


@pytest.mark.parametrize("lang", ["fr", "th", "EN", "", "zh-cn"])
def test_mlqa_unknown_language_raises(lang: str) -> None:
    with pytest.raises(ValueError, match="unknown MLQA answer language"):
        m.mlqa_normalize("x", lang)
    with pytest.raises(ValueError, match="supports only ar, de, en, es, hi, vi, zh"):
        m.mlqa({}, {}, lang)


# ----------------------------------------------------------------------------- QA aggregates

_answer_text = st.lists(
    st.sampled_from(["a", "b", " ", "the ", "los ", "ال", "北", "京", ".", "«", "¿"]), max_size=8
).map("".join)
_qa_case = st.dictionaries(
    st.sampled_from([f"q{i}" for i in range(8)]),
    st.tuples(st.lists(_answer_text, min_size=1, max_size=3), st.none() | _answer_text),
    min_size=1,
)


@settings(max_examples=40, deadline=None)
@given(case=_qa_case, lang=st.sampled_from(m.MLQA_LANGUAGES))
def test_qa_aggregate_is_mean_of_per_example(
    case: dict[str, tuple[list[str], str | None]], lang: str
) -> None:
    golds = {qid: answers for qid, (answers, _) in case.items()}
    preds = {qid: pred for qid, (_, pred) in case.items() if pred is not None}
    scorers: list[tuple[Callable[[], dict[str, float]], Callable[[], m.QAScores]]] = [
        (lambda: m.squad(preds, golds), lambda: m.squad_per_example(preds, golds)),
        (lambda: m.mlqa(preds, golds, lang), lambda: m.mlqa_per_example(preds, golds, lang)),
    ]
    for aggregate, per_example in scorers:
        per = per_example()
        assert set(per) == set(golds)
        for scores in per.values():
            assert scores["exact_match"] in (0.0, 100.0)
            assert 0.0 <= scores["f1"] <= 100.0
        result = aggregate()
        for metric in ("exact_match", "f1"):
            values = [scores[metric] for scores in per.values()]
            assert result[metric] == approx(sum(values) / len(values), abs=1e-9)


# ----------------------------------------------------------------------------- seqeval

UPOS = (
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)


@pytest.fixture(scope="module")
def seqeval_ref() -> ModuleType:
    return pytest.importorskip("seqeval.metrics")


def _reference(module: ModuleType, golds: list[list[str]], preds: list[list[str]]) -> dict[str, float]:
    with warnings.catch_warnings():  # "NOUN seems not to be NE tag", UndefinedMetricWarning
        warnings.simplefilter("ignore")
        return {
            "f1": 100 * float(module.f1_score(golds, preds)),
            "precision": 100 * float(module.precision_score(golds, preds)),
            "recall": 100 * float(module.recall_score(golds, preds)),
        }


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["I-PER", "I-PER"], [("PER", 0, 1)]),  # I after O starts a chunk
        (["B-X", "B-X"], [("X", 0, 0), ("X", 1, 1)]),
        (["O", "I-PER", "B-PER"], [("PER", 1, 1), ("PER", 2, 2)]),
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),  # type change splits
        (["S-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
        (["E-PER", "E-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
        (["B-PER", "I-PER", "E-PER", "I-PER"], [("PER", 0, 2), ("PER", 3, 3)]),
        (["B"], [("_", 0, 0)]),
        (["B-I-PER", "I-I-PER"], [("I-PER", 0, 1)]),  # split once on '-'
        (["BX-Y"], [("Y", 0, 0)]),  # type is after the first '-' of tag[1:]
        (["O-PER", "I-PER"], [("PER", 1, 1)]),
        ([".", "B-PER", "."], [("PER", 1, 1)]),
        ([], []),
        # UPOS read as BIO: prefix = first letter, type = the rest
        (["DET", "NOUN", "NOUN", "VERB"], [("ET", 0, 0), ("OUN", 1, 2), ("ERB", 3, 3)]),
        (["SCONJ", "SCONJ", "SYM"], [("CONJ", 0, 0), ("CONJ", 1, 1), ("YM", 2, 2)]),
        (["INTJ", "INTJ"], [("NTJ", 0, 1)]),
        (["NOUN", "X", "NOUN"], [("OUN", 0, 0), ("_", 1, 1), ("OUN", 2, 2)]),
        (["NOUN", "X", "X"], [("OUN", 0, 0)]),  # X run at the end never closes
        (["X", "NOUN"], [("_", 0, 0), ("OUN", 1, 1)]),
        # CCONJ after SCONJ continues the 'CONJ' type from the stale start: overlapping chunks
        (["SCONJ", "CCONJ", "NOUN"], [("CONJ", 0, 0), ("CONJ", 0, 1), ("OUN", 2, 2)]),
        (["CCONJ", "SCONJ", "NOUN"], [("CONJ", 1, 1), ("OUN", 2, 2)]),
    ],
)
def test_get_entities(seq: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert m.get_entities(seq) == expected


def test_get_entities_matches_seqeval_on_the_table(seqeval_ref: ModuleType) -> None:
    from seqeval.metrics.sequence_labeling import get_entities

    for seq in (["I-PER", "I-PER"], ["SCONJ", "CCONJ", "NOUN"], ["NOUN", "X", "X"], ["BX-Y"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert m.get_entities(seq) == get_entities(seq)


POS_GOLD = "DET NOUN NOUN VERB ADP DET ADJ NOUN PUNCT".split()
POS_PRED = "DET NOUN PROPN VERB ADP DET ADJ NOUN PUNCT".split()


def test_pos_noun_run_merging_domain_example() -> None:
    # gold: DET [NOUN NOUN] VERB ADP DET ADJ NOUN PUNCT = 8 chunks; the prediction splits the
    # NOUN run into NOUN + PROPN = 9 chunks, 7 of them correct.
    assert m.accuracy(POS_GOLD, POS_PRED)["accuracy"] == approx(800 / 9)
    scores = m.seqeval_scores([POS_GOLD], [POS_PRED])
    assert scores == {"f1": approx(1400 / 17), "precision": approx(700 / 9), "recall": approx(87.5)}
    assert round(scores["f1"], 1) == 82.4


def test_pos_domain_example_equals_seqeval(seqeval_ref: ModuleType) -> None:
    ours = m.seqeval_scores([POS_GOLD], [POS_PRED])
    ref = _reference(seqeval_ref, [POS_GOLD], [POS_PRED])
    assert ours == approx(ref, abs=1e-9)
    assert round(ref["f1"], 1) == 82.4


def test_cconj_sconj_interchangeable() -> None:
    gold, pred = ["PRON", "SCONJ", "VERB"], ["PRON", "CCONJ", "VERB"]
    assert m.accuracy(gold, pred)["accuracy"] == approx(200 / 3)
    assert m.seqeval_scores([gold], [pred])["f1"] == 100.0
    # but a different type is an error
    assert m.seqeval_scores([gold], [["PRON", "ADV", "VERB"]])["f1"] == approx(200 / 3)


def test_bio_chunking_rules_in_scores() -> None:
    # I-PER I-PER is one entity, the same as B-PER I-PER
    assert m.seqeval_scores([["I-PER", "I-PER"]], [["B-PER", "I-PER"]])["f1"] == 100.0
    # B-PER B-PER is two: gold 3 entities, pred 2, tp 1 (LOC)
    scores = m.seqeval_scores([["B-PER", "B-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]])
    assert scores == {"precision": 50.0, "recall": approx(100 / 3), "f1": approx(40.0)}
    # sentences never merge: two sentences of I-PER are two entities
    assert m.seqeval_per_sentence([["I-PER"], ["I-PER"]], [["O"], ["I-PER"]]) == [(0, 0, 1), (1, 1, 1)]
    assert m.seqeval_scores([["I-PER"], ["I-PER"]], [["I-PER"], ["I-PER"]])["f1"] == 100.0


def test_x_at_sentence_end_is_dropped() -> None:
    # gold has only NOUN(0,0); pred NOUN + ADJ: P 1/2, R 1
    scores = m.seqeval_scores([["NOUN", "X"]], [["NOUN", "ADJ"]])
    assert scores == {"precision": 50.0, "recall": 100.0, "f1": approx(200 / 3)}


def test_zero_division_conventions() -> None:
    zeros = {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert m.seqeval_scores([["B-PER", "O"]], [["O", "O"]]) == zeros  # no predicted entities
    assert m.seqeval_scores([["O", "O"]], [["B-PER", "O"]]) == zeros  # no gold entities
    # no entities anywhere: a perfect prediction still scores 0, as in seqeval
    assert m.seqeval_scores([["O", "O"], []], [["O", "O"], []]) == zeros
    assert m.seqeval_scores([["B-PER", "O"]], [["B-PER", "B-LOC"]]) == {
        "precision": 50.0,
        "recall": 100.0,
        "f1": approx(200 / 3),
    }


def test_zero_division_conventions_match_seqeval(seqeval_ref: ModuleType) -> None:
    cases: list[tuple[list[list[str]], list[list[str]]]] = [
        ([["B-PER", "O"]], [["O", "O"]]),
        ([["O", "O"]], [["B-PER", "O"]]),
        ([["O", "O"], []], [["O", "O"], []]),
        ([[]], [[]]),
    ]
    for golds, preds in cases:
        assert m.seqeval_scores(golds, preds) == approx(_reference(seqeval_ref, golds, preds), abs=1e-9)


def test_seqeval_rejects_inconsistent_or_empty_input() -> None:
    with pytest.raises(ValueError, match="sentence lengths"):
        m.seqeval_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="number of sentences"):
        m.seqeval_scores([["O"]], [])
    with pytest.raises(ValueError, match="no sentences"):
        m.seqeval_scores([], [])
    with pytest.raises(ValueError, match="empty tag"):
        m.get_entities(["B-PER", ""])


def test_per_sentence_counts_and_recombination() -> None:
    golds = [["B-PER", "O"], ["B-LOC"], ["O"]]
    preds = [["B-PER", "O"], ["B-ORG"], ["B-MISC"]]
    counts = m.seqeval_per_sentence(golds, preds)
    assert counts == [(1, 1, 1), (0, 1, 1), (0, 1, 0)]
    assert m.seqeval_from_counts(counts) == m.seqeval_scores(golds, preds)
    assert m.seqeval_from_counts(counts) == {"precision": approx(100 / 3), "recall": 50.0, "f1": 40.0}
    # a bootstrap resample: sentence 0 twice and sentence 2
    resampled = [counts[0], counts[0], counts[2]]
    assert m.seqeval_from_counts(resampled) == {"precision": approx(200 / 3), "recall": 100.0, "f1": 80.0}


def test_per_sentence_credits_stale_offset_artefact_to_its_last_sentence() -> None:
    # seqeval emits ('_', 0, 2) here: an 'X' chunk whose start is left over from sentence 0
    golds = [["NOUN"], ["X", "NOUN"]]
    assert m.get_entities(["NOUN", "O", "X", "NOUN", "O"]) == [("OUN", 0, 0), ("_", 0, 2), ("OUN", 3, 3)]
    assert m.seqeval_per_sentence(golds, golds) == [(1, 1, 1), (2, 2, 2)]


_BIO = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
_BIO2 = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
_UPOS = st.sampled_from(UPOS)
_ODD = st.sampled_from(
    ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC", "X", ".", "B", "I",
     "O-PER", "B-I-PER", "NOUN", "SCONJ", "CCONJ"]
)


@st.composite
def _tag_pairs(draw: st.DrawFn, tags: st.SearchStrategy[str]) -> tuple[list[list[str]], list[list[str]]]:
    lengths = draw(st.lists(st.integers(0, 8), min_size=1, max_size=5))
    golds = [draw(st.lists(tags, min_size=n, max_size=n)) for n in lengths]
    preds = [draw(st.lists(tags, min_size=n, max_size=n)) for n in lengths]
    return golds, preds


def _check_against_seqeval(module: ModuleType, golds: list[list[str]], preds: list[list[str]]) -> None:
    ours = m.seqeval_scores(golds, preds)
    assert ours == approx(_reference(module, golds, preds), rel=0, abs=1e-9)
    counts = m.seqeval_per_sentence(golds, preds)
    assert len(counts) == len(golds)
    assert all(0 <= tp <= min(n_pred, n_gold) for tp, n_pred, n_gold in counts)
    assert m.seqeval_from_counts(counts) == ours


@settings(max_examples=200, deadline=None)
@given(pair=st.one_of(_tag_pairs(_BIO), _tag_pairs(_BIO2)))
def test_seqeval_property_bio(seqeval_ref: ModuleType, pair: tuple[list[list[str]], list[list[str]]]) -> None:
    _check_against_seqeval(seqeval_ref, *pair)


@settings(max_examples=200, deadline=None)
@given(pair=_tag_pairs(_UPOS))
def test_seqeval_property_upos(seqeval_ref: ModuleType, pair: tuple[list[list[str]], list[list[str]]]) -> None:
    _check_against_seqeval(seqeval_ref, *pair)


@settings(max_examples=40, deadline=None)
@given(pair=_tag_pairs(_ODD))
def test_seqeval_property_odd_tags(seqeval_ref: ModuleType, pair: tuple[list[list[str]], list[list[str]]]) -> None:
    _check_against_seqeval(seqeval_ref, *pair)


# ----------------------------------------------------------------------------- classification


def test_accuracy() -> None:
    assert m.accuracy(["a", "b", "c", "a"], ["a", "c", "c", "b"]) == {"accuracy": 50.0}
    assert m.accuracy([0, 1, 1], [0, 1, 1]) == {"accuracy": 100.0}  # indices (Tatoeba, XCOPA)
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        m.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no gold labels"):
        m.accuracy([], [])


def test_macro_f1_hand_computed() -> None:
    # a: P 1/1 R 1/2 F 2/3; b: P 0/1 R 0/1 F 0; c: P 1/2 R 1/1 F 2/3
    assert m.macro_f1(["a", "b", "c", "a"], ["a", "c", "c", "b"]) == {"f1": approx(400 / 9)}


def test_macro_f1_class_never_predicted_has_precision_0() -> None:
    # a: P 1/2 R 1 F 2/3; b never predicted: P 0, R 0, F 0
    assert m.macro_f1(["a", "b"], ["a", "a"]) == {"f1": approx(100 / 3)}


def test_macro_f1_label_set() -> None:
    # a class in `labels` with neither golds nor predictions is skipped
    assert m.macro_f1(["a", "b"], ["a", "a"], labels=["a", "b", "z"]) == {"f1": approx(100 / 3)}
    # a predicted class outside golds ∪ labels is only an error for the gold class...
    assert m.macro_f1(["a", "a"], ["a", "z"]) == {"f1": approx(200 / 3)}
    # ...but a predicted class listed in `labels` counts with F1 0
    assert m.macro_f1(["a", "a"], ["a", "z"], labels=["a", "z"]) == {"f1": approx(100 / 3)}
    with pytest.raises(ValueError):
        m.macro_f1([], [])


@settings(max_examples=25, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcde")), min_size=1, max_size=30)
)
def test_macro_f1_matches_sklearn(pairs: list[tuple[str, str]]) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    golds, preds = [g for g, _ in pairs], [p for _, p in pairs]
    expected = 100 * sk.f1_score(golds, preds, labels=sorted(set(golds)), average="macro", zero_division=0)
    assert m.macro_f1(golds, preds)["f1"] == approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- retrieval


def test_bucc_f1() -> None:
    preds = {("a", "1"), ("b", "2"), ("c", "3")}
    golds = {("a", "1"), ("b", "2"), ("d", "4"), ("e", "5")}
    assert m.bucc_f1(preds, golds) == {
        "precision": approx(200 / 3),
        "recall": 50.0,
        "f1": approx(400 / 7),
    }
    assert m.bucc_f1({("a", "2")}, golds) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert m.bucc_f1(set(), golds) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert m.bucc_f1([("a", "1"), ("a", "1")], golds)["precision"] == 100.0  # a set of pairs


def test_average_precision_at_k() -> None:
    # hits at ranks 2 and 4: (1/2 + 2/4) / min(3, 20)
    assert m.average_precision_at_k(["x", "r1", "y", "r2"], {"r1", "r2", "r3"}) == approx(100 / 3)
    assert m.average_precision_at_k(["r1", "r2"], {"r1", "r2"}) == 100.0
    assert m.average_precision_at_k(["x"], {"r1"}) == 0.0
    assert m.average_precision_at_k(["r1"], set()) == 0.0
    # a repeated id counts once
    assert m.average_precision_at_k(["r1", "r1"], {"r1", "r2"}) == 50.0
    # a custom k
    assert m.average_precision_at_k(["x", "r1", "r2"], {"r1", "r2"}, k=2) == 25.0
    with pytest.raises(ValueError):
        m.average_precision_at_k(["r1"], {"r1"}, k=0)


def test_average_precision_hits_beyond_rank_20_and_many_relevant() -> None:
    ranked = ["r1"] + [f"x{i}" for i in range(19)] + ["r2"]  # r2 at rank 21
    assert m.average_precision_at_k(ranked, {"r1", "r2"}) == 50.0
    # 25 relevant, the top 20 all relevant: divided by min(25, 20) = 20
    many = [f"r{i}" for i in range(25)]
    assert m.average_precision_at_k(many, set(many)) == 100.0
    # fewer than 20 relevant, all found late: ranks 18 and 20 -> (1/18 + 2/20) / 2
    late = [f"x{i}" for i in range(17)] + ["r1", "x", "r2"]
    assert m.average_precision_at_k(late, {"r1", "r2"}) == approx(100 * (1 / 18 + 1 / 10) / 2)


def test_map_at_k() -> None:
    rankings = {"q1": ["r1"], "q3": ["r9"]}
    relevant = {"q1": {"r1"}, "q2": {"r2"}}  # q2 has no ranking; q3 is not a query
    assert m.map_at_k(rankings, relevant) == {"map@20": 50.0}
    assert m.map_at_k(rankings, relevant, k=5) == {"map@5": 50.0}
    with pytest.raises(ValueError):
        m.map_at_k(rankings, {})


def test_mrr_at_k() -> None:
    rankings = {
        "q1": ["a", "b", "g1"],
        "q2": [f"x{i}" for i in range(20)] + ["g2"],  # rank 21: absent from the top 20
        "q4": ["g4", "g4"],
    }
    gold = {"q1": "g1", "q2": "g2", "q3": "g3", "q4": "g4"}
    assert m.mrr_at_k(rankings, gold) == {"mrr@20": approx((100 / 3 + 0 + 0 + 100) / 4)}
    assert m.mrr_at_k({"q": ["a", "g"]}, {"q": "g"}, k=1) == {"mrr@1": 0.0}
    with pytest.raises(ValueError):
        m.mrr_at_k(rankings, {})


# ----------------------------------------------------------------------------- aggregation


def test_task_score() -> None:
    assert m.task_score({"exact_match": 60.0, "f1": 75.0}, "em_f1_mean") == 67.5
    assert m.task_score({"f1": 80.0, "precision": 70.0, "recall": 90.0}, "f1") == 80.0
    assert m.task_score({"mrr@20": 40.0}, "mrr@20") == 40.0
    with pytest.raises(KeyError, match="exact_match"):
        m.task_score({"f1": 75.0}, "em_f1_mean")
    with pytest.raises(KeyError, match="accuracy"):
        m.task_score({"f1": 75.0}, "accuracy")


def test_metric_names_match_the_task_registry() -> None:
    produced = {
        "qa": set(m.squad({"q": "x"}, {"q": ["x"]})),
        "tagging": set(m.seqeval_scores([["B-PER"]], [["B-PER"]])),
        "classification": set(m.accuracy(["a"], ["a"])) | set(m.macro_f1(["a"], ["a"])),
        "multiple_choice": set(m.accuracy([0], [0])),
    }
    by_task = {
        "bucc": set(m.bucc_f1({("a", "b")}, {("a", "b")})),
        "tatoeba": set(m.accuracy([0], [0])),
        "mewslix": set(m.mrr_at_k({"q": ["g"]}, {"q": "g"})),
        "lareqa": set(m.map_at_k({"q": ["g"]}, {"q": {"g"}})),
        "ccg": set(m.accuracy(["N"], ["N"])),  # supertagging is scored on token accuracy (jiant)
    }
    for name, info in tasks.TASKS.items():
        if name == "squad_v2":  # has_answer_f1 / no_answer_f1 are not SQuAD v1.1 metrics
            assert {"f1", "exact_match"} <= set(info.metrics)
        else:
            assert set(info.metrics) == by_task.get(name, produced.get(info.type)), name
        scores = {metric: 50.0 for metric in info.metrics}
        assert m.task_score(scores, info.xtreme_score) == 50.0, name


def test_language_average() -> None:
    per_language = {"en": {"f1": 80.0, "exact_match": 60.0}, "de": {"f1": 70.0, "exact_match": 50.0}}
    assert m.language_average(per_language) == {"f1": 75.0, "exact_match": 55.0}
    assert m.language_average({"en": {"accuracy": 1.0}}) == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="different metrics"):
        m.language_average({"en": {"f1": 1.0}, "de": {"accuracy": 1.0}})
    with pytest.raises(ValueError):
        m.language_average({})


def test_xtreme_average() -> None:
    scores = {"a": 1.0, "b": 2.0, "c": 10.0}
    assert m.xtreme_average(scores, ("a", "b")) == 1.5  # extra tasks are ignored
    assert m.xtreme_average(scores, ("a", "d")) is None
    assert m.xtreme_average(scores, ()) is None
    required = tasks.GROUPS["xtreme-r"]
    assert m.xtreme_average({t: 50.0 for t in required}, required) == 50.0
    assert m.xtreme_average({t: 50.0 for t in required[1:]}, required) is None


def test_module_is_stdlib_only() -> None:
    import ast
    import inspect
    import sys

    tree = ast.parse(inspect.getsource(m))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
    assert set(m.__all__) <= set(dir(m))
