"""Code-switching throughput (examples/s) on 100,000 fixture-like examples per example type.

    python bench/augment.py [--examples 100000] [--repeats 3] [--word-prob 0.5] [--per example]

Builds sentence-pair (MNLI), tagging (PAN-X) and QA (SQuAD) examples from the fixture
generator's English training data, repeated to ``--examples`` (ids made unique), and MUSE-style
dictionaries for de, es, ru and zh. For each type it times ``CodeSwitcher.switch`` (ratio 1,
the given word_prob, one epoch, statistics included) and, as a same-process baseline, merely
copying the examples (a fresh dataclass with fresh lists per example: the least any
augmentation that returns new examples must do). It prints examples/s of each (best of
``--repeats``, garbage collection off while timing), their ratio, and the words switched per example.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import tempfile
import time
from typing import Any, Callable

from xtrc.spec import CodeSwitch
from xtrc_runtime import fixtures
from xtrc_runtime.augment import CodeSwitcher, load_dictionaries
from xtrc_runtime.data import (
    ChoiceExample,
    DataLocation,
    Example,
    QAExample,
    SentenceExample,
    TaggingExample,
    load,
)

LANGUAGES = ("de", "es", "ru", "zh")
TYPES = {"sentence-pair (mnli)": "mnli", "tagging (panx)": "panx", "qa (squad)": "squad"}


def copy_example(e: Example) -> Example:
    if isinstance(e, SentenceExample):
        return SentenceExample(e.id, e.text_a, e.text_b, e.label)
    if isinstance(e, TaggingExample):
        return TaggingExample(e.id, list(e.words), list(e.tags))
    if isinstance(e, QAExample):
        return QAExample(e.id, e.question, e.context, list(e.answers))
    if isinstance(e, ChoiceExample):
        return ChoiceExample(e.id, e.context, list(e.choices), e.label)
    return dataclasses.replace(e)


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best time of ``repeats`` calls, garbage collection off while timing (as timeit does)."""
    times, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--word-prob", type=float, default=0.5)
    parser.add_argument("--per", choices=("example", "word"), default="example")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        fixtures.generate(root, tasks=list(TYPES.values()), languages=("en", *LANGUAGES),
                          sizes=fixtures.Sizes(train=2000, dev=10, test=10))
        where = DataLocation(f"{root}/data")
        base = {task: load(task, "en", "train", where) for task in TYPES.values()}
        dictionaries = load_dictionaries(f"{root}/dictionaries", LANGUAGES)
    config = CodeSwitch(languages=list(LANGUAGES), dictionaries="-", ratio=1.0, word_prob=args.word_prob,
                        per=args.per)
    switcher = CodeSwitcher(config, dictionaries)
    print(f"code-switch: {args.examples:,} examples per type, languages {' '.join(LANGUAGES)}, "
          f"word_prob {args.word_prob}, per {args.per}, best of {args.repeats}")
    print(f"{'type':<22}{'switch ex/s':>14}{'copy ex/s':>14}{'switch cost':>13}{'words/ex':>10}{'switched/ex':>13}")
    for name, task in TYPES.items():
        pool = base[task]
        examples = [dataclasses.replace(pool[i % len(pool)], id=f"{pool[i % len(pool)].id}-{i}")
                    for i in range(args.examples)]
        t_switch, (_, stats) = best(lambda: switcher.switch(examples, seed=1, epoch=0), args.repeats)
        t_copy, _ = best(lambda: [copy_example(e) for e in examples], args.repeats)
        n = len(examples)
        print(f"{name:<22}{n / t_switch:>14,.0f}{n / t_copy:>14,.0f}{t_switch / t_copy:>11.1f}x "
              f"{stats['words'] / n:>10.1f}{stats['words_switched'] / n:>13.1f}")


if __name__ == "__main__":
    main()
