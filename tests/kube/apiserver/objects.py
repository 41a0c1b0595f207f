"""Small helpers on stored objects: timestamps, copies, ``metadata``, resource quantities."""

from __future__ import annotations

import copy
import re
import time
from datetime import datetime, timezone
from typing import Any


def now_rfc3339(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float:
    s = s.replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()


def _clone(obj: Any) -> Any:
    return copy.deepcopy(obj)


def _meta(obj: dict) -> dict:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = obj["metadata"] = {}
    return m


_QTY_SUFFIX = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QTY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$")


def parse_quantity(q: Any) -> float:
    """A Kubernetes resource quantity ("500m", "4Gi", 2, "1e3") as a float; ValueError if malformed."""
    if isinstance(q, bool):
        raise ValueError(q)
    if isinstance(q, (int, float)):
        return float(q)
    m = _QTY_RE.match(str(q).strip())
    if not m:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exp, suffix = m.groups()
    value = float(number)
    if exp:
        return value * 10 ** int(exp[1:])
    return value * _QTY_SUFFIX[suffix or ""]
