"""The Kubernetes commands that change the cluster: `xtrc apply` (and its --watch loop), `xtrc
orchestrate` (the in-cluster loop) and `xtrc delete`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xtrc import __version__
from xtrc.cli.experiment import kube_experiment, kube_store, pinned_plan, warn_unlisted
from xtrc.cli.loop import checked_backend, hold_loop_lease, print_summary, save_spec, watched_loop
from xtrc.errors import XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan


def apply_command(args: argparse.Namespace) -> int:
    from xtrc.kube import (
        KubernetesBackend, api_client, apply, apply_manifests, check_store, orchestrator_args, orchestrator_env,
    )
    from xtrc.kube.secrets import check_secrets
    from xtrc.render import SPEC_DIR, Renderer, job_name

    if args.poll <= 0:
        raise XtrcError("--poll must be more than 0 seconds")
    exp = kube_experiment(args)
    plan = pinned_plan(args, exp)
    if args.dry_run:
        warn_unlisted(plan)
    else:
        plan.require_fingerprints()
    check_store(exp.storage.uri)
    renderer = Renderer(args.charts)
    ns = exp.compute.namespace
    name = exp.metadata.name
    if args.watch:
        manifests = [renderer.render_network_policy(plan)]
    else:
        store = getattr(args, "store", None) or os.environ.get("XTRC_STORE")
        orchestrator = orchestrator_args(f"{SPEC_DIR}/spec.yaml", ns, store=store, image=args.image,
                                         rerun=args.rerun, poll=args.poll)
        manifests = apply_manifests(plan, renderer, spec_text=Path(args.spec).read_text(encoding="utf-8"),
                                    args=orchestrator, env=orchestrator_env(plan))
    if args.dry_run:
        width = max(len(m.kind) for m in manifests)
        print(f"would create in namespace {ns} (dry run: no cluster contacted):")
        for m in manifests:
            print(f"  {m.kind:<{width}}  {m.name}")
        who = "this machine (--watch)" if args.watch else "the orchestrator"
        print(f"and {len(plan.stages)} stage Jobs, each created by {who} once its upstream stages are done:")
        for key, stage in plan.stages.items():
            print(f"  {'Job':<{width}}  {job_name(name, stage)}")
        return 0
    api = api_client(args.context)
    for note in check_secrets(exp, args.spec, api):  # before anything is created: pods would wait forever
        print(f"warning: {note}", file=sys.stderr)
    backend = KubernetesBackend(plan, api, renderer=renderer)
    results = apply(plan, api, manifests, server_dry_run=args.server_dry_run, backend=backend)
    suffix = " (server dry run: nothing stored)" if args.server_dry_run else ""
    for r in results:
        print(f"{r.kind.lower()}/{r.name} {r.action}{suffix}")
    if args.server_dry_run:
        return 0
    if args.watch:
        return _watch(args, plan, backend)
    print(f"the orchestrator runs in namespace {ns}: `xtrc status {args.spec}` shows the stages, "
          f"`xtrc logs {args.spec} STAGE` a stage's log", file=sys.stderr)
    return 0


def _watch(args: argparse.Namespace, plan: Plan, backend: Any) -> int:
    """`xtrc apply --watch`: the orchestration loop here, with the live view."""
    from rich.console import Console

    from xtrc.kube import retry_failed
    from xtrc.live import describe

    exp = plan.experiment
    console = Console(stderr=True, soft_wrap=True)
    store = kube_store(exp)
    try:
        with hold_loop_lease(store, exp.metadata.name, wait=args.wait, console=console) as lease:
            save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
            retried = retry_failed(backend)  # as a new `xtrc run` does: what failed before is tried again
            if retried:
                console.print(f"retrying {len(retried)} failed stage(s)")
            backend = checked_backend(plan, store.done_keys(), backend,
                                      lambda text: console.print(text, markup=False, highlight=False))
            snapshot, interrupted = watched_loop(plan, store, backend, console,
                                                 max_parallel=exp.compute.max_parallel, poll_seconds=args.poll,
                                                 lease=lease)
    finally:
        backend.close()
    if interrupted:
        console.print(f"stopped watching: {snapshot.count('running')} stage Job(s) keep running in namespace "
                      f"{backend.namespace}; `xtrc apply {args.spec} --watch` watches again, `xtrc apply` hands "
                      f"them to an in-cluster orchestrator, `xtrc delete {args.spec}` stops them")
        return 130
    return print_summary(console, plan, snapshot, store.uri, describe, log=lambda key: f"xtrc logs {args.spec} {key}")


ORCHESTRATE_FAILED = 3
"""`xtrc orchestrate` ended with failed or blocked stages (its Job's podFailurePolicy does not retry it)."""


def orchestrate_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xtrc.kube import KubernetesBackend, Transitions, api_client
    from xtrc.live import describe
    from xtrc.orchestrate import orchestrate
    from xtrc.render import Renderer

    if args.poll <= 0:
        raise XtrcError("--poll must be more than 0 seconds")
    exp = kube_experiment(args)
    plan = pinned_plan(args, exp)
    plan.require_fingerprints()
    backend = KubernetesBackend(plan, api_client(args.context), renderer=Renderer(args.charts))
    store = kube_store(exp)
    console = Console(file=sys.stdout, soft_wrap=True, force_terminal=False, no_color=True)
    print(f"xtrc {__version__}: experiment {exp.metadata.name}, {len(plan.stages)} stages, namespace "
          f"{backend.namespace}, store {store.uri}, at most {exp.compute.max_parallel} at once", flush=True)
    transitions = Transitions(plan)
    faults: list[str] = []

    def on_pass(snapshot: Any) -> None:
        transitions(snapshot)
        kind = snapshot.fault.split(" since ", 1)[0]
        if snapshot.fault and (not faults or faults[-1] != kind):
            print(snapshot.fault, flush=True)
        faults[:] = [kind]

    # In-cluster the orchestrator always waits for a lease held elsewhere (a `--watch` loop, or its
    # own previous pod cut off by a partition): exiting would only burn one of its Job's retries.
    try:
        with hold_loop_lease(store, exp.metadata.name, wait=True, console=console) as lease:
            save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
            backend = checked_backend(plan, store.done_keys(), backend, lambda text: print(text, flush=True))
            snapshot = orchestrate(plan, store, backend, max_parallel=exp.compute.max_parallel,
                                   poll_seconds=args.poll, on_pass=on_pass, lease=lease)
    finally:
        backend.close()
    failed = print_summary(console, plan, snapshot, store.uri, describe, log=lambda key: f"xtrc logs {args.spec} {key}")
    return ORCHESTRATE_FAILED if failed else 0


def delete_command(args: argparse.Namespace) -> int:
    from xtrc.kube import api_client, delete

    exp = kube_experiment(args)
    plan = pinned_plan(args, exp)
    if args.purge_store and not args.yes and not sys.stdin.isatty():
        raise XtrcError("--purge-store deletes stored results: confirm on a terminal, or pass --yes")
    results = delete(plan, api_client(args.context))
    for r in results:
        print(f"{r.kind.lower()}/{r.name} deleted")
    print(f"removed {len(results)} object(s) of experiment {exp.metadata.name} from namespace "
          f"{exp.compute.namespace}; the store {exp.storage.uri} is untouched" if not args.purge_store else
          f"removed {len(results)} object(s) of experiment {exp.metadata.name} from namespace {exp.compute.namespace}")
    if args.purge_store:
        return _purge_store(args, plan)
    return 0


def _purge_store(args: argparse.Namespace, plan: Plan) -> int:
    exp = plan.experiment
    store = kube_store(exp)
    fs = store.fs
    fs.invalidate_cache()
    present = [key for key in plan.stages if fs.exists(store.layout.stage(key))]
    spec_dir = store.layout.experiment(exp.metadata.name)
    if not present and not fs.exists(spec_dir):
        print(f"the store {store.uri} holds nothing of experiment {exp.metadata.name}")
        return 0
    if not args.yes:
        answer = input(f"delete {len(present)} stage(s) of experiment {exp.metadata.name} from {store.uri} "
                       "(checkpoints, models, metrics, predictions)? Stages are content-keyed: another experiment "
                       "in this store that shares one loses it too. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted from the store")
            return 1
    for key in present:
        fs.rm(store.layout.stage(key), recursive=True)
    if fs.exists(spec_dir):
        fs.rm(spec_dir, recursive=True)
    print(f"deleted {len(present)} stage(s) of experiment {exp.metadata.name} from {store.uri}")
    return 0
