"""`xtrc report`'s store reads: aggregate 10,000 stored stage results on a local S3-compatible server.

    python bench/report.py [--seeds 25] [--workers 32] [--latency-ms 0] [--predictions]

Starts moto's S3 server as a subprocess on a free 127.0.0.1 port (dummy credentials; nothing
leaves loopback; ``--latency-ms`` delays every request as a remote store's round trip would), writes
a synthetic store with one small ``metrics.json`` + ``_SUCCESS`` per stage — 100 arms (10
intermediate × 10 augmentation levels) × SEEDS seeds × 4 target tasks, each (arm, seed, task) its
own target stage: 10,000 with the default 25 seeds — uploaded with parallel puts. Then it times
:func:`xtrc.report.collect` four ways, each after the same listing of done markers:

* ``direct``: every stage's ``metrics.json`` read on its own (a store no orchestrator indexed),
  sequentially (``workers=1``, the baseline) and in parallel;
* ``indexed``: the experiment's results index, as the orchestration loop leaves it (built here the
  way the loop builds it, and timed), sequentially and in parallel.

It prints each time, the ratios against the sequential direct baseline (goal: >= 5x, parallel
<= 5 s), and the CPU seconds the S3 server itself spent: no client reads faster than that.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import yaml

from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc.report import build_report, collect
from xtrc.results_index import ResultsIndex
from xtrc.store import Store

BUCKET = "xtrc-bench"
TARGETS = ("xnli", "udpos", "panx", "tydiqa")
LANGUAGES = {"xnli": ["en", "de", "es", "ru"], "udpos": ["en", "de", "es", "ru"], "panx": ["en", "de", "es", "ru"],
             "tydiqa": ["en", "ar", "fi", "ru"]}
GOAL_RATIO, GOAL_SECONDS = 5.0, 5.0
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_PROXY": "127.0.0.1,localhost"}


def spec(seeds: int) -> str:
    intermediate = ["none", "anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa",
                    {"name": "all", "tasks": ["mnli", "squad", "hellaswag"]}]
    augmentation: list[Any] = ["none"] + [
        {"name": f"cs{i}", "code_switch": {"languages": ["de", "es", "ru"], "dictionaries": "s3://data/muse/",
                                           "word_prob": round(0.1 * i, 1)}} for i in range(1, 10)]
    return yaml.safe_dump({
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "report-bench"},
        "model": "FacebookAI/xlm-roberta-large",
        "storage": {"uri": f"s3://{BUCKET}/store"},
        "seeds": list(range(1, seeds + 1)),
        "factors": {"intermediate": intermediate, "augmentation": augmentation},
        "targets": list(TARGETS),
        "languages": LANGUAGES,
        "data": {"root": "s3://data/xtreme/"},
        "compute": {"gpus": 1},
    }, sort_keys=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER = """
import sys, time
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
delay = float(sys.argv[3]) / 1000
def delayed(environ, start_response):
    time.sleep(delay)
    return app(environ, start_response)
run_simple(sys.argv[1], int(sys.argv[2]), delayed if delay else app, threaded=True, request_handler=MotoRequestHandler)
"""
"""moto's own server (``python -m moto.server``), with an optional delay before each request."""


def start_server(port: int, latency_ms: float) -> subprocess.Popen:
    env = {**os.environ, **CREDENTIALS}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, "-c", SERVER, "127.0.0.1", str(port), str(latency_ms)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"moto's server exited with {server.returncode}")
        try:
            opener.open(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("moto's server did not answer within 30 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), 0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def synthetic_store(plan: Plan, store: Store, predictions: bool) -> int:
    """One metrics.json (+ optional predictions) and _SUCCESS per cell stage, uploaded in parallel."""
    files: dict[str, bytes] = {}
    success: dict[str, bytes] = {}
    for (arm, seed, task), key in plan.cells.items():
        per_language = {lang: {"f1": 50.0 + (hash((arm, seed, lang)) % 1000) / 100, "accuracy": 60.0,
                               "exact_match": 40.0} for lang in LANGUAGES[task]}
        average = {m: sum(v[m] for v in per_language.values()) / len(per_language) for m in ("f1", "accuracy",
                                                                                              "exact_match")}
        score = (average["f1"] + average["exact_match"]) / 2 if task == "tydiqa" else average["f1"]
        metrics = {"key": key, "kind": "target", "status": "done", "seconds": 1.0, "run": {"device": "cuda"},
                   "train": {"steps": 100}, "tasks": {task: {"languages": per_language, "average": average,
                                                             "headline": average["f1"], "headline_metric": "f1",
                                                             "xtreme_score": score}}}
        files[store.layout.stage(key, "metrics.json")] = json.dumps(metrics).encode()
        if predictions:
            for lang in LANGUAGES[task]:
                rows = "".join(json.dumps({"id": f"{i}", "prediction": "a", "gold": "a",
                                           "scores": {"f1": 50.0, "exact_match": 0.0}}) + "\n" for i in range(20))
                files[store.layout.stage(key, "predictions", task, f"{lang}.jsonl")] = rows.encode()
        success[store.layout.success(key)] = json.dumps({"run": uuid.uuid4().hex}).encode()  # as a stage commits
    fs = store.fs
    fs.pipe(files, batch_size=64)
    fs.pipe(success, batch_size=64)  # _SUCCESS last, as a stage commits
    return len(files) + len(success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=25, help="seeds (stages = 400 x seeds; default 25: 10,000)")
    parser.add_argument("--workers", type=int, default=32, help="parallel requests (collect's default: 32)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay the server adds to every request, as a remote store's round trip (default 0)")
    parser.add_argument("--predictions", action="store_true", help="also write and read prediction files")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop the server
    os.environ.update(CREDENTIALS)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)

    t0 = time.perf_counter()
    plan = build(load_text(spec(args.seeds), "report-bench.yaml"))
    keys = set(plan.cells.values())
    print(f"plan: {len(plan.arms)} arms x {args.seeds} seeds x {len(TARGETS)} targets = {len(plan.cells)} cells, "
          f"{len(keys)} distinct cell stages ({time.perf_counter() - t0:.1f}s)")

    port = free_port()
    server = start_server(port, args.latency_ms)
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                   "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        store = Store(plan.experiment.storage.uri, options)
        store.fs.mkdir(BUCKET)
        t0 = time.perf_counter()
        objects = synthetic_store(plan, store, args.predictions)
        print(f"upload: {objects} objects in {time.perf_counter() - t0:.1f}s (parallel puts); server latency "
              f"{args.latency_ms:g} ms per request")
        for workers in (1, args.workers):  # open each reader's connections first: time reads, not handshakes
            store.reader_fs(workers).cat_file(store.layout.stage(next(iter(keys)), "metrics.json"))

        def timed(label: str, run: Any) -> tuple[float, Any]:
            cpu0, own0, t0 = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
            value = run()
            seconds = time.perf_counter() - t0
            print(f"{label:<44s} {seconds:7.2f}s  (CPU: S3 server {cpu_seconds(server.pid) - cpu0:.2f}s, "
                  f"this client {time.process_time() - own0:.2f}s)")
            return seconds, value

        listed, markers = timed("list done markers (Store.done_markers)", store.done_markers)
        assert set(markers) == keys, (len(markers), len(keys))
        timings: dict[tuple[str, int], float] = {}

        def read(mode: str, workers: int) -> None:
            seconds, results = timed(f"collect {mode:<8s} workers={workers:<3d}", lambda: collect(
                plan, store, workers=workers, predictions=args.predictions, markers=markers,
                cached=mode == "indexed"))
            states = {stage.state for stage in results.stages.values()}
            assert states == {"done"} and not results.warnings, (states, results.warnings[:3])
            timings[(mode, workers)] = seconds + listed

        read("direct", 1)
        read("direct", args.workers)
        index = ResultsIndex(store, plan.experiment.metadata.name)
        timed("build the results index (as the loop does)", lambda: index.metrics(markers))
        assert not index.problems, index.problems
        read("indexed", 1)
        read("indexed", args.workers)
        t0 = time.perf_counter()
        results = collect(plan, store, workers=args.workers, predictions=args.predictions, markers=markers)
        report = build_report(results, bootstrap=0)
        print(f"build_report (tables + comparisons, no bootstrap): {time.perf_counter() - t0:.2f}s incl. collect, "
              f"{len(report.comparisons)} comparisons")

        baseline = timings[("direct", 1)]
        print(f"each time below includes the listing ({listed:.2f}s); baseline: direct, sequential "
              f"{baseline:.2f}s")
        for (mode, workers), seconds in timings.items():
            print(f"  {mode:<8s} workers={workers:<3d} {seconds:7.2f}s  {baseline / seconds:6.1f}x "
                  f"({len(keys) / seconds:,.0f} stages/s)")
        best = timings[("indexed", args.workers)]
        ratio = baseline / best
        print(f"goal: >= {GOAL_RATIO:.0f}x and <= {GOAL_SECONDS:.0f}s for {len(keys):,} stages: {ratio:.1f}x "
              f"({'met' if ratio >= GOAL_RATIO else 'NOT met'}), {best:.2f}s "
              f"({'met' if best <= GOAL_SECONDS else 'NOT met'}); parallel vs sequential reads of the same "
              f"objects: direct {timings[('direct', 1)] / timings[('direct', args.workers)]:.1f}x, indexed "
              f"{timings[('indexed', 1)] / timings[('indexed', args.workers)]:.1f}x ({os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at the end)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
