"""What the simulator keeps per container, pod and Job, and helpers on conditions, owners and
processes."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from .objects import now_rfc3339


TERMINAL = ("Succeeded", "Failed")


@dataclass
class _ContainerRun:
    name: str
    image: str
    container_id: str = ""
    proc: subprocess.Popen | None = None
    argv: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    sandbox: dict | None = None  # tests/kube/sandbox.py bwrap_argv arguments, None: a plain process
    logs: list[str] | None = None  # log file of every instance, oldest first
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    restarts: int = 0
    restart_at: float | None = None  # set while in CrashLoopBackOff
    backoff: float = 0.0
    last_state: dict | None = None
    waiting: tuple[str, str | None] = ("ContainerCreating", None)


@dataclass
class _PodRun:
    uid: str
    ns: str
    name: str
    dir: str
    gpus: int
    ip: str
    containers: dict[str, _ContainerRun]
    started: bool = False
    start_time: str | None = None
    start_ts: float = 0.0
    terminal: bool = False
    evicted: bool = False
    deadline_exceeded: bool = False
    blocked_message: str | None = None
    terminating: bool = False  # marked for graceful deletion and sent SIGTERM


@dataclass
class _JobState:
    counted: set
    controller_deleted: set
    tombstones: list
    succeeded: int = 0
    failed: int = 0
    last_create_attempt: float = 0.0
    failure: tuple[str, str] | None = None


class _Blocked(Exception):
    def __init__(self, reason: str, message: str, event_reason: str) -> None:
        super().__init__(message)
        self.reason, self.message, self.event_reason = reason, message, event_reason


def _set_condition(conds: list[dict], ctype: str, status: str, reason: str | None = None,
                   message: str | None = None) -> None:
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now_rfc3339()
            c["status"] = status
            for k, v in (("reason", reason), ("message", message)):
                if v is None:
                    c.pop(k, None)
                else:
                    c[k] = v
            return
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
    if reason is not None:
        c["reason"] = reason
    if message is not None:
        c["message"] = message
    conds.append(c)


def _has_condition(obj: dict, ctype: str, status: str = "True") -> bool:
    return any(c.get("type") == ctype and c.get("status") == status
               for c in (obj.get("status") or {}).get("conditions") or [])


def _controller_uid(obj: dict) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return ref.get("uid")
    return None


def _exit_code(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(getattr(proc, "group", proc.pid), sig)
    except (ProcessLookupError, PermissionError):
        pass
