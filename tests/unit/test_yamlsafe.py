"""The strict YAML reader: positions, YAML 1.2 core scalars, and what it refuses."""

from __future__ import annotations

import math
from textwrap import dedent
from typing import Any

import pytest

from xtrc import yamlsafe
from xtrc.yamlsafe import Document, Loc, Position, YamlError, parse

NESTED = dedent("""\
    a: 1
    b:
      c: [x, y]
      d:
        - e: 5
          f: six
        - g
""")


@pytest.fixture
def nested() -> Document:
    return parse(NESTED)


def test_nested_data(nested: Document) -> None:
    assert nested.data == {"a": 1, "b": {"c": ["x", "y"], "d": [{"e": 5, "f": "six"}, "g"]}}


@pytest.mark.parametrize(
    ("loc", "line", "column"),
    [
        pytest.param((), 1, 1, id="root"),
        pytest.param(("a",), 1, 4, id="scalar"),
        pytest.param(("b",), 3, 3, id="block-mapping"),
        pytest.param(("b", "c"), 3, 6, id="flow-sequence"),
        pytest.param(("b", "c", 0), 3, 7, id="flow-item-0"),
        pytest.param(("b", "c", 1), 3, 10, id="flow-item-1"),
        pytest.param(("b", "d"), 5, 5, id="block-sequence"),
        pytest.param(("b", "d", 0), 5, 7, id="mapping-in-list"),
        pytest.param(("b", "d", 0, "e"), 5, 10, id="value-in-list-item"),
        pytest.param(("b", "d", 0, "f"), 6, 10, id="second-value-in-list-item"),
        pytest.param(("b", "d", 1), 7, 7, id="block-item-1"),
    ],
)
def test_value_positions(nested: Document, loc: Loc, line: int, column: int) -> None:
    assert nested.values[loc] == Position(line, column)
    assert nested.position(loc) == Position(line, column)


@pytest.mark.parametrize(
    ("loc", "line", "column"),
    [
        pytest.param(("a",), 1, 1, id="top"),
        pytest.param(("b",), 2, 1, id="top-with-block-value"),
        pytest.param(("b", "c"), 3, 3, id="nested"),
        pytest.param(("b", "d"), 4, 3, id="nested-with-list-value"),
        pytest.param(("b", "d", 0, "e"), 5, 7, id="in-list-item"),
        pytest.param(("b", "d", 0, "f"), 6, 7, id="second-in-list-item"),
    ],
)
def test_key_positions(nested: Document, loc: Loc, line: int, column: int) -> None:
    assert nested.keys[loc] == Position(line, column)
    assert nested.position(loc, key=True) == Position(line, column)


@pytest.mark.parametrize(
    ("loc", "line", "column"),
    [
        pytest.param(("b", "missing"), 3, 3, id="missing-key-in-mapping"),
        pytest.param(("b", "c", 5), 3, 6, id="index-past-end"),
        pytest.param(("b", "d", 0, "missing", 3), 5, 7, id="deep-missing"),
        pytest.param(("nope",), 1, 1, id="missing-top-level"),
        pytest.param(("nope", "deeper"), 1, 1, id="missing-chain"),
    ],
)
def test_position_falls_back_to_nearest_ancestor(nested: Document, loc: Loc, line: int, column: int) -> None:
    assert nested.position(loc) == Position(line, column)
    assert nested.position(loc, key=True) == Position(line, column)


def test_key_position_only_where_a_key_stood(nested: Document) -> None:
    assert ("b", "c", 0) not in nested.keys
    assert nested.position(("b", "c", 0), key=True) == Position(3, 7)


def test_position_after_comments_and_blank_lines() -> None:
    doc = parse("# header\n\n# more\nname: x\nlist:\n\n  - 1\n")
    assert doc.position(()) == Position(4, 1)
    assert doc.position(("list", 0)) == Position(7, 5)
    assert doc.position(("list",), key=True) == Position(5, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("True", True, id="True"),
        pytest.param("TRUE", True, id="TRUE"),
        pytest.param("false", False, id="false"),
        pytest.param("False", False, id="False"),
        pytest.param("null", None, id="null"),
        pytest.param("Null", None, id="Null"),
        pytest.param("NULL", None, id="NULL"),
        pytest.param("~", None, id="tilde"),
        pytest.param("", None, id="empty"),
        pytest.param("0", 0, id="zero"),
        pytest.param("42", 42, id="int"),
        pytest.param("-7", -7, id="negative-int"),
        pytest.param("+7", 7, id="plus-int"),
        pytest.param("012", 12, id="leading-zero-is-decimal"),
        pytest.param("0x1F", 31, id="hex"),
        pytest.param("0o17", 15, id="octal"),
        pytest.param("1.5", 1.5, id="float"),
        pytest.param("-0.25", -0.25, id="negative-float"),
        pytest.param(".5", 0.5, id="leading-dot-float"),
        pytest.param("1.", 1.0, id="trailing-dot-float"),
        pytest.param("1.0e-5", 1.0e-5, id="exponent"),
        pytest.param("1e3", 1000.0, id="exponent-without-dot"),
        pytest.param(".inf", math.inf, id="inf"),
        pytest.param("-.Inf", -math.inf, id="negative-inf"),
        pytest.param("+.INF", math.inf, id="plus-inf"),
        pytest.param("yes", "yes", id="yes"),
        pytest.param("no", "no", id="no"),
        pytest.param("on", "on", id="on"),
        pytest.param("off", "off", id="off"),
        pytest.param("y", "y", id="y"),
        pytest.param("n", "n", id="n"),
        pytest.param("Yes", "Yes", id="Yes"),
        pytest.param("NO", "NO", id="NO"),
        pytest.param("0b101", "0b101", id="binary-is-a-string"),
        pytest.param("1_000", "1_000", id="underscore-int-is-a-string"),
        pytest.param("12:30", "12:30", id="sexagesimal-is-a-string"),
        pytest.param("2001-12-14", "2001-12-14", id="date-is-a-string"),
        pytest.param("0x", "0x", id="bare-0x"),
        pytest.param("hello world", "hello world", id="words"),
        pytest.param('"1"', "1", id="double-quoted-int"),
        pytest.param("'2.5'", "2.5", id="single-quoted-float"),
        pytest.param('"true"', "true", id="quoted-true"),
        pytest.param("'null'", "null", id="quoted-null"),
        pytest.param('""', "", id="quoted-empty"),
        pytest.param('"0o17"', "0o17", id="quoted-octal"),
        pytest.param("|\n  42\n", "42\n", id="literal-block"),
        pytest.param(">-\n  true\n", "true", id="folded-block"),
    ],
)
def test_core_schema_scalars(text: str, expected: Any) -> None:
    value = parse(f"v: {text}\n").data["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan(text: str) -> None:
    value = parse(f"v: {text}\n").data["v"]
    assert isinstance(value, float) and math.isnan(value)


def test_aliases_within_budget_are_expanded() -> None:
    doc = parse(dedent("""\
        base: &b
          x: 1
          y: [a, b]
        one: *b
        two: [*b, *b]
        word: &w hello
        words: [*w, *w]
    """))
    base = {"x": 1, "y": ["a", "b"]}
    assert doc.data == {"base": base, "one": base, "two": [base, base], "word": "hello", "words": ["hello", "hello"]}
    assert doc.data["one"] is not doc.data["base"]
    assert doc.position(("one", "y", 1)) == Position(3, 10)
    assert doc.position(("two", 1, "x")) == Position(2, 6)


def test_multiplying_aliases_below_the_budget_are_fine() -> None:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abc", "bcd"):
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    doc = parse("\n".join(rows) + "\n")
    assert len(doc.data["d"]) == 10
    assert doc.data["d"][9][9][9] == ["x"] * 10


def test_alias_bomb_is_refused() -> None:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg"):
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(YamlError, match="alias bomb") as info:
        parse("\n".join(rows) + "\n")
    assert str(yamlsafe.MAX_NODES) in info.value.message
    assert info.value.position is not None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: &a [*a]\n", id="sequence"),
        pytest.param("a: &a {b: *a}\n", id="mapping"),
        pytest.param("a: &a\n  - x\n  - *a\n", id="block"),
    ],
)
def test_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(YamlError, match="recursive alias") as info:
        parse(text)
    assert info.value.position is not None


def test_undefined_alias_is_refused() -> None:
    with pytest.raises(YamlError, match="invalid YAML") as info:
        parse("a: 1\nb: *nope\n")
    assert info.value.position is not None and info.value.position.line == 2


def test_depth_within_limit_is_fine() -> None:
    depth = yamlsafe.MAX_DEPTH // 2
    value: Any = parse("v: " + "[" * depth + "]" * depth + "\n").data["v"]
    for _ in range(depth - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


def test_depth_limit() -> None:
    depth = yamlsafe.MAX_DEPTH + 10
    with pytest.raises(YamlError, match=f"deeper than {yamlsafe.MAX_DEPTH}") as info:
        parse("v: " + "[" * depth + "]" * depth + "\n")
    assert info.value.position is not None and info.value.position.line == 1


@pytest.mark.parametrize(
    ("text", "line", "first"),
    [
        pytest.param("a: 1\na: 2\n", 2, 1, id="plain"),
        pytest.param('a: 1\n"a": 2\n', 2, 1, id="double-quoted-second"),
        pytest.param("'a': 1\nb: 0\na: 2\n", 3, 1, id="single-quoted-first"),
        pytest.param("x:\n  k: 1\n  k: 2\n", 3, 2, id="nested"),
        pytest.param("x: [{k: 1, k: 2}]\n", 1, 1, id="flow-in-list"),
        pytest.param("a: 1\n? a\n: 2\n", 2, 1, id="explicit-key"),
    ],
)
def test_duplicate_keys_are_refused(text: str, line: int, first: int) -> None:
    with pytest.raises(YamlError, match="duplicate key") as info:
        parse(text)
    assert f"first at line {first}" in info.value.message
    assert info.value.position is not None and info.value.position.line == line


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1: x\n", id="int"),
        pytest.param("true: x\n", id="bool"),
        pytest.param("null: x\n", id="null"),
        pytest.param("1.5: x\n", id="float"),
        pytest.param("~: x\n", id="tilde"),
        pytest.param("[a]: x\n", id="sequence"),
        pytest.param("{a: 1}: x\n", id="mapping"),
    ],
)
def test_non_string_keys_are_refused(text: str) -> None:
    with pytest.raises(YamlError, match="key") as info:
        parse(text)
    assert info.value.position == Position(1, 1)


def test_quoted_number_key_is_a_string() -> None:
    assert parse('"1": x\n').data == {"1": "x"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("base: &b {x: 1}\nc:\n  <<: *b\n", 3, id="alias"),
        pytest.param("c:\n  <<: {x: 1}\n", 2, id="inline"),
        pytest.param("base: &b {x: 1}\nc:\n  <<: [*b]\n", 3, id="list"),
    ],
)
def test_merge_key_is_refused(text: str, line: int) -> None:
    with pytest.raises(YamlError, match="merge keys") as info:
        parse(text)
    assert info.value.position == Position(line, 3)
    assert info.value.loc == ("c",)


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse('"<<": 1\n').data == {"<<": 1}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("v: !!python/object/apply:os.system [ls]\n", id="python-apply"),
        pytest.param("v: !!python/object:builtins.dict {a: 1}\n", id="python-object"),
        pytest.param("v: !!python/name:os.system\n", id="python-name"),
        pytest.param("v: !custom x\n", id="local-tag"),
        pytest.param("v: !<tag:example.com,2024:x> y\n", id="verbatim-tag"),
        pytest.param('v: !!int "3"\n', id="int"),
        pytest.param("v: !!float 1\n", id="float"),
        pytest.param("v: !!binary aGk=\n", id="binary"),
        pytest.param("v: !!set {a, b}\n", id="set"),
        pytest.param("v: !!omap [a: 1]\n", id="omap"),
        pytest.param("v: !!str 3\n", id="str"),
        pytest.param("v: !!map {a: 1}\n", id="map"),
        pytest.param("v: !!seq [1]\n", id="seq"),
    ],
)
def test_explicit_tags_are_refused(text: str) -> None:
    with pytest.raises(YamlError, match="tags") as info:
        parse(text)
    assert info.value.position == Position(1, 4)
    assert info.value.loc == ("v",)


def test_tag_on_a_key_is_refused() -> None:
    with pytest.raises(YamlError):
        parse("!!python/name:os.system k: v\n")


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        pytest.param("a: b: c\n", "invalid YAML", Position(1, 5), id="syntax"),
        pytest.param("a: [1, 2\n", "invalid YAML", None, id="unclosed-flow"),
        pytest.param("a: 1\n---\nb: 2\n", "one YAML document", Position(3, 1), id="two-documents"),
        pytest.param("", "empty", Position(1, 1), id="empty"),
        pytest.param("# only a comment\n", "empty", Position(1, 1), id="comment-only"),
    ],
)
def test_document_level_errors(text: str, message: str, position: Position | None) -> None:
    with pytest.raises(YamlError, match=message) as info:
        parse(text)
    if position is not None:
        assert info.value.position == position
    assert info.value.loc == ()


def test_top_level_scalar_and_list_parse() -> None:
    with pytest.raises(YamlError, match="the file is empty"):
        parse("---\n...\n")
    assert parse("hello\n").data == "hello"
    assert parse("- 1\n- two\n").data == [1, "two"]
