"""Cross-lingual data augmentation of English training data: code-switching and translate-train.

Code-switching (CoSDA-ML, Qin et al. 2020; the code-switch augmentation of xTune)
--------------------------------------------------------------------------------
Every training example is selected with probability ``ratio``. In a selected example every
word is chosen with probability ``word_prob`` and then replaced by one of its translations
(drawn uniformly among the dictionary's entries for that word). The target language is drawn
uniformly from ``languages`` once per example (``per: example``) or, as CoSDA-ML's ``cross()``
does, once per chosen word (``per: word``: uniformly over ALL the dictionaries, not only those
that have the word). Either way a word the drawn language's dictionary lacks stays as it is, so
with ``per: word`` a word switches with probability ``word_prob × (share of the dictionaries
that have it)``. An identity entry (``Berlin Berlin``) counts as a switch.

Words are whitespace words, replaced before subword tokenisation. Punctuation and symbols
(Unicode categories P* and S*) at either end of a word stay where they are around the
replacement (``"(dog),"`` → ``"(Hund),"``); the rest, the *core*, is looked up lower-cased.
The replacement keeps the casing of the original word where the translation's script has case:

* lower-case word → lower-cased translation (``dog`` → ``hund`` even if the file says ``Hund``);
* Capitalised word (first letter upper, also single capitals such as ``I``) → translation with
  its first letter upper-cased, the rest as the dictionary writes it (``Anna`` → ``Ka Bo``);
* ALL CAPS word (two or more letters, all upper) → upper-cased translation;
* anything else (``iPhone``, ``2020``) → the translation as the dictionary writes it.

A translation may be several words; in text fields they join with single spaces. Per task type:

* **Token classification** keeps one label per word. A word translated into k words becomes k
  words: the first takes the word's tag, the other k-1 take its *inside* tag: ``B-X`` → ``I-X``,
  ``I-X`` → ``I-X``, ``O`` → ``O``, and a tag with no ``B-``/``I-`` prefix (UPOS, CCG supertags)
  is repeated. Leading punctuation of the word goes on the first new word, trailing punctuation
  on the last. So ``len(words) == len(tags)`` always holds and BIO stays well formed.
* **Extractive QA** switches the question and the context. Answers are switched consistently:
  a word inside an answer becomes the same switched text in the context and in the answer, and
  every ``answer_start`` is recomputed, so ``context[start:start + len(text)] == text`` holds for
  every answer after switching (for any number of answers, overlapping or not). A word whose
  core an answer boundary cuts (an answer that starts or ends inside the word) is never
  switched; a boundary between a word and its attached punctuation does not block it. An
  answer that did not match its context on input is left as it was: the words it overlaps are
  not switched and only its start moves.
* **Sentence-pair / classification** switches ``text_a`` and ``text_b``; **multiple choice**
  switches ``context`` and every choice. Labels never change.
* Bitext pairs (retrieval tasks, which never train) are refused with ``TypeError``.

Epochs and determinism. Everything is a function of (stage seed, epoch, position of the example
in the input): example ``i`` gets its own ``random.Random`` seeded from that triple, so the
switches of one example do not depend on the others (subsets and shards switch identically).
With ``dynamic: true`` every epoch re-samples the switches (CoSDA re-samples every batch; the
runtime re-encodes per epoch, so here the unit is the epoch). With ``dynamic: false`` the epoch
is ignored: every call makes the same single augmented copy.

Replace, not add. Selected examples are REPLACED by their switched version, for ``dynamic``
true and false alike, as CoSDA does: the training set keeps its size, so an arm with
code-switching costs the same steps as its baseline (the planner's GPU-hour estimate assumes
this), ``dynamic: true`` and ``false`` differ only in re-sampling, and ``ratio`` is the one knob
for how much English stays (``ratio: 0.5`` keeps about half the examples in English). Adding
copies would double the data and confound the augmentation with more steps.

Unswitched examples are returned as the input objects themselves; switched ones are new
objects. The input is never mutated.

Translate-train
---------------
:func:`load_translations` reads the machine-translated training sets of a target task for the
listed languages (first match wins, per language):

1. ``translate_train.paths[target_task]``: an fsspec directory ``{path}/{lang}/train.jsonl`` (or
   ``.parquet``), or one file whose rows carry a ``language`` column; a language missing there is
   an error (the user said where the data is);
2. ``{data_root}/{target_task}/{lang}/translate-train.jsonl`` (or ``.parquet``), if the file exists;
3. the hub source of the registry's ``Translations`` (``source.config_for(lang)``, split ``train``).

Rows are in the schema of the target task's English training task (MNLI rows for XNLI, SQuAD
rows for XQuAD/MLQA, PAWS-X rows for PAWS-X) and go through
:func:`xtrc_runtime.data.normalize`; labels carry over unchanged. ``ratio`` keeps a deterministic
subset (by seed, target task and language) of ``max(1, round(ratio * n))`` of each language's n
examples, in file order. Example ids become ``tt-{lang}-{id}`` so they never collide with the
English ones. Code-switching is meant for the English examples (its dictionaries are en-xx):
switch first, then add the translations.

Statistics
----------
:meth:`CodeSwitcher.switch` returns, beside the examples, a JSON-serialisable dict::

    method "code_switch", seed, epoch (the one used), dynamic, per, ratio, word_prob, languages,
    examples, examples_selected, examples_switched, examples_switched_per_language,
    words, words_switched, words_switched_per_language, word_types, dictionary_coverage

``words`` counts whitespace words of every text field (QA answers are part of the context);
``words_switched_per_language`` sums to ``words_switched``; an example counts in
``examples_switched_per_language`` once for every language it has a switched word in (with
``per: example`` these sum to ``examples_switched``). ``dictionary_coverage[lang]`` is the share of
English word types (lower-cased cores) of the input found in that language's dictionary.
:func:`load_translations` returns ``method "translate_train"``, the tasks, ratio, seed,
``sources`` (where each language came from), ``rows`` and ``examples_available`` per language,
``examples_added_per_language`` and ``examples_added``.

CLI: ``xtrc-runtime augment`` (:mod:`xtrc_runtime.augment_cli`).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
import re
import unicodedata
from typing import Any, Mapping, Sequence

from xtrc import tasks
from xtrc.spec import CodeSwitch, DataSource, TranslateTrain

from xtrc_runtime.data import (
    ChoiceExample,
    DataError,
    DataLocation,
    DualExample,
    Example,
    QAExample,
    SentenceExample,
    TaggingExample,
    normalize,
    parse_jsonl,
    parse_parquet,
    read_hub_source,
    read_rows,
)

__all__ = ["CodeSwitcher", "Dictionary", "inside_tag", "load_dictionaries", "load_translations"]

Dictionary = dict[str, tuple[str, ...]]
"""Lower-cased English word → its translations in file order (each possibly several words)."""

_WS = re.compile(r"(\s+)")
_MISS = object()
_CACHE_SIZE = 1_000_000
"""Distinct whitespace words whose dictionary lookup a switcher remembers."""
_M64 = (1 << 64) - 1


# --- dictionaries ---------------------------------------------------------------------------

def load_dictionaries(path: str, languages: Sequence[str],
                      storage_options: dict[str, Any] | None = None) -> dict[str, Dictionary]:
    """MUSE-format dictionaries for ``languages`` from ``path``: an fsspec directory holding
    ``en-<lang>.txt`` files, or one file (then exactly one language). A line is the English
    word, whitespace, and the translation (the rest of the line, possibly several words)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    languages = list(dict.fromkeys(languages))
    if fs.isfile(root):
        if len(languages) != 1:
            raise ValueError(f"{path} is one dictionary file but {len(languages)} languages were asked for "
                             f"({', '.join(languages)}); give a directory holding en-<lang>.txt files")
        named = re.fullmatch(r"en-([A-Za-z]{2,3})\.txt", root.rstrip("/").rsplit("/", 1)[-1])
        if named and named.group(1).lower() != languages[0]:
            raise ValueError(f"dictionary file {path} is named for language {named.group(1)!r}, "
                             f"not {languages[0]!r}")
        files = {languages[0]: root}
    elif fs.isdir(root):
        files = {lang: f"{root.rstrip('/')}/en-{lang}.txt" for lang in languages}
        missing = [f for f in files.values() if not fs.isfile(f)]
        if missing:
            raise ValueError(f"no dictionary file {', '.join(missing)} (the dictionaries path holds en-<lang>.txt "
                             f"files, MUSE format)")
    else:
        raise ValueError(f"no dictionary at {path}: neither a file nor a directory")
    out: dict[str, Dictionary] = {}
    for lang, file in files.items():
        entries: dict[str, list[str]] = {}
        with fs.open(file, "rt", encoding="utf-8-sig") as f:
            for line in f:
                parts = line.split(None, 1)
                if len(parts) < 2:
                    continue
                translation = " ".join(parts[1].split())
                known = entries.setdefault(parts[0].lower(), [])
                if translation not in known:
                    known.append(translation)
        out[lang] = {word: tuple(ts) for word, ts in entries.items()}
    return out


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


# --- translate-train ------------------------------------------------------------------------

def load_translations(target_task: str, train_task: str, cfg: TranslateTrain, where: DataLocation,
                      *, seed: int) -> tuple[list[Example], dict[str, Any]]:
    """Machine-translated training examples of ``target_task`` for ``cfg.languages`` (a
    ``cfg.ratio`` share of each language's set), normalised as ``train_task`` rows."""
    info = tasks.TASKS[target_task]
    out: list[Example] = []
    sources: dict[str, str] = {}
    rows_per_lang: dict[str, int] = {}
    available: dict[str, int] = {}
    added: dict[str, int] = {}
    user_path = cfg.paths.get(target_task)
    by_language = _read_single_file(user_path, where.storage_options) if user_path else None
    for lang in dict.fromkeys(cfg.languages):
        if user_path is not None:
            if by_language is not None:
                if lang not in by_language:
                    raise DataError(f"translate-train file {user_path} has no rows with language {lang!r}")
                rows = by_language[lang]
            else:
                rows = read_rows(target_task, lang, "train",
                                 DataLocation(None, {target_task: DataSource(path=user_path)}, where.storage_options))
            sources[lang] = f"path:{user_path}"
        else:
            rows, sources[lang] = _rows_from_root_or_hub(target_task, lang, info, where)
        examples = []
        for i, row in enumerate(rows):
            example = _normalize(train_task, lang, row, i, sources[lang])
            if example is not None:
                examples.append(dataclasses.replace(example, id=f"tt-{lang}-{example.id}"))
        if rows and not examples:
            raise DataError(f"translate-train {lang} ({sources[lang]}): none of {len(rows)} rows is a usable "
                            f"{train_task} example")
        available[lang] = len(examples)
        keep = min(len(examples), max(1, round(cfg.ratio * len(examples)))) if examples else 0
        if keep < len(examples):
            chosen = sorted(random.Random(f"translate-train:{seed}:{target_task}:{lang}")
                            .sample(range(len(examples)), keep))
            examples = [examples[k] for k in chosen]
        rows_per_lang[lang] = len(rows)
        added[lang] = len(examples)
        out.extend(examples)
    stats: dict[str, Any] = {
        "method": "translate_train", "target_task": target_task, "train_task": train_task, "ratio": cfg.ratio,
        "seed": seed, "sources": sources, "rows": rows_per_lang, "examples_available": available,
        "examples_added_per_language": added, "examples_added": sum(added.values()),
    }
    return out, stats


def _read_single_file(path: str, options: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """Rows of a single translate-train file grouped by its ``language`` column; None for a directory."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path, **options)
    if not fs.isfile(root):
        if not fs.isdir(root):
            raise DataError(f"translate-train path {path} does not exist")
        return None
    data = fs.cat_file(root)
    rows = parse_parquet(data, root) if root.endswith(".parquet") else parse_jsonl(data, root)[0]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        if "language" not in row:
            raise DataError(f"translate-train file {path}: row {i} has no 'language' column (a single file "
                            "needs one; or lay the data out as {path}/{lang}/train.jsonl)")
        grouped.setdefault(str(row["language"]), []).append(row)
    return grouped


def _rows_from_root_or_hub(target_task: str, lang: str, info: tasks.TaskInfo,
                           where: DataLocation) -> tuple[list[dict[str, Any]], str]:
    looked: list[str] = []
    if where.data_root is not None:
        root = DataLocation(where.data_root, {}, where.storage_options)
        try:
            rows = read_rows(target_task, lang, "train", root, name="translate-train")
            return rows, f"data_root:{where.data_root.rstrip('/')}/{target_task}/{lang}/translate-train"
        except DataError as exc:
            looked.append(str(exc))
    translations = info.translations
    if translations is None or translations.source is None:
        why = "no translate-train data is registered for it" if translations is None else (
            f"its translations ({translations.description}) are not on the hub")
        raise DataError(f"no translate-train data for {target_task} ({lang}): {why}; give "
                        f"translate_train.paths.{target_task}" + (f" ({'; '.join(looked)})" if looked else ""))
    if lang not in translations.languages:
        raise DataError(f"{target_task} has translations only for {', '.join(translations.languages)}, not {lang!r}; "
                        f"give translate_train.paths.{target_task}")
    source = where.hub_source(translations.source)
    split = source.splits.get("train", "train")
    try:
        rows = read_hub_source(source, lang, split)
    except DataError as exc:
        raise DataError(f"translate-train: {exc}" + (f" ({'; '.join(looked)})" if looked else "")) from exc
    return rows, f"hub:{source.describe(lang, split)}"


def _normalize(train_task: str, lang: str, row: dict[str, Any], index: int, where: str) -> Example | None:
    try:
        example = normalize(train_task, lang, row, index)
        if example is None and train_task == "tydiqa":
            # TyDiQA's loader picks a language by id prefix ("arabic-..."); a translated file is
            # one language already and its ids may keep the English prefix or have none.
            rid = str(row.get("id", index))
            prefix = tasks.TYDIQA_ID_PREFIX.get(lang, lang)
            example = normalize(train_task, lang, dict(row, id=f"{prefix}-{rid}"), index)
            if example is not None:
                example = dataclasses.replace(example, id=rid)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"translate-train {lang} row {index} ({where}): {type(exc).__name__} {exc}; rows must be "
                        f"in the {train_task} schema") from exc
    return example
