"""The smoke experiment end to end, cold processes against warm stages, in one command.

    python bench/smoke.py [--spec specs/smoke.yaml] [--rounds 2]

Each round runs ``xtrc run SPEC`` into a fresh store twice: once with every stage a fresh
interpreter (``XTRC_WARM_STAGES=0``: each imports torch and transformers itself), once with stages
forked from the local backend's pre-imported parent (the default). The runs alternate (cold first
in odd rounds, warm first in even ones), so load from elsewhere and caches filled by the first run
hit both alike; the machine's load average is printed beside each. Torch, OpenMP and BLAS run one
thread per stage in both modes (the spec runs two stages at a time).

It prints the wall time of each run, where a stage's time goes (its process's life from the log's
first to last line, against the seconds the stage reports for its own work; the rest is start-up:
imports, and for a warm stage the fork), and the ratio of the medians (goal: >= 2.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
CLOCK = re.compile(r"^(?:=== attempt \d+ at \S+ )?(\d\d):(\d\d):(\d\d)")


def run(spec: Path, store: Path, warm: bool) -> float:
    env = {**os.environ, **PINNED, "XTRC_WARM_STAGES": "1" if warm else "0"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "xtrc.cli", "run", str(spec), "--store", str(store)],
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"xtrc run failed ({'warm' if warm else 'cold'}):\n{result.stderr[-3000:]}")
    return seconds


def stage_times(store: Path) -> tuple[int, float, float]:
    """(stages, seconds their processes lived, seconds of their own work), from the local logs."""
    count, lived, work = 0, 0.0, 0.0
    for log in sorted((store / ".local-runs").glob("*.log")):
        if log.name == "warm-server.log":
            continue
        clocks = []
        for line in log.read_text(errors="replace").splitlines():
            match = CLOCK.match(line)
            if match:
                h, m, s = (int(g) for g in match.groups())
                clocks.append(h * 3600 + m * 60 + s)
        metrics = store / "stages" / log.stem / "metrics.json"
        if len(clocks) < 2 or not metrics.exists():
            continue
        count += 1
        lived += (clocks[-1] - clocks[0]) % 86400
        work += float(json.loads(metrics.read_text()).get("seconds", 0.0))
    return count, lived, work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "smoke.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="xtrc-smoke-bench-") as tmp:
        for i in range(args.rounds):
            order = ("cold", "warm") if i % 2 == 0 else ("warm", "cold")
            for mode in order:
                load = os.getloadavg()[0]
                store = Path(tmp) / f"{mode}-{i}"
                seconds = run(args.spec, store, warm=mode == "warm")
                times[mode].append(seconds)
                count, lived, work = stage_times(store)
                print(f"round {i + 1} {mode}: {seconds:7.1f}s  (load average before {load:.2f}, after "
                      f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs); {count} stages lived {lived:.0f}s "
                      f"in all, {work:.0f}s of it their own work, {lived - work:.0f}s start-up "
                      f"({(lived - work) / max(count, 1):.1f}s a stage)", flush=True)
    cold, warm = statistics.median(times["cold"]), statistics.median(times["warm"])
    print(f"xtrc run {args.spec.name}: cold processes {cold:.1f}s, warm stages {warm:.1f}s: "
          f"{cold / warm:.2f}x faster end to end (goal >= 2.5x)")


if __name__ == "__main__":
    main()
