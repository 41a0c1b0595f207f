"""``xtrc-runtime augment --task T (--code-switch JSON | --translate-train JSON) [--seed S]
[--epoch E] [--data-root DIR] INPUT OUTPUT``: a training set augmented as a stage would augment it,
written to a file to look at."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from xtrc import tasks
from xtrc.spec import CodeSwitch, TranslateTrain

from xtrc_runtime.augment import CodeSwitcher, load_translations
from xtrc_runtime.data import DataError, DataLocation, Example, normalize


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message)


AUGMENT_DESCRIPTION = ("Write a training set as a stage would augment it (code-switching or translate-train); "
                       "the statistics go to stderr as one JSON line.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``xtrc-runtime augment``, in any order."""
    parser.add_argument("--task", required=True, help="task name (the target, for translate-train)")
    method = parser.add_mutually_exclusive_group(required=True)
    method.add_argument("--code-switch", metavar="JSON", help="code_switch settings as in the spec")
    method.add_argument("--translate-train", metavar="JSON", help="translate_train settings as in the spec")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=0)
    parser.add_argument("--data-root", help="data root holding {task}/{lang}/translate-train.jsonl")
    parser.add_argument("input", metavar="INPUT", help="JSONL rows in the schema of the task's English training set")
    parser.add_argument("output", metavar="OUTPUT", help="where to write the augmented examples (JSONL)")


def main_augment(argv: Sequence[str] | None) -> int:
    """``xtrc-runtime augment --task T (--code-switch JSON | --translate-train JSON) [--seed S]
    [--epoch E] [--data-root DIR] INPUT OUTPUT``.

    INPUT: JSONL rows in the schema of T's English training task (T itself, or MNLI for XNLI,
    SQuAD for XQuAD/MLQA), normalised with :func:`xtrc_runtime.data.normalize`. OUTPUT: the
    augmented training set as JSONL of the example dataclasses (code-switch: the switched set;
    translate-train: the input followed by the translated examples). The statistics go to
    stderr as one JSON line. Exit 2 with a one-line message on bad input.
    """
    parser = _Parser(prog="xtrc-runtime augment", description=AUGMENT_DESCRIPTION)
    add_arguments(parser)
    try:
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
    except _Usage as exc:
        return _usage_error(str(exc))
    return run_augment(args)


def _usage_error(message: str) -> int:
    print(f"xtrc-runtime augment: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def run_augment(args: argparse.Namespace) -> int:
    """Augment as ``args`` (parsed by :func:`add_arguments`) say; exit code 0 or 2."""
    import fsspec
    from pydantic import ValidationError

    try:
        try:
            task = tasks.resolve(args.task)
        except KeyError:
            raise _Usage(f"unknown task {args.task!r}") from None
        if not tasks.TASKS[task].trains:
            raise _Usage(f"{task} is a retrieval task: it has no training data to augment")
        train_on = tasks.TASKS[task].training_tasks
        if len(train_on) != 1:
            raise _Usage(f"{task} trains on {' then '.join(train_on)}; pass one of them as --task")
        train_task = train_on[0]
        raw = args.code_switch if args.code_switch is not None else args.translate_train
        flag = "--code-switch" if args.code_switch is not None else "--translate-train"
        try:
            settings = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _Usage(f"{flag} is not JSON: {exc}") from None
        try:
            model = CodeSwitch if args.code_switch is not None else TranslateTrain
            cfg = model.model_validate(settings)
        except ValidationError as exc:
            raise _Usage(f"invalid {flag}: " + "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors())) from None
        try:
            with fsspec.open(args.input, "rt", encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            raise _Usage(f"no input file {args.input}") from None
        except json.JSONDecodeError as exc:
            raise _Usage(f"{args.input} is not JSONL: {exc}") from None
        examples: list[Example] = []
        for i, row in enumerate(rows):
            try:
                example = normalize(train_task, "en", row, i)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _Usage(f"{args.input} row {i} is not a {train_task} row: {type(exc).__name__} {exc}") from None
            if example is not None:
                examples.append(example)
        if isinstance(cfg, CodeSwitch):
            switcher = CodeSwitcher.from_config(cfg)
            result, stats = switcher.switch(examples, seed=args.seed, epoch=args.epoch)
        else:
            added, stats = load_translations(task, train_task, cfg, DataLocation(args.data_root), seed=args.seed)
            result = examples + added
        with fsspec.open(args.output, "wt", encoding="utf-8") as f:
            for example in result:
                f.write(json.dumps(dataclasses.asdict(example), ensure_ascii=False) + "\n")
    except (_Usage, ValueError, DataError) as exc:
        return _usage_error(str(exc))
    print(json.dumps(stats, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_augment(sys.argv[1:]))
