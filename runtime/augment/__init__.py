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

Modules: :mod:`.dictionaries` (MUSE files), :mod:`.codeswitch` (``CodeSwitcher``) and
:mod:`.translate_train` (``load_translations``).
"""

from __future__ import annotations

from .codeswitch import CodeSwitcher, inside_tag
from .dictionaries import Dictionary, load_dictionaries
from .translate_train import load_translations

__all__ = ["CodeSwitcher", "Dictionary", "inside_tag", "load_dictionaries", "load_translations"]
