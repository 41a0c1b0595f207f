"""Read a spec file into an :class:`~xtrc.spec.Experiment`, reporting every problem at once."""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from xtrc import tasks
from xtrc.crosscheck import advisories, cross_check
from xtrc.errors import Issue, SpecError, format_path
from xtrc.spec import CREDENTIAL_WORDS, HUB_TOKEN_KEY, Experiment
from xtrc.yamlsafe import Document, Loc, YamlError, parse


def load(path: str | Path) -> Experiment:
    """Load and validate one spec file; SpecError lists every problem with FILE:LINE:COL."""
    return load_with_warnings(path)[0]


def load_with_warnings(path: str | Path) -> tuple[Experiment, list[Issue]]:
    """``load``, plus what is allowed but risky (crosscheck.advisories), each with FILE:LINE:COL."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Issue(str(path), 0, 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Issue(str(path), 0, 0, "", f"cannot read: {exc}")]) from None
    experiment, warnings = _load(text, str(path))
    return relative_to_spec(experiment, path), warnings


def relative_to_spec(experiment: Experiment, path: Path) -> Experiment:
    """A relative ``storage.uri`` (a bare path) names a directory relative to the spec file, not to
    wherever the command runs: made absolute here, the one place every command loads a spec."""
    uri = experiment.storage.uri
    if "://" in uri or os.path.isabs(os.path.expanduser(uri)):
        return experiment
    resolved = os.path.normpath(os.path.join(os.path.abspath(path.parent), uri))
    return experiment.model_copy(update={"storage": experiment.storage.model_copy(update={"uri": resolved})})


def load_text(text: str, filename: str = "<spec>") -> Experiment:
    return _load(text, filename)[0]


def _load(text: str, filename: str) -> tuple[Experiment, list[Issue]]:
    try:
        doc = parse(text)
    except YamlError as exc:
        line, col = (exc.position.line, exc.position.column) if exc.position else (0, 0)
        raise SpecError([Issue(filename, line, col, format_path(exc.loc), exc.message)]) from None
    if not isinstance(doc.data, dict):
        raise SpecError([Issue(filename, 1, 1, "", "a spec is a mapping with apiVersion, kind, metadata, …")])
    try:
        experiment = Experiment.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError([_issue_from_pydantic(err, doc, filename) for err in exc.errors()]) from None
    problems = cross_check(experiment)
    if problems:
        raise SpecError([_issue(doc, filename, loc, message) for loc, message in problems])
    return experiment, [_issue(doc, filename, loc, message) for loc, message in advisories(experiment)]


def issues_at(path: str | Path, problems: list[tuple[Loc, str]]) -> list[Issue]:
    """Problems found after loading (on the cluster, in the store), each at its field's position in
    the spec file (the file's own name when it can no longer be read)."""
    try:
        doc = parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlError):
        return [Issue(str(path), 0, 0, format_path(loc), message) for loc, message in problems]
    return [_issue(doc, str(path), loc, message) for loc, message in problems]


def _issue(doc: Document, filename: str, loc: Loc, message: str, *, key: bool = False) -> Issue:
    loc = _as_written(doc.data, loc)
    pos = doc.position(loc, key=key)
    return Issue(filename, pos.line, pos.column, format_path(loc), message)


def _as_written(data: Any, loc: Loc) -> Loc:
    """Map a path through canonicalised mapping keys (task aliases: ``pan-x`` → ``panx``) back
    to the keys the file holds, so positions and paths name what the user wrote."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part not in data:
            part = next((k for k in data if _canonical(k) == part), part)
        out.append(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return tuple(out)


def _canonical(key: str) -> str:
    try:
        return tasks.resolve(key)
    except KeyError:
        return key


def _issue_from_pydantic(err: Any, doc: Document, filename: str) -> Issue:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a dict key failed validation: point at the key itself
        return _issue(doc, filename, loc[:-1], _message(err), key=True)
    if kind == "extra_forbidden":
        allowed = _fields_at(Experiment, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if allowed else []
        secret_field = None if close else _secret_field_for(loc)  # `secrets:` is a typo, not a credential
        if secret_field:
            return _issue(doc, filename, loc, f"'{loc[-1]}' looks like a credential, and credentials never go in a "
                          f"spec: put it in a Kubernetes Secret and name the Secret in {secret_field}", key=True)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return _issue(doc, filename, loc, f"unknown field{hint}", key=True)
    if kind == "missing":
        return _issue(doc, filename, loc, "required field is missing")
    return _issue(doc, filename, loc, _message(err))


def _secret_field_for(loc: Loc) -> str | None:
    """For an unknown key that looks like a credential (``hub.token``, ``storage.password``,
    ``hf_token``): the field that names the Secret it belongs in."""
    name = str(loc[-1]).lower() if loc else ""
    if not any(word in name for word in CREDENTIAL_WORDS):
        return None
    section = loc[0] if len(loc) > 1 else None
    if section == "storage":
        return "storage.secret"
    if section == "hub" or (section is None and ("token" in name or "hf" in name)):
        return f"hub.secret (key '{HUB_TOKEN_KEY}')"
    return None


def _message(err: Any) -> str:
    msg: str = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg[:1].lower() + msg[1:]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names (by alias) of the model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] to reach a model, list or dict type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
