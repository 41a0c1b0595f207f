"""Leases in the store: one orchestration loop per experiment, one process per stage.

A lease is one small JSON object (``experiments/<name>/lease.json`` for a loop,
``stages/<key>/lease.json`` for a stage process) naming its holder (a random id), host, pid and
an expiry in seconds since the epoch. The holder renews it well before it expires; anyone may
take over a lease whose expiry has passed.

How safe a take-over is depends on what the store offers:

* **S3** (and S3-compatible servers that honour conditional writes): a lease is created with
  ``If-None-Match: *`` and renewed or taken over with ``If-Match: <ETag of what was read>``, so
  of two writers racing for one lease exactly one succeeds.
* **Local files**: the same read-compare-write runs under ``flock`` on a lock file beside the
  lease: exact between processes of one machine (not across NFS clients).
* **Everything else** (and as a second check everywhere): write, wait a settle delay, read back
  and compare the holder; the later of two writers wins and the earlier one backs off. This is
  safe when no writer takes longer than the settle delay between its read and its write.

A lease whose holder ran on this host and is gone (killed) counts as expired at once.
Expiry compares the writer's clock with the reader's, so clocks must agree to well within the
time-to-live. A stage holder also fences itself: once its last successful renewal is older than
:data:`FENCE` of the time-to-live it stops writing (:meth:`Lease.check`), before anyone else can
see the lease expired; a partitioned node's stage thus stops before its replacement starts.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from xtrc.errors import XtrcError
from xtrc.store import LEASE_FILE, Store, uri_scheme, write_atomic

DEFAULT_TTL = 60.0
"""Seconds a lease lives without renewal (``XTRC_LEASE_TTL`` overrides it: tests use a few seconds)."""
FENCE = 0.75
"""A holder whose last renewal is older than this share of the time-to-live stops writing."""
EXIT_LEASE_HELD = 4
"""`xtrc run` / `apply --watch` / `orchestrate`: another loop holds the experiment's lease."""


def default_ttl() -> float:
    value = os.environ.get("XTRC_LEASE_TTL")
    return float(value) if value else DEFAULT_TTL


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    host: str
    pid: int
    what: str
    acquired: float
    expires: float
    ttl: float
    space: str = ""
    """The holder's pid namespace: its pid means something only to a reader in the same one."""

    def expired(self, now: float | None = None) -> bool:
        """Past its expiry, or held by a process of this host that no longer runs (a loop or stage
        that was killed: its restart need not wait out the time-to-live)."""
        if (time.time() if now is None else now) >= self.expires:
            return True
        return (self.host == socket.gethostname() and self.space == _pid_space() and self.pid != os.getpid()
                and not pid_running(self.pid))

    def describe(self, now: float | None = None) -> str:
        left = self.expires - (time.time() if now is None else now)
        when = f"expires in {left:.0f}s" if left >= 0 else f"expired {-left:.0f}s ago"
        return f"{self.what} on host {self.host}, pid {self.pid} (lease {when})"

    @classmethod
    def parse(cls, data: bytes) -> LeaseRecord | None:
        try:
            raw = json.loads(data)
            return cls(str(raw["holder"]), str(raw["host"]), int(raw["pid"]), str(raw.get("what", "")),
                       float(raw["acquired"]), float(raw["expires"]), float(raw["ttl"]), str(raw.get("space", "")))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged lease is no lease


class LeaseHeld(Exception):
    """Someone else holds a live lease."""

    def __init__(self, record: LeaseRecord):
        self.record = record
        super().__init__(f"held by {record.describe()}")


class LeaseLost(Exception):
    """The lease is no longer ours (taken over, or not renewed in time): stop writing."""


class Lease:
    """One lease object at ``path`` on filesystem ``fs`` (an fsspec filesystem)."""

    def __init__(self, fs: Any, path: str, *, what: str, scheme: str, ttl: float | None = None,
                 settle: float | None = None):
        self.fs = fs
        self.path = path
        self.what = what
        self.scheme = scheme
        self.ttl = default_ttl() if ttl is None else ttl
        self.settle = settle if settle is not None else (0.0 if scheme == "file" else 1.0 if scheme in ("s3", "s3a")
                                                         else 2.0)
        self.holder = uuid.uuid4().hex
        self.acquired = 0.0
        self.renewed = 0.0  # time.monotonic() of the last successful write
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reading ---------------------------------------------------------------------------
    def read(self) -> tuple[LeaseRecord | None, str | None]:
        """The current record and a token naming that version (None, None: no lease)."""
        for _ in range(5):
            try:
                before = self._version()
                data = self.fs.cat_file(self.path)
            except FileNotFoundError:
                return None, None
            if self.scheme in ("s3", "s3a") and self._version() != before:
                continue  # replaced between the two requests: read again
            return LeaseRecord.parse(data), before if self.scheme in ("s3", "s3a") else _digest(data)
        raise OSError(errno.EAGAIN, f"the lease {self.path} changed on every read")

    def _version(self) -> str | None:
        if self.scheme not in ("s3", "s3a"):
            return None
        self.fs.invalidate_cache(self.path)
        return str(self.fs.info(self.path).get("ETag", "")) or None

    # --- taking and keeping ----------------------------------------------------------------
    def try_acquire(self) -> LeaseRecord | None:
        """Take the lease if it is free, expired or already ours; else the live record of its holder."""
        record, version = self.read()
        if record is not None and record.holder != self.holder and not record.expired():
            return record
        try:
            self._write(version)
        except (LeaseLost, FileExistsError):  # a conditional write lost the race
            now_record, _ = self.read()
            return now_record or record
        if self.settle:
            time.sleep(self.settle)
        now_record, _ = self.read()
        if now_record is None or now_record.holder != self.holder:
            return now_record or record  # someone else wrote last; they hold it
        self.acquired = self.acquired or time.time()
        return None

    def acquire(self, *, wait: bool, on_wait: Callable[[LeaseRecord], None] | None = None,
                on_fault: Callable[[Exception, float], None] | None = None, poll: float | None = None) -> None:
        """Take the lease; :class:`LeaseHeld` when held and not ``wait``; else wait until it is free.
        Store errors are retried with backoff (``on_fault(error, seconds since the first)``),
        except a missing bucket or a refused credential."""
        fault_since: float | None = None
        delay = 0.5
        while True:
            try:
                other = self.try_acquire()
            except (PermissionError, LeaseLost):
                raise
            except Exception as exc:
                if _missing_bucket(exc):
                    raise
                fault_since = fault_since or time.monotonic()
                if on_fault is not None:
                    on_fault(exc, time.monotonic() - fault_since)
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            fault_since, delay = None, 0.5
            if other is None:
                return
            if not wait:
                raise LeaseHeld(other)
            if on_wait is not None:
                on_wait(other)
            time.sleep(poll if poll is not None else min(5.0, max(0.2, self.ttl / 6)))

    def renew(self) -> None:
        """Extend the lease; :class:`LeaseLost` when someone else holds it now."""
        record, version = self.read()
        if record is None or record.holder != self.holder:
            raise LeaseLost(f"the lease {self.path} is now " + (f"held by {record.describe()}" if record else "gone"))
        self._write(version)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            record, _ = self.read()
            if record is not None and record.holder == self.holder:
                self.fs.rm(self.path)
        except Exception:  # best effort: an unreleased lease simply expires
            pass

    def check(self, *, fence: bool = True) -> None:
        """Raise :class:`LeaseLost` if the lease was lost, or (``fence``) not renewed recently enough
        that it is certainly still ours."""
        if self._lost is not None:
            raise LeaseLost(self._lost)
        if fence and self.renewed and time.monotonic() - self.renewed > FENCE * self.ttl:
            raise LeaseLost(f"the lease {self.path} could not be renewed for {time.monotonic() - self.renewed:.0f}s "
                            f"(time-to-live {self.ttl:.0f}s): another process may take over")

    @property
    def lost(self) -> str | None:
        return self._lost

    def start_renewing(self) -> None:
        """Renew in a background thread every quarter of the time-to-live until :meth:`release`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="xtrc-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.renew()
            except LeaseLost as exc:
                self._lost = str(exc)
                return
            except Exception:  # the store is unreachable: try again soon; check() fences meanwhile
                self._stop.wait(min(2.0, self.ttl / 10))

    def _write(self, version: str | None) -> None:
        now = time.time()
        record = LeaseRecord(self.holder, socket.gethostname(), os.getpid(), self.what,
                             self.acquired or now, now + self.ttl, self.ttl, _pid_space())
        data = json.dumps(asdict(record), sort_keys=True).encode()
        started = time.monotonic()
        if self.scheme in ("s3", "s3a"):
            self._write_s3(data, version)
        elif self.scheme == "file":
            self._write_local(data, version)
        else:
            write_atomic(self.fs, self.path, data)
        self.renewed = started

    def _write_s3(self, data: bytes, version: str | None) -> None:
        condition = {"mode": "create"} if version is None else {"IfMatch": version}
        try:
            self.fs.pipe_file(self.path, data, **condition)
        except (FileExistsError, PermissionError, FileNotFoundError):
            raise
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # 412 Precondition Failed: someone wrote first
                raise LeaseLost(f"the lease {self.path} changed while we renewed it") from exc
            raise
        finally:
            self.fs.invalidate_cache(self.path)

    def _write_local(self, data: bytes, version: str | None) -> None:
        import fcntl

        path = self.path[len("file://"):] if self.path.startswith("file://") else self.path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(path, "rb") as f:
                    current: str | None = _digest(f.read())
            except FileNotFoundError:
                current = None
            if current != version:
                raise LeaseLost(f"the lease {path} changed while we renewed it")
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)


def _pid_space() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` of this pid namespace runs (a zombie, exited but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) runs no more
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _missing_bucket(exc: Exception) -> bool:
    from xtrc.store import MissingBucket

    return isinstance(exc, MissingBucket)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the loop's lease --------------------------------------------------------------------------


class LeaseHeldError(XtrcError):
    exit_code = EXIT_LEASE_HELD


def loop_lease(store: Store, experiment: str) -> Lease:
    """The lease of the orchestration loop of ``experiment`` in ``store``."""
    return Lease(store.fs, store.layout.experiment(experiment, LEASE_FILE), what=f"the loop of {experiment}",
                 scheme=uri_scheme(store.uri))


@contextmanager
def holding(lease: Lease, *, wait: bool, say: Callable[[str], None]) -> Iterator[Lease]:
    """Hold ``lease`` (renewed in the background) for the ``with`` block; a clear error when another
    loop holds it and not ``wait``."""
    told: list[str] = []

    def waiting(record: LeaseRecord) -> None:
        if record.holder not in told:
            told.append(record.holder)
            say(f"waiting: this experiment's loop is held by {record.describe()}")

    faults: list[float] = []

    def fault(exc: Exception, seconds: float) -> None:
        if not faults or seconds - faults[-1] >= 60:
            faults.append(seconds)
            say(f"taking the loop's lease: store unreachable since {seconds:.0f}s, retrying "
                f"({type(exc).__name__}: {exc})")

    try:
        lease.acquire(wait=wait, on_wait=waiting, on_fault=fault)
    except LeaseHeld as exc:
        raise LeaseHeldError(
            f"another loop runs this experiment: {exc.record.describe()}; stop it, or pass --wait to take over "
            "when it ends (a loop that died leaves a lease that expires by itself)") from None
    lease.start_renewing()
    try:
        yield lease
    except LeaseLost as exc:
        raise LeaseHeldError(f"this loop stopped: {exc}") from None
    finally:
        lease.release()
