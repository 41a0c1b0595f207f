"""`xtrc run`: the whole experiment on this machine, stages as local processes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from xtrc.cli.experiment import load_experiment, pinned_plan
from xtrc.cli.loop import checked_backend, hold_loop_lease, patiently, print_summary, save_spec, watched_loop


def run_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xtrc.live import describe
    from xtrc.local import LocalBackend, visible_gpus
    from xtrc.store import Store

    plan = pinned_plan(args, load_experiment(args))
    plan.require_fingerprints()  # says what is provisional and what to do
    exp = plan.experiment
    console = Console(stderr=True, soft_wrap=True)  # soft wrap: a reason stays on one line in logs
    store = Store(exp.storage.uri, dict(exp.storage.options))
    with hold_loop_lease(store, exp.metadata.name, wait=args.wait, console=console) as lease:
        save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
        gpus = visible_gpus()
        if exp.compute.gpus and not gpus:
            console.print(f"[yellow]note:[/] the spec asks for {exp.compute.gpus} GPU(s) per stage and this "
                          "machine has none: stages run on the CPU")
        backend = LocalBackend(store, retries=exp.compute.retries, gpus_per_stage=exp.compute.gpus if gpus else 0,
                               gpus=gpus, warm=False if args.cold else None)
        jobs = args.jobs or exp.compute.max_parallel
        if backend.gpu_slots is not None:
            jobs = min(jobs, backend.gpu_slots)
        backend.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
        if exp.hub.endpoint and not os.environ.get("HF_ENDPOINT"):  # the stages read where the plan resolved
            backend.env["HF_ENDPOINT"] = exp.hub.endpoint
        done = patiently(store.done_keys, "reading the store", console)
        backend.retry_failed(set(plan.stages) - done)  # a new run tries again what failed before
        backend = checked_backend(plan, done, backend, lambda text: console.print(text, markup=False, highlight=False))

        snapshot, interrupted = watched_loop(plan, store, backend, console, max_parallel=max(1, jobs),
                                             lease=lease, log=lambda key: str(backend.log_path(key)))
        if interrupted:
            backend.cancel()
            console.print("interrupted: running stages were stopped; run the same command again to resume")
            return 130
        backend.wait_for_exits()
        snapshot.warnings.extend(backend.problems)
    return print_summary(console, plan, snapshot, store.uri, describe, log=lambda key: str(backend.log_path(key)))
