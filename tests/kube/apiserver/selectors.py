"""Label and field selectors, parsed as a real server parses them (and refused as it refuses them)."""

from __future__ import annotations

import re
from typing import Any, Callable

from .resources import ApiError, Resource, _bad_request


_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_NAME_RE = re.compile(rf"^{_LABEL_NAME}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), with at most 63 characters")
    return None


def _label_value_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME_RE.match(value)):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character, with at most 63 characters")
    return None


_SEL_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=<>]+|<|>)")


def parse_label_selector(text: str) -> Callable[[dict], bool]:
    """A label selector string as a predicate over a label dict. Raises ApiError(400) if malformed."""
    tokens: list[str] = []
    pos = 0
    text = text or ""
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _SEL_TOKEN.match(text, pos)
        if not m:
            raise _bad_request(f"unable to parse requirement: invalid label selector {text!r}")
        tokens.append(m.group(1))
        pos = m.end()
    reqs: list[Callable[[dict], bool]] = []
    i = 0

    def fail(msg: str) -> ApiError:
        return _bad_request(f"unable to parse requirement: {msg} in label selector {text!r}")

    def key_at(j: int) -> str:
        if j >= len(tokens) or tokens[j] in ("(", ")", ",", "=", "==", "!=", "!", "<", ">"):
            raise fail("expected a key")
        err = _label_key_error(tokens[j])
        if err:
            raise fail(f"invalid label key {tokens[j]!r}: {err}")
        return tokens[j]

    while i < len(tokens):
        if tokens[i] == "!":
            k = key_at(i + 1)
            reqs.append(lambda lb, k=k: k not in lb)
            i += 2
        else:
            k = key_at(i)
            i += 1
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                reqs.append(lambda lb, k=k: k in lb)
            elif op in ("=", "==", "!="):
                i += 1
                v = tokens[i] if i < len(tokens) and tokens[i] not in (",", "(", ")") else ""
                if v:
                    i += 1
                if _label_value_error(v):
                    raise fail(f"invalid label value {v!r}")
                if op == "!=":
                    reqs.append(lambda lb, k=k, v=v: lb.get(k) != v)
                else:
                    reqs.append(lambda lb, k=k, v=v: k in lb and lb[k] == v)
            elif op in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail("expected '('")
                i += 1
                values: set[str] = set()
                while True:
                    if i >= len(tokens):
                        raise fail("expected ')'")
                    t = tokens[i]
                    if t == ")":
                        i += 1
                        break
                    if t == ",":
                        i += 1
                        continue
                    values.add(t)
                    i += 1
                if op == "in":
                    if not values:
                        raise fail("for 'in', 'notin' operators, values set can't be empty")
                    reqs.append(lambda lb, k=k, vs=values: lb.get(k) in vs)
                else:
                    reqs.append(lambda lb, k=k, vs=values: lb.get(k) not in vs)
            elif op in ("<", ">"):
                i += 1
                try:
                    n = int(tokens[i])
                except (IndexError, ValueError):
                    raise fail("for 'Gt', 'Lt' operators, the value must be an integer") from None
                i += 1

                def cmp(lb: dict, k: str = k, n: int = n, op: str = op) -> bool:
                    try:
                        x = int(lb[k])
                    except (KeyError, ValueError):
                        return False
                    return x > n if op == ">" else x < n

                reqs.append(cmp)
            else:
                raise fail(f"found '{op}', expected: '=', '!=', '==', 'in', notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens):
                raise fail("found 'end of string', expected: identifier")
    return lambda labels: all(r(labels or {}) for r in reqs)


_FIELDS = {
    None: {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")},
    "pods": {"status.phase": ("status", "phase"), "spec.nodeName": ("spec", "nodeName"),
             "spec.restartPolicy": ("spec", "restartPolicy"), "spec.serviceAccountName": ("spec", "serviceAccountName")},
    "jobs": {"status.successful": ("status", "succeeded")},
    "secrets": {"type": ("type",)},
    "events": {"involvedObject.name": ("involvedObject", "name"), "involvedObject.kind": ("involvedObject", "kind"),
               "involvedObject.uid": ("involvedObject", "uid"), "reason": ("reason",), "type": ("type",)},
}


def parse_field_selector(text: str, res: Resource) -> Callable[[dict], bool]:
    reqs = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise _bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        path = _FIELDS[None].get(field) or _FIELDS.get(res.plural, {}).get(field)
        if path is None:
            raise _bad_request(f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"')

        def get(obj: dict, path: tuple = path) -> str:
            cur: Any = obj
            for p in path:
                cur = cur.get(p) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        if op == "!=":
            reqs.append(lambda o, g=get, v=value: g(o) != v)
        else:
            reqs.append(lambda o, g=get, v=value: g(o) == v)
    return lambda obj: all(r(obj) for r in reqs)
