"""A warm parent for local stages: imports torch, transformers and the runtime once, then forks one
child per stage (``xtrc-runtime warm-server --socket PATH``).

A stage child is a fresh process from then on: its own session (so its whole group can be
signalled), its own environment (``CUDA_VISIBLE_DEVICES`` included: the parent never initialises
CUDA, so a child's choice of devices is its own), working directory, log file and exit code. A
crash or a leak in one stage ends with that child and never touches the parent or another stage.

Fork safety: the parent forks only while it is a single thread with CUDA untouched (checked once
the imports are done; otherwise it says why instead of "ready", and the backend starts plain
processes). Torch's intra-op pool starts at the first parallel operation, which only a child runs,
after setting its own thread count.

Protocol: one JSON request per connection, one JSON reply.
``{"argv": [...], "env": {...}, "cwd": DIR, "log": PATH, "exit": PATH}`` → ``{"pid": N}``, then
the client sends ``go`` once it has recorded that pid: only then does the child start the stage
(a client that dies before, or says nothing within 30 s, leaves no stage running: the child is
killed before it did anything). The child's exit code is written to ``exit`` (atomically) when it
ends, a signal as its negative number, as ``subprocess`` reports it. ``{"forget": N}`` → ``{}``: do
not write that child's exit code (it was cancelled). The parent exits when stdin closes (the
backend went away, killed or not), once its running children have ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any

from xtrc.warm import GO, read_line

STAGE_ENV = ("XTRC_STAGE_CONFIG", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED")
"""The variables that differ between stages; the parent's own environment supplies the rest."""
ACK_TIMEOUT_S = 30.0


def preload() -> None:
    """What every stage imports anyway: the seconds a cold process spends before any work."""
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaModel  # noqa: F401

    import xtrc_runtime.cli  # noqa: F401
    import xtrc_runtime.stage  # noqa: F401


def fork_hazards() -> list[str]:
    """Why forking this process would be unsafe: threads besides this one (a lock one of them holds
    would stay locked forever in the child), or CUDA initialised (it does not survive a fork)."""
    hazards = []
    try:
        tasks = sorted(os.listdir("/proc/self/task"))
    except OSError:  # no /proc: trust Python's own count
        import threading

        tasks = [str(t.ident) for t in threading.enumerate()]
    if len(tasks) > 1:
        names = []
        for tid in tasks:
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                names.append(tid)
        hazards.append(f"{len(tasks)} threads ({', '.join(names)})")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        hazards.append("CUDA is initialised")
    return hazards


def serve(path: str) -> int:
    preload()
    hazards = fork_hazards()
    if hazards:  # the backend reads this line instead of "ready" and starts plain processes
        _say(f"unsafe to fork: {'; '.join(hazards)}")
        return 0
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    server.listen(16)
    print(f"warm parent {os.getpid()}: ready", file=sys.stderr, flush=True)
    if not _say("ready"):
        server.close()
        return 0  # the backend died while this one imported
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
                try:
                    _answer(connection, server, exits)
                except Exception:  # noqa: BLE001 - one bad request never ends the parent or its stages
                    traceback.print_exc()
        _reap(exits)
    if os.path.exists(path):
        os.unlink(path)
    return 0


def _say(line: str) -> bool:
    try:
        print(line, flush=True)
        return True
    except (BrokenPipeError, ValueError):
        return False


def _answer(connection: socket.socket, server: socket.socket, exits: dict[int, str | None]) -> None:
    connection.settimeout(ACK_TIMEOUT_S)
    request = json.loads(read_line(connection))
    if "forget" in request:
        if int(request["forget"]) in exits:
            exits[int(request["forget"])] = None
        connection.sendall(b"{}\n")
        return
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the stage
        os.close(go_write)
        connection.close()
        server.close()
        _run_child(request, go_read)
    os.close(go_read)
    exits[pid] = None  # no exit code to record unless the stage really starts
    try:
        connection.sendall((json.dumps({"pid": pid}) + "\n").encode())
        acked = read_line(connection).strip() == GO
    except OSError:
        acked = False
    if acked:
        exits[pid] = request["exit"]
        try:
            os.write(go_write, GO)
        except BrokenPipeError:  # the child is already gone (killed): its exit code says so
            pass
    else:  # the client never recorded this child: it must not run a stage nobody watches
        print(f"warm parent: request for {request.get('exit')} not confirmed; child {pid} stopped",
              file=sys.stderr, flush=True)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.close(go_write)


def _run_child(request: dict[str, Any], go: int) -> None:
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
        if os.read(go, len(GO)) != GO:  # the client died before it recorded this process
            os._exit(0)
        os.close(go)
        print(f"(warm stage: forked from pid {os.getppid()}, torch and transformers already imported)", flush=True)
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("cwd"):
            os.chdir(request["cwd"])
        import tempfile

        tempfile.tempdir = None  # the parent's cached choice ignores this stage's TMPDIR
        sys.argv = [sys.argv[0], *request["argv"]]
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit():
            import torch

            torch.set_num_threads(int(threads))
        from xtrc_runtime.cli import main

        code = int(main(list(request["argv"])) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the child ends here with a code
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
