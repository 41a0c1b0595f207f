"""Code-switching (CoSDA-ML) with MUSE dictionaries: the rules are in the package docstring."""

from __future__ import annotations

import bisect
import dataclasses
import random
import re
import unicodedata
from typing import Any, Mapping, Sequence

from xtrc.spec import CodeSwitch

from xtrc_runtime.data import ChoiceExample, DualExample, Example, QAExample, SentenceExample, TaggingExample

from .dictionaries import load_dictionaries


_WS = re.compile(r"(\s+)")
_MISS = object()
_CACHE_SIZE = 1_000_000
"""Distinct whitespace words whose dictionary lookup a switcher remembers."""
_M64 = (1 << 64) - 1


# --- casing and words -----------------------------------------------------------------------

def _capitalise(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.title() + text[i + 1:] if ch.islower() else text
    return text


_LOWER, _TITLE, _UPPER, _AS_WRITTEN = range(4)


def _casing(word: str) -> int:
    """The casing pattern of ``word`` (see the module docstring)."""
    if word.islower():
        return _LOWER
    if word.isupper():
        return _UPPER if sum(1 for ch in word if ch.isupper()) >= 2 else _TITLE
    for ch in word:
        if ch.isalpha():
            return _TITLE if ch.isupper() else _AS_WRITTEN
    return _AS_WRITTEN


def _cased(casing: int, translation: str) -> str:
    if casing == _LOWER:
        return translation.lower()
    if casing == _TITLE:
        return _capitalise(translation)
    if casing == _UPPER:
        return translation.upper()
    return translation


def _is_edge(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _core(token: str) -> tuple[int, int]:
    """Bounds of ``token`` without the punctuation and symbols at its ends."""
    n = len(token)
    if n == 0 or (token[0].isalnum() and token[-1].isalnum()):
        return 0, n
    i = 0
    while i < n and _is_edge(token[i]):
        i += 1
    j = n
    while j > i and _is_edge(token[j - 1]):
        j -= 1
    return i, j


def inside_tag(tag: str) -> str:
    """The tag of the 2nd..kth word of a word translated into k words: B-X → I-X, else the same."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def _vocabulary(examples: Sequence[Example]) -> tuple[set[str], int]:
    """Lower-cased cores of every whitespace word in the examples' text fields, and the
    number of whitespace words."""
    raw: set[str] = set()
    words = 0
    for e in examples:
        if isinstance(e, TaggingExample):
            for w in e.words:
                split = w.split()
                words += len(split)
                raw.update(split)
        else:
            for text in _texts(e):
                split = text.split()
                words += len(split)
                raw.update(split)
    types: set[str] = set()
    for token in raw:
        i, j = _core(token)
        if j > i:
            types.add(token[i:j].lower())
    return types, words


def _texts(e: Example) -> list[str]:
    if isinstance(e, SentenceExample):
        return [e.text_a] if e.text_b is None else [e.text_a, e.text_b]
    if isinstance(e, ChoiceExample):
        return [e.context, *e.choices]
    if isinstance(e, QAExample):
        return [e.question, e.context]
    if isinstance(e, TaggingExample):
        return e.words
    if isinstance(e, DualExample):
        return [e.query, e.candidate] + ([e.context] if e.context is not None else [])
    raise TypeError(f"code-switching has no rule for {type(e).__name__} (example {getattr(e, 'id', '?')!r})")


# --- code-switching -------------------------------------------------------------------------

class _Draw:
    """The per-example state: its random stream, its language (per example) and its counts."""

    __slots__ = ("rng", "lang", "counts")

    def __init__(self, rng: random.Random, lang: str | None) -> None:
        self.rng = rng
        self.lang = lang
        self.counts: dict[str, int] = {}


class CodeSwitcher:
    """CoSDA-ML code-switching with MUSE dictionaries; see the module docstring for the rules."""

    def __init__(self, config: CodeSwitch, dictionaries: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        missing = [lang for lang in config.languages if lang not in dictionaries]
        if missing:
            raise ValueError(f"no dictionary loaded for {', '.join(missing)}")
        self.config = config
        self.languages: tuple[str, ...] = tuple(dict.fromkeys(config.languages))
        self._tables: dict[str, dict[str, tuple[str, ...]]] = {
            lang: {word.lower(): tuple(" ".join(t.split()) for t in ts if t.strip())
                   for word, ts in dictionaries[lang].items()}
            for lang in self.languages
        }
        for table in self._tables.values():
            for word in [w for w, ts in table.items() if not ts]:
                del table[word]
        merged: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for lang in self.languages:
            for word, ts in self._tables[lang].items():
                merged.setdefault(word, []).append((lang, ts))
        self._merged = {word: tuple(c) for word, c in merged.items()}
        self._word_prob = config.word_prob
        self._tokens: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: CodeSwitch, storage_options: dict[str, Any] | None = None) -> CodeSwitcher:
        """Load ``config.dictionaries`` and build the switcher."""
        return cls(config, load_dictionaries(config.dictionaries, config.languages, storage_options))

    # -- public ---------------------------------------------------------------------------
    def switch(self, examples: Sequence[Example], *, seed: int, epoch: int) -> tuple[list[Example], dict[str, Any]]:
        """The examples with switched words (selected ones replaced), and statistics."""
        cfg = self.config
        epoch_used = epoch if cfg.dynamic else 0
        words_per_lang = dict.fromkeys(self.languages, 0)
        examples_per_lang = dict.fromkeys(self.languages, 0)
        selected = switched = 0
        active = cfg.ratio > 0 and cfg.word_prob > 0
        base = ((seed & _M64) << 128) | ((epoch_used & _M64) << 64)
        out: list[Example] = []
        for index, example in enumerate(examples):
            if not active:
                out.append(example)
                continue
            rng = random.Random(base | (index & _M64))
            if cfg.ratio < 1 and rng.random() >= cfg.ratio:
                out.append(example)
                continue
            selected += 1
            lang = None
            if cfg.per == "example":
                n = len(self.languages)
                lang = self.languages[rng.randrange(n)] if n > 1 else self.languages[0]
            draw = _Draw(rng, lang)
            new = self._switch_example(example, draw)
            if draw.counts:
                switched += 1
                for lg, k in draw.counts.items():
                    words_per_lang[lg] += k
                    examples_per_lang[lg] += 1
                out.append(new)
            else:
                out.append(example)
        types, words = _vocabulary(examples)
        coverage = {lang: round(sum(1 for t in types if t in self._tables[lang]) / len(types), 6) if types else 0.0
                    for lang in self.languages}
        stats: dict[str, Any] = {
            "method": "code_switch", "seed": seed, "epoch": epoch_used, "dynamic": cfg.dynamic, "per": cfg.per,
            "ratio": cfg.ratio, "word_prob": cfg.word_prob, "languages": list(self.languages),
            "examples": len(examples), "examples_selected": selected, "examples_switched": switched,
            "examples_switched_per_language": examples_per_lang,
            "words": words, "words_switched": sum(words_per_lang.values()),
            "words_switched_per_language": words_per_lang,
            "word_types": len(types), "dictionary_coverage": coverage,
        }
        return out, stats

    def coverage(self, examples: Sequence[Example]) -> dict[str, float]:
        """Share of the examples' English word types found in each language's dictionary."""
        types, _ = _vocabulary(examples)
        return {lang: (sum(1 for t in types if t in self._tables[lang]) / len(types) if types else 0.0)
                for lang in self.languages}

    # -- internals ------------------------------------------------------------------------
    def _entry(self, token: str) -> tuple[int, int, str, int] | None:
        """(core start, core end, lower-cased core, casing) of a whitespace word, or None when
        no dictionary has its core; cached per distinct word."""
        entry = self._tokens.get(token, _MISS)
        if entry is _MISS:
            i, j = _core(token)
            key = token[i:j].lower()
            entry = (i, j, key, _casing(token[i:j])) if j > i and key in self._merged else None
            if len(self._tokens) >= _CACHE_SIZE:
                self._tokens.clear()
            self._tokens[token] = entry
        return entry  # type: ignore[return-value]

    def _pick(self, entry: tuple[int, int, str, int], draw: _Draw) -> str | None:
        """The cased replacement of the word's core, or None to keep it."""
        rng = draw.rng
        if draw.lang is not None:
            translations = self._tables[draw.lang].get(entry[2])
            if translations is None or rng.random() >= self._word_prob:
                return None
            lang = draw.lang
        else:  # CoSDA-ML: a language drawn over all dictionaries; kept when that one lacks the word
            if rng.random() >= self._word_prob:
                return None
            n = len(self.languages)
            lang = self.languages[rng.randrange(n)] if n > 1 else self.languages[0]
            translations = self._tables[lang].get(entry[2])
            if translations is None:
                return None
        t = translations[rng.randrange(len(translations))] if len(translations) > 1 else translations[0]
        draw.counts[lang] = draw.counts.get(lang, 0) + 1
        return _cased(entry[3], t)

    def _switch_text(self, text: str, draw: _Draw) -> str:
        parts = _WS.split(text)
        changed = False
        entry_of = self._entry
        for k in range(0, len(parts), 2):
            token = parts[k]
            entry = entry_of(token)
            if entry is None:
                continue
            new = self._pick(entry, draw)
            if new is not None:
                i, j = entry[0], entry[1]
                parts[k] = new if i == 0 and j == len(token) else token[:i] + new + token[j:]
                changed = True
        return "".join(parts) if changed else text

    def _switch_example(self, e: Example, draw: _Draw) -> Example:
        if isinstance(e, SentenceExample):
            a = self._switch_text(e.text_a, draw)
            b = None if e.text_b is None else self._switch_text(e.text_b, draw)
            return dataclasses.replace(e, text_a=a, text_b=b)
        if isinstance(e, ChoiceExample):
            return dataclasses.replace(e, context=self._switch_text(e.context, draw),
                                       choices=[self._switch_text(c, draw) for c in e.choices])
        if isinstance(e, TaggingExample):
            return self._switch_tagging(e, draw)
        if isinstance(e, QAExample):
            return self._switch_qa(e, draw)
        if isinstance(e, DualExample):
            context = None if e.context is None else self._switch_text(e.context, draw)
            return dataclasses.replace(e, query=self._switch_text(e.query, draw),
                                       candidate=self._switch_text(e.candidate, draw), context=context)
        raise TypeError(f"code-switching has no rule for {type(e).__name__} (example {getattr(e, 'id', '?')!r})")

    def _switch_tagging(self, e: TaggingExample, draw: _Draw) -> TaggingExample:
        if len(e.words) != len(e.tags):
            raise ValueError(f"tagging example {e.id!r} has {len(e.words)} words but {len(e.tags)} tags")
        words: list[str] = []
        tags: list[str] = []
        for word, tag in zip(e.words, e.tags):
            entry = self._entry(word)
            new = None if entry is None else self._pick(entry, draw)
            if new is None:
                words.append(word)
                tags.append(tag)
                continue
            i, j = entry[0], entry[1]  # type: ignore[index]
            pieces = new.split(" ")
            pieces[0] = word[:i] + pieces[0]
            pieces[-1] = pieces[-1] + word[j:]
            words.extend(pieces)
            tags.append(tag)
            if len(pieces) > 1:
                tags.extend([inside_tag(tag)] * (len(pieces) - 1))
        return dataclasses.replace(e, words=words, tags=tags)

    def _switch_qa(self, e: QAExample, draw: _Draw) -> QAExample:
        question = self._switch_text(e.question, draw)
        context = e.context
        matches: list[bool] = []
        cuts: set[int] = set()
        frozen: list[tuple[int, int]] = []
        for text, start in e.answers:
            end = start + len(text)
            matches.append(0 <= start <= len(context) and context[start:end] == text)
            if matches[-1]:
                cuts.update((start, end))
            else:
                frozen.append((start, end))
        boundaries = sorted(cuts)
        parts = _WS.split(context)
        ends: list[int] = []  # old end offset of each replaced core
        shift: list[int] = []  # cumulative length change up to and including it
        total = 0
        pos = 0
        b, nb = 0, len(boundaries)  # next boundary after the current word's core start
        entry_of, pick = self._entry, self._pick
        for k in range(0, len(parts), 2):
            if k:
                pos += len(parts[k - 1])
            part = parts[k]
            entry = entry_of(part)
            if entry is not None:
                i, j = entry[0], entry[1]
                cs, ce = pos + i, pos + j
                while b < nb and boundaries[b] <= cs:
                    b += 1
                cut = b < nb and boundaries[b] < ce  # an answer starts or ends inside the core
                if not cut and not (frozen and any(s < ce and cs < f for s, f in frozen)):
                    new = pick(entry, draw)
                    if new is not None:
                        parts[k] = new if i == 0 and j == len(part) else part[:i] + new + part[j:]
                        total += len(new) - (j - i)
                        ends.append(ce)
                        shift.append(total)
            pos += len(part)
        if not ends:
            return dataclasses.replace(e, question=question) if question is not e.question else e
        new_context = "".join(parts)

        def moved(offset: int) -> int:
            n = bisect.bisect_right(ends, offset)
            return offset + (shift[n - 1] if n else 0)

        answers: list[tuple[str, int]] = []
        for (text, start), match in zip(e.answers, matches):
            if match:
                s, f = moved(start), moved(start + len(text))
                answers.append((new_context[s:f], s))
            else:
                answers.append((text, moved(start)))
        return dataclasses.replace(e, question=question, context=new_context, answers=answers)
