"""The smoke experiment end to end, cold processes against warm stages, in one command.

    python bench/smoke.py [--spec specs/smoke.yaml] [--rounds 1]

Each round runs ``xtrc run SPEC`` into a fresh store twice: once with every stage a fresh
interpreter (``XTRC_WARM_STAGES=0``: each imports torch and transformers itself), once with stages
forked from the local backend's pre-imported parent (the default). The runs alternate, so load
from elsewhere hits both alike; the machine's load average is printed beside them. It prints the
wall time of each and the ratio (goal: >= 2.5x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(spec: Path, store: Path, warm: bool) -> float:
    env = {**os.environ, "XTRC_WARM_STAGES": "1" if warm else "0"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "xtrc.cli", "run", str(spec), "--store", str(store)],
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"xtrc run failed ({'warm' if warm else 'cold'}):\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "smoke.yaml")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="xtrc-smoke-bench-") as tmp:
        for i in range(args.rounds):
            order = ("cold", "warm") if i % 2 == 0 else ("warm", "cold")
            for mode in order:
                load = os.getloadavg()[0]
                seconds = run(args.spec, Path(tmp) / f"{mode}-{i}", warm=mode == "warm")
                times[mode].append(seconds)
                print(f"round {i + 1} {mode}: {seconds:7.1f}s  (load average before {load:.2f}, after "
                      f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs)", flush=True)
    cold, warm = statistics.median(times["cold"]), statistics.median(times["warm"])
    print(f"xtrc run {args.spec.name}: cold processes {cold:.1f}s, warm stages {warm:.1f}s: "
          f"{cold / warm:.2f}x faster end to end (goal >= 2.5x)")


if __name__ == "__main__":
    main()
