"""Fingerprints of the data, dictionaries and model a stage reads: part of its key.

A stage's output depends on the bytes it reads, not only on their names, so its key includes:

* files (under ``data.root``, a ``data.tasks.<task>.path``, the code-switching dictionaries, an
  fsspec model directory): per file its path, its size and its ETag (object stores) or mtime;
  small files (at most ``HASH_BELOW`` bytes) by a hash of their content instead, so a copy of
  the same data keeps its keys. Only the files under the folders the stage reads count:
  ``{root}/{task}/{language}/`` for each task and language it reads, and files directly under
  ``{root}/{task}/`` (catalogues such as Mewsli-X's entities);
* generated data (``builtin:fixtures…``): the generator's version; its options are in the URI,
  which the key holds already;
* Hugging Face hub ids (datasets and models): the id, the config, and the commit sha its
  revision (``main``, ``refs/convert/parquet``, a tag) was resolved to at plan time and pinned
  in the store (:mod:`xtrc.revisions`): a new commit under the same branch is not read, and
  gives new keys only after ``--refresh-revisions``. An unresolved revision (offline) is
  fingerprinted by its name and marked unresolved: such keys are provisional too.

Each root is listed once per plan (one ``find`` with details), whatever the number of stages.
A root that cannot be listed (no credentials, offline) is fingerprinted by its path alone and
named in ``Fingerprinter.unlisted``: such keys are provisional, so commands that run stages
refuse them, and the others warn. When a store's endpoint cannot be reached at all, the other
roots on it are not tried: each try waits out the client's own retries (seconds per root), and
an offline ``xtrc plan`` or ``apply --dry-run`` would otherwise wait that long for every root.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Any

from xtrc.errors import XtrcError

HASH_BELOW = 256 * 1024
"""Files at most this big are fingerprinted by content, bigger ones by size and ETag/mtime."""
FIXTURES_GENERATOR = "xtrc-fixtures/4"
"""The generator version of ``builtin:fixtures`` data: bump it whenever the generator writes other
bytes (tests/unit/test_fixtures.py pins the bytes each version writes, so a change cannot slip by)."""
BUILTIN_PREFIX = "builtin:"


@dataclass
class Fingerprinter:
    """Fingerprints for one plan: each root is listed once and remembered."""

    store: str = ""
    storage_options: dict[str, Any] = field(default_factory=dict)
    """Options of the store; they apply to roots on the same kind of store only."""
    unlisted: list[str] = field(default_factory=list)
    """Roots that could not be listed (their fingerprint is then the path alone: provisional keys)."""
    _listings: dict[str, dict[str, str] | None] = field(default_factory=dict)
    _digests: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _unreachable: dict[tuple[str, str], str] = field(default_factory=dict)
    """(protocol, options) → the root whose listing could not connect, and why."""

    def files(self, root: str, what: str) -> dict[str, str] | None:
        """Relative path → identity of every file under ``root`` (listed once); None when the
        root cannot be listed (recorded in ``unlisted``)."""
        root = root.rstrip("/")
        if root not in self._listings:
            try:
                self._listings[root] = self._list(root, what)
            except XtrcError as exc:
                self._listings[root] = None
                self.unlisted.append(str(exc))
        return self._listings[root]

    def _list(self, root: str, what: str) -> dict[str, str]:
        import fsspec

        same_kind = "://" in root and root.split("://", 1)[0] == self.store.split("://", 1)[0]
        options = self.storage_options if same_kind else {}
        endpoint = (root.split("://", 1)[0] if "://" in root else "file", repr(sorted(options.items())))
        if endpoint in self._unreachable:
            raise XtrcError(f"{what}: {root!r} not listed: {self._unreachable[endpoint]}")
        try:
            fs, base = fsspec.core.url_to_fs(root, **options)
            found = fs.find(base, detail=True)
            if not found and fs.isfile(base):
                found = {base: fs.info(base)}
        except Exception as exc:  # every backend has its own errors; all mean "cannot read it"
            cause = f"{type(exc).__name__}: {exc}"
            if _cannot_connect(exc):
                self._unreachable[endpoint] = f"listing {root!r} could not connect to its endpoint ({cause})"
            raise XtrcError(f"{what}: cannot list {root!r} to fingerprint the data ({cause}); "
                            "check the path and its credentials") from None
        if not found:
            raise XtrcError(f"{what}: {root!r} holds no files; check the path")
        base = base.rstrip("/")
        out: dict[str, str] = {}
        for path, info in sorted(found.items()):
            if info.get("type", "file") != "file":
                continue
            rel = path[len(base) + 1:] if path.startswith(base + "/") else path.rsplit("/", 1)[-1]
            out[rel] = _identity(fs, path, info)
        return out

    def under(self, root: str, prefixes: list[str], what: str) -> str:
        """The fingerprint of the files of ``root`` under any of ``prefixes`` ('' = all)."""
        if root.startswith(BUILTIN_PREFIX):
            return f"generated {FIXTURES_GENERATOR}" if root.startswith("builtin:fixtures") else root
        memo = (root.rstrip("/"), tuple(sorted(set(prefixes))))
        if memo not in self._digests:
            files = self.files(root, what)
            if files is None:
                self._digests[memo] = f"not listed: {root}"
                return self._digests[memo]
            chosen = sorted((rel, ident) for rel, ident in files.items() if _selected(rel, prefixes))
            h = hashlib.sha256()
            for rel, ident in chosen:
                h.update(f"{rel}\0{ident}\n".encode())
            self._digests[memo] = f"{len(chosen)} files sha256:{h.hexdigest()[:24]}"
        return self._digests[memo]


_CONNECT_ERRORS = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError",
                             "NewConnectionError", "ConnectTimeout"})
"""Class names of the backends' own "could not connect" errors (botocore, aiohttp, urllib3,
requests), matched by name: fsspec backends are optional imports."""


def _cannot_connect(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the endpoint could not be reached at all: no
    name resolution, refused, or no connection in time (not an answer, even an error one, nor a
    reply that stalled)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionRefusedError, socket.gaierror)):
            return True
        if any(cls.__name__ in _CONNECT_ERRORS for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _selected(rel: str, prefixes: list[str]) -> bool:
    for prefix in prefixes:
        if not prefix or rel == prefix or rel.startswith(prefix + "/"):
            return True
        # a task-wide file directly in the task's folder (e.g. mewslix/entities.jsonl)
        task = prefix.split("/", 1)[0]
        if "/" in prefix and rel.startswith(task + "/") and "/" not in rel[len(task) + 1:]:
            return True
    return False


def _identity(fs: Any, path: str, info: dict[str, Any]) -> str:
    size = int(info.get("size") or 0)
    if size <= HASH_BELOW:
        try:
            with fs.open(path, "rb") as f:
                return f"{size}:sha256:{hashlib.sha256(f.read()).hexdigest()[:24]}"
        except OSError:
            pass
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("content_md5")
    if etag:
        return f"{size}:etag:{str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    return f"{size}:mtime:{mtime}"


def hub(kind: str, name: str, config: str | None, revision: str | None, sha: str | None) -> str:
    """A hub id at the commit its revision was resolved to (or marked unresolved)."""
    at = sha if sha else f"{revision or 'main'} (unresolved)"
    return f"hub {kind} {name}{'/' + config if config else ''}@{at}"
