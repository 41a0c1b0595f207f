"""Warm local stages: the pre-imported parent forks stages that keep a plain process's isolation."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import tiny_spec, wait_until, write_spec, xtrc
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


def test_the_local_backend_runs_stages_warm_and_leaves_no_process_behind(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, tiny_spec(
        "warm", tmp_path / "store", seeds=[1], factors={"intermediate": ["none"]}, targets=["panx", "tatoeba"],
        languages={"panx": ["en", "de"], "tatoeba": ["de"]},
        training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": 1, "max_seq_length": 48,
                               "precision": "fp32"}},
        data={"root": "builtin:fixtures/data?train=60&dev=20&test=20&languages=en,de"},
        compute={"gpus": 0, "max_parallel": 2, "retries": 0}))
    result = xtrc("run", str(spec), timeout=600, env={**os.environ, "XTRC_WARM_STAGES": "1"})
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
