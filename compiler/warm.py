"""Warm local stages: a pre-imported parent process (``xtrc-runtime warm-server``) forks each stage,
so a stage skips the seconds a fresh interpreter spends importing torch and transformers.

The pool is an optimisation only: whenever the parent cannot start or answer, :meth:`spawn` returns
None and the backend starts the stage as a plain process. The parent starts on first use with the
environment of the stages (libraries read some variables once, at import), and is started again
if that environment changes. It exits when this process goes away (its stdin closes), after its
running stages end; those stages keep running meanwhile, as plain processes would.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from xtrc.lease import pid_running

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
READY_TIMEOUT_S = 120.0


class WarmPool:
    def __init__(self, state_dir: Path, command: list[str]):
        self.state_dir = state_dir
        self.command = command  # the runtime executable
        self.socket_path: Path | None = None
        self.process: subprocess.Popen | None = None
        self.base_env: dict[str, str] | None = None
        self.broken = False
        self.is_ready = False
        self.started = 0.0
        self.exits: dict[int, Path] = {}  # pid → where the parent writes its exit code
        atexit.register(self.close)

    def spawn(self, argv: list[str], env: dict[str, str], log: Path, exit_path: Path, *,
              wait: bool = True) -> int | None:
        """Fork a stage from the warm parent; its pid, or None: start it cold instead (the parent
        failed; or, without ``wait``, it is still importing). The first stage waits for the parent
        by default: importing once beside cold stages would compete with them for the CPUs."""
        if self.broken:
            return None
        base = {k: v for k, v in env.items() if k not in STAGE_ENV}
        if self.process is None or self.process.poll() is not None or base != self.base_env:
            self.close()
            if not self._start(base):
                self.broken = True
                return None
        if not self._ready(READY_TIMEOUT_S if wait else 0.0):
            return None
        reply = self._ask({"argv": argv, "env": env, "log": str(log), "exit": str(exit_path)})
        if reply is None or "pid" not in reply:
            return None
        pid = int(reply["pid"])
        self.exits[pid] = exit_path
        return pid

    def pending(self, pid: int) -> bool:
        """True while a stage of this pool has ended but the parent has not yet written its exit code."""
        path = self.exits.get(pid)
        if path is None or path.exists():
            return False
        return self.process is not None and self.process.poll() is None

    def forget(self, pid: int) -> None:
        """A cancelled stage: its exit code is not recorded (a cancelled stage has not failed)."""
        if self.exits.pop(pid, None) is not None and self.process is not None and self.process.poll() is None:
            self._ask({"forget": pid})

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()  # the parent leaves once its running stages end
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
    def _start(self, base_env: dict[str, str]) -> bool:
        # AF_UNIX paths are limited to ~100 bytes: the socket lives in a short temporary folder
        self.socket_path = Path(tempfile.mkdtemp(prefix="xtrc-warm-")) / "s"
        log = open(self.state_dir / "warm-server.log", "ab")
        try:
            self.process = subprocess.Popen(
                [*self.command, "warm-server", "--socket", str(self.socket_path)], env=base_env,
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
            self.is_ready = self.process.stdout.readline().strip() == b"ready"
            if not self.is_ready:  # it died or said something else: no warm stages in this run
                self.broken = True
                self.close()
        elif time.monotonic() - self.started > READY_TIMEOUT_S:
            self.broken = True
            self.close()
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
