"""A warm parent for local stages: imports torch, transformers and the runtime once, then forks one
child per stage (``xtrc-runtime warm-server --socket PATH``).

A stage child is a fresh process from then on: its own session (so its whole group can be
signalled), its own environment (``CUDA_VISIBLE_DEVICES`` included: the parent never initialises
CUDA, so a child's choice of devices is its own), its own log file and exit code. A crash or a leak
in one stage ends with that child and never touches the parent or another stage.

Protocol: one JSON request per connection, one JSON reply.
``{"argv": [...], "env": {...}, "log": PATH, "exit": PATH}`` → ``{"pid": N}``: the child's exit
code is written to ``exit`` (atomically) when it ends, a signal as its negative number, as
``subprocess`` reports it. ``{"forget": N}`` → ``{}``: do not write that child's exit code (it was
cancelled). The parent exits when stdin closes (the backend went away), once its children have.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
from typing import Any

from xtrc.warm import read_line

STAGE_ENV = ("XTRC_STAGE_CONFIG", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED")
"""The variables that differ between stages; the parent's own environment supplies the rest."""


def preload() -> None:
    """What every stage imports anyway: the seconds a cold process spends before any work."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaModel  # noqa: F401

    import xtrc_runtime.cli  # noqa: F401
    import xtrc_runtime.stage  # noqa: F401


def serve(path: str) -> int:
    preload()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    server.listen(16)
    print(f"warm parent {os.getpid()}: ready", file=sys.stderr, flush=True)
    print("ready", flush=True)
    exits: dict[int, str | None] = {}
    accepting = True
    while accepting or exits:
        watched = [server, sys.stdin] if accepting else []
        ready, _, _ = select.select(watched, [], [], 0.05)
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1 << 16):
            accepting = False  # the backend is gone: finish the running stages, then leave
            server.close()
        if accepting and server in ready:
            connection, _ = server.accept()
            with connection:
                _answer(connection, server, exits)
        _reap(exits)
    if os.path.exists(path):
        os.unlink(path)
    return 0


def _answer(connection: socket.socket, server: socket.socket, exits: dict[int, str | None]) -> None:
    request = json.loads(read_line(connection))
    if "forget" in request:
        if int(request["forget"]) in exits:
            exits[int(request["forget"])] = None
        connection.sendall(b"{}\n")
        return
    pid = os.fork()
    if pid == 0:  # the stage
        connection.close()
        server.close()
        _run_child(request)
    exits[pid] = request["exit"]
    connection.sendall((json.dumps({"pid": pid}) + "\n").encode())


def _run_child(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = open(os.devnull)  # the parent's stdin is its pipe from the backend
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        print(f"(warm stage: forked from pid {os.getppid()}, torch and transformers already imported)", flush=True)
        os.environ.clear()
        os.environ.update(request["env"])
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit():
            import torch

            torch.set_num_threads(int(threads))
        from xtrc_runtime.cli import main

        code = int(main(list(request["argv"])) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the child ends here with a code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(exits: dict[int, str | None]) -> None:
    while exits:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            exits.clear()
            return
        if pid == 0:
            return
        path = exits.pop(pid, None)
        if path is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(str(code))
        os.replace(tmp, path)

