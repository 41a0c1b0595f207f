"""`xtrc report`'s store reads: aggregate 10,000 stage results on a local S3-compatible server.

    python bench/report.py [--seeds 25] [--workers 32] [--predictions]

Starts moto's S3 server as a subprocess on a free 127.0.0.1 port (dummy credentials; nothing
leaves loopback), writes a synthetic store with one small ``metrics.json`` + ``_SUCCESS`` per
stage — 100 arms (10 intermediate × 10 augmentation levels) × SEEDS seeds × 4 target tasks, each
(arm, seed, task) its own target stage: 10,000 with the default 25 seeds — uploaded with parallel
puts, then times :func:`xtrc.report.collect` reading every cell sequentially (``workers=1``) and in
parallel (``workers=N``). It prints both times, their ratio (goal: >= 5x, parallel <= 5 s), and the
CPU seconds the S3 server itself spent in each run: the parallel run cannot be faster than that.
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
from typing import Any

import yaml

from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc.report import _reader_fs, build_report, collect
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


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, **CREDENTIALS}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
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
        success[store.layout.success(key)] = b""
    fs = store.fs
    fs.pipe(files, batch_size=64)
    fs.pipe(success, batch_size=64)  # _SUCCESS last, as a stage commits
    return len(files) + len(success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=25, help="seeds (stages = 400 x seeds; default 25: 10,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[32],
                        help="parallel reads to time against workers=1 (collect's default: 32); several allowed")
    parser.add_argument("--listing", action="store_true",
                        help="also time collect with the done keys taken from one listing (Store.done_keys)")
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
    server = start_server(port)
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                   "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        store = Store(plan.experiment.storage.uri, options)
        store.fs.mkdir(BUCKET)
        t0 = time.perf_counter()
        objects = synthetic_store(plan, store, args.predictions)
        print(f"upload: {objects} objects in {time.perf_counter() - t0:.1f}s (parallel puts)")

        timings: dict[int, tuple[float, float]] = {}
        modes = [1, *args.workers]
        for workers in modes:  # open each reader's connections first: time the reads, not the handshakes
            _reader_fs(store, workers).cat_file(store.layout.stage(next(iter(keys)), "metrics.json"))
        for workers in modes:
            cpu0, own0, t0 = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
            results = collect(plan, store, workers=workers, predictions=args.predictions)
            timings[workers] = (time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0)
            client = time.process_time() - own0
            counts: dict[str, int] = {}
            for stage in results.stages.values():
                counts[stage.state] = counts.get(stage.state, 0) + 1
            assert counts == {"done": len(keys)}, counts
            print(f"collect workers={workers:<3d} {timings[workers][0]:7.2f}s  "
                  f"({len(results.stages) / timings[workers][0]:,.0f} stages/s; CPU: S3 server "
                  f"{timings[workers][1]:.2f}s, this client {client:.2f}s)")
        if args.listing:
            workers = args.workers[0]
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            done = store.done_keys()
            listed = time.perf_counter() - t0
            results = collect(plan, store, workers=workers, predictions=args.predictions, done=done)
            print(f"collect workers={workers:<3d} with done keys from Store.done_keys() (a glob): "
                  f"{time.perf_counter() - t0:.2f}s "
                  f"(listing {listed:.2f}s; S3 server CPU {cpu_seconds(server.pid) - cpu0:.2f}s)")
        t0 = time.perf_counter()
        report = build_report(results, bootstrap=0)
        print(f"build_report (tables + comparisons, no bootstrap): {time.perf_counter() - t0:.2f}s, "
              f"{len(report.comparisons)} comparisons")

        sequential = timings[1][0]
        for workers in args.workers:
            parallel = timings[workers][0]
            ratio = sequential / parallel
            print(f"sequential {sequential:.2f}s, parallel ({workers} workers) {parallel:.2f}s: {ratio:.1f}x "
                  f"(goal >= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'}; parallel <= "
                  f"{GOAL_SECONDS:.0f}s: {'met' if parallel <= GOAL_SECONDS else 'NOT met'})")
        floor = min(timings[w][1] for w in args.workers)
        print(f"the S3 server alone spent {floor:.2f}s of CPU serving a parallel run "
              f"({1000 * floor / max(1, len(keys)):.2f} ms per stage, 2 requests each); no client can read "
              f"faster than its server answers ({os.cpu_count()} CPUs here, load average "
              f"{os.getloadavg()[0]:.1f} at the end)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
