"""`xtrc schema` and `xtrc tasks`: the spec's JSON Schema, the task registry and the benchmark protocol."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def schema_command(args: argparse.Namespace) -> int:
    from xtrc.spec import Experiment

    schema = Experiment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "xtrc Experiment (xtrc.dev/v1alpha1)"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def tasks_command(args: argparse.Namespace) -> int:
    from xtrc import tasks

    if args.json:
        from xtrc import protocol

        print(json.dumps({"tasks": [_jsonable(info) for info in tasks.TASKS.values()],
                          "groups": {g: list(m) for g, m in tasks.GROUPS.items()},
                          "protocol": {b: {t: _jsonable(r) for t, r in rules.items()}
                                       for b, rules in protocol.PROTOCOLS.items()}}, indent=2))
        return 0
    from rich.console import Console

    from xtrc.report.fit import print_fitted

    rows = []
    for info in tasks.TASKS.values():
        source = info.source.dataset + (f" ({info.source.config})" if info.source.config else "") if info.source \
            else "user path"
        others: dict[str, list[str]] = {}
        for lang, elsewhere in info.sources_by_language.items():  # XTREME-R's additions
            others.setdefault(elsewhere.dataset, []).append(lang)
        source += "".join(f"; {' '.join(langs)}: {name}" for name, langs in others.items())
        rows.append([info.type, ",".join(sorted(info.roles)), str(len(info.languages)),
                     info.metrics[0] if info.metrics else "", ",".join(info.train_on) or "-", source])
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    print_fitted(Console(width=100_000) if piped else Console(), "xtrc task registry", "task", list(tasks.TASKS),
                 ["type", "roles", "langs", "headline", "trains on", "source"], rows, justify="left")
    print("groups:")
    for group, members in tasks.GROUPS.items():
        print(f"  {group} = {' '.join(members)}")
    _print_protocol(Console(width=100_000) if piped else Console(), args.benchmark)
    return 0


def _print_protocol(console: Any, benchmark: str) -> None:
    from xtrc import protocol
    from xtrc.report.fit import print_fitted

    rules = protocol.PROTOCOLS[benchmark]
    rows = [[rule.stage, ",".join(rule.train_on) or "-", rule.objective,
             "arm's SQuAD model" if rule.init == "squad" else "base/intermediate",
             ",".join(sorted(rule.augment)) or "-", rule.selection] for rule in rules.values()]
    print_fitted(console, f"{benchmark} protocol (xtrc.protocol)", "target", list(rules),
                 ["stage", "trains on", "objective", "starts from", "augmentation", "selection"], rows,
                 justify="left")
    import textwrap

    width = min(getattr(console, "width", 80) or 80, 100)

    def item(text: str) -> None:
        print(textwrap.fill(text, width=width, initial_indent="  ", subsequent_indent="    "))

    print("scoring (reference):")
    for rule in rules.values():
        item(f"{rule.task}: {rule.scoring} ({rule.reference})")
    print("deviations from the reference:")
    for rule in rules.values():
        for deviation in rule.deviations:
            item(f"{rule.task}: {deviation}")


def _jsonable(value: Any) -> Any:
    """A registry dataclass as JSON values (sets sorted, mappings and tuples as objects and lists)."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
