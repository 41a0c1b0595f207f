"""Deterministic, learnable synthetic data for every registered task (tests, smoke runs, CPU runs).

``generate(root)`` writes small files in the real schema of each task's source, so the runtime's
loader reads them exactly as it reads data exported from the hub. Nothing is downloaded and all
randomness comes from ``random.Random`` instances seeded from ``seed`` (and, for the synthetic
languages' vocabularies, from hashes of the language code and the word).

Layout under ``root`` (a local path or any fsspec URL)::

    data/{task}/{lang}/{split}.jsonl     split is a role: train, dev or test (not the hub name)
    data/mewslix/entities.jsonl          the Mewsli-X entity catalogue (all languages)
    data/lareqa/{lang}/questions.jsonl   LAReQA questions
    data/lareqa/{lang}/candidates.jsonl  LAReQA candidate sentences (one language's share of the pool)
    dictionaries/en-{lang}.txt           MUSE-style bilingual dictionaries, one per non-English language
    manifest.json                        every file written, with row counts and sha256

Which files exist. A task gets the roles its registry source lists (``source.splits``): ``train``
is written for English only; ``dev`` and ``test`` for every generated language in the task's
language list (intermediate and source tasks list only English). XNLI, XQuAD and MLQA have no
train split (they train on MNLI/SQuAD); XCOPA trains on SIQA then COPA. English is always
generated, since it is the training language and the dictionaries' source side. Dev and test
sets are parallel: the same examples realised in every language, as in XNLI, XQuAD or Tatoeba.

Schemas of tasks with a hub source: exactly the hub's columns and value types.

==============  ========================================================================
anli            uid, premise, hypothesis, label (int 0-2), reason ("")
mnli            premise, hypothesis, label (int 0-2: entailment, neutral, contradiction), idx
qqp             question1, question2, label (int 0/1), idx
squad(_v2)      id (24 hex), title ("Anna_Berg"), context, question,
                answers {text: [str], answer_start: [int]}; dev rows carry three answers;
                squad_v2 has unanswerable questions with empty answer lists
hellaswag       ind, activity_label, ctx_a, ctx_b, ctx, endings [4], source_id, split
                ("train"/"val"), split_type, label (str "0"-"3")
commonsenseqa   id (32 hex), question, question_concept, choices {label: [A-E], text: [5]},
                answerKey (letter)
cosmosqa        id, context, question, answer0..answer3, label (int 0-3)
siqa            context, question, answerA, answerB, answerC, label (str "1"-"3"); no id
copa            premise, choice1, choice2, question ("cause"/"effect"), idx, label (int 0/1)
xnli            language, sentence1, sentence2, gold_label (str)
pawsx           sentence1, sentence2, label (str "0"/"1")
udpos           tokens, pos_tags (int indices into the task's 17 UPOS labels)
panx            tokens, ner_tags (int indices into O B-PER I-PER B-ORG I-ORG B-LOC I-LOC), langs
xquad           id, context, question, answers (one answer; ids shared across languages)
mlqa            id (40 hex, shared across languages), title, context, question, answers
tydiqa          id ("english-<n>-<k>", language-name prefix), title, context, question, answers
tatoeba         source_sentence (non-English), target_sentence (English), source_lang (three-letter
                code, e.g. "deu"), target_lang ("eng"); both sentences keep a trailing "\\n"
bucc            source_sentence, target_sentence, source_lang / target_lang holding sentence ids
                ("de-000012345" / "en-000067890"), as the hub's bucc18 does
xcopa           premise, choice1, choice2, question, label (int 0/1), idx, changed (false)
==============  ========================================================================

Schemas of tasks without a hub source (defined here; a user-provided path must match them):

* **ccg** — ``data/ccg/en/{train,dev}.jsonl``: ``{"tokens": [str], "tags": [str]}``, one CCG
  supertag string per token (e.g. ``"NP[nb]/N"``, ``"(S[dcl]\\NP)/NP"``, ``"."``). There is no
  fixed label list: the supertag set is the set of tags seen in the data.
* **mewslix** — mentions in ``data/mewslix/{lang}/{dev,test}.jsonl`` (every generated Mewsli-X
  language) and English training pairs in ``data/mewslix/en/train.jsonl``, all as
  ``{"id": str, "context": str, "mention_start": int, "mention_end": int, "entity_id": str}``
  where ``context[mention_start:mention_end]`` is the mention (character offsets, end
  exclusive). ``data/mewslix/entities.jsonl`` holds the catalogue shared by all languages:
  ``{"entity_id": "Q…", "title": str, "description": str}`` (English, as Wikidata descriptions).
* **lareqa** — per language ``data/lareqa/{lang}/questions.jsonl``
  ``{"id": str, "question": str, "answer_ids": [str]}`` and ``data/lareqa/{lang}/candidates.jsonl``
  ``{"id": str, "sentence": str, "context": str}`` (the paragraph the sentence comes from; the
  answer tower encodes the sentence with it, as XTREME's LAReQA does; ``context`` is optional
  in user data). The retrieval pool is the union of every language's
  candidates; a question's ``answer_ids`` name its answer sentence in every generated LAReQA
  language (one relevant candidate per language, ids ``{lang}-c{n}``).

Dictionaries: ``dictionaries/en-{lang}.txt``, one entry per line: the English word, one space,
the translation. The source is the first whitespace-separated field and the translation is the
rest of the line, which for a few entries holds several words (the language renders that concept
as two words). They cover ``dictionary_coverage`` of the concepts (shared ones appear as identity
pairs such as ``Berlin Berlin``, as in MUSE); a few entries differ in case from the data (names
lower-cased as MUSE writes them, a few translations capitalised) and a few English words have a
second translation that never occurs in the data.

The synthetic languages. English is a vocabulary of about 300 simple words ("concepts"), each
with one UPOS tag. Every other language renders each concept either as the English form (a
``shared_fraction`` of them, like names and cognates: this is what makes zero-shot transfer work
above chance) or as a pseudo-word derived from a hash of (language, concept), in the language's
script (Cyrillic for ru, CJK characters for zh, Latin letters for de/es, …). Word order is the
same in every language; words and punctuation are separated by single spaces in every language
(zh included) so that whitespace tokenisers work; the first word of a sentence is capitalised.
Labels are functions of the concepts, so they are learnable and transfer where words are shared:

* NLI: the hypothesis restates the premise (entailment), adds a negation word such as "not" or
  "never" (contradiction), or adds a hedge such as "maybe" and often new material (neutral).
* Paraphrase: a paraphrase moves a time phrase or adds "indeed"/"really"; a non-paraphrase swaps
  two entities or replaces a content word.
* Tagging: one UPOS tag per concept; entities are 1-3 word names with B-/I- tags; CCG supertags
  are a function of the tag sequence.
* QA: each context sentence is "subject KEY-VERB answer ..."; a question names the subject and
  the key verb, and the answer is the phrase right after that key verb (a few contexts use one key
  verb twice, with different subjects). squad_v2's unanswerable questions ask about a key verb
  absent from the context, or about a person who never does what is asked.
* Multiple choice: a fixed set of concept pairs (dog-bone, rain-umbrella, ...); the correct choice
  contains the partner of a pair concept in the context, the distractors unrelated ones.
* Retrieval: pairs are concept-by-concept translations of the same sentence; Mewsli-X mentions
  carry cues (profession, home town) found in the entity description; LAReQA questions share
  their key verb and subject with the answer sentence.

CLI: ``python -m xtrc_runtime.fixtures ROOT [--tasks ...] [--languages ...] [--train N --dev N
--test N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from xtrc import tasks as registry
from xtrc.spec import BUILTIN_FIXTURE_OPTIONS, BUILTIN_FIXTURES
from xtrc.fingerprint import FIXTURES_GENERATOR

__all__ = ["DEFAULT_LANGUAGES", "FileRecord", "Manifest", "Sizes", "generate", "main"]

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "es", "ru", "zh")
FORMAT = FIXTURES_GENERATOR  # part of the stage keys of builtin:fixtures data
SPLITS: tuple[str, ...] = ("train", "dev", "test")
DESCRIPTION = "Write deterministic synthetic data in every task's real schema."


@dataclass(frozen=True)
class Sizes:
    """Rows per split and language (for QA: questions; for retrieval: queries)."""

    train: int = 400
    dev: int = 80
    test: int = 80

    def __post_init__(self) -> None:
        for name in ("train", "dev", "test"):
            if getattr(self, name) < 1:
                raise ValueError(f"Sizes.{name} must be at least 1")

    def of(self, split: str) -> int:
        return int(getattr(self, split))


@dataclass(frozen=True)
class FileRecord:
    path: str
    """Relative to the root, '/'-separated."""
    rows: int
    """JSONL rows, or dictionary lines."""
    sha256: str


@dataclass(frozen=True)
class Manifest:
    root: str
    seed: int
    tasks: tuple[str, ...]
    languages: tuple[str, ...]
    sizes: Sizes
    shared_fraction: float
    dictionary_coverage: float
    files: tuple[FileRecord, ...]

    def rows(self, task: str | None = None) -> int:
        prefix = f"data/{task}/" if task else "data/"
        return sum(f.rows for f in self.files if f.path.startswith(prefix))

    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def to_json(self) -> dict[str, Any]:
        """What manifest.json holds (no root, so two roots with the same arguments match)."""
        return {
            "format": FORMAT,
            "seed": self.seed,
            "tasks": list(self.tasks),
            "languages": list(self.languages),
            "sizes": {"train": self.sizes.train, "dev": self.sizes.dev, "test": self.sizes.test},
            "shared_fraction": self.shared_fraction,
            "dictionary_coverage": self.dictionary_coverage,
            "files": [{"path": f.path, "rows": f.rows, "sha256": f.sha256} for f in self.files],
        }


# --- the concept vocabulary (English forms are the concepts' identities) ---------------------

_DET = ("the", "a", "this", "that", "every", "some")
_ADP = ("in", "on", "at", "with", "from", "near", "under", "for", "of", "by", "after", "about")
_PRON = ("he", "she", "they", "we", "it", "I", "you", "who", "what", "someone")
_AUX = ("is", "was", "will", "can", "did", "does", "would", "may")
_CCONJ = ("and", "but", "or")
_SCONJ = ("because", "while", "if", "although")
_PART = ("not", "to")
_CONTRA = ("not", "never", "hardly", "rarely")
_HEDGE = ("maybe", "perhaps", "probably", "possibly")
_FILLER = ("indeed", "really", "certainly")
_TIME = ("today", "yesterday", "now", "soon", "again")
_ADV = (
    ("quickly", "slowly", "often", "here", "very", "then", "where", "how", "why", "next")
    + _TIME + _CONTRA[1:] + _HEDGE + _FILLER
)
_INTJ = ("oh", "wow", "yes", "hey")
_PAIRS: tuple[tuple[str, str], ...] = (
    ("dog", "bone"), ("cat", "mouse"), ("rain", "umbrella"), ("fire", "smoke"),
    ("bread", "bakery"), ("book", "library"), ("car", "garage"), ("ship", "harbor"),
    ("bee", "honey"), ("cow", "milk"), ("tree", "leaf"), ("snow", "winter"), ("sun", "summer"),
    ("key", "lock"), ("pen", "ink"), ("bird", "nest"), ("fish", "lake"), ("train", "station"),
    ("doctor", "hospital"), ("teacher", "school"), ("farmer", "field"), ("chef", "kitchen"),
    ("pilot", "plane"), ("coffee", "cup"), ("letter", "stamp"), ("guitar", "song"),
    ("egg", "chicken"), ("money", "wallet"), ("moon", "night"), ("shoe", "foot"),
)
_PARTNER: dict[str, str] = {a: b for a, b in _PAIRS} | {b: a for a, b in _PAIRS}
_PAIRED: tuple[str, ...] = tuple(w for pair in _PAIRS for w in pair)
_PLAIN_NOUNS = (
    "house", "table", "road", "city", "idea", "game", "picture", "chair", "box", "room", "story",
    "year", "day", "friend", "child", "team", "price", "music", "paper", "garden", "company",
    "way", "home", "question", "mountain", "window", "bridge", "film",
)
_PROFESSIONS = ("teacher", "doctor", "chef", "pilot", "farmer")
_VERBS = (
    "see", "buy", "build", "open", "find", "paint", "visit", "carry", "sell", "clean", "write",
    "read", "watch", "take", "bring", "fix", "love", "need", "want", "help", "meet", "call",
    "leave", "start", "like", "show", "move", "hold", "follow", "choose", "born", "do", "be",
    "happen", "rise", "go", "play", "work", "live", "say",
)
_TRANSITIVE = (
    "see", "buy", "build", "open", "find", "paint", "visit", "carry", "sell", "clean", "write",
    "read", "watch", "take", "bring", "fix", "love", "need", "help", "meet", "call", "leave",
    "start", "like", "show", "move", "hold", "follow", "choose", "play",
)
_QA_KEYS = (
    "build", "paint", "visit", "buy", "sell", "write", "fix", "find", "carry", "clean", "open",
    "watch", "meet", "call", "choose", "bring", "follow", "hold", "show", "take", "help",
)
_PERSON_KEYS = frozenset({"meet", "call", "follow", "help"})
_ADJ = (
    "big", "small", "red", "old", "new", "happy", "green", "cold", "warm", "dark", "bright",
    "quiet", "loud", "young", "heavy", "cheap", "rich", "strange", "famous", "best",
)
_NUM_WORDS = ("one", "two", "three", "four", "five", "six", "ten", "twenty")
_FIRST = (
    "Anna", "Boris", "Carla", "David", "Elena", "Felix", "Greta", "Hugo", "Irene", "Jonas",
    "Karin", "Leon", "Maria", "Nico", "Olga", "Pablo", "Rosa", "Stefan", "Tara", "Victor",
    "Wanda", "Yusuf", "Zoe", "Omar", "Lina", "Ivan", "Mila", "Noah",
)
_LAST = (
    "Berg", "Costa", "Dumont", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanov", "Jansen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Silva",
    "Tanaka", "Weber",
)
_ORG = ("Acme", "Globex", "Initech", "Umbra", "Vertex", "Nordia", "Helix", "Orbis", "Solara",
        "Zenith", "Kestrel", "Lumen")
_ORG_SUFFIX = ("Bank", "Group", "Motors", "Airlines", "University", "Records")
_LOC = ("Berlin", "Lisbon", "Kenya", "Oslo", "Peru", "Dublin", "Cairo", "Quito", "Seoul",
        "Vienna", "Lagos", "Hanoi", "Madrid", "Nepal", "Chile", "Tunis", "Riga", "Perth", "Malta",
        "Texas")
_LOC_PREFIX = ("Port", "Mount", "Cape")
_DIGITS = ("5", "10", "20", "100")
_YEARS = ("1887", "1921", "1990", "2005", "2012")
_SYM = ("%", "$", "+")
_X = ("etc", "ibid", "ca")
_PUNCT = (".", ",", "?", "!", "(", ")")


def _build_vocabulary() -> tuple[dict[str, str], dict[str, str]]:
    upos: dict[str, str] = {}
    kind: dict[str, str] = {}

    def add(words: Iterable[str], tag: str, what: str) -> None:
        for w in words:
            if w not in upos:
                upos[w] = tag
                kind[w] = what

    add(_DET, "DET", "function")
    add(_ADP, "ADP", "function")
    add(_PRON, "PRON", "function")
    add(_AUX, "AUX", "function")
    add(_CCONJ, "CCONJ", "function")
    add(_SCONJ, "SCONJ", "function")
    add(_PART, "PART", "function")
    add(_INTJ, "INTJ", "function")
    add(_ADV, "ADV", "content")
    add(_PAIRED + _PLAIN_NOUNS, "NOUN", "content")
    add(_VERBS, "VERB", "content")
    add(_ADJ, "ADJ", "content")
    add(_NUM_WORDS, "NUM", "content")
    add(_FIRST + _LAST + _ORG + _ORG_SUFFIX + _LOC + _LOC_PREFIX, "PROPN", "name")
    add(_DIGITS + _YEARS, "NUM", "universal")
    add(_SYM, "SYM", "universal")
    add(_X, "X", "universal")
    add(_PUNCT, "PUNCT", "punct")
    lowered = [w.lower() for w in upos]
    assert len(set(lowered)) == len(lowered), "concepts must differ case-insensitively"
    return upos, kind


_UPOS, _KIND = _build_vocabulary()
_CONCEPTS: tuple[str, ...] = tuple(_UPOS)
_MULTIWORD_FRACTION = 0.06
"""Share of a language's own nouns/verbs/adjectives rendered as two words (like compounds)."""


# --- deterministic hashing ------------------------------------------------------------------

def _digest(*parts: object) -> int:
    data = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    return (_digest(*parts) >> 64) / 2.0**64


def _rng(*parts: object) -> random.Random:
    return random.Random(_digest(*parts))


# --- scripts and synthetic languages --------------------------------------------------------

_ALPHABETS: Mapping[str, tuple[str, str]] = {
    "latin": ("bcdfghjklmnprstvwz", "aeiou"),
    "cyrillic": ("бвгджзклмнпрстфхцчшщ", "аеиоуыэюя"),
    "greek": ("βγδζθκλμνξπρστφχψ", "αεηιουω"),
    "georgian": ("ბგდვზთკლმნპჟრსტფქღყშჩცძწჭხჯჰ", "აეიოუ"),
    # abugidas: consonant letters plus dependent vowel signs
    "devanagari": ("कखगघचछजटडणतथदधनपबभमयरलवशसह", "ािीुूेो"),
    "thai": ("กขคงจชซดตทนบปพฟมยรลวสหอ", "ะาิีุู"),
}
_ABJADS: Mapping[str, str] = {
    "arabic": "بتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
}
_BLOCKS: Mapping[str, tuple[int, int, tuple[int, ...]]] = {
    # first code point, last code point, possible word lengths (in characters)
    "han": (0x4E00, 0x9FA5, (1, 2, 2, 2, 3)),
    "hangul": (0xAC00, 0xD7A3, (1, 2, 2, 3)),
    "kana": (0x30A2, 0x30F3, (2, 3, 3, 4)),
}
_SCRIPT_OF: Mapping[str, str] = {
    "ru": "cyrillic", "bg": "cyrillic", "uk": "cyrillic", "kk": "cyrillic", "el": "greek",
    "ka": "georgian", "hi": "devanagari", "mr": "devanagari", "th": "thai", "ar": "arabic",
    "fa": "arabic", "ur": "arabic", "he": "hebrew", "zh": "han", "ja": "kana", "ko": "hangul",
}
_PUNCT_OF: Mapping[str, Mapping[str, str]] = {
    "han": {".": "。", ",": "，", "?": "？", "!": "！", "(": "（", ")": "）"},
    "kana": {".": "。", ",": "、", "?": "？", "!": "！", "(": "（", ")": "）"},
    "arabic": {",": "،", "?": "؟"},
}
_LATIN_EXTRAS = "äöüáéíóúñçèøåłšž"


@dataclass(frozen=True)
class _Language:
    code: str
    script: str
    forms: Mapping[str, tuple[str, ...]]
    shared: frozenset[str]
    """Concepts rendered exactly as in English (universal symbols excluded)."""
    alternates: Mapping[str, str]
    """Second dictionary translations that never occur in the data."""


class _WordMaker:
    def __init__(self, code: str, script: str) -> None:
        self.script = script
        if script == "latin":
            r = _rng("inventory", code)
            consonants = "".join(sorted(r.sample(_ALPHABETS["latin"][0], 13)))
            self.letters = (consonants, "aeiou" + "".join(r.sample(_LATIN_EXTRAS, 2)))
        elif script in _ALPHABETS:
            self.letters = _ALPHABETS[script]

    def make(self, r: random.Random, short: bool = False) -> str:
        if self.script in _BLOCKS:
            lo, hi, lengths = _BLOCKS[self.script]
            n = 1 if short else r.choice(lengths)
            return "".join(chr(r.randint(lo, hi)) for _ in range(n))
        if self.script in _ABJADS:
            letters = _ABJADS[self.script]
            return "".join(r.choice(letters) for _ in range(r.randint(3, 4 if short else 6)))
        consonants, vowels = self.letters
        syllables = r.choice((1, 2)) if short else r.choice((2, 2, 3))
        out = []
        for _ in range(syllables):
            out.append(r.choice(consonants))
            if self.script in ("devanagari", "thai") and r.random() < 0.35:
                continue  # bare consonant: inherent vowel
            out.append(r.choice(vowels))
            if r.random() < 0.25 and self.script not in ("devanagari", "thai"):
                out.append(r.choice(consonants))
        return "".join(out)


_LANGUAGE_CACHE: dict[tuple[str, float], _Language] = {}


def _language(code: str, shared_fraction: float) -> _Language:
    key = (code, shared_fraction)
    if key not in _LANGUAGE_CACHE:
        _LANGUAGE_CACHE[key] = _build_language(code, shared_fraction)
    return _LANGUAGE_CACHE[key]


def _build_language(code: str, shared_fraction: float) -> _Language:
    script = "latin" if code == "en" else _SCRIPT_OF.get(code, "latin")
    if code == "en":
        return _Language(code, script, {c: (c,) for c in _CONCEPTS}, frozenset(), {})
    maker = _WordMaker(code, script)
    punct = _PUNCT_OF.get(script, {})
    used = {c.lower() for c in _CONCEPTS}

    def fresh(r: random.Random, capital: bool, short: bool = False) -> str:
        while True:
            w = maker.make(r, short)
            if capital:
                w = w[:1].upper() + w[1:]
            if w.lower() not in used:
                used.add(w.lower())
                return w

    forms: dict[str, tuple[str, ...]] = {}
    shared: set[str] = set()
    alternates: dict[str, str] = {}
    for c in _CONCEPTS:
        kind = _KIND[c]
        if kind == "punct":
            forms[c] = (punct.get(c, c),)
        elif kind == "universal":
            forms[c] = (c,)
        elif _unit("share", code, c) < shared_fraction:
            forms[c] = (c,)
            shared.add(c)
        else:
            r = _rng("form", code, c)
            capital = kind == "name" or c == "I"
            if _UPOS[c] in ("NOUN", "VERB", "ADJ") and _unit("multi", code, c) < _MULTIWORD_FRACTION:
                forms[c] = (fresh(r, capital, short=True), fresh(r, capital, short=True))
            else:
                forms[c] = (fresh(r, capital),)
            if _unit("alternate", code, c) < 0.05:
                alternates[c] = fresh(r, capital)
    return _Language(code, script, forms, frozenset(shared), alternates)


def _dictionary(lang: _Language, coverage: float) -> list[str]:
    """MUSE lines 'english translation' for a ``coverage`` share of the concepts.

    The share is exact, separately for shared and language-specific concepts: which ones are
    left out is decided by a hash rank, so it does not depend on the seed.
    """
    listed: set[str] = set()
    for group in (lang.shared, set(lang.forms) - lang.shared):
        eligible = sorted((c for c in group if _KIND[c] not in ("punct", "universal")),
                          key=lambda c: _unit("dictionary", lang.code, c))
        listed.update(eligible[: round(coverage * len(eligible))])
    lines: list[str] = []
    for c in _CONCEPTS:
        if c not in listed:
            continue
        source, target = c, " ".join(lang.forms[c])
        case = _unit("case", lang.code, c)
        if _KIND[c] == "name" and case < 0.25:
            source, target = source.lower(), target.lower()  # MUSE lower-cases everything
        elif case < 0.04:
            target = target[:1].upper() + target[1:]
        lines.append(f"{source} {target}")
        if c in lang.alternates:
            lines.append(f"{source} {lang.alternates[c]}")
    return lines


# --- realisation ----------------------------------------------------------------------------

Tagged = list[tuple[str, str]]
"""A sentence in concept space: (concept, entity tag at the concept level)."""


def _o(*concepts: str) -> Tagged:
    return [(c, "O") for c in concepts]


def _concepts(tagged: Tagged) -> list[str]:
    return [c for c, _ in tagged]


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:] if word[:1].islower() else word


def _realise(
    lang: _Language, concepts: Sequence[str], capitalise: bool = True
) -> tuple[list[str], list[int]]:
    """Words of one sentence in ``lang`` and, for each word, the index of its concept."""
    words: list[str] = []
    owner: list[int] = []
    for i, c in enumerate(concepts):
        for w in lang.forms[c]:
            words.append(w)
            owner.append(i)
    if words and capitalise:
        words[0] = _capitalise(words[0])
    return words, owner


def _text(lang: _Language, concepts: Sequence[str]) -> str:
    return " ".join(_realise(lang, concepts)[0])


def _phrase(lang: _Language, concepts: Sequence[str]) -> str:
    """Text that continues a sentence (no capital)."""
    return " ".join(_realise(lang, concepts, capitalise=False)[0])


def _expand_tags(tags: Sequence[str], owner: Sequence[int]) -> list[str]:
    """Concept-level BIO tags → word-level (a concept rendered as two words continues with I-)."""
    out: list[str] = []
    for j, i in enumerate(owner):
        tag = tags[i]
        if j > 0 and owner[j - 1] == i and tag.startswith("B-"):
            tag = "I-" + tag[2:]
        out.append(tag)
    return out


@dataclass
class _Layout:
    """Several sentences joined into one text, with each word's character offset."""

    words: list[str] = field(default_factory=list)
    owner: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    length: int = 0

    def add(self, lang: _Language, sentence_index: int, concepts: Sequence[str]) -> None:
        words, owner = _realise(lang, concepts)
        for w, i in zip(words, owner):
            if self.words:
                self.length += 1
            self.starts.append(self.length)
            self.words.append(w)
            self.owner.append((sentence_index, i))
            self.length += len(w)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def span(self, sentence_index: int, start: int, end: int) -> tuple[int, int]:
        """Character offsets [begin, end) of concepts start..end-1 of one sentence."""
        hits = [j for j, (s, i) in enumerate(self.owner)
                if s == sentence_index and start <= i < end]
        return self.starts[hits[0]], self.starts[hits[-1]] + len(self.words[hits[-1]])


# --- sentence pieces in concept space -------------------------------------------------------

class _Gen:
    def __init__(self, r: random.Random) -> None:
        self.r = r

    def person(self, full: bool | None = None) -> Tagged:
        full = self.r.random() < 0.6 if full is None else full
        out = [(self.r.choice(_FIRST), "B-PER")]
        if full:
            out.append((self.r.choice(_LAST), "I-PER"))
        return out

    def org(self) -> Tagged:
        out = [(self.r.choice(_ORG), "B-ORG")]
        if self.r.random() < 0.6:
            out.append((self.r.choice(_ORG_SUFFIX), "I-ORG"))
        return out

    def loc(self) -> Tagged:
        if self.r.random() < 0.2:
            return [(self.r.choice(_LOC_PREFIX), "B-LOC"), (self.r.choice(_LOC), "I-LOC")]
        return [(self.r.choice(_LOC), "B-LOC")]

    def np(self, nouns: Sequence[str] = _PLAIN_NOUNS, adj: float = 0.4) -> Tagged:
        out = _o(self.r.choice(_DET))
        if self.r.random() < adj:
            out += _o(self.r.choice(_ADJ))
        return out + _o(self.r.choice(nouns))

    def subject(self) -> Tagged:
        x = self.r.random()
        if x < 0.45:
            return self.person()
        if x < 0.65:
            return _o(self.r.choice(("he", "she", "they", "we", "I", "you")))
        return self.np()

    def obj(self) -> Tagged:
        x = self.r.random()
        if x < 0.6:
            return self.np(_PLAIN_NOUNS + _PAIRED)
        if x < 0.75:
            return self.person()
        if x < 0.9:
            return self.org()
        return self.loc()

    def pp(self) -> Tagged:
        x = self.r.random()
        if x < 0.4:
            return _o(self.r.choice(("in", "near", "from"))) + self.loc()
        if x < 0.6:
            return _o("with") + self.person()
        if x < 0.8:
            return _o("at") + self.org()
        return _o(self.r.choice(("on", "under", "near", "for"))) + self.np()

    def clause(self, pp: float = 0.5) -> Tagged:
        out = self.subject()
        if self.r.random() < 0.2:
            out += _o(self.r.choice(("will", "can", "would", "may")))
        if self.r.random() < 0.15:
            out += _o(self.r.choice(("often", "quickly", "slowly", "then")))
        out += _o(self.r.choice(_TRANSITIVE)) + self.obj()
        if self.r.random() < pp:
            out += self.pp()
        return out


def _without_adjectives(tagged: Tagged) -> Tagged:
    return [(c, t) for c, t in tagged if _UPOS[c] != "ADJ"]


def _hex(r: random.Random, digits: int) -> str:
    return format(r.getrandbits(4 * digits), f"0{digits}x")


# --- classification -------------------------------------------------------------------------

_NLI_LABELS = ("entailment", "neutral", "contradiction")


@dataclass
class _Pair:
    first: list[str]
    second: list[str]
    label: int
    uid: str = ""


def _nli(r: random.Random, n: int, split: str, adversarial: bool = False) -> list[_Pair]:
    g = _Gen(r)
    out: list[_Pair] = []
    for _ in range(n):
        subj = g.subject()
        verb = r.choice(_TRANSITIVE)
        obj = g.obj()
        pp = g.pp() if r.random() < 0.6 else []
        premise = subj + _o(verb) + obj + pp
        if adversarial or r.random() < 0.3:
            premise += _o(r.choice(("and", "but", "because", "while")))
            if adversarial and r.random() < 0.3:
                # a signal word in the premise: what counts is the hypothesis, not word presence
                premise += _o(r.choice(_CONTRA[1:] + _HEDGE))
            premise += g.clause(pp=0.3)
        premise += _o(".")
        label = r.randrange(3)
        core = _without_adjectives(obj)
        # Two cues: the signal words, and how much of the hypothesis is new (none: entailment, one
        # word: contradiction, more: neutral). A quarter of each class breaks the second cue, so a
        # model that only counts new words cannot be perfect in a language it has not seen.
        filler = _o(r.choice(_FILLER)) if r.random() < 0.25 else []
        if label == 0:
            hyp = subj + filler + _o(verb) + (core if r.random() < 0.7 else obj)
            if pp and r.random() < 0.5:
                hyp += pp
        elif label == 2:
            hyp = subj + _o(r.choice(_CONTRA)) + filler + _o(verb) + core
        elif filler:
            hyp = subj + _o(r.choice(_HEDGE), verb) + core
        else:
            if r.random() < 0.6:
                hyp = subj + _o(r.choice(_HEDGE), verb) + g.np(_PLAIN_NOUNS + _PAIRED)
                if r.random() < 0.3:
                    hyp += g.pp()
            else:
                hyp = subj + _o(r.choice(_HEDGE), verb) + core + g.pp()
        hyp += _o(".")
        uid = f"{_hex(r, 8)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 12)}"
        out.append(_Pair(_concepts(premise), _concepts(hyp), label, uid))
    return out


def _paws(r: random.Random, n: int, split: str) -> list[_Pair]:
    g = _Gen(r)
    out: list[_Pair] = []
    for _ in range(n):
        subj = g.person()
        obj = r.choice((g.person, g.loc, g.org))()
        verb = r.choice(_TRANSITIVE)
        extra = _o(r.choice(("with", "near", "after"))) + r.choice((g.person, g.loc, g.org))()
        when = _o("in", r.choice(_YEARS))
        first = subj + _o(verb) + obj + extra + when + _o(".")
        label = int(r.random() < 0.45)
        if not label:
            if r.random() < 0.5 and _concepts(subj) != _concepts(obj):
                subj, obj = obj, subj  # word swap: same bag of words, different meaning
            elif r.random() < 0.5:
                verb = r.choice([v for v in _TRANSITIVE if v != verb])
            else:
                old = _concepts(obj)
                while _concepts(obj) == old:
                    obj = r.choice((g.person, g.loc, g.org))()
        move = r.random() < (0.7 if label else 0.4)
        filler = _o(r.choice(_FILLER)) if r.random() < (0.5 if label else 0.2) else []
        if move:
            second = when + _o(",") + subj + filler + _o(verb) + obj + extra + _o(".")
        else:
            second = subj + filler + _o(verb) + obj + extra + when + _o(".")
        if label and not move and not filler:
            second = subj + _o(r.choice(_FILLER), verb) + obj + extra + when + _o(".")
        out.append(_Pair(_concepts(first), _concepts(second), label))
    return out


_QQP_OPENERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("how", "can", "I"), ("how", "does", "someone"), ("what", "is", "the", "best", "way", "to")),
    (("why", "did"), ("why", "would")),
)


def _qqp(r: random.Random, n: int, split: str) -> list[_Pair]:
    g = _Gen(r)
    out: list[_Pair] = []
    for _ in range(n):
        label = int(r.random() < 0.37)
        if r.random() < 0.5:
            openers = _QQP_OPENERS[0]
            head = r.choice(openers)
            verb, np = r.choice(_TRANSITIVE), g.np(_PLAIN_NOUNS + _PAIRED)
            first = _o(*head, verb) + np + _o("?")
            if label:
                second = _o(*r.choice([o for o in openers if o != head]), verb) + np + _o("?")
            elif r.random() < 0.5:
                second = _o(*head, r.choice([v for v in _TRANSITIVE if v != verb])) + np + _o("?")
            else:
                noun = r.choice([x for x in _PLAIN_NOUNS + _PAIRED if x != np[-1][0]])
                second = _o(*r.choice(openers), verb) + np[:-1] + _o(noun, "?")
        else:
            openers = _QQP_OPENERS[1]
            head = r.choice(openers)
            person, verb, place = g.person(), r.choice(_TRANSITIVE), g.loc()
            first = _o(*head) + person + _o(verb, "the", r.choice(_PLAIN_NOUNS), "in") + place
            first += _o("?")
            if label:
                second = list(first)
                second[: len(head)] = _o(*r.choice([o for o in openers if o != head]))
                if r.random() < 0.5:
                    second.insert(len(head) + len(person), ("really", "O"))
            else:
                other = g.loc()
                while _concepts(other) == _concepts(place):
                    other = g.loc()
                second = first[: -len(place) - 1] + other + _o("?")
        out.append(_Pair(_concepts(first), _concepts(second), label))
    return out


def _render_anli(p: _Pair, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"uid": p.uid, "premise": _text(lang, p.first), "hypothesis": _text(lang, p.second),
            "label": p.label, "reason": ""}


def _render_mnli(p: _Pair, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"premise": _text(lang, p.first), "hypothesis": _text(lang, p.second),
            "label": p.label, "idx": i}


def _render_xnli(p: _Pair, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"language": lang.code, "sentence1": _text(lang, p.first),
            "sentence2": _text(lang, p.second), "gold_label": _NLI_LABELS[p.label]}


def _render_pawsx(p: _Pair, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"sentence1": _text(lang, p.first), "sentence2": _text(lang, p.second),
            "label": str(p.label)}


def _render_qqp(p: _Pair, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"question1": _text(lang, p.first), "question2": _text(lang, p.second),
            "label": p.label, "idx": i}


# --- tagging --------------------------------------------------------------------------------

def _ud_sentence(g: _Gen) -> list[str]:
    r = g.r
    x = r.random()
    if x < 0.4:
        out = _concepts(g.clause())
    elif x < 0.55:
        out = _concepts(g.clause(pp=0.2)) + [r.choice(_CCONJ)] + _concepts(g.clause(pp=0.2))
    elif x < 0.65:
        out = _concepts(g.clause(pp=0.2)) + [r.choice(_SCONJ)] + _concepts(g.clause(pp=0.2))
    elif x < 0.72:
        out = [r.choice(_INTJ), ","] + _concepts(g.clause())
    elif x < 0.82:
        out = [r.choice(("what", "who")), r.choice(("did", "will", "can")), *_concepts(g.subject()),
               r.choice(_TRANSITIVE), "?"]
        return out
    elif x < 0.9:
        out = _concepts(g.subject()) + [r.choice(("want", "need", "like")), "to"]
        out += [r.choice(_TRANSITIVE)] + _concepts(g.np(_PLAIN_NOUNS + _PAIRED))
    elif x < 0.96:
        out = ["the", "price", "of", "the", r.choice(_PAIRED)]
        out += ["rise", r.choice(("by", "to")), r.choice(_DIGITS), r.choice(("%", "$"))]
        if r.random() < 0.3:
            out += ["+", r.choice(_DIGITS)]
    else:
        out = _concepts(g.subject()) + [r.choice(("write", "read", "sell"))]
        out += ["(", r.choice(_NUM_WORDS), r.choice(_PLAIN_NOUNS), ")"]
    if r.random() < 0.08:
        out += [",", r.choice(_X)]
    return out + [r.choice((".", ".", ".", "!"))]


def _panx_sentence(g: _Gen) -> Tagged:
    r = g.r
    x = r.random()
    if x < 0.3:
        out = g.person() + _o(r.choice(("visit", "leave", "help", "call", "follow")))
        out += r.choice((g.org, g.loc, g.person))()
        if r.random() < 0.5:
            out += _o(r.choice(("in", "near"))) + g.loc()
        return out + _o(".")
    if x < 0.45:
        return g.person(full=True) + _o("(", "born", r.choice(_YEARS), "in") + g.loc() + _o(")")
    if x < 0.6:
        return g.org() + _o("is", "a", r.choice(("company", "team")), "in") + g.loc() + _o(".")
    if x < 0.7:
        out = g.loc()
        for _ in range(r.randint(1, 2)):
            out += _o(",") + g.loc()
        return out
    if x < 0.85:
        out = _o(r.choice(("he", "she", "they")), r.choice(("work", "play")), "for") + g.org()
        return out + _o("with") + g.person() + _o(".")
    if x < 0.92:
        return g.person() + _o(",") + g.org()
    return [(c, "O") for c in _ud_sentence(g)]


def _supertags(concepts: Sequence[str]) -> list[str]:
    nominal = ("DET", "ADJ", "NOUN", "PROPN", "PRON", "NUM")
    out: list[str] = []
    for i, c in enumerate(concepts):
        pos = _UPOS[c]
        nxt = _UPOS[concepts[i + 1]] if i + 1 < len(concepts) else ""
        prv = _UPOS[concepts[i - 1]] if i > 0 else ""
        if pos == "DET":
            tag = "NP[nb]/N"
        elif pos in ("ADJ", "NUM") and nxt in ("NOUN", "PROPN", "ADJ"):
            tag = "N/N"
        elif pos in ("NOUN", "PROPN", "NUM", "SYM", "X"):
            tag = "N/N" if nxt in ("NOUN", "PROPN") else "N"
        elif pos == "ADJ":
            tag = "S[adj]\\NP"
        elif pos == "PRON":
            tag = "NP"
        elif pos == "VERB":
            base = "S[b]" if prv in ("AUX", "PART") else "S[dcl]"
            tag = f"({base}\\NP)/NP" if nxt in nominal else f"{base}\\NP"
        elif pos == "AUX":
            tag = "(S[q]/(S[b]\\NP))/NP" if prv == "PRON" and i == 1 else "(S[dcl]\\NP)/(S[b]\\NP)"
        elif pos == "PART":
            tag = "(S[to]\\NP)/(S[b]\\NP)" if c == "to" else "(S\\NP)\\(S\\NP)"
        elif pos == "ADP":
            tag = "(NP\\NP)/NP" if prv in ("NOUN", "PROPN") else "((S\\NP)\\(S\\NP))/NP"
        elif pos == "ADV":
            tag = "S/S" if i == 0 else "(S\\NP)\\(S\\NP)"
        elif pos == "CCONJ":
            tag = "conj"
        elif pos == "SCONJ":
            tag = "((S\\NP)\\(S\\NP))/S[dcl]"
        elif pos == "INTJ":
            tag = "S/S"
        else:
            tag = {"(": "LRB", ")": "RRB", ",": ",", "?": ".", "!": "."}.get(c, ".")
        out.append(tag)
    return out


def _ud_build(r: random.Random, n: int, split: str) -> list[list[str]]:
    g = _Gen(r)
    return [_ud_sentence(g) for _ in range(n)]


PANX_DENSITY_BINS = 8
"""Quantile bins of entity density within each sentence's main entity type."""
_ENTITY_TYPES = ("PER", "ORG", "LOC")


def _panx_joined(g: _Gen) -> Tagged:
    out: Tagged = []
    for _ in range(g.r.choice((1, 1, 2))):
        if out:
            out = out[:-1] if out[-1][0] in (".", "!") else out
            out += _o(g.r.choice((",", "and")))
        out += _panx_sentence(g)
    return out


def _label_mix(sentence: Tagged) -> tuple[str, float]:
    """A sentence's main entity type (the most frequent; "" when it has none) and entity density."""
    counts = {kind: sum(t[2:] == kind for _, t in sentence) for kind in _ENTITY_TYPES}
    main = max(_ENTITY_TYPES, key=lambda kind: counts[kind])
    return (main if counts[main] else ""), sum(counts.values()) / len(sentence)


def _panx_build(r: random.Random, n: int, split: str) -> list[Tagged]:
    """Sentences whose length is independent of their label mix, as in real corpora. Each
    template ties the two (short "PER , ORG" lines are dense, location lists short and LOC-heavy,
    long plain clauses all O), so the label mix is summarised as (main entity type, density bin
    within that type), and a length bin and a label-mix cell are drawn independently, each from
    its marginal over a pool, and a sentence is taken from the pool's matching cell."""
    g = _Gen(r)
    pool = [_panx_joined(g) for _ in range(8 * n)]
    mixes = [_label_mix(s) for s in pool]
    length_bin = [len(s) for s in pool]
    mix_cell: list[tuple[str, int]] = [("", 0)] * len(pool)
    for kind in _ENTITY_TYPES:
        members = [i for i, (main, _) in enumerate(mixes) if main == kind]
        for i, b in zip(members, _quantile_bins([mixes[i][1] for i in members], PANX_DENSITY_BINS)):
            mix_cell[i] = (kind, b)
    cells: dict[tuple[int, tuple[str, int]], list[int]] = {}
    for i in range(len(pool)):
        cells.setdefault((length_bin[i], mix_cell[i]), []).append(i)
    for members in cells.values():
        r.shuffle(members)
    used = dict.fromkeys(cells, 0)
    out: list[Tagged] = []
    while len(out) < n:
        cell = (length_bin[r.randrange(len(pool))], mix_cell[r.randrange(len(pool))])
        if cell in cells:  # each sentence of a cell once before any repeats (only rare cells run out)
            members = cells[cell]
            out.append(pool[members[used[cell] % len(members)]])
            used[cell] += 1
    return out


def _quantile_bins(values: Sequence[float], bins: int) -> list[int]:
    ranked = sorted(values)
    cuts = [ranked[len(ranked) * k // bins] for k in range(1, bins)]
    return [bisect.bisect_right(cuts, v) for v in values]


_UPOS_INDEX = {tag: i for i, tag in enumerate(registry.TASKS["udpos"].labels)}
_NER_INDEX = {tag: i for i, tag in enumerate(registry.TASKS["panx"].labels)}


def _render_udpos(s: list[str], lang: _Language, i: int, split: str) -> dict[str, Any]:
    words, owner = _realise(lang, s)
    return {"tokens": words, "pos_tags": [_UPOS_INDEX[_UPOS[s[k]]] for k in owner]}


def _render_panx(s: Tagged, lang: _Language, i: int, split: str) -> dict[str, Any]:
    words, owner = _realise(lang, _concepts(s))
    tags = _expand_tags([t for _, t in s], owner)
    return {"tokens": words, "ner_tags": [_NER_INDEX[t] for t in tags],
            "langs": [lang.code] * len(words)}


def _render_ccg(s: list[str], lang: _Language, i: int, split: str) -> dict[str, Any]:
    words, owner = _realise(lang, s)
    tags = _supertags(s)
    return {"tokens": words, "tags": [tags[k] for k in owner]}


# --- extractive QA --------------------------------------------------------------------------

@dataclass
class _Fact:
    sentence: list[str]
    answer: tuple[int, int]
    """Concept indices [start, end) of the answer in ``sentence``."""
    question: list[str]


@dataclass
class _QA:
    uid: str
    title: list[str]
    facts: list[_Fact]
    asked: int | None
    """Index of the fact the question is about; None: unanswerable."""
    question: list[str]


def _paragraph(g: _Gen, n_facts: int) -> tuple[list[str], list[_Fact], list[list[str]]]:
    """A title, facts, and two unanswerable questions.

    Each fact is "subject KEY answer [tail] ."; its question names the subject and the key. Some
    paragraphs use one key twice with different subjects, so the subject must match too. The
    unanswerable questions ask about a key verb the paragraph does not use, and about a used key
    verb with a person who never does it.
    """
    r = g.r
    person = g.person(full=True)
    pronoun = r.choice(("he", "she"))
    keys = r.sample(_QA_KEYS, n_facts + 1)
    missing_key = keys.pop()
    plan: list[tuple[str, Tagged, Tagged]] = []  # key, subject as written, subject as asked
    for i, key in enumerate(keys):
        x = r.random()
        if i == 0 or 0.6 <= x < 0.8:
            plan.append((key, person, person))
        elif x < 0.4:
            plan.append((key, _o(pronoun), person))
        elif x < 0.6:
            plan.append((key, person[:1], person))
        else:
            other = g.person(full=True)
            plan.append((key, other, other))
    if len(keys) > 1 and r.random() < 0.3:
        key = r.choice(keys[1:])
        taken = set(_concepts(person)).union(*(_concepts(ref) for k, _, ref in plan if k == key))
        other = g.person(full=True)
        while taken & set(_concepts(other)):
            other = g.person(full=True)
        plan.insert(r.randint(1, len(plan)), (key, other, other))
    facts: list[_Fact] = []
    for key, subject, ref in plan:
        if key in _PERSON_KEYS:
            answer = g.person()
        elif key == "visit" and r.random() < 0.6:
            answer = g.loc()
        else:
            y = r.random()
            if y < 0.6:
                answer = g.np(_PLAIN_NOUNS + _PAIRED, adj=0.5)
            elif y < 0.8:
                answer = _o(r.choice(_NUM_WORDS + _DIGITS), r.choice(_PLAIN_NOUNS + _PAIRED))
            else:
                answer = g.org()
        tail: Tagged = []
        y = r.random()
        if y < 0.4:
            tail = _o("in") + g.loc()
        elif y < 0.6:
            tail = _o("in", r.choice(_YEARS))
        elif y < 0.7:
            tail = _o(r.choice(_TIME))
        start = len(subject) + 1
        sentence = _concepts(subject) + [key] + _concepts(answer) + _concepts(tail) + ["."]
        question = ["who" if key in _PERSON_KEYS else "what", "did", *_concepts(ref), key]
        if tail and r.random() < 0.3:
            question += _concepts(tail)
        facts.append(_Fact(sentence, (start, start + len(answer)), question + ["?"]))
    named = {c for _, _, ref in plan for c in _concepts(ref)}
    stranger = g.person(full=True)
    while named & set(_concepts(stranger)):
        stranger = g.person(full=True)
    unanswerable = []
    for who, key in ((person, missing_key), (stranger, r.choice(keys))):
        wh = "who" if key in _PERSON_KEYS else "what"
        unanswerable.append([wh, "did", *_concepts(who), key, "?"])
    return _concepts(person), facts, unanswerable


def _qa_build(r: random.Random, n: int, split: str, *, unanswerable: float = 0.0,
              id_digits: int = 24, facts: tuple[int, int] = (3, 6)) -> list[_QA]:
    g = _Gen(r)
    out: list[_QA] = []
    while len(out) < n:
        title, fs, missing = _paragraph(g, r.randint(*facts))
        questions: list[_QA] = []
        for k in r.sample(range(len(fs)), min(len(fs), r.randint(2, 4))):
            questions.append(_QA(_hex(r, id_digits), title, fs, k, fs[k].question))
        if unanswerable:
            # about `unanswerable` of all questions, at most two per paragraph
            odds = unanswerable / (1 - unanswerable)
            count = min(len(missing), sum(r.random() < odds for _ in questions))
            for question in r.sample(missing, count):
                questions.insert(r.randint(0, len(questions)), _QA(_hex(r, id_digits), title, fs, None, question))
        out.extend(questions[: n - len(out)])
    return out


def _qa_row(q: _QA, lang: _Language, *, answers: int = 1) -> dict[str, Any]:
    layout = _Layout()
    for s, fact in enumerate(q.facts):
        layout.add(lang, s, fact.sentence)
    context = layout.text
    texts: list[str] = []
    starts: list[int] = []
    if q.asked is not None:
        a, b = q.facts[q.asked].answer
        begin, end = layout.span(q.asked, a, b)
        variants = [(begin, end)] * answers
        if answers >= 2 and b - a > 1 and _UPOS[q.facts[q.asked].sentence[a]] == "DET":
            variants[1] = layout.span(q.asked, a + 1, b)  # annotators who left out the article
        for begin, end in variants:
            texts.append(context[begin:end])
            starts.append(begin)
    return {"context": context, "question": _text(lang, q.question),
            "answers": {"text": texts, "answer_start": starts}}


def _render_squad(q: _QA, lang: _Language, i: int, split: str) -> dict[str, Any]:
    row = _qa_row(q, lang, answers=3 if split != "train" else 1)
    return {"id": q.uid, "title": "_".join(_realise(lang, q.title)[0]), **row}


def _render_xquad(q: _QA, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"id": q.uid, **_qa_row(q, lang)}


def _render_mlqa(q: _QA, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {"id": q.uid, "title": _text(lang, q.title), **_qa_row(q, lang)}


def _render_tydiqa(q: _QA, lang: _Language, i: int, split: str) -> dict[str, Any]:
    name = registry.TYDIQA_ID_PREFIX.get(lang.code, lang.code)
    return {"id": f"{name}-{int(q.uid, 16)}-{i}", "title": _text(lang, q.title), **_qa_row(q, lang)}


# --- multiple choice ------------------------------------------------------------------------

@dataclass
class _Choice:
    context: list[list[str]]
    """Sentences; hellaswag: [ctx_a, ctx_b]."""
    question: list[str]
    choices: list[list[str]]
    label: int
    uid: str
    extra: dict[str, Any] = field(default_factory=dict)


def _distractors(r: random.Random, anchor: str, k: int) -> list[str]:
    pool = [w for w in _PAIRED if w not in (anchor, _PARTNER[anchor])]
    return r.sample(pool, k)


def _mc_build(r: random.Random, n: int, split: str, kind: str) -> list[_Choice]:
    g = _Gen(r)
    out: list[_Choice] = []
    k = {"hellaswag": 4, "cosmosqa": 4, "commonsenseqa": 5, "siqa": 3, "copa": 2}[kind]
    for i in range(n):
        anchor = r.choice(_PAIRED)
        options = [_PARTNER[anchor]] + _distractors(r, anchor, k - 1)
        label = r.randrange(k)
        options[0], options[label] = options[label], options[0]
        person = g.person()
        verb = r.choice(_TRANSITIVE)
        uid = _hex(r, 32)
        if kind == "hellaswag":
            ctx_a = _concepts(person) + [verb, "the", anchor] + _concepts(g.pp()) + ["."]
            ctx_b = ["then", r.choice(("he", "she", "they"))]
            choices = [[r.choice(_TRANSITIVE), r.choice(("the", "a"))]
                       + ([r.choice(_ADJ)] if r.random() < 0.3 else []) + [o, "."] for o in options]
            zero_shot = split != "train" and r.random() < 0.5
            extra = {"ind": r.randrange(10**5), "activity": anchor, "video": _hex(r, 11),
                     "split_type": "zeroshot" if zero_shot else "indomain"}
            out.append(_Choice([ctx_a, ctx_b], [], choices, label, uid, extra))
        elif kind == "commonsenseqa":
            question = ["what", "does", "someone", "need", "for", "the", anchor, "?"]
            choices = [[o] for o in options]
            out.append(_Choice([], question, choices, label, uid, {"concept": anchor}))
        elif kind == "cosmosqa":
            context = [_concepts(g.clause(pp=0.3)) + ["."],
                       _concepts(person) + [verb, "the", anchor, "."]]
            if r.random() < 0.5:
                context.reverse()
            question = ["what", "may", "happen", "next", "?"] if r.random() < 0.5 else \
                ["why", "did", *_concepts(person), verb, "the", anchor, "?"]
            choices = [["they", r.choice(_TRANSITIVE), "the", o, "."] for o in options]
            if r.random() < 0.25:
                wrong = [j for j in range(k) if j != label]
                choices[r.choice(wrong)] = []  # Cosmos QA's "None of the above choices ."
            out.append(_Choice(context, question, choices, label, uid))
        elif kind == "siqa":
            context = _concepts(person) + [verb, "the", anchor] + _concepts(g.pp()) + ["."]
            first = _concepts(person)[:1]
            question = ["what", "will", *first, "want", "to", "do", "next", "?"]
            choices = [[r.choice(_TRANSITIVE), "the", o] for o in options]
            out.append(_Choice([context], question, choices, label, uid))
        else:  # copa / xcopa
            premise = _concepts(person) + [verb, "the", anchor, "."]
            pronoun = r.choice(("he", "she", "they"))
            choices = [[pronoun, r.choice(_TRANSITIVE), "the", o, "."] for o in options]
            out.append(_Choice([premise], [r.choice(("cause", "effect"))], choices, label, uid))
    return out


_HELLASWAG_SPLIT = {"train": "train", "dev": "val", "test": "test"}


def _render_hellaswag(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    ctx_a = _text(lang, c.context[0])
    ctx_b = _phrase(lang, c.context[1])
    return {
        "ind": c.extra["ind"], "activity_label": _capitalise(c.extra["activity"]),
        "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": f"{ctx_a} {ctx_b}",
        "endings": [_phrase(lang, e) for e in c.choices],
        "source_id": f"activitynet~v_{c.extra['video']}", "split": _HELLASWAG_SPLIT[split],
        "split_type": c.extra["split_type"], "label": str(c.label),
    }


def _render_commonsenseqa(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    letters = ["A", "B", "C", "D", "E"][: len(c.choices)]
    return {
        "id": c.uid, "question": _text(lang, c.question), "question_concept": c.extra["concept"],
        "choices": {"label": letters, "text": [_phrase(lang, t) for t in c.choices]},
        "answerKey": letters[c.label],
    }


def _render_cosmosqa(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": c.uid[:30].upper() + "##q1_a1", "context": " ".join(_text(lang, s) for s in c.context),
        "question": _text(lang, c.question), "label": c.label,
    }
    for j, choice in enumerate(c.choices):
        row[f"answer{j}"] = _text(lang, choice) if choice else "None of the above choices ."
    return row


def _render_siqa(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "context": _text(lang, c.context[0]), "question": _text(lang, c.question), "label": str(c.label + 1),
    }
    for letter, choice in zip("ABC", c.choices):
        row[f"answer{letter}"] = _text(lang, choice)
    return row


def _render_copa(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {
        "premise": _text(lang, c.context[0]), "choice1": _text(lang, c.choices[0]),
        "choice2": _text(lang, c.choices[1]), "question": c.question[0], "idx": i, "label": c.label,
    }


def _render_xcopa(c: _Choice, lang: _Language, i: int, split: str) -> dict[str, Any]:
    return {**_render_copa(c, lang, i, split), "changed": False}


# --- retrieval ------------------------------------------------------------------------------

@dataclass
class _Bitext:
    sentence: list[str]
    source_id: int
    target_id: int
    """Sentence numbers (BUCC ids), distinct within a split."""


def _bitext_build(r: random.Random, n: int, split: str, long: bool = False) -> list[_Bitext]:
    g = _Gen(r)
    seen: set[tuple[str, ...]] = set()
    out: list[_Bitext] = []
    source_ids = r.sample(range(1, 10**6), n)
    target_ids = r.sample(range(1, 10**6), n)
    while len(out) < n:
        s = _concepts(g.clause(pp=0.7))
        if long:
            s += [r.choice(_CCONJ + _SCONJ)] + _concepts(g.clause(pp=0.4))
        s.append(r.choice((".", ".", "?", "!")))
        if tuple(s) not in seen:
            seen.add(tuple(s))
            out.append(_Bitext(s, source_ids[len(out)], target_ids[len(out)]))
    return out


def _config_names(task: str) -> Mapping[str, str]:
    source = registry.TASKS[task].source
    return source.config_by_language if source is not None else {}


_TATOEBA_CODES = _config_names("tatoeba")


def _render_tatoeba(b: _Bitext, lang: _Language, i: int, split: str) -> dict[str, Any]:
    english = _language("en", 0.0)
    return {
        "source_sentence": _text(lang, b.sentence) + "\n",
        "target_sentence": _text(english, b.sentence) + "\n",
        "source_lang": _TATOEBA_CODES.get(lang.code, lang.code), "target_lang": "eng",
    }


def _render_bucc(b: _Bitext, lang: _Language, i: int, split: str) -> dict[str, Any]:
    english = _language("en", 0.0)
    return {
        "source_sentence": _text(lang, b.sentence), "target_sentence": _text(english, b.sentence),
        "source_lang": f"{lang.code}-{b.source_id:09d}", "target_lang": f"en-{b.target_id:09d}",
    }


@dataclass
class _Entity:
    entity_id: str
    name: Tagged
    short: Tagged
    description: list[str]
    cue: list[str]


def _entities(r: random.Random, n: int) -> list[_Entity]:
    g = _Gen(r)
    out: list[_Entity] = []
    seen: set[tuple[str, ...]] = set()
    ids = r.sample(range(1000, 10**7), n)
    while len(out) < n:
        home = r.choice(_LOC)
        if r.random() < 0.7:
            name = g.person(full=True)
            job = r.choice(_PROFESSIONS)
            description = [job, "from", home]
            cue = ["the", job, "from", home]
            short = name[1:]
        else:
            name = [(r.choice(_ORG), "B-ORG"), (r.choice(_ORG_SUFFIX), "I-ORG")]
            product = r.choice(_PLAIN_NOUNS + _PAIRED)
            description = ["company", "in", home, "for", product]
            cue = ["the", "company", "in", home]
            short = name[:1]
        key = tuple(_concepts(name))
        if key in seen:
            continue
        seen.add(key)
        out.append(_Entity(f"Q{ids[len(out)]}", name, short, description, cue))
    return out


@dataclass
class _Mention:
    uid: str
    entity: _Entity
    before: list[str]
    mention: list[str]
    after: list[str]


def _mention_build(r: random.Random, n: int, split: str, entities: list[_Entity]) -> list[_Mention]:
    g = _Gen(r)
    out: list[_Mention] = []
    for i in range(n):
        e = r.choice(entities)
        partial = r.random() < 0.4
        mention = _concepts(e.short if partial else e.name)
        cue = partial or r.random() < 0.7
        before: list[str] = []
        if r.random() < 0.3:
            before = _concepts(g.subject()) + [r.choice(("meet", "call", "visit", "follow"))]
        after = [",", *e.cue, ","] if cue else []
        after += [r.choice(_TRANSITIVE)] + _concepts(g.np()) + ["."]
        out.append(_Mention(f"{split}-{i:05d}", e, before, mention, after))
    return out


def _render_mention(m: _Mention, lang: _Language, i: int, split: str) -> dict[str, Any]:
    concepts = m.before + m.mention + m.after
    layout = _Layout()
    layout.add(lang, 0, concepts)
    start, end = layout.span(0, len(m.before), len(m.before) + len(m.mention))
    return {"id": f"{lang.code}-{m.uid}", "context": layout.text, "mention_start": start,
            "mention_end": end, "entity_id": m.entity.entity_id}


# --- the task table -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    build: Callable[[random.Random, int, str], list[Any]]
    render: Callable[[Any, _Language, int, str], dict[str, Any]]
    roles: tuple[str, ...] = ()
    """Roles for tasks without a hub source."""


def _mc(kind: str) -> Callable[[random.Random, int, str], list[Any]]:
    return lambda r, n, split: _mc_build(r, n, split, kind)


_SPECS: Mapping[str, _Spec] = {
    "anli": _Spec(lambda r, n, s: _nli(r, n, s, adversarial=True), _render_anli),
    "mnli": _Spec(_nli, _render_mnli),
    "qqp": _Spec(_qqp, _render_qqp),
    "squad": _Spec(_qa_build, _render_squad),
    "squad_v2": _Spec(lambda r, n, s: _qa_build(r, n, s, unanswerable=1 / 3), _render_squad),
    "hellaswag": _Spec(_mc("hellaswag"), _render_hellaswag),
    "commonsenseqa": _Spec(_mc("commonsenseqa"), _render_commonsenseqa),
    "cosmosqa": _Spec(_mc("cosmosqa"), _render_cosmosqa),
    "ccg": _Spec(_ud_build, _render_ccg, roles=("train", "dev")),
    "siqa": _Spec(_mc("siqa"), _render_siqa),
    "copa": _Spec(_mc("copa"), _render_copa),
    "xnli": _Spec(_nli, _render_xnli),
    "pawsx": _Spec(_paws, _render_pawsx),
    "udpos": _Spec(_ud_build, _render_udpos),
    "panx": _Spec(_panx_build, _render_panx),
    "xquad": _Spec(_qa_build, _render_xquad),
    "mlqa": _Spec(lambda r, n, s: _qa_build(r, n, s, id_digits=40), _render_mlqa),
    "tydiqa": _Spec(lambda r, n, s: _qa_build(r, n, s, id_digits=16, facts=(2, 5)), _render_tydiqa),
    "bucc": _Spec(lambda r, n, s: _bitext_build(r, n, s, long=True), _render_bucc),
    "tatoeba": _Spec(_bitext_build, _render_tatoeba),
    "xcopa": _Spec(_mc("copa"), _render_xcopa),
}


# --- writing --------------------------------------------------------------------------------

class _Writer:
    def __init__(self, root: str) -> None:
        self.root = root
        self.records: list[FileRecord] = []
        if "://" in root:
            import fsspec  # only for remote roots: local generation stays stdlib-only

            self.fs, self.base = fsspec.core.url_to_fs(root)
        else:
            self.fs, self.base = None, root

    def write(self, rel: str, data: bytes, rows: int, record: bool = True) -> None:
        if self.fs is None:
            path = Path(self.base, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            path_str = f"{self.base.rstrip('/')}/{rel}"
            self.fs.makedirs(path_str.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(path_str, "wb") as f:
                f.write(data)
        if record:
            self.records.append(FileRecord(rel, rows, hashlib.sha256(data).hexdigest()))

    def jsonl(self, rel: str, rows: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(
            json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n" for row in rows
        )
        self.write(rel, text.encode("utf-8"), len(rows))


@dataclass
class _Run:
    writer: _Writer
    languages: tuple[str, ...]
    sizes: Sizes
    seed: int
    shared_fraction: float

    def lang(self, code: str) -> _Language:
        return _language(code, self.shared_fraction)

    def rng(self, *parts: object) -> random.Random:
        return _rng("fixtures", self.seed, *parts)

    def split_languages(
        self, info: registry.TaskInfo, split: str, roles: Iterable[str]
    ) -> list[str]:
        if split not in roles:
            return []
        if split == "train":
            return ["en"]
        return [code for code in self.languages if code in info.languages]


def _write_task(run: _Run, info: registry.TaskInfo) -> None:
    if info.name == "mewslix":
        _write_mewslix(run, info)
        return
    if info.name == "lareqa":
        _write_lareqa(run, info)
        return
    spec = _SPECS.get(info.name)
    if spec is None:
        raise NotImplementedError(f"no fixture generator for task {info.name!r}")
    roles = tuple(info.source.splits) if info.source is not None else spec.roles
    for split in SPLITS:
        langs = run.split_languages(info, split, roles)
        if not langs:
            continue
        examples = spec.build(run.rng(info.name, split), run.sizes.of(split), split)
        for code in langs:
            lang = run.lang(code)
            rows = [spec.render(x, lang, i, split) for i, x in enumerate(examples)]
            run.writer.jsonl(f"data/{info.name}/{code}/{split}.jsonl", rows)


_MEWSLIX_ENTITIES = 64


def _write_mewslix(run: _Run, info: registry.TaskInfo) -> None:
    entities = _entities(run.rng("mewslix", "entities"), _MEWSLIX_ENTITIES)
    catalogue = [
        {"entity_id": e.entity_id, "title": " ".join(_concepts(e.name)),
         "description": " ".join(e.description)}
        for e in entities
    ]
    run.writer.jsonl("data/mewslix/entities.jsonl", sorted(catalogue, key=lambda row: row["entity_id"]))
    for split in SPLITS:
        langs = run.split_languages(info, split, SPLITS)
        mentions = _mention_build(run.rng("mewslix", split), run.sizes.of(split), split, entities)
        for code in langs:
            lang = run.lang(code)
            run.writer.jsonl(f"data/mewslix/{code}/{split}.jsonl",
                             [_render_mention(m, lang, i, split) for i, m in enumerate(mentions)])


def _write_lareqa(run: _Run, info: registry.TaskInfo) -> None:
    langs = [code for code in run.languages if code in info.languages]
    if not langs:
        return
    r = run.rng("lareqa", "test")
    g = _Gen(r)
    sentences: list[list[str]] = []
    paragraph_of: list[list[list[str]]] = []  # each sentence's paragraph: its context
    questions: list[tuple[list[str], int]] = []
    while len(questions) < run.sizes.test:
        _, facts, _ = _paragraph(g, r.randint(3, 5))
        first = len(sentences)
        sentences.extend(f.sentence for f in facts)
        paragraph_of.extend([[f.sentence for f in facts]] * len(facts))
        for k in r.sample(range(len(facts)), min(len(facts), r.randint(1, 3))):
            if len(questions) < run.sizes.test:
                questions.append((facts[k].question, first + k))
    for code in langs:
        lang = run.lang(code)
        run.writer.jsonl(f"data/lareqa/{code}/questions.jsonl", [
            {"id": f"{code}-q{j:05d}", "question": _text(lang, q),
             "answer_ids": [f"{other}-c{answer:05d}" for other in langs]}
            for j, (q, answer) in enumerate(questions)])
        run.writer.jsonl(f"data/lareqa/{code}/candidates.jsonl", [
            {"id": f"{code}-c{k:05d}", "sentence": _text(lang, s),
             "context": " ".join(_text(lang, x) for x in paragraph_of[k])} for k, s in enumerate(sentences)])


def _resolve_tasks(tasks: Iterable[str] | None) -> tuple[str, ...]:
    if tasks is None:
        return tuple(registry.TASKS)
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    try:
        wanted = set(registry.expand(names))
    except KeyError as e:
        hint = registry.suggest(str(e.args[0]))
        message = f"unknown task {e.args[0]!r}" + (f" (did you mean {hint!r}?)" if hint else "")
        raise ValueError(message) from None
    return tuple(name for name in registry.TASKS if name in wanted)


def generate(
    root: str,
    *,
    tasks: Iterable[str] | None = None,
    languages: Iterable[str] = DEFAULT_LANGUAGES,
    sizes: Sizes = Sizes(),
    seed: int = 0,
    shared_fraction: float = 0.35,
    dictionary_coverage: float = 0.8,
) -> Manifest:
    """Write fixtures for ``tasks`` (default: every registered task) under ``root``.

    ``tasks`` accepts task names, aliases and group names. English is always generated.
    ``shared_fraction`` is the share of concepts a language writes as in English;
    ``dictionary_coverage`` the share of concepts its dictionary lists.
    """
    if not 0.0 <= shared_fraction <= 1.0 or not 0.0 <= dictionary_coverage <= 1.0:
        raise ValueError("shared_fraction and dictionary_coverage must lie in [0, 1]")
    codes: list[str] = ["en"]
    for code in ([languages] if isinstance(languages, str) else languages):
        code = code.strip()
        if not code.isalnum() or not code.isascii():
            raise ValueError(f"bad language code {code!r}")
        if code not in codes:
            codes.append(code)
    root = str(root)
    names = _resolve_tasks(tasks)
    run = _Run(_Writer(root), tuple(codes), sizes, seed, shared_fraction)
    for name in names:
        _write_task(run, registry.TASKS[name])
    for code in codes[1:]:
        lines = _dictionary(run.lang(code), dictionary_coverage)
        body = "".join(line + "\n" for line in lines)
        run.writer.write(f"dictionaries/en-{code}.txt", body.encode("utf-8"), len(lines))
    manifest = Manifest(root, seed, names, tuple(codes), sizes, shared_fraction, dictionary_coverage,
                        tuple(run.writer.records))
    summary = json.dumps(manifest.to_json(), ensure_ascii=False, sort_keys=True, indent=1) + "\n"
    run.writer.write("manifest.json", summary.encode("utf-8"), 0, record=False)
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``xtrc-runtime fixtures`` (also ``python -m xtrc_runtime.fixtures``)."""
    parser.add_argument("root", help="output folder or fsspec URL")
    parser.add_argument("--tasks", nargs="+", help="tasks or groups (default: every registered task)")
    parser.add_argument("--languages", nargs="+", default=list(DEFAULT_LANGUAGES))
    parser.add_argument("--train", type=int, default=Sizes.train)
    parser.add_argument("--dev", type=int, default=Sizes.dev)
    parser.add_argument("--test", type=int, default=Sizes.test)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared-fraction", type=float, default=0.35)
    parser.add_argument("--dictionary-coverage", type=float, default=0.8)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    started = time.perf_counter()
    try:
        manifest = generate(args.root, tasks=args.tasks, languages=args.languages,
                            sizes=Sizes(args.train, args.dev, args.test), seed=args.seed,
                            shared_fraction=args.shared_fraction,
                            dictionary_coverage=args.dictionary_coverage)
    except ValueError as e:
        parser.error(str(e))
    print(f"wrote {len(manifest.files)} files ({manifest.rows()} rows) for {len(manifest.tasks)} tasks, "
          f"languages {' '.join(manifest.languages)}, seed {manifest.seed}, to {args.root} "
          f"in {time.perf_counter() - started:.2f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xtrc_runtime.fixtures", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())


# --- builtin:fixtures --------------------------------------------------------------------

BUILTIN_PREFIX = BUILTIN_FIXTURES


def resolve_builtin(uri: str) -> str:
    """``builtin:fixtures[/sub/path][?train=N&dev=N&test=N&seed=S&languages=a,b]`` → a local
    directory holding that generated data (made once per settings, atomically, in a cache).

    Specs name generated data this way so a stage anywhere (a laptop, a pod) makes the same
    bytes itself instead of needing an upload; the string is part of the stage key.
    """
    import os
    import shutil
    import tempfile
    from urllib.parse import parse_qs

    from xtrc.store import local_cache_dir

    rest = uri[len(BUILTIN_PREFIX):]
    rest, _, query = rest.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    known = set(BUILTIN_FIXTURE_OPTIONS)
    if not rest.startswith(("", "/")) or set(params) - known:
        raise ValueError(f"{uri!r}: write builtin:fixtures[/path][?{'&'.join(sorted(known))}]")
    sizes = Sizes(**{k: int(params[k]) for k in ("train", "dev", "test") if k in params})
    languages = tuple(params["languages"].split(",")) if "languages" in params else ("en", "de", "es", "ru", "zh")
    seed = int(params.get("seed", 0))
    # The generator version is part of the folder's name: data cached by an older generator is
    # never read under a newer one's stage keys (a pod, starting with an empty cache, would make
    # the new rows while this machine read its old ones under the same key).
    digest = hashlib.sha256(f"{FORMAT}|{sizes}|{languages}|{seed}".encode()).hexdigest()[:16]
    cache = os.path.join(local_cache_dir(), "fixtures", digest)
    if _cached_format(cache) != FORMAT:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(cache))
        generate(tmp, languages=languages, sizes=sizes, seed=seed)
        if os.path.exists(cache) and _cached_format(cache) != FORMAT:  # unfinished or foreign: made again
            shutil.rmtree(cache, ignore_errors=True)
        try:
            os.rename(tmp, cache)
        except OSError:  # another process made it first: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return cache + rest.rstrip("/") if rest.strip("/") else cache


def _cached_format(cache: str) -> str | None:
    """The generator version recorded in a cached folder's manifest (None: no usable manifest)."""
    import os

    try:
        with open(os.path.join(cache, "manifest.json"), encoding="utf-8") as f:
            return json.load(f).get("format")
    except (OSError, ValueError, AttributeError):
        return None
