"""What the test tiers share: a spec of the built-in tiny model written to a file and its plan, the
`xtrc` command in a subprocess, stage attempts in a local log, and waiting for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import yaml

if TYPE_CHECKING:
    from xtrc.plan import Plan

T = TypeVar("T")

BIN = Path(sys.executable).parent
XTRC_MODULE = (sys.executable, "-m", "xtrc.cli")
"""`xtrc` as this interpreter runs it (no console script needed)."""


def tiny_spec(name: str, store: str | Path, *, targets: list[str], languages: dict[str, list[str]],
              data: dict[str, Any], storage_options: dict[str, str] | None = None, **sections: Any) -> dict[str, Any]:
    """An experiment document of ``builtin:tiny-xlmr`` storing in ``store``; ``sections`` (seeds=,
    factors=, training=, compute=, ...) are added as given."""
    storage: dict[str, Any] = {"uri": str(store)}
    if storage_options:
        storage["options"] = dict(storage_options)
    return {"apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
            "model": "builtin:tiny-xlmr", "storage": storage, **sections, "targets": list(targets),
            "languages": languages, "data": data}


def write_spec(directory: Path, doc: dict[str, Any], filename: str = "spec.yaml") -> Path:
    """``doc`` as the YAML file ``directory/filename``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


LOOP_DATA = "builtin:fixtures/data?train=120&dev=30&test=30&languages=en,de"


def loop_spec(directory: Path, *, seeds: list[int] | None = None, targets: list[str] | None = None,
              tasks: dict[str, Any] | None = None, epochs: int = 1) -> Path:
    """The orchestration loop tests' experiment `orch` (intermediate none and mnli, panx by default),
    stored in ``directory/store``; ``tasks``: the data section's per-task paths."""
    data: dict[str, Any] = {"root": LOOP_DATA}
    if tasks:
        data["tasks"] = tasks
    doc = tiny_spec("orch", directory / "store", seeds=seeds or [1], factors={"intermediate": ["none", "mnli"]},
                    targets=targets or ["panx"], languages={"panx": ["en", "de"], "xnli": ["en", "de"]},
                    training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": epochs,
                                           "max_seq_length": 48, "eval_every_steps": 50,
                                           "checkpoint_every_steps": 50, "precision": "fp32"}},
                    data=data, compute={"gpus": 0, "max_parallel": 2, "retries": 0})
    return write_spec(directory, doc)


def plan_of(spec: Path) -> Plan:
    from xtrc.loader import load_text
    from xtrc.plan import build

    return build(load_text(spec.read_text()))


def xtrc(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m xtrc.cli ARGS`, its output captured."""
    return subprocess.run([*XTRC_MODULE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def script(name: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script ``name`` (`xtrc`, `xtrc-runtime`) run with ARGS, its output captured."""
    path = BIN / name
    assert path.exists(), f"the console script is not installed at {path}"
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def attempts(log: Path) -> int:
    """How many times the local backend started the stage whose log is ``log``."""
    return log.read_text().count("=== attempt") if log.exists() else 0


def wait_until(condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """``condition()``'s first truthy value, asked every ``interval`` seconds; the test fails after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(interval)
    return value


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts: it has not been reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (a free port) serving ``handler`` from a thread until :meth:`close`."""

    def __init__(self, handler: type) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
