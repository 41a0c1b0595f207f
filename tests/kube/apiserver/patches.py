"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902)."""

from __future__ import annotations

from typing import Any

from .objects import _clone
from .resources import ApiError, _bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return _clone(patch)
    result = _clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise _bad_request("json patch must be a list of operations")
    doc = _clone(doc)

    def parent(d: Any, parts: list[str]) -> tuple[Any, str]:
        if not parts:
            raise _bad_request("cannot operate on the document root")
        cur = d
        for p in parts[:-1]:
            try:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None
        return cur, parts[-1]

    def get(d: Any, parts: list[str]) -> Any:
        cur = d
        for p in parts:
            try:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None
        return cur

    def remove(d: Any, parts: list[str]) -> Any:
        c, k = parent(d, parts)
        try:
            return c.pop(int(k)) if isinstance(c, list) else c.pop(k)
        except (KeyError, IndexError, ValueError):
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}") from None

    def add(d: Any, parts: list[str], value: Any) -> None:
        c, k = parent(d, parts)
        if isinstance(c, list):
            c.insert(len(c) if k == "-" else int(k), value)
        elif isinstance(c, dict):
            c[k] = value
        else:
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(parts)}")

    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            add(doc, parts, _clone(op.get("value")))
        elif kind == "remove":
            remove(doc, parts)
        elif kind == "replace":
            remove(doc, parts)
            add(doc, parts, _clone(op.get("value")))
        elif kind == "move":
            add(doc, parts, remove(doc, _pointer(op.get("from", ""))))
        elif kind == "copy":
            add(doc, parts, _clone(get(doc, _pointer(op.get("from", "")))))
        elif kind == "test":
            if get(doc, parts) != op.get("value"):
                raise ApiError(422, "Invalid", f"testing value /{'/'.join(parts)} failed")
        else:
            raise _bad_request(f"Unexpected kind: {kind}")
    return doc
