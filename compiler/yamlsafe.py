"""A strict YAML reader for specs: plain data only, with the position of every value.

Refuses what is dangerous or ambiguous in a spec: duplicate keys, non-string keys, tags,
merge keys, and aliases that expand past a budget (alias bombs). Plain scalars are typed by
the YAML 1.2 core schema, so ``no``, ``on`` and ``yes`` stay strings (``no`` is Norwegian's
language code) and only ``true``/``false`` are booleans.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

Loc = tuple[str | int, ...]

MAX_NODES = 100_000
"""Values a spec may expand to (aliases included): far above any real spec, far below a bomb."""
MAX_DEPTH = 64

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

_Loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlError(Exception):
    def __init__(self, message: str, position: Position | None, loc: Loc = ()):
        self.message = message
        self.position = position
        self.loc = loc
        super().__init__(message)


@dataclass
class Document:
    """A parsed spec: the data, and where each value (and each mapping key) stood."""

    data: Any
    values: dict[Loc, Position]
    keys: dict[Loc, Position]

    def position(self, loc: Loc, *, key: bool = False) -> Position:
        """Where ``loc`` stood, or its nearest ancestor that did (missing fields, normalised values)."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            pos = self.values.get(loc[:end])
            if pos is not None:
                return pos
        return Position(1, 1)


def _pos(node: yaml.Node | yaml.Token) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(node: yaml.ScalarNode) -> Any:
    value: str = node.value
    if node.style:  # quoted or block scalar: always a string (plain is None, or "" from libyaml)
        return value
    if _NULL.fullmatch(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.fullmatch(value):
        return int(value)
    if _OCT.fullmatch(value):
        return int(value[2:], 8)
    if _HEX.fullmatch(value):
        return int(value[2:], 16)
    if _FLOAT.fullmatch(value):
        return float(value)
    if _INF.fullmatch(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.fullmatch(value):
        return math.nan
    return value


class _Builder:
    def __init__(self, tags: dict[Position, str]) -> None:
        self.tags = tags
        self.count = 0
        self.values: dict[Loc, Position] = {}
        self.keys: dict[Loc, Position] = {}

    def build(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            # Through an alias, `node` stands where its anchor was defined; the top-level key
            # being built is where the expansion was written.
            where = loc[:1]
            what = (f"the document expands to more than {MAX_NODES} values; anchors/aliases that "
                    "multiply (an alias bomb) are refused" if self.count > MAX_NODES
                    else f"nesting deeper than {MAX_DEPTH} levels (a recursive alias?)")
            raise YamlError(what, self.keys.get(where) or self.values.get(where) or _pos(node), where)
        self.values.setdefault(loc, _pos(node))
        tag = self.tags.get(_pos(node))
        if tag is not None:
            raise YamlError(f"YAML tags such as {tag!r} are not allowed in specs; quote the value instead",
                            _pos(node), loc)
        if isinstance(node, yaml.ScalarNode):
            if node.tag != _STR_TAG:
                raise YamlError(f"YAML tags such as {node.tag!r} are not allowed in specs", _pos(node), loc)
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise YamlError(f"YAML tags such as {node.tag!r} are not allowed in specs", _pos(node), loc)
            return [self.build(item, loc + (i,), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        if node.tag != _MAP_TAG:
            raise YamlError(f"YAML tags such as {node.tag!r} are not allowed in specs", _pos(node), loc)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                raise YamlError("mapping keys must be plain strings", _pos(key_node), loc)
            key = _scalar(key_node)
            if key == "<<" and not key_node.style:
                raise YamlError("merge keys (<<) are not supported; write the fields out", _pos(key_node), loc)
            if not isinstance(key, str):
                raise YamlError(
                    f"mapping key {key_node.value!r} is read as {type(key).__name__}, not a string; quote it",
                    _pos(key_node),
                    loc,
                )
            if key in out:
                first = self.keys[loc + (key,)]
                raise YamlError(
                    f"duplicate key {key!r} (first at line {first.line}); keep one",
                    _pos(key_node),
                    loc + (key,),
                )
            self.keys[loc + (key,)] = _pos(key_node)
            out[key] = self.build(value_node, loc + (key,), depth + 1)
        return out


def parse(text: str) -> Document:
    """Parse one YAML document into plain data with positions; YamlError on anything refused."""
    try:
        # Explicit tags are found in the token stream: once composed, `!!str 3` cannot be told
        # from plain `3`. A tagged node starts where its tag does.
        tags = {_pos(t): (t.value[0] or "") + t.value[1] for t in yaml.scan(text, Loader=_Loader)
                if isinstance(t, yaml.TagToken)}
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else None
        raise YamlError(f"invalid YAML: {exc.problem or exc.context}", position) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", None) from None
    if len(nodes) > 1:
        raise YamlError("a spec file holds one YAML document; found several (---)", _pos(nodes[1]))
    if not nodes or nodes[0] is None:
        raise YamlError("the file is empty", Position(1, 1))
    builder = _Builder(tags)
    data = builder.build(nodes[0], (), 0)
    if data is None:
        raise YamlError("the file is empty", Position(1, 1))
    return Document(data, builder.values, builder.keys)
