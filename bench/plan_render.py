"""Plan + render a spec that expands to over 10,000 stages; print stages per second.

    python bench/plan_render.py [--seeds 15]

The goal (issue: foundation) is the whole thing — load, validate, plan, render, parse back — in
at most 2 s on a 2-core machine. The script prints each phase and the ratio of the total to
that budget (below 1.0 meets it), and, as a same-process baseline, the same render followed by
a full libyaml parse-back of every document.
"""

from __future__ import annotations

import argparse
import time

import yaml

from xtrc.loader import load_text
from xtrc.plan import build
from xtrc.render import Renderer

BUDGET_S = 2.0


def big_spec(seeds: int) -> str:
    intermediate = ["none", "anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag", "commonsenseqa",
                    "cosmosqa", "ccg", {"name": "all9", "tasks": ["phang2020"]}]
    augmentation: list = ["none"] + [
        {"name": f"cs{i}", "code_switch": {"languages": ["de", "es", "fr", "ru", "zh"],
                                           "dictionaries": "s3://data/muse/", "word_prob": round(0.1 * i, 1)}}
        for i in range(1, 10)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15)
    args = parser.parse_args()
    text = big_spec(args.seeds)

    t0 = time.perf_counter()
    exp = load_text(text, "bench.yaml")
    t1 = time.perf_counter()
    plan = build(exp)
    t2 = time.perf_counter()
    manifests = Renderer().render(plan)
    t3 = time.perf_counter()
    total = t3 - t0
    n = len(plan.stages)
    assert len(manifests) == n + 1

    print(f"stages: {n} ({len(plan.arms)} arms x {len(exp.seeds)} seeds; naive per-arm pipeline: "
          f"{plan.naive_stage_count})")
    print(f"load+validate {t1 - t0:.3f}s  plan {t2 - t1:.3f}s  render+shape-check {t3 - t2:.3f}s  total {total:.3f}s")
    print(f"throughput: {n / total:,.0f} stages/s; total / {BUDGET_S:.0f}s budget = {total / BUDGET_S:.2f}")

    # Same-process baseline: the same render, then every document parsed back in full with
    # libyaml (what the renderer's shape check stands in for).
    b0 = time.perf_counter()
    for manifest in Renderer().render(plan):
        yaml.load(manifest.text, Loader=yaml.CSafeLoader)
    baseline = time.perf_counter() - b0
    print(f"baseline: render + full parse-back of every document {baseline:.3f}s; "
          f"the shape check makes render {baseline / (t3 - t2):.1f}x faster")

if __name__ == "__main__":
    main()
