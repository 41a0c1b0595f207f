"""Plan + render a spec that expands to over 10,000 stages; print stages per second and render's memory.

    python bench/plan_render.py [--seeds 15] [--augmentations 9]
    python bench/plan_render.py --seeds 82    # ~57,000 stages: the most the 100,000-stage naive cap allows
    python bench/plan_render.py --scaling     # plan time per (arm, seed) at 110-990 arms

The goal (issue: foundation) is the whole thing — load, validate, plan, render, parse back — in
at most 2 s on a 2-core machine. The script prints each phase and the ratio of the total to
that budget (below 1.0 meets it), and, as a same-process baseline, the same render followed by
a full libyaml parse-back of every document (skipped past 20,000 stages: it takes minutes).

Memory: the growth of peak RSS while the documents are streamed to /dev/null one at a time (what
`xtrc render` does; goal: at most 2 KB a stage at 100,000 stages), then, as the baseline in the
same process, while the same documents are held in a list (what render did before).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time

import yaml

# The bench spec's hub model is not resolved: a request to the hub would be timed with the plan.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from xtrc.loader import load_text
from xtrc.plan import build
from xtrc.render import Renderer

BUDGET_S = 2.0


def big_spec(seeds: int, augmentations: int = 9) -> str:
    intermediate = ["none", "anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "commonsenseqa",
                    "cosmosqa", "ccg", {"name": "all9", "tasks": ["phang2020"]}]
    augmentation: list = ["none"] + [
        {"name": f"cs{i}", "code_switch": {"languages": ["de", "es", "fr", "ru", "zh"],
                                           "dictionaries": "s3://data/muse/", "word_prob": round(0.05 * i, 2)}}
        for i in range(1, augmentations + 1)
    ]
    spec = {
        "apiVersion": "xtrc.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "bench", "description": "plan/render benchmark"},
        "model": "FacebookAI/xlm-roberta-large",
        "storage": {"uri": "s3://bench/store", "secret": "store-creds"},
        "seeds": list(range(1, seeds + 1)),
        "factors": {"intermediate": intermediate, "augmentation": augmentation},
        "targets": ["xtreme-r"],
        "data": {"root": "s3://bench/data/"},
        "compute": {"gpus": 1, "queue": "team-a", "namespace": "xtrc",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }
    return yaml.safe_dump(spec, sort_keys=False)


def plan_scaling(seeds: int = 2) -> None:
    """Plan CPU time per (arm, seed) at growing arm counts: flat when plan is linear in arms."""
    rates = []
    for levels in (10, 30, 90):  # 11 intermediate levels x this many augmentation levels
        spec = yaml.safe_load(big_spec(seeds))
        spec["factors"]["augmentation"] = ["none"] + [
            {"name": f"cs{i}", "code_switch": {"languages": ["de"], "dictionaries": "s3://d/",
                                               "word_prob": round(0.001 * i, 3)}} for i in range(1, levels)]
        exp = load_text(yaml.safe_dump(spec), "scaling.yaml")
        best = float("inf")
        for _ in range(3):  # the minimum of three: the least disturbed by other load
            gc.collect()  # the previous plan's garbage must not be collected on this one's clock
            t = time.process_time()
            plan = build(exp)
            best = min(best, time.process_time() - t)
            n_arms, n_stages = len(plan.arms), len(plan.stages)
            del plan
        per = best / (n_arms * seeds) * 1e6
        rates.append(per)
        print(f"plan scaling: {n_arms:4d} arms x {seeds} seeds -> {n_stages:6d} stages in "
              f"{best:.3f}s CPU, {per:.0f} us per (arm, seed)")
    print(f"plan scaling: per-(arm, seed) cost at 9x the arms = {rates[-1] / rates[0]:.2f}x (1.0 is linear)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--augmentations", type=int, default=9, help="code-switching levels besides none")
    parser.add_argument("--scaling", action="store_true", help="also time plan at 110, 330 and 990 arms")
    args = parser.parse_args()
    text = big_spec(args.seeds, args.augmentations)

    t0 = time.perf_counter()
    exp = load_text(text, "bench.yaml")
    t1 = time.perf_counter()
    plan = build(exp)
    t2 = time.perf_counter()
    n = len(plan.stages)
    memory_lines = memory(plan, n)  # first: nothing has raised the peak since the plan was built
    r0 = time.perf_counter()
    manifests = Renderer().render(plan)
    render_s = time.perf_counter() - r0
    total = (t2 - t0) + render_s
    assert len(manifests) == n + 1
    del manifests

    print(f"stages: {n} ({len(plan.arms)} arms x {len(exp.seeds)} seeds; naive per-arm pipeline: "
          f"{plan.naive_stage_count})")
    print(f"load+validate {t1 - t0:.3f}s  plan {t2 - t1:.3f}s  render+shape-check {render_s:.3f}s  total {total:.3f}s")
    print(f"throughput: {n / total:,.0f} stages/s; total / {BUDGET_S:.0f}s budget = {total / BUDGET_S:.2f}")
    if n <= 20_000:
        # Same-process baseline: the same render, then every document parsed back in full with
        # libyaml (what the renderer's shape check stands in for).
        b0 = time.perf_counter()
        for manifest in Renderer().render(plan):
            yaml.load(manifest.text, Loader=yaml.CSafeLoader)
        baseline = time.perf_counter() - b0
        print(f"baseline: render + full parse-back of every document {baseline:.3f}s; "
              f"the shape check makes render {baseline / render_s:.1f}x faster")
    for line in memory_lines:
        print(line)

    if args.scaling:
        plan_scaling()


def _peak_rss() -> int:
    """This process's peak resident set so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory(plan: object, n: int) -> list[str]:
    """Peak-RSS growth of streaming the documents, then (the peak only rises) of holding them all."""
    before = _peak_rss()
    written = 0
    with open(os.devnull, "w", encoding="utf-8") as sink:
        for i, manifest in enumerate(Renderer().iter_render(plan)):  # type: ignore[arg-type]
            written += sink.write(manifest.text if i == 0 else "---\n" + manifest.text)
    streamed = _peak_rss() - before
    held = Renderer().render(plan)  # type: ignore[arg-type]
    listed = _peak_rss() - before
    del held
    mib = 1024 * 1024
    return [f"memory: peak RSS {_peak_rss() / mib:.0f} MiB (the plan and the process before render: "
            f"{before / mib:.0f} MiB); output {written / mib:.0f} MiB",
            f"render streamed: +{streamed / mib:.1f} MiB peak = {streamed / n:,.0f} B a stage (goal <= 2,048); "
            f"baseline, every document held: +{listed / mib:.1f} MiB = {listed / n:,.0f} B a stage; "
            f"ratio {listed / max(streamed, 1):.1f}x"]

if __name__ == "__main__":
    main()
