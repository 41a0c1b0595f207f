"""Store faults on the S3-compatible server: an outage mid-run, a missing bucket, listings after an
outage. `xtrc run` is the installed script, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import BIN, attempts, plan_of, tiny_spec, write_spec
from xtrc.store import MissingBucket, Store, write_atomic

from .conftest import S3Location, S3Server

pytestmark = pytest.mark.integration

XTRC = str(BIN / "xtrc")


def s3_spec(tmp_path: Path, store: str, endpoint: str) -> Path:
    return write_spec(tmp_path, tiny_spec(
        "s3faults", store, storage_options={"endpoint_url": endpoint}, seeds=[1, 2], targets=["panx"],
        languages={"panx": ["en", "de"]},
        training={"defaults": {"learning_rate": 1.0e-3, "batch_size": 16, "epochs": 3, "max_seq_length": 48,
                               "eval_every_steps": 10, "checkpoint_every_steps": 5, "precision": "fp32"}},
        data={"root": "builtin:fixtures/data?train=160&dev=30&test=30&languages=en,de"},
        compute={"gpus": 0, "max_parallel": 2, "retries": 0}))


@pytest.mark.restarts_s3
def test_the_loop_rides_out_a_store_restart_and_no_stage_trains_twice(s3_server: S3Server, s3_bucket: S3Location,
                                                                      tmp_path: Path) -> None:
    spec = s3_spec(tmp_path, s3_bucket.url, s3_server.endpoint)
    plan = plan_of(spec)
    fs = s3_bucket.fs()
    # A stage stops writing once its lease went unrenewed for 3/4 of the time-to-live (45 s of the
    # default 60 s). The outage is 25 s, plus up to a renewal interval (15 s) since the last
    # renewal, plus the server's start and replay, which on a loaded machine took 12 s more: the
    # stage fenced itself. With 120 s the outage stays well inside the lease, as the test means.
    env = {**os.environ, "XTRC_CACHE": str(tmp_path / "cache"), "XTRC_LEASE_TTL": "120"}
    loop = subprocess.Popen([XTRC, "run", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    started = [f"{s3_bucket.bucket}/{s3_bucket.prefix}/stages/{key}/stage.json" for key in plan.stages]
    deadline = time.time() + 300
    while not any(fs.exists(path) for path in started):  # a stage has begun
        assert loop.poll() is None and time.time() < deadline, loop.communicate()
        time.sleep(0.3)
    s3_server.restart(downtime_s=25.0)  # longer than the S3 client's own retries: the loop must see it
    out, err = loop.communicate(timeout=600)
    assert loop.returncode == 0, err
    assert "store unreachable since" in err and "retrying" in err
    assert "Traceback" not in err
    store = Store(s3_bucket.url, s3_bucket.options)
    assert store.done_keys() >= set(plan.stages)
    # the local run state of an s3:// store: a log per stage, beside the warm parent's own
    logs = [log for log in Path(env["XTRC_CACHE"]).rglob("*.log") if log.name != "warm-server.log"]
    assert len(logs) == len(plan.stages)
    assert all(attempts(log) == 1 for log in logs)  # no stage started twice, none failed


def test_a_missing_bucket_is_a_clear_error_and_is_never_created(s3_server: S3Server, s3_bucket: S3Location,
                                                                 tmp_path: Path) -> None:
    bucket = f"xtrc-missing-{uuid.uuid4().hex[:8]}"
    spec = s3_spec(tmp_path, f"s3://{bucket}/store", s3_server.endpoint)
    result = subprocess.run([XTRC, "run", str(spec)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "XTRC_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2, result.stderr
    assert f"bucket '{bucket}'" in result.stderr and "never creates buckets" in result.stderr
    assert "Traceback" not in result.stderr
    fs = s3_bucket.fs()
    assert not fs.exists(bucket)

    # write_atomic itself, as the runtime uses it, refuses too and creates nothing.
    with pytest.raises(MissingBucket, match=bucket):
        write_atomic(fs, f"{bucket}/store/stages/k/metrics.json", b"{}")
    fs.invalidate_cache()
    assert not fs.exists(bucket)


@pytest.mark.restarts_s3
def test_a_listing_that_fails_in_an_outage_keeps_folded_listings_on(s3_server: S3Server,
                                                                    s3_bucket: S3Location) -> None:
    from xtrc_runtime.storage import StageStore

    stage = StageStore(s3_bucket.url, "ab" * 10, s3_bucket.options)
    stage.commit()
    store = Store(s3_bucket.url, {**s3_bucket.options, "config_kwargs": {"connect_timeout": 1, "read_timeout": 2,
                                                                          "retries": {"max_attempts": 1}}})
    assert set(store.done_markers()) == {"ab" * 10}
    s3_server.stop()
    try:
        with pytest.raises(Exception):
            store.done_markers()
    finally:
        s3_server.start()
    assert set(store.done_markers()) == {"ab" * 10}
    assert store._fold_paused_until == 0.0  # the outage did not switch folding off
