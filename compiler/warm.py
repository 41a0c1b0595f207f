"""Warm local stages: a pre-imported parent process (``xtrc-runtime warm-server``) forks each stage,
so a stage skips the seconds a fresh interpreter spends importing torch and transformers.

The pool is an optimisation only: whenever the parent cannot start, is unsafe to fork, or does
not answer, :meth:`spawn` returns None and the backend starts the stage as a plain process. The
parent starts on first use with the environment of the stages (libraries read some variables once,
at import), and is started again if that environment changes. It runs in its own session, so a
Ctrl-C or a kill of this process's group does not reach it; when this process goes away, killed or
not, the parent's stdin closes and it exits once its running stages have ended. Those stages keep
running meanwhile, as plain processes would, and their parent still writes their exit codes for a
restarted backend to read.

A stage forked for this process starts work only after :meth:`spawn`'s ``recorded`` callback has
returned (the backend writes the pid to its state file there): a backend killed between the fork
and that record leaves no stage running that nobody would adopt.
"""

from __future__ import annotations

import atexit
import json
import socket
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from xtrc.lease import pid_running

GO = b"go"
"""The client's word that it recorded a forked stage's pid: the stage may start."""


def read_line(connection: socket.socket) -> bytes:
    """One newline-terminated message of the warm-stage protocol (both sides speak it)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


STAGE_ENV = frozenset({"XTRC_STAGE_CONFIG", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED"})
"""Variables that differ between stages (xtrc_runtime.warm.STAGE_ENV; this side never imports it)."""
PARENT_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
"""Set for the parent unless the stages' environment sets them: at import, numpy's and scipy's
OpenBLAS start thread pools and pyarrow's jemalloc a purging thread, and a parent with threads is
not safe to fork. Stages do their math in torch, whose thread count each child sets for itself."""
READY_TIMEOUT_S = 120.0


class WarmPool:
    def __init__(self, state_dir: Path, command: list[str]):
        self.state_dir = state_dir
        self.command = command  # the runtime executable
        self.socket_path: Path | None = None
        self.process: subprocess.Popen | None = None
        self.base_env: dict[str, str] | None = None
        self.broken = False
        self.why_cold = ""  # once broken: why stages start as plain processes
        self.is_ready = False
        self.started = 0.0
        self.exits: dict[int, Path] = {}  # pid → where the parent writes its exit code
        atexit.register(self.close)

    @property
    def parent_pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def ready_for(self, env: dict[str, str], *, wait: bool = True) -> bool:
        """Whether a parent for stages with ``env`` is ready to fork them, starting one if needed.
        Without ``wait`` it does not wait for the imports: False while they run (the first stage
        waits by default: importing once beside cold stages would compete with them for the CPUs)."""
        if self.broken:
            return False
        base = {k: v for k, v in env.items() if k not in STAGE_ENV}
        if self.process is None or self.process.poll() is not None or base != self.base_env:
            self.close()
            if not self._start(base):
                self._give_up("the warm parent could not be started")
                return False
        return self._ready(READY_TIMEOUT_S if wait else 0.0)

    def spawn(self, argv: list[str], env: dict[str, str], log: Path, exit_path: Path,
              recorded: Callable[[int], None] = lambda pid: None) -> int | None:
        """Fork a stage from the ready parent (see :meth:`ready_for`): its pid, or None: start it
        cold instead. ``recorded(pid)`` runs before the stage may start; if it raises, the child is
        stopped unstarted and the error propagates."""
        if not self.is_ready or self.socket_path is None:
            return None
        request = {"argv": argv, "env": env, "cwd": str(Path.cwd()), "log": str(log), "exit": str(exit_path)}
        try:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return None
        with connection:
            try:
                connection.settimeout(30)
                connection.connect(str(self.socket_path))
                connection.sendall((json.dumps(request) + "\n").encode())
                reply = json.loads(read_line(connection) or b"{}")
            except (OSError, ValueError):
                return None
            if "pid" not in reply:
                return None
            pid = int(reply["pid"])
            recorded(pid)  # raises: the connection closes without GO and the parent stops the child
            try:
                connection.sendall(GO + b"\n")
            except OSError:
                return None  # the parent is gone: the child never starts
        self.exits[pid] = exit_path
        return pid

    def forget(self, pid: int) -> None:
        """A cancelled stage: its exit code is not recorded (a cancelled stage has not failed)."""
        if self.exits.pop(pid, None) is not None and self.parent_pid is not None:
            self._ask({"forget": pid})

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                try:
                    self.process.stdin.close()  # the parent leaves once its running stages end
                except OSError:
                    pass
            if not any(pid_running(pid) for pid in self.exits):
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.terminate()
                    self.process.wait()
            self.process = None
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
            self.socket_path = None

    # --- internals -------------------------------------------------------------------------
    def _give_up(self, why: str) -> None:
        self.broken = True
        self.why_cold = why
        self.close()

    def _start(self, base_env: dict[str, str]) -> bool:
        # AF_UNIX paths are limited to ~100 bytes: the socket lives in a short temporary folder
        self.socket_path = Path(tempfile.mkdtemp(prefix="xtrc-warm-")) / "s"
        log = open(self.state_dir / "warm-server.log", "ab")
        try:
            self.process = subprocess.Popen(
                [*self.command, "warm-server", "--socket", str(self.socket_path)], env={**PARENT_ENV, **base_env},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        except OSError:
            return False
        finally:
            log.close()
        self.base_env = base_env
        self.started = time.monotonic()
        self.is_ready = False
        return True

    def _ready(self, timeout: float) -> bool:
        """Whether the parent has said "ready" (torch and transformers imported), waiting up to ``timeout``."""
        if self.is_ready:
            return True
        assert self.process is not None and self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if readable:
            line = self.process.stdout.readline().decode(errors="replace").strip()
            self.is_ready = line == "ready"
            if not self.is_ready:  # it died or found itself unsafe to fork: no warm stages in this run
                self._give_up(f"the warm parent said {line!r}" if line else
                              f"the warm parent exited (see {self.state_dir / 'warm-server.log'})")
        elif time.monotonic() - self.started > READY_TIMEOUT_S:
            self._give_up(f"the warm parent was not ready after {READY_TIMEOUT_S:.0f}s")
        return self.is_ready

    def _ask(self, request: dict) -> dict | None:
        if self.socket_path is None:
            return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(self.socket_path))
                s.sendall((json.dumps(request) + "\n").encode())
                data = read_line(s)
            return json.loads(data) if data else None
        except (OSError, ValueError):
            return None
