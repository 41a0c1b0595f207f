"""The stage's view of the store: atomic writes, retried I/O, checkpoints, credentials.

Nothing a reader trusts is visible half-written: every file is written under a temporary name
and moved into place; a checkpoint counts only once ``checkpoints/latest.json`` names it; a
stage counts as done only once ``_SUCCESS`` exists, and that is written last.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar

from xtrc.lease import Lease, LeaseHeld, LeaseLost, LeaseRecord
from xtrc.store import (
    CACHE_DIR, CHECKPOINTS_DIR, LEASE_FILE, PROGRESS_FILE, SUCCESS, credential_options, normalize_uri, temporary_name,
    uri_scheme, write_atomic,
)

log = logging.getLogger("xtrc_runtime")
T = TypeVar("T")
LATEST = "latest.json"

def storage_options(uri: str, options: dict[str, Any], secret_dir: str | None = None) -> dict[str, Any]:
    """The spec's non-secret options plus credentials read from the mounted Secret's files
    (defined once, in :func:`xtrc.store.credential_options`). The values are never logged."""
    return credential_options(uri, options, secret_dir)


def retry(op: Callable[[], T], what: str, attempts: int = 6, first_delay: float = 0.5) -> T:
    """Run ``op``, retrying transient store errors with exponential backoff (not missing files)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return op()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, LeaseLost):
            raise
        except Exception as exc:  # network and server errors differ by backend; all are worth a retry
            if attempt == attempts:
                raise
            log.warning("store: %s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, exc,
                        attempt, attempts - 1, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


def content_cached(name: str, make: Callable[[], bytes], store: StageStore | None = None) -> tuple[bytes, str]:
    """Bytes named by a hash of what makes them (``name``, e.g. ``tokenizers/<digest>.json``):
    from the local cache, else the store's ``cache/``, else ``make()``, saved to both. Returns
    the bytes and where they came from (``local``, ``store`` or ``made``). A cache that cannot be
    read or written is skipped: the bytes are the same whoever makes them."""
    import os
    import tempfile

    from xtrc.store import local_cache_dir

    local = os.path.join(local_cache_dir(), *name.split("/"))
    try:
        with open(local, "rb") as f:
            return f.read(), "local"
    except OSError:
        pass
    data, origin = None, "made"
    if store is not None:
        data = store.read_shared(name)
        origin = "store"
    if data is None:
        data, origin = make(), "made"
        if store is not None:
            try:
                store.write_shared(name, data)
            except Exception as exc:  # a read-only store still runs the stage
                log.warning("could not save %s to the store's cache: %s", name, exc)
    try:
        os.makedirs(os.path.dirname(local), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(local))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, local)
    except OSError as exc:
        log.warning("could not save %s to the local cache: %s", name, exc)
    return data, origin


class StageStore:
    def __init__(self, root: str, key: str, options: dict[str, Any] | None = None):
        import fsspec

        self.root = normalize_uri(root)
        self.key = key
        self.fs, base = fsspec.core.url_to_fs(self.root, **(options or {}))
        self.base = f"{base.rstrip('/')}/stages/{key}"
        self.lease: Lease | None = None
        """While set, every write and removal first checks that this process still holds the
        stage's lease (:meth:`hold`): a runner that lost it never touches the stage again."""

    # --- the stage lease -------------------------------------------------------------------
    def hold(self, *, wait_seconds: float, on_wait: Callable[[LeaseRecord], None] | None = None) -> Lease:
        """Take the stage's lease (``stages/<key>/lease.json``) and renew it in the background.
        Another live holder is waited for up to ``wait_seconds``, then :class:`LeaseHeld`."""
        lease = Lease(self.fs, self.path(LEASE_FILE), what=f"stage {self.key}", scheme=uri_scheme(self.root))
        deadline = time.monotonic() + wait_seconds
        delay = 0.5
        while True:
            other = retry(lease.try_acquire, "take the stage lease")
            if other is None:
                break
            if time.monotonic() >= deadline or self.done:
                raise LeaseHeld(other)
            if on_wait is not None:
                on_wait(other)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
        lease.start_renewing()
        self.lease = lease
        return lease

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def _guard(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def path(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def upstream(self, key: str, *parts: str) -> str:
        return "/".join((self.base.rsplit("/", 1)[0], key, *parts))

    # --- reads -----------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return retry(lambda: self.fs.exists(self.path(rel)), f"exists {rel}")

    @property
    def done(self) -> bool:
        return self.exists(SUCCESS)

    def read_json(self, rel: str) -> Any:
        def op() -> Any:
            with self.fs.open(self.path(rel), "rb") as f:
                return json.loads(f.read())
        return retry(op, f"read {rel}")

    def shared_path(self, name: str) -> str:
        """A path under the store's content-addressed ``cache/`` (beside ``stages/``)."""
        return "/".join((self.base.rsplit("/", 2)[0], CACHE_DIR, name))

    def read_shared(self, name: str) -> bytes | None:
        path = self.shared_path(name)

        def op() -> bytes | None:
            try:
                with self.fs.open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        return retry(op, f"read {CACHE_DIR}/{name}")

    def write_shared(self, name: str, data: bytes) -> None:
        path = self.shared_path(name)
        retry(lambda: write_atomic(self.fs, path, data, temporary_name(path)), f"write {CACHE_DIR}/{name}")

    def download(self, remote_dir: str, local_dir: Path) -> None:
        """Copy a store directory (absolute store path) to a local directory."""
        local_dir.mkdir(parents=True, exist_ok=True)
        files = retry(lambda: self.fs.find(remote_dir), f"list {remote_dir}")
        if not files:
            raise FileNotFoundError(remote_dir)
        for remote in files:
            rel = remote[len(remote_dir.rstrip("/")) + 1:]
            target = local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            retry(lambda r=remote, t=target: self.fs.get_file(r, str(t)), f"get {rel}")

    # --- writes ----------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic (:func:`xtrc.store.write_atomic`), retried on transient errors."""
        final = self.path(rel)
        tmp = temporary_name(final)

        def op() -> None:
            self._guard()
            write_atomic(self.fs, final, data, tmp)
        retry(op, f"write {rel}")

    def write_progress(self, record: dict[str, Any]) -> None:
        """``progress.json``: how far the stage is, for live views. Best effort, one try: progress
        must never slow or fail training."""
        try:
            self._guard()
            write_atomic(self.fs, self.path(PROGRESS_FILE), json.dumps(record, sort_keys=True).encode())
        except LeaseLost:
            raise
        except Exception as exc:
            log.debug("progress not written: %s", exc)

    def write_json(self, rel: str, value: Any) -> None:
        self.write_bytes(rel, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode())

    def upload_dir(self, local_dir: Path, rel: str) -> None:
        """Upload every file under ``local_dir`` to ``rel`` (each file atomically)."""
        for path in sorted(local_dir.rglob("*")):
            if path.is_file():
                self.write_bytes(f"{rel}/{path.relative_to(local_dir).as_posix()}", path.read_bytes())

    def remove(self, rel: str) -> None:
        path = self.path(rel)
        self._guard()
        if retry(lambda: self.fs.exists(path), f"exists {rel}"):
            self._guard()
            retry(lambda: self.fs.rm(path, recursive=True), f"remove {rel}")

    def commit(self) -> None:
        """Mark the stage done: the one write that makes every other output trusted. The marker
        holds a fresh run id, so a stage re-run after its _SUCCESS was deleted commits a marker a
        listing tells apart (readers' caches of its results key on that)."""
        marker = {"run": uuid.uuid4().hex, "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.write_bytes(SUCCESS, json.dumps(marker, sort_keys=True).encode())

    # --- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, local_dir: Path, step: int, keep: int = 1) -> None:
        name = f"step-{step:09d}"
        self.upload_dir(local_dir, f"{CHECKPOINTS_DIR}/{name}")
        self.write_json(f"{CHECKPOINTS_DIR}/{LATEST}", {"name": name, "step": step})
        self._prune(keep, current=name)

    def latest_checkpoint(self, local_dir: Path) -> int | None:
        """Download the newest complete checkpoint into ``local_dir``; its step, or None."""
        if not self.exists(f"{CHECKPOINTS_DIR}/{LATEST}"):
            return None
        latest = self.read_json(f"{CHECKPOINTS_DIR}/{LATEST}")
        if local_dir.exists():
            shutil.rmtree(local_dir)
        try:
            self.download(self.path(CHECKPOINTS_DIR, latest["name"]), local_dir)
        except FileNotFoundError:
            # Named but gone (removed by hand, or by a writer of another era): resuming from it can
            # never succeed, so a retry would fail the same way. Training again from the start
            # gives the same result (training is deterministic per seed).
            log.warning("checkpoint %s named by %s/%s is missing; training from the start", latest["name"],
                        CHECKPOINTS_DIR, LATEST)
            if local_dir.exists():
                shutil.rmtree(local_dir)
            return None
        return int(latest["step"])

    def _prune(self, keep: int, current: str) -> None:
        try:
            entries = retry(lambda: self.fs.ls(self.path(CHECKPOINTS_DIR), detail=False), "list checkpoints")
        except FileNotFoundError:
            return
        names = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        old = [n for n in names if n.startswith("step-") and n != current and not n.endswith(LATEST)]
        for name in old[: max(0, len(old) - (keep - 1))]:
            self.remove(f"{CHECKPOINTS_DIR}/{name}")
