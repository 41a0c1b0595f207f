"""Warm local stages: the pre-imported parent forks stages that keep a plain process's isolation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import script, tiny_spec, wait_until, write_spec, xtrc
from xtrc.local import runtime_executable
from xtrc.warm import WarmPool

pytestmark = pytest.mark.integration


def wait_for(path: Path, timeout: float = 120) -> str:
    wait_until(path.exists, timeout=timeout, what=f"{path} to appear", interval=0.05)
    return path.read_text()


def wait_forked(log: Path, timeout: float = 60) -> None:
    """Until the child has its own session (it logs that it was forked right after setsid())."""
    wait_until(lambda: "forked from pid" in (log.read_text() if log.exists() else ""), timeout=timeout,
               what=f"{log} to say the stage was forked", interval=0.05)


def spawn(pool: WarmPool, argv: list[str], env: dict[str, str], log: Path, exit_path: Path) -> int | None:
    assert pool.ready_for(env), pool.why_cold
    return pool.spawn(argv, env, log, exit_path)


def test_forked_stages_fail_and_crash_alone_and_get_their_own_env_log_and_exit_code(tmp_path: Path) -> None:
    pool = WarmPool(tmp_path, runtime_executable())
    base = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        # A stage that blocks (its config "file" is a FIFO nobody writes): killed, it ends alone.
        fifo = tmp_path / "never"
        os.mkfifo(fifo)
        hung = spawn(pool, ["run-stage", "--config", str(fifo)], {**base, "CUDA_VISIBLE_DEVICES": "7"},
                          tmp_path / "hung.log", tmp_path / "hung.exit")
        assert hung is not None
        wait_forked(tmp_path / "hung.log")
        assert os.getpgid(hung) == hung  # its own session: the backend signals its whole group
        os.killpg(hung, signal.SIGKILL)
        assert wait_for(tmp_path / "hung.exit") == str(-signal.SIGKILL)
        # The parent still serves: a bad config is a configuration error (exit 2) in its own log.
        bad = spawn(pool, ["run-stage", "--config-env", "XTRC_STAGE_CONFIG"],
                         {**base, "XTRC_STAGE_CONFIG": '{"kind": "nonsense"}'},
                         tmp_path / "bad.log", tmp_path / "bad.exit")
        assert bad is not None and bad != hung
        assert wait_for(tmp_path / "bad.exit") == "2"
        assert "configuration error" in (tmp_path / "bad.log").read_text()
        assert "configuration error" not in (tmp_path / "hung.log").read_text()
    finally:
        pool.close()


def test_a_cancelled_stage_is_not_recorded_as_failed(tmp_path: Path) -> None:
    pool = WarmPool(tmp_path, runtime_executable())
    try:
        fifo = tmp_path / "never"
        os.mkfifo(fifo)
        pid = spawn(pool, ["run-stage", "--config", str(fifo)], dict(os.environ), tmp_path / "c.log",
                         tmp_path / "c.exit")
        assert pid is not None
        wait_forked(tmp_path / "c.log")
        pool.forget(pid)
        os.killpg(pid, signal.SIGTERM)
        time.sleep(1.0)
        assert not (tmp_path / "c.exit").exists()
    finally:
        pool.close()


def test_the_local_backend_runs_stages_warm_by_default_and_leaves_no_process_behind(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_spec(
        "warm", tmp_path / "store", seeds=[1], factors={"intermediate": ["none"]}, targets=["panx", "tatoeba"],
        languages={"panx": ["en", "de"], "tatoeba": ["de"]},
        training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": 1, "max_seq_length": 48,
                               "precision": "fp32"}},
        data={"root": "builtin:fixtures/data?train=60&dev=20&test=20&languages=en,de"},
        compute={"gpus": 0, "max_parallel": 2, "retries": 0}))
    result = xtrc("run", str(spec), timeout=600, env={k: v for k, v in os.environ.items() if k != "XTRC_WARM_STAGES"})
    assert result.returncode == 0, result.stderr
    logs = sorted((tmp_path / "store" / ".local-runs").glob("*.log"))
    stage_logs = [p for p in logs if p.name != "warm-server.log"]
    assert len(stage_logs) >= 2  # panx, tatoeba (and the SQuAD stage tatoeba is scored from)
    for log in stage_logs:
        assert "forked from pid" in log.read_text() and "done in" in log.read_text()
    server_log = (tmp_path / "store" / ".local-runs" / "warm-server.log").read_text()
    parent = int(server_log.split("warm parent ")[1].split(":")[0])
    # the parent left with `xtrc run`
    wait_until(lambda: not Path(f"/proc/{parent}").exists(), timeout=10, what="the warm parent to exit", interval=0.1)


def test_a_stage_whose_pid_was_never_recorded_never_starts(tmp_path: Path) -> None:
    """The backend dies between the fork and its record (here: the record fails): that child must
    not run a stage nobody would adopt, and the parent goes on serving."""
    pool = WarmPool(tmp_path, runtime_executable())
    env = dict(os.environ)
    forked: list[int] = []

    def record_fails(pid: int) -> None:
        forked.append(pid)
        raise OSError("disk full")

    try:
        assert pool.ready_for(env), pool.why_cold
        with pytest.raises(OSError, match="disk full"):
            pool.spawn(["--version"], env, tmp_path / "lost.log", tmp_path / "lost.exit", record_fails)
        [pid] = forked
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the unrecorded child to end",
                   interval=0.05)
        assert "forked from pid" not in ((tmp_path / "lost.log").read_text() if (tmp_path / "lost.log").exists() else "")
        assert not (tmp_path / "lost.exit").exists()  # no exit code: it never was a stage
        ok = spawn(pool, ["--version"], env, tmp_path / "ok.log", tmp_path / "ok.exit")
        assert ok is not None and wait_for(tmp_path / "ok.exit") == "0"
        assert "xtrc-runtime" in (tmp_path / "ok.log").read_text()
    finally:
        pool.close()


def test_a_crashing_stage_leaves_its_sibling_and_the_parent_alone(tmp_path: Path) -> None:
    pool = WarmPool(tmp_path, runtime_executable())
    env = dict(os.environ)
    try:
        pids = {}
        for name in ("crash", "sibling"):
            fifo = tmp_path / f"{name}.fifo"
            os.mkfifo(fifo)
            pids[name] = spawn(pool, ["run-stage", "--config", str(fifo)], env, tmp_path / f"{name}.log",
                               tmp_path / f"{name}.exit")
            wait_forked(tmp_path / f"{name}.log")
        os.kill(pids["crash"], signal.SIGSEGV)
        assert wait_for(tmp_path / "crash.exit") == str(-signal.SIGSEGV)
        assert Path(f"/proc/{pids['sibling']}").exists() and not (tmp_path / "sibling.exit").exists()
        assert pool.parent_pid is not None and pool.ready_for(env)
        os.killpg(pids["sibling"], signal.SIGTERM)
        assert wait_for(tmp_path / "sibling.exit") == str(-signal.SIGTERM)
    finally:
        pool.close()


CLIENT = """
import os, sys, time
from pathlib import Path
from xtrc.local import runtime_executable
from xtrc.warm import WarmPool
tmp = Path(sys.argv[1])
pool = WarmPool(tmp, runtime_executable())
env = dict(os.environ)
assert pool.ready_for(env), pool.why_cold
pid = pool.spawn(["run-stage", "--config", str(tmp / "fifo")], env, tmp / "stage.log", tmp / "stage.exit")
print(pid, pool.parent_pid, flush=True)
time.sleep(600)
"""


def test_the_parent_outlives_a_killed_client_until_its_stage_ends_and_records_its_exit(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        stage, parent = (int(x) for x in client.stdout.readline().split())  # type: ignore[union-attr]
        wait_forked(tmp_path / "stage.log")
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
    time.sleep(0.5)
    assert Path(f"/proc/{stage}").exists() and Path(f"/proc/{parent}").exists()
    assert os.getsid(stage) == stage and os.getsid(parent) == parent  # neither in the client's session
    with open(tmp_path / "fifo", "w") as f:  # the stage reads its config at last: a configuration error
        f.write('{"kind": "nonsense"}')
    assert wait_for(tmp_path / "stage.exit") == "2"
    # and then the parent left
    wait_until(lambda: not Path(f"/proc/{parent}").exists(), timeout=10, what="the warm parent to exit", interval=0.1)


def test_a_parent_with_threads_refuses_to_fork_and_stages_start_cold(tmp_path: Path) -> None:
    """OpenBLAS told to use 2 threads starts them at import: the parent says why it will not fork."""
    pool = WarmPool(tmp_path, runtime_executable())
    try:
        assert not pool.ready_for({**os.environ, "OPENBLAS_NUM_THREADS": "2"})
        assert "unsafe to fork" in pool.why_cold and "threads" in pool.why_cold
        assert pool.spawn(["--version"], dict(os.environ), tmp_path / "x.log", tmp_path / "x.exit") is None
    finally:
        pool.close()


def test_xtrc_run_cold_starts_plain_processes(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_spec(
        "cold", tmp_path / "store", seeds=[1], factors={"intermediate": ["none"]}, targets=["panx"],
        languages={"panx": ["en", "de"]},
        training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": 1, "max_seq_length": 48,
                               "precision": "fp32"}},
        data={"root": "builtin:fixtures/data?train=60&dev=20&test=20&languages=en,de"},
        compute={"gpus": 0, "max_parallel": 2, "retries": 0}))
    result = script("xtrc", "run", str(spec), "--cold", timeout=600)
    assert result.returncode == 0, result.stderr
    state = tmp_path / "store" / ".local-runs"
    [log] = state.glob("*.log")  # the stage's: no warm parent was started
    assert "done in" in log.read_text() and "forked from pid" not in log.read_text()
