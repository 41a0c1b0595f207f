"""The runtime's store on a real S3-compatible server (moto's server over HTTP on loopback).

Covers StageStore (atomic writes, retried I/O across a server restart, checkpoints with
pruning, commit), the control plane's view of it (Store.done_markers, the report's reads through
the results index), credentials from a mounted Secret directory, and a real tiny-model stage run
by ``xtrc-runtime run-stage`` against the server while the server is killed and restarted under it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import LoopbackServer
from xtrc.store import Store
from xtrc_runtime.storage import StageStore, storage_options

from .conftest import ACCESS_KEY, SECRET_KEY, S3Location, S3Server

pytestmark = pytest.mark.integration


def _objects(fs: Any, path: str) -> dict[str, int]:
    """Every object under ``path`` (bucket/prefix form) → its size, asked of the server."""
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        return {}
    return {name: int(info["size"]) for name, info in found.items() if info.get("type") != "directory"}


def _temporaries(fs: Any, path: str) -> list[str]:
    return [name for name in _objects(fs, path) if ".tmp-" in name]


# --- StageStore on S3 ---------------------------------------------------------------------


def test_stage_store_round_trip(s3_bucket: S3Location, tmp_path: Path) -> None:
    fs = s3_bucket.fs()
    store = StageStore(s3_bucket.url, "0a1b2c3d4e5f60718293", s3_bucket.options)
    assert store.base == f"{s3_bucket.bucket}/store/stages/0a1b2c3d4e5f60718293"

    value = {"kind": "target", "nested": {"languages": ["en", "de"], "ünïcode": "ß"}, "n": 3}
    store.write_json("stage.json", value)
    assert store.read_json("stage.json") == value
    assert store.exists("stage.json") and not store.exists("nope.json")
    with pytest.raises(FileNotFoundError):
        store.read_json("nope.json")

    # upload_dir / download: nested files, binary content, byte for byte
    model = tmp_path / "model"
    (model / "sub" / "deeper").mkdir(parents=True)
    files = {"config.json": b'{"a": 1}', "weights.bin": os.urandom(300_000), "sub/vocab.txt": "a\nb\nç\n".encode(),
             "sub/deeper/empty": b""}
    for rel, data in files.items():
        (model / rel).write_bytes(data)
    store.upload_dir(model, "model")
    back = tmp_path / "back"
    store.download(store.path("model"), back)
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()} == files
    with pytest.raises(FileNotFoundError):
        store.download(store.path("no-such-dir"), tmp_path / "nothing")

    # checkpoints: none yet; then two saves with keep=1 leave exactly the newest
    assert store.latest_checkpoint(tmp_path / "resume") is None
    for step in (5, 10):
        ckpt = tmp_path / f"ckpt-{step}"
        ckpt.mkdir()
        (ckpt / "model.pt").write_bytes(os.urandom(50_000))
        (ckpt / "position.json").write_text(json.dumps({"global_step": step}))
        store.save_checkpoint(ckpt, step, keep=1)
    checkpoints = f"{store.base}/checkpoints"
    entries = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(checkpoints, detail=False))
    assert entries == ["latest.json", "step-000000010"]
    assert json.loads(fs.cat(f"{checkpoints}/latest.json")) == {"name": "step-000000010", "step": 10}
    resume = tmp_path / "resume"
    assert store.latest_checkpoint(resume) == 10
    assert (resume / "model.pt").read_bytes() == (tmp_path / "ckpt-10" / "model.pt").read_bytes()
    assert json.loads((resume / "position.json").read_text()) == {"global_step": 10}

    # keep=2 keeps the newest two
    other = StageStore(s3_bucket.url, "k-keep2", s3_bucket.options)
    for step in (1, 2, 3):
        other.save_checkpoint(tmp_path / "ckpt-5", step, keep=2)
    entries = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{other.base}/checkpoints", detail=False))
    assert entries == ["latest.json", "step-000000002", "step-000000003"]

    # commit: _SUCCESS is what makes a stage done, for the stage and for the control plane
    control = Store(s3_bucket.url, s3_bucket.options)
    assert control.done_keys() == set()
    assert not store.done
    store.commit()
    assert store.done
    marker = json.loads(fs.cat(f"{store.base}/_SUCCESS"))
    assert len(marker["run"]) == 32
    first = control.done_markers()
    pending = StageStore(s3_bucket.url, "f0e1d2c3b4a596877869", s3_bucket.options)
    pending.write_json("stage.json", {"kind": "target"})
    pending.write_json("metrics.json", {"status": "almost"})
    assert control.done_keys() == {"0a1b2c3d4e5f60718293"}
    # a re-run commits a marker a listing tells apart (what cached results key on)
    fs.rm(f"{store.base}/_SUCCESS")
    assert control.done_markers() == {}
    store.commit()
    assert set(control.done_markers()) == set(first) and control.done_markers() != first

    assert _temporaries(fs, s3_bucket.bucket) == []


def test_write_bytes_is_atomic_under_concurrent_readers(s3_bucket: S3Location) -> None:
    store = StageStore(s3_bucket.url, "k-atomic", s3_bucket.options)
    sizes = {f"blob-{i}.bin": (1 << i) * 1024 * 1024 for i in range(3)}  # 1, 2 and 4 MiB
    payloads = {name: bytes([i + 1]) * size for i, (name, size) in enumerate(sizes.items())}
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for name, data in payloads.items():
                store.write_bytes(f"outputs/{name}", data)
        except BaseException as exc:  # noqa: BLE001 — reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    fs = s3_bucket.fs()
    outputs = f"{store.base}/outputs"
    listings, reads, seen_temporary = 0, 0, False
    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        for path, size in _objects(fs, outputs).items():
            name = path.rsplit("/", 1)[-1]
            if ".tmp-" in name:
                seen_temporary = True
                continue
            assert size == sizes[name], f"{name} listed with {size} of {sizes[name]} bytes"
        listings += 1
        last = list(payloads)[-1]
        try:
            data = fs.cat(f"{outputs}/{last}")
        except FileNotFoundError:
            pass
        else:
            reads += 1
            assert data == payloads[last], f"a reader saw {len(data)} of {len(payloads[last])} bytes"
    thread.join()
    assert not errors, errors
    assert listings >= 2  # the readers really ran while the writer wrote

    final = _objects(fs, outputs)
    assert {p.rsplit("/", 1)[-1]: s for p, s in final.items()} == sizes
    assert _temporaries(fs, s3_bucket.bucket) == []
    for name, data in payloads.items():
        assert fs.cat(f"{outputs}/{name}") == data
    print(f"concurrent listings {listings}, reads {reads}, temporary object seen: {seen_temporary}")


@pytest.mark.restarts_s3
def test_retry_survives_a_server_restart(s3_server: S3Server, s3_bucket: S3Location,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """The server is down for ~2 s while a write starts; the write waits it out and succeeds.

    botocore's own retries would absorb a 2 s outage silently (they wait up to ~5-8 s for a
    refused connection), so this store's client has them switched off: the outage reaches
    StageStore's retry(), the layer under test."""
    options = {**s3_bucket.options, "config_kwargs": {"retries": {"total_max_attempts": 1}}}
    store = StageStore(s3_bucket.url, "k-retry", options)
    store.write_json("before.json", {"written": "before the restart"})

    caplog.set_level(logging.WARNING, logger="xtrc_runtime")
    s3_server.stop()
    restarted = threading.Event()

    def bring_back() -> None:
        time.sleep(2.0)
        s3_server.start()
        restarted.set()

    thread = threading.Thread(target=bring_back)
    thread.start()
    try:
        started = time.monotonic()
        store.write_json("during.json", {"written": "while the server was down"})
        took = time.monotonic() - started
    finally:
        thread.join()
    assert restarted.is_set()
    assert took >= 1.5, f"the write returned after {took:.1f}s although the server was down for 2s"
    warnings = [r.getMessage() for r in caplog.records if r.name == "xtrc_runtime" and r.levelno == logging.WARNING]
    assert any(m.startswith("store: write during.json failed") and "retry 1/" in m for m in warnings), warnings

    # everything written before the crash survived it, and the retried write landed once
    assert store.read_json("before.json") == {"written": "before the restart"}
    assert store.read_json("during.json") == {"written": "while the server was down"}
    assert _temporaries(s3_bucket.fs(), s3_bucket.bucket) == []


# --- credentials from a mounted Secret ----------------------------------------------------


def test_storage_options_read_credentials_from_a_secret_dir(s3_server: S3Server, s3_bucket: S3Location,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "AWS_ACCESS_KEY_ID").write_text("AKIAFROMSECRETDIR001\n")  # Secrets often end in a newline
    (secret_dir / "AWS_SECRET_ACCESS_KEY").write_text("secret-from-the-secret-dir")
    spec_options = {"endpoint_url": s3_server.endpoint}

    options = storage_options(s3_bucket.url, spec_options, str(secret_dir))
    assert options == {"endpoint_url": s3_server.endpoint, "key": "AKIAFROMSECRETDIR001",
                       "secret": "secret-from-the-secret-dir"}
    assert spec_options == {"endpoint_url": s3_server.endpoint}  # not modified in place
    assert storage_options(s3_bucket.url, spec_options, None) == spec_options
    assert storage_options(s3_bucket.url, spec_options, str(tmp_path / "absent")) == spec_options
    assert storage_options("gs://b/p", {}, str(secret_dir)) == {}  # s3 files mean nothing to gs

    # the options work against the server with no credentials in the environment
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = StageStore(s3_bucket.url, "k-secret", options)
    store.write_json("x.json", {"ok": True})
    assert store.read_json("x.json") == {"ok": True}
    assert "Credential=AKIAFROMSECRETDIR001/" in s3_server.recording.read_text()


# --- a real stage ---------------------------------------------------------------------------

SPEC = """\
apiVersion: xtrc.dev/v1alpha1
kind: Experiment
metadata:
  name: s3-integration
model: builtin:tiny-xlmr
storage:
  uri: {store}
  options:
    endpoint_url: {endpoint}
targets: [panx]
languages:
  panx: [en, de]
training:
  defaults:
    epochs: 2
    batch_size: 16
    grad_accum: 1
    max_seq_length: 64
    checkpoint_every_steps: 5
    eval_every_steps: 5
    learning_rate: 1.0e-3
    precision: fp32
data:
  root: {data}
compute:
  gpus: 0
"""

SECRET_KEY_ID = "AKIASTAGESECRET00042"
SECRET_VALUE = "stage-secret-value-that-must-never-be-printed"


def _runtime_command() -> list[str]:
    script = Path(sys.executable).with_name("xtrc-runtime")
    return [str(script)] if script.exists() else [sys.executable, "-m", "xtrc_runtime.cli"]


def test_report_reads_an_s3_store_through_its_results_index(s3_bucket: S3Location) -> None:
    """collect on S3: done stages from one listing, metrics and each cell's check against its
    prediction records from the index once a first read filled it, and a stage committed again
    (new _SUCCESS) read afresh."""
    import yaml

    from xtrc.loader import load_text
    from xtrc.plan import build
    from xtrc.report import collect

    spec = {"apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "s3rq"},
            "model": "builtin:tiny-xlmr", "storage": {"uri": s3_bucket.url}, "seeds": [1, 2],
            "factors": {"intermediate": ["none", "mnli"]}, "targets": ["xnli"], "languages": {"xnli": ["en", "de"]},
            "data": {"root": "builtin:fixtures/data"}, "compute": {"gpus": 0}}
    plan = build(load_text(yaml.safe_dump(spec), "s3rq.yaml"))
    control = Store(s3_bucket.url, s3_bucket.options)
    writers = {key: StageStore(s3_bucket.url, key, s3_bucket.options) for key in set(plan.cells.values())}
    labels = ["entailment", "neutral", "contradiction"]

    def records(correct: int) -> bytes:  # 100 XNLI predictions, ``correct`` of them right
        rows = [{"id": str(i), "gold": labels[i % 3], "prediction": labels[i % 3 if i < correct else (i + 1) % 3],
                 "scores": {"accuracy": 100.0 * (i < correct)}} for i in range(100)]
        return "".join(json.dumps(r) + "\n" for r in rows).encode()

    for n, (key, stage) in enumerate(sorted(writers.items())):
        for lang, correct in (("en", 60 + n), ("de", 50 + n)):
            stage.write_bytes(f"predictions/xnli/{lang}.jsonl", records(correct))
        stage.write_json("metrics.json", {"key": key, "tasks": {"xnli": {
            "languages": {"en": {"accuracy": 60.0 + n}, "de": {"accuracy": 50.0 + n}}, "headline": 55.0 + n,
            "headline_metric": "accuracy"}}})
        stage.commit()
    pending = min(writers)
    control.fs.rm(f"{writers[pending].base}/_SUCCESS")
    some = max(writers)  # names the marker listing folds away, and names it lists and skips
    for name in ("predictions/xnli/notes.txt", "weights.bin", "_SUCCESS.tmp-1-2", "sub/_SUCCESS"):
        control.fs.pipe_file(f"{writers[some].base}/{name}", b"{}")
    assert set(control.done_markers()) == set(writers) - {pending}

    first = collect(plan, control, predictions=False)
    assert first.stages[pending].state == "missing" and not first.warnings
    done = sorted(set(writers) - {pending})
    assert all(first.stages[key].state == "done" for key in done)
    shards = control.fs.find(control.layout.results("s3rq"))
    assert shards and all(name.endswith(".json") for name in shards)

    victim = done[0]
    control.fs.rm(f"{writers[victim].base}/metrics.json")  # only the index holds it now
    control.fs.rm(f"{writers[victim].base}/predictions", recursive=True)  # and its check of the records
    second = collect(plan, control, predictions=False)
    assert second.stages[victim].state == "done" and not second.warnings
    assert second.stages[victim].metrics == first.stages[victim].metrics

    writers[victim].commit()  # committed again: the index entry no longer counts
    third = collect(plan, control, predictions=False)
    assert third.stages[victim].state == "invalid" and "no metrics.json" in third.warnings[0]
    assert all(third.stages[key].state == "done" for key in done[1:])


class SlashOnlyGateway:
    """An S3 endpoint in front of moto's server that knows no delimiter but "/", as S3 directory
    buckets and several gateways do: ``refuse`` answers 501 to any other, ``slash`` silently
    lists with "/" instead. Everything else passes through unchanged."""

    def __init__(self, upstream: str, mode: str) -> None:
        import http.client
        import http.server
        from urllib.parse import parse_qsl, urlencode, urlsplit

        self.folded_requests = 0
        gateway = self
        host = urlsplit(upstream).netloc

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def forward(self) -> None:
                url = urlsplit(self.path)
                query = parse_qsl(url.query, keep_blank_values=True)
                if ("delimiter", "o") in query:
                    gateway.folded_requests += 1
                    if mode == "refuse":
                        body = b"<Error><Code>NotImplemented</Code><Message>delimiter</Message></Error>"
                        self.send_response(501)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    query = [(k, "/" if k == "delimiter" else v) for k, v in query]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                connection = http.client.HTTPConnection(host, timeout=30)
                path = url.path + ("?" + urlencode(query) if query else "")
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request(self.command, path, body=body, headers={**headers, "Host": host})
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

        self.loopback = LoopbackServer(Handler)
        self.endpoint = self.loopback.endpoint

    def close(self) -> None:
        self.loopback.close()


@pytest.mark.parametrize("mode", ["refuse", "slash"])
def test_marker_listing_falls_back_where_only_slash_delimits(s3_server: S3Server, s3_bucket: S3Location,
                                                           mode: str) -> None:
    keys = {"3a" * 10, "3b" * 10, "c4" * 10}
    for key in keys:
        stage = StageStore(s3_bucket.url, key, s3_bucket.options)
        stage.write_json("metrics.json", {"key": key})
        stage.commit()
    truth = Store(s3_bucket.url, s3_bucket.options).done_markers()
    assert set(truth) == keys
    gateway = SlashOnlyGateway(s3_server.endpoint, mode)
    try:
        store = Store(s3_bucket.url, {**s3_bucket.options, "endpoint_url": gateway.endpoint})
        assert store.done_markers() == truth  # the same markers, the same identities
        assert gateway.folded_requests > 0
        asked = gateway.folded_requests
        assert store.done_markers() == truth
        assert gateway.folded_requests == asked  # this store lists plainly from now on
    finally:
        gateway.close()


@pytest.mark.restarts_s3
def test_stage_runs_on_s3_across_a_server_restart(s3_server: S3Server, s3_bucket: S3Location, tmp_path: Path) -> None:
    from xtrc import plan
    from xtrc.loader import load_text
    from xtrc_runtime import fixtures

    fs = s3_bucket.fs()
    # fixtures.generate takes no storage options: generate locally, upload with s3fs
    local = tmp_path / "fixtures"
    fixtures.generate(str(local), tasks=["panx", "mnli"], languages=["en", "de"],
                      sizes=fixtures.Sizes(train=120, dev=40, test=40))
    fs.put(str(local / "data"), f"{s3_bucket.bucket}/fixtures/data", recursive=True)
    assert f"{s3_bucket.bucket}/fixtures/data/panx/de/test.jsonl" in _objects(fs, f"{s3_bucket.bucket}/fixtures")

    spec = SPEC.format(store=s3_bucket.url, endpoint=s3_server.endpoint, data=f"s3://{s3_bucket.bucket}/fixtures/data")
    stages = plan.build(load_text(spec, "s3-integration.yaml")).stages
    assert len(stages) == 1
    (config,) = stages.values()
    assert config.kind == "target" and config.store == s3_bucket.url and config.data_root.startswith("s3://")
    assert config.storage_options == {"endpoint_url": s3_server.endpoint}  # no credentials in the config
    stage = f"{s3_bucket.bucket}/store/stages/{config.key}"

    # credentials only from the mounted Secret's files: none in the stage's environment
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "AWS_ACCESS_KEY_ID").write_text(SECRET_KEY_ID)
    (secret_dir / "AWS_SECRET_ACCESS_KEY").write_text(SECRET_VALUE)
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(XTRC_STORAGE_SECRET_DIR=str(secret_dir), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")  # nothing but the local server
    command = [*_runtime_command(), "run-stage", "--config", config.to_json(), "--workdir", str(tmp_path)]

    control = Store(s3_bucket.url, s3_bucket.options)  # fsspec's shared instance, as `xtrc` uses it
    assert control.done_keys() == set()

    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines: list[str] = []
    restart: dict[str, Any] = {}
    restarted = threading.Event()

    def restart_server(line: str) -> None:
        try:
            restart["after"] = line.strip()
            restart["seconds"] = s3_server.restart(
                downtime_s=1.5, before_start=lambda: restart.update(lines_while_down=len(stderr_lines)))
            restart["stage_alive"] = proc.poll() is None
        finally:
            restarted.set()

    def read_stderr() -> None:
        assert proc.stderr is not None
        restarter: threading.Thread | None = None
        for line in proc.stderr:
            stderr_lines.append(line)
            if restarter is None and "checkpoint at step" in line:  # kill the server as the next one nears
                restarter = threading.Thread(target=restart_server, args=(line,))
                restarter.start()
        if restarter is not None:
            restarter.join()
        restarted.set()

    stdout_parts: list[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        stdout_parts.append(proc.stdout.read())

    readers = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
    for reader in readers:
        reader.start()
    try:
        restarted.wait(timeout=180)
        # The control plane polls while the stage runs (this caches a listing of stages/<key>/)
        midway = control.done_keys()
        still_running = proc.poll() is None
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=60)
    took = time.monotonic() - started
    stdout, stderr = "".join(stdout_parts), "".join(stderr_lines)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr[-6000:]}"
    assert restart.get("stage_alive") is True, f"the server was not restarted while the stage ran: {restart}"
    if still_running:
        assert config.key not in midway
    # The next checkpoint (step 10) fell into the outage: it is logged after its upload, which
    # could not finish before the server was started again.
    down = restart["lines_while_down"]
    assert not any("checkpoint at step 10" in line for line in stderr_lines[:down]), stderr
    assert any("checkpoint at step 10" in line for line in stderr_lines[down:]), stderr
    retried = [line for line in stderr_lines if "store: " in line and "retry" in line]
    print(f"stage took {took:.1f}s; server restarted after {restart['after']!r}, answering again after "
          f"{restart['seconds']:.1f}s; runtime-level store retries: {len(retried)}")

    # results on S3
    objects = _objects(fs, stage)
    assert f"{stage}/_SUCCESS" in objects
    assert f"{stage}/stage.json" in objects
    assert objects.get(f"{stage}/predictions/panx/en.jsonl", 0) > 0
    assert objects.get(f"{stage}/predictions/panx/de.jsonl", 0) > 0
    assert not [name for name in objects if ".tmp-" in name]
    metrics = json.loads(fs.cat(f"{stage}/metrics.json"))
    languages = metrics["tasks"]["panx"]["languages"]
    assert set(languages) == {"en", "de"}
    for language in ("en", "de"):
        assert 0.0 <= languages[language]["f1"] <= 100.0
    assert metrics["train"]["steps"] == 16  # 2 epochs of ceil(120 / 16) batches
    predictions = fs.cat(f"{stage}/predictions/panx/en.jsonl").decode().splitlines()
    assert len(predictions) == 40 and all(json.loads(line) for line in predictions)
    latest = json.loads(fs.cat(f"{stage}/checkpoints/latest.json"))
    steps = sorted({p.split("/checkpoints/")[1].split("/")[0] for p in objects if "/checkpoints/step-" in p})
    assert steps == [latest["name"]]  # keep=1: only the newest checkpoint is left

    # the credentials came from the Secret's files and went nowhere else
    assert f"Credential={SECRET_KEY_ID}/" in s3_server.recording.read_text()
    stage_json = fs.cat(f"{stage}/stage.json").decode()
    for text, where in ((stage_json, "stage.json"), (json.dumps(metrics), "metrics.json"), (stdout, "stdout"),
                        (stderr, "stderr")):
        assert SECRET_KEY_ID not in text and SECRET_VALUE not in text, f"a credential appears in {where}"
    assert "storage_options" not in json.loads(stage_json)

    # the control plane sees the stage done (its fsspec instance listed the store before)
    assert control.done_keys() == {config.key}

    # a second run is done at once
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already-done" in again.stdout
    for text in (again.stdout, again.stderr):
        assert SECRET_KEY_ID not in text and SECRET_VALUE not in text
