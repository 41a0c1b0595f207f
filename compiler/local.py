"""The local backend: each stage is a local process running the same command its Job would run
(``xtrc-runtime run-stage --config-env XTRC_STAGE_CONFIG``), with GPUs assigned through
``CUDA_VISIBLE_DEVICES``.

The backend's state lives in files, so a restarted ``xtrc run`` finds stages that are still
running (their process is alive) instead of starting them again:
``<state dir>/<key>.json`` holds the pid, attempts and GPUs of a stage's current process, and
``<key>.exit`` its exit code once it ends; ``<key>.log`` is its log (copied to the store's
``stages/<key>/log.txt`` when it ends).

Stages start warm by default: forked from a parent that already imported torch and transformers
(:mod:`xtrc.warm`), the same command in a process of its own. ``XTRC_WARM_STAGES=0`` starts each
as a fresh interpreter instead. Either way a stage outlives a killed ``xtrc run``: a forked stage's
parent stays until its stages end and writes their exit codes, and its pid is in the record too,
so a restarted backend waits for an exit code that is still coming.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtrc.lease import pid_running
from xtrc.orchestrate import BackendStatus
from xtrc.stage import StageConfig
from xtrc.store import LOG_FILE, Store, local_cache_dir, write_atomic
from xtrc.warm import WarmPool

CONFIG_ERROR = 2
RUNTIME_COMMAND = ("run-stage", "--config-env", "XTRC_STAGE_CONFIG")


def runtime_executable() -> list[str]:
    """`xtrc-runtime` beside this Python, else the module form."""
    exe = shutil.which("xtrc-runtime", path=os.path.dirname(sys.executable)) or shutil.which("xtrc-runtime")
    return [exe] if exe else [sys.executable, "-m", "xtrc_runtime.cli"]


def visible_gpus() -> list[str]:
    """GPU ids this machine offers: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def state_dir_for(store_uri: str) -> Path:
    """Local run state beside a file:// store, else in the user's cache (one folder per store)."""
    if store_uri.startswith("file://"):
        return Path(store_uri[len("file://"):]) / ".local-runs"
    digest = hashlib.sha256(store_uri.encode()).hexdigest()[:16]
    return Path(local_cache_dir()) / "runs" / digest


@dataclass
class _Child:
    key: str
    process: subprocess.Popen | None  # None for a process adopted from an earlier `xtrc run`
    pid: int
    gpus: list[str]
    started: float
    attempts: int
    parent: list | None = None  # a warm stage's parent: [pid, start time], who writes its exit code


class LocalBackend:
    def __init__(self, store: Store, *, retries: int = 0, gpus_per_stage: int = 0, gpus: list[str] | None = None,
                 state_dir: Path | None = None, env: dict[str, str] | None = None, warm: bool | None = None):
        self.store = store
        self.retries = retries
        self.gpus_per_stage = gpus_per_stage
        self.free_gpus = list(visible_gpus() if gpus is None else gpus)
        self.state_dir = state_dir or state_dir_for(store.uri)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.env = env or {}
        self.children: dict[str, _Child] = {}
        self.configs: dict[str, StageConfig] = {}
        self.problems: list[str] = []
        self._said_cold = False
        if warm is None:  # on unless XTRC_WARM_STAGES=0
            warm = os.environ.get("XTRC_WARM_STAGES", "1") != "0"
        self.pool = WarmPool(self.state_dir, runtime_executable()) if warm else None
        self._adopt()

    # --- Backend ---------------------------------------------------------------------------
    @property
    def gpu_slots(self) -> int | None:
        """How many stages can hold GPUs at once (None: no limit from GPUs)."""
        if self.gpus_per_stage == 0 or not self.free_gpus and not self.children:
            return None
        total = len(self.free_gpus) + sum(len(c.gpus) for c in self.children.values())
        return max(1, total // self.gpus_per_stage)

    def submit(self, stage: StageConfig) -> None:
        self.configs[stage.key] = stage
        self._start(stage, 1)

    def poll(self) -> dict[str, BackendStatus]:
        out: dict[str, BackendStatus] = {}
        for key, child in list(self.children.items()):
            code = self._exit_code(child)
            if code is None:
                out[key] = BackendStatus("running", attempts=child.attempts, started=child.started)
                continue
            self._finish(child, code)
            if code != 0 and code != CONFIG_ERROR and child.attempts <= self.retries and key in self.configs:
                time.sleep(min(2 ** child.attempts, 30) * 0.1)
                self._start(self.configs[key], child.attempts + 1)
                out[key] = BackendStatus("running", f"retry after exit {code}", child.attempts + 1, time.time())
        for path in self.state_dir.glob("*.exit"):
            key = path.stem
            if key in out or key in self.children:
                continue
            code = int(path.read_text().strip() or 1)
            record = self._record(key)
            if code != 0:
                out[key] = BackendStatus("failed", self._reason(key, code), record.get("attempts", 1))
            else:
                out[key] = BackendStatus("finished", "", record.get("attempts", 1))
        return out

    def cancel(self) -> None:
        """Stop every child cleanly (SIGTERM, then SIGKILL after a grace period)."""
        for child in self.children.values():
            if self.pool is not None:
                self.pool.forget(child.pid)
            _signal(child.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for child in self.children.values():
            while self._alive(child) and time.time() < deadline:
                time.sleep(0.1)
            if self._alive(child):
                _signal(child.pid, signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
            settle = time.time() + 5  # an adopted warm stage's parent may still write its exit code
            while self._exit_pending(child) and time.time() < settle:
                time.sleep(0.05)
            (self.state_dir / f"{child.key}.json").unlink(missing_ok=True)
            (self.state_dir / f"{child.key}.exit").unlink(missing_ok=True)  # cancelled is not failed
            self.free_gpus.extend(child.gpus)
        self.children.clear()

    def retry_failed(self, keys: set[str]) -> list[str]:
        """Clear the records of those of ``keys`` whose process ended (so a new `xtrc run` tries a
        failed stage again); a stage still running is never forgotten. The keys cleared."""
        cleared = []
        for key in sorted(keys):
            if key in self.children or not (self.state_dir / f"{key}.exit").exists():
                continue
            for suffix in (".exit", ".json"):
                (self.state_dir / f"{key}{suffix}").unlink(missing_ok=True)
            cleared.append(key)
        return cleared

    def wait_for_exits(self, timeout: float = 30.0) -> None:
        """After the loop: let stages that committed finish exiting, so their logs reach the store
        (a stage writes _SUCCESS just before it exits, and the loop may end in between)."""
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline:
            for key, child in list(self.children.items()):
                code = self._exit_code(child)
                if code is not None:
                    self._finish(child, code)
            if self.children:
                time.sleep(0.1)

    def record(self, key: str) -> dict:
        """The state file of ``key``'s latest process (pid, attempts, started, exit), or {}."""
        record = self._record(key)
        exit_file = self.state_dir / f"{key}.exit"
        if record and exit_file.exists():
            record["exit"] = int(exit_file.read_text().strip() or 1)
        return record

    def log_path(self, key: str) -> Path:
        return self.state_dir / f"{key}.log"

    # --- internals -------------------------------------------------------------------------
    def _start(self, stage: StageConfig, attempts: int) -> None:
        gpus = self.free_gpus[: self.gpus_per_stage] if self.gpus_per_stage else []
        self.free_gpus = self.free_gpus[len(gpus):]
        env = {**os.environ, **self.env, "XTRC_STAGE_CONFIG": stage.to_json(),
               "CUDA_VISIBLE_DEVICES": ",".join(gpus), "PYTHONUNBUFFERED": "1"}
        (self.state_dir / f"{stage.key}.exit").unlink(missing_ok=True)
        warm = self.pool is not None and self.pool.ready_for(env)  # may wait for the parent's imports
        if self.pool is not None and self.pool.why_cold and not self._said_cold:
            self._said_cold = True
            self.problems.append(f"warm stages are off for this run ({self.pool.why_cold}); "
                                 "stages start as plain processes")
        # The header goes in only now, just before the stage starts: a loop killed while it waited
        # for the warm parent must not leave an attempt that never ran.
        with open(self.log_path(stage.key), "ab") as log:
            log.write(f"\n=== attempt {attempts} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        pid = None
        if warm:
            assert self.pool is not None and self.pool.parent_pid is not None
            parent = [self.pool.parent_pid, _process_start(self.pool.parent_pid)]

            def recorded(pid: int) -> None:  # before the forked stage may start
                child = _Child(stage.key, None, pid, gpus, time.time(), attempts, parent)
                self.children[stage.key] = child
                self._write_record(child)

            pid = self.pool.spawn(list(RUNTIME_COMMAND), env, self.log_path(stage.key),
                                  self.state_dir / f"{stage.key}.exit", recorded)
        if pid is None:  # cold: a fresh interpreter
            with open(self.log_path(stage.key), "ab") as log:
                process = subprocess.Popen([*runtime_executable(), *RUNTIME_COMMAND], env=env, stdout=log,
                                           stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
            child = _Child(stage.key, process, process.pid, gpus, time.time(), attempts)
            self.children[stage.key] = child
            self._write_record(child)

    def _exit_code(self, child: _Child) -> int | None:
        if child.process is not None:
            return child.process.poll()
        if pid_running(child.pid) or self._exit_pending(child):
            return None
        exit_file = self.state_dir / f"{child.key}.exit"  # warm (written by its parent), or adopted: the store
        if exit_file.exists():
            return int(exit_file.read_text().strip() or 1)
        fs, marker = self.store.fs, self.store.layout.success(child.key)
        fs.invalidate_cache()
        return 0 if fs.exists(marker) else 1

    def _exit_pending(self, child: _Child) -> bool:
        """A warm stage that ended while its parent, still there, has not yet written its exit code."""
        if child.parent is None or (self.state_dir / f"{child.key}.exit").exists():
            return False
        pid, started = child.parent
        return pid_running(pid) and started in (None, _process_start(pid))

    def _finish(self, child: _Child, code: int) -> None:
        del self.children[child.key]
        self.free_gpus.extend(child.gpus)
        (self.state_dir / f"{child.key}.exit").write_text(str(code))
        self._write_record(child)
        log = self.log_path(child.key)
        if log.exists():
            try:
                write_atomic(self.store.fs, self.store.layout.stage(child.key, LOG_FILE), log.read_bytes())
            except Exception as exc:  # a log copy must never fail a run
                self.problems.append(f"the log of stage {child.key} was not copied to the store "
                                     f"({type(exc).__name__}: {exc}); it is in {log}")

    def _reason(self, key: str, code: int) -> str:
        what = "configuration error" if code == CONFIG_ERROR else f"exit {code}"
        log = self.log_path(key)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        last = next((ln for ln in reversed(lines) if " ERROR " in ln), lines[-1] if lines else "")
        last = last.split(" ERROR ", 1)[-1]
        return f"{what}: {last.strip()[:300]}" if last else what

    def _record(self, key: str) -> dict:
        path = self.state_dir / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _write_record(self, child: _Child) -> None:
        record = {"pid": child.pid, "gpus": child.gpus, "started": child.started, "attempts": child.attempts,
                  "pid_started": _process_start(child.pid)}
        if child.parent is not None:
            record["warm_parent"] = child.parent
        path = self.state_dir / f"{child.key}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)  # a loop killed mid-write must not leave a record the next one cannot read

    def _adopt(self) -> None:
        """Processes an earlier `xtrc run` started that are still running are ours to watch."""
        for path in self.state_dir.glob("*.json"):
            key = path.stem
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if (self.state_dir / f"{key}.exit").exists():
                continue
            child = _Child(key, None, record["pid"], record.get("gpus", []), record["started"],
                           record.get("attempts", 1), record.get("warm_parent"))
            if pid_running(child.pid):
                if record.get("pid_started") not in (None, _process_start(child.pid)):
                    continue  # that pid now belongs to another process (the machine rebooted)
            elif not self._exit_pending(child):
                continue
            self.children[key] = child
            self.free_gpus = [g for g in self.free_gpus if g not in record.get("gpus", [])]

    @staticmethod
    def _alive(child: _Child) -> bool:
        if child.process is not None:
            return child.process.poll() is None
        return pid_running(child.pid)


def _process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, from /proc), to tell it from a later process
    that reuses the number; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _signal(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the stage runs in its own session: signal its whole group
    except (ProcessLookupError, PermissionError):
        pass


# --- `xtrc status` and `xtrc logs` for a run on this machine ------------------------------------


def local_rows(plan: Any, done: set[str], backend: LocalBackend, statuses: dict[str, BackendStatus],
               now: float | None = None) -> list[Any]:
    """`xtrc status` rows (the Kubernetes rows' shape: :class:`xtrc.kube.StageRow`) for stages run
    by `xtrc run` on this machine: the process for the pod, this host for the node, the stage's
    progress record for a running stage's reason."""
    import socket

    from xtrc.kube.status import StageRow
    from xtrc.live import describe, progress_text, read_progress
    from xtrc.orchestrate import assess

    now = time.time() if now is None else now
    host = socket.gethostname()
    rows = []
    for key, view in assess(plan, done, statuses).items():
        record = backend.record(key)
        state: str = view.state
        phase = reason = ""
        if state == "done":
            state = "succeeded" if record else "cached"
        if record:
            phase = f"pid {record['pid']}" + (f", exit {record['exit']}" if "exit" in record else "")
        reason = view.reason
        if state == "running":
            reason = progress_text(read_progress(backend.store, key), now) or reason
        started = record.get("started") if record else None
        rows.append(StageRow(key=key, what=describe(plan, key), arms=list(plan.arms_by_stage.get(key, [])),
                             state=state, phase=phase, node=host if record else "",
                             age=(now - started) if started else None,
                             attempts=record.get("attempts", 0) if record else 0, reason=reason,
                             pod=str(backend.log_path(key)) if record else ""))
    return rows


def follow_log(backend: LocalBackend, key: str, out: Any, *, follow: bool) -> bool:
    """Write ``key``'s log (this machine's copy, else the store's ``log.txt``) to ``out``; with
    ``follow``, keep writing until its process ends. False when there is no log at all."""
    path = backend.log_path(key)
    if not path.exists():
        try:
            data = backend.store.fs.cat_file(backend.store.layout.stage(key, LOG_FILE))
        except FileNotFoundError:
            return False
        out.write(data)
        out.flush()
        return True
    with open(path, "rb") as f:
        while True:
            chunk = f.read(64 * 1024)
            if chunk:
                out.write(chunk)
                out.flush()
                continue
            record = backend.record(key)
            if not follow or "exit" in record or not record or not pid_running(record["pid"]):
                out.write(f.read())  # what it wrote as it ended
                out.flush()
                return True
            time.sleep(0.5)
