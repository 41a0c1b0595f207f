"""The `xtrc` command line. Heavy modules are imported inside commands: `xtrc --help` stays fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from xtrc import __version__
from xtrc.errors import EXIT_USAGE, XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan
    from xtrc.spec import Experiment


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.command(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`xtrc report SPEC | head`): stop quietly with 1, as rich does for its tables
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except XtrcError as exc:
        if os.environ.get("XTRC_DEBUG") == "1":
            raise
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xtrc",
        description="Compile multilingual NLP experiments (intermediate tasks x augmentation on XTREME-R) "
        "into a stage DAG; run it locally or on Kubernetes; report the answer.",
        epilog="Bad input exits 2 with FILE:LINE:COL: field: message; XTRC_DEBUG=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"xtrc {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=func)
        return p

    p = command("validate", _validate, "Check spec files; print every problem at once.")
    p.add_argument("specs", nargs="+", metavar="SPEC")

    p = command("plan", _plan, "Show arms, the stage DAG, what is already done, and the GPU-hours left.")
    _spec_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-store", action="store_true", help="do not read the store (every stage shown as not done)")
    p.add_argument("--check-data", action="store_true",
                   help="also validate every (task, language, split) the stages not done read: one line per gap, "
                   "exit 2 on gaps, 1 when some could not be checked (e.g. the hub is unreachable)")

    p = command("render", _render, "Print one Kubernetes Job per stage (and a NetworkPolicy). The Jobs carry no "
                "ordering: `xtrc apply` runs the plan in order.")
    _spec_args(p)
    p.add_argument("-o", "--output", metavar="DIR", help="write one file per object into DIR")
    p.add_argument("--ready-only", action="store_true",
                   help="only the stages that can start now: not done, their upstream stages done in the store "
                        "(what `xtrc apply` would create first)")
    p.add_argument("--charts", metavar="DIR", help="use the templates in DIR instead of the built-in charts")

    p = command("run", _run, "Run the whole experiment on this machine (stages as local processes).")
    _spec_args(p)
    p.add_argument("--jobs", type=_at_least(1), metavar="N", help="stages at once (default: compute.max_parallel, "
                   "limited by the GPUs here)")
    _wait_arg(p)

    p = command("report", _report, "Tables of the results (arms x tasks, Δ vs the baseline) and the research "
                "question's answer with paired bootstrap intervals.")
    _spec_args(p)
    p.add_argument("--format", choices=("table", "csv", "json", "markdown", "latex"), default="table",
                   help="output format (default: rich tables)")
    p.add_argument("--by", choices=("language",), help="add one arms x languages table per task")
    p.add_argument("--task", action="append", metavar="T", help="only target task T (repeatable, or comma-separated)")
    p.add_argument("--plot", metavar="FILE", help="also draw a figure; the suffix sets the format (.png, .svg, "
                   ".pdf)")
    p.add_argument("--plot-kind", choices=("forest", "heatmap"), default="forest", help="forest (default): combined "
                   "− each single method and the interaction, per task and on the mean, with intervals; heatmap: "
                   "Δ vs the baseline by language x arm")
    p.add_argument("--bootstrap", type=_at_least(0), default=1000, metavar="N",
                   help="bootstrap replicates (0: no intervals over examples)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap resampling")
    p.add_argument("--workers", type=_at_least(1), default=32, metavar="N", help="store reads at once")

    p = command("apply", _apply, "Run the experiment on Kubernetes: store the spec in a ConfigMap and start an "
                "in-cluster orchestrator Job (with its ServiceAccount, Role and RoleBinding) that creates each "
                "stage's Job when it is ready; idempotent. --watch runs that loop here instead.")
    _loop_args(p, image_help="container image of the stages and the orchestrator (overrides the spec's image)")
    p.add_argument("--watch", action="store_true", help="run the orchestration loop here, with a live view, "
                   "instead of the orchestrator Job")
    dry = p.add_mutually_exclusive_group()
    dry.add_argument("--dry-run", action="store_true", help="print what would be created; contact no cluster")
    dry.add_argument("--server-dry-run", action="store_true", help="send every create with dryRun=All: the "
                     "API server validates and admits, nothing is stored")

    p = command("orchestrate", _orchestrate, "The orchestration loop on Kubernetes, without a live view (what the "
                "orchestrator Job of `xtrc apply` runs in-cluster). Exits 0 when every stage is done, 3 when "
                "stages failed.")
    _loop_args(p, image_help="container image of the stages (overrides the spec's image)")

    p = command("status", _status, "One row per stage: state (cached, waiting, ready, pending, running, "
                "succeeded, failed, blocked), pod phase, node, age, attempts, and why, from the store and the "
                "cluster.")
    _spec_args(p)
    _kube_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    _local_arg(p)

    p = command("logs", _logs, "Print (or follow) the log of a stage's newest pod (or of its process, for "
                "a local run).")
    _spec_args(p)
    p.add_argument("stage", metavar="STAGE", help="a stage key prefix, or ARM/TASK such as none+cs/panx "
                   "(TASK: a target task, or intermediate)")
    _kube_args(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the container ends")
    p.add_argument("--seed", type=int, metavar="S", help="the seed, when ARM/TASK matches several")
    _local_arg(p)

    p = command("delete", _delete, "Remove the experiment from the cluster: its stage Jobs and pods, the "
                "orchestrator Job, ConfigMap, ServiceAccount, Role, RoleBinding and NetworkPolicy. Stored "
                "results stay unless --purge-store.")
    _spec_args(p)
    _kube_args(p)
    p.add_argument("--purge-store", action="store_true", help="also delete this experiment's stages "
                   "(checkpoints, models, metrics) from the store; asks first")
    p.add_argument("-y", "--yes", action="store_true", help="with --purge-store: do not ask")

    command("schema", _schema, "Print the spec's JSON Schema (for editors: yaml-language-server).")
    p = command("tasks", _tasks, "List the task registry (types, languages, metrics, data sources) and the "
                "benchmark protocol: what each target trains on, from which checkpoint, with which "
                "augmentation, how it is selected and scored, and every deviation from the reference.")
    p.add_argument("--json", action="store_true", help="machine-readable output: every field of every task")
    p.add_argument("--benchmark", choices=("xtreme-r", "xtreme"), default="xtreme-r",
                   help="whose protocol to print (default xtreme-r; a spec's benchmark: picks it)")
    return parser


def _at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` no smaller than ``minimum``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value
    return parse


def _loop_args(p: argparse.ArgumentParser, *, image_help: str) -> None:
    """The arguments of every command that runs the orchestration loop against a cluster."""
    _spec_args(p)
    _kube_args(p)
    p.add_argument("--image", metavar="IMG", help=image_help)
    p.add_argument("--charts", metavar="DIR", help="use the templates in DIR instead of the built-in charts")
    p.add_argument("--poll", type=_at_least(0.1, float), default=2.0, metavar="SECONDS", help="seconds between looks at the "
                   "cluster (default 2)")
    _wait_arg(p)


def _wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="if another loop runs this experiment on this store "
                   "(it holds the lease experiments/NAME/lease.json), wait for it to end instead of exiting 4 "
                   "(`xtrc orchestrate` always waits)")


def _local_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", action="store_true", help="the stages `xtrc run` runs on this machine, not the "
                   "cluster's (the default when this machine has run state for the store and neither --context "
                   "nor --namespace is given)")


def _is_local(args: argparse.Namespace, exp: Experiment) -> bool:
    from xtrc.local import state_dir_for
    from xtrc.store import normalize_uri

    if args.local:
        return True
    if args.context or args.namespace:
        return False
    return state_dir_for(normalize_uri(exp.storage.uri)).is_dir()


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--store", metavar="URI", help="store root (overrides storage.uri; env XTRC_STORE)")
    p.add_argument("--rerun", metavar="SALT", help="add SALT to the spec's salt: every stage gets a new key")


def _kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", metavar="C", help="kubeconfig context (default: the current one; inside a pod: "
                   "the in-cluster configuration)")
    p.add_argument("-n", "--namespace", metavar="N", help="namespace (default: compute.namespace)")


def load_experiment(args: argparse.Namespace) -> Experiment:
    from xtrc.loader import load

    exp = load(args.spec)
    update: dict[str, Any] = {}
    store = getattr(args, "store", None) or os.environ.get("XTRC_STORE")
    if store:
        update["storage"] = exp.storage.model_copy(update={"uri": store})
    if getattr(args, "rerun", None):
        update["salt"] = f"{exp.salt}|{args.rerun}" if exp.salt else args.rerun
    return exp.model_copy(update=update) if update else exp


def _build_plan(args: argparse.Namespace) -> Plan:
    from xtrc.plan import build

    plan = build(load_experiment(args))
    _warn_unlisted(plan)
    return plan


def _warn_unlisted(plan: Plan) -> None:
    for problem in plan.unlisted:
        print(f"warning: {problem}; stage keys are provisional (done stages may show as not done)", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    from xtrc.errors import SpecError
    from xtrc.loader import load_with_warnings
    from xtrc.plan import build

    failed = False
    for path in args.specs:
        try:
            experiment, warnings = load_with_warnings(path)
            plan = build(experiment, fingerprint=False)
        except SpecError as exc:
            if os.environ.get("XTRC_DEBUG") == "1":
                raise
            failed = True
            print(exc, file=sys.stderr)
            continue
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{path}: ok ({len(plan.arms)} arms, {len(plan.stages)} stages)")
    return EXIT_USAGE if failed else 0


def _plan(args: argparse.Namespace) -> int:
    from xtrc.plan_view import plan_summary, print_plan
    from xtrc.store import Store

    plan = _build_plan(args)
    exp = plan.experiment
    done: set[str] | None = None
    if not args.no_store:
        try:
            done = Store(exp.storage.uri, dict(exp.storage.options)).done_keys() & set(plan.stages)
        except ImportError as exc:
            raise XtrcError(f"cannot read store {exp.storage.uri}: {exc}; install its fsspec backend "
                            "(pip install 'xtrc[s3]' for s3://), or pass --no-store") from None
        except Exception as exc:  # an unreachable store must not hide the plan
            print(f"warning: cannot read store {exp.storage.uri} ({type(exc).__name__}: {exc}); "
                  "showing every stage as not done", file=sys.stderr)
    results = _check_data(plan, done or set()) if args.check_data else None
    if args.json:
        summary = plan_summary(plan, done)
        if results is not None:
            summary["check_data"] = [vars(r) for r in results]
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print_plan(plan, done)
    if results is None:
        return 0
    from xtrc.datacheck import exit_code

    for result in results:
        if result.status == "gap":
            print(result.line(), file=sys.stderr)
    unchecked: dict[str, list[str]] = {}
    for result in results:  # one line per reason: offline, every hub split says the same
        if result.status == "unchecked":
            unchecked.setdefault(result.detail, []).append(result.label)
    for detail, labels in unchecked.items():
        shown = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
        print(f"cannot check {len(labels)}: {detail}: {shown}", file=sys.stderr)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "gap", "unchecked")}
    print(f"check-data: {counts['ok']} ok, {counts['gap']} gap(s), {counts['unchecked']} not checked",
          file=sys.stderr)
    return exit_code(results)


def _check_data(plan: Plan, done: set[str]) -> list[Any]:
    from xtrc.datacheck import CheckDataError, check_stages

    try:
        return check_stages(s for k, s in plan.stages.items() if k not in done)
    except CheckDataError as exc:
        raise XtrcError(str(exc)) from None


def _checked(plan: Plan, done: set[str], backend: Any, say: Callable[[str], None]) -> Any:
    """``backend`` wrapped so that stages whose data fail the check are failed, never submitted."""
    from xtrc.datacheck import CheckedBackend, rejected_stages

    rejected, notes = rejected_stages(plan, done)
    for note in notes:
        say(f"note: {note}")
    if rejected:
        say(f"data check: {len(rejected)} stage(s) will not run: their data fail validation")
    return CheckedBackend(backend, rejected) if rejected else backend


def _render(args: argparse.Namespace) -> int:
    from xtrc.render import RENDER_NOTE, Renderer

    plan = _build_plan(args)
    keys = None
    note = RENDER_NOTE
    if args.ready_only:
        keys = _ready_keys(plan)
        note += (f"# --ready-only: {len(keys)} of {len(plan.stages)} stages (the others are done in the store "
                 "or wait for an upstream stage)\n")
    manifests = Renderer(args.charts).iter_render(plan, keys)
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        count = 0
        for manifest in manifests:
            (out / manifest.filename).write_text(manifest.text, encoding="utf-8")
            count += 1
        print(f"wrote {count} manifests to {out}", file=sys.stderr)
    else:
        write = sys.stdout.write
        write(note)
        for i, manifest in enumerate(manifests):
            write(manifest.text if i == 0 else "---\n" + manifest.text)
    return 0


def _ready_keys(plan: Plan) -> set[str]:
    """Stages not done whose upstream stages are all done in the store."""
    from xtrc.store import Store

    exp = plan.experiment
    try:
        done = Store(exp.storage.uri, dict(exp.storage.options)).done_keys()
    except Exception as exc:  # noqa: BLE001 - any store failure: say which store and why
        raise XtrcError(f"--ready-only reads the store {exp.storage.uri}: {type(exc).__name__}: {exc}") from None
    return {key for key, stage in plan.stages.items() if key not in done and all(u in done for u in stage.upstream)}


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xtrc.live import describe
    from xtrc.local import LocalBackend, visible_gpus
    from xtrc.store import Store

    plan = _build_plan(args)
    plan.require_fingerprints()
    exp = plan.experiment
    console = Console(stderr=True, soft_wrap=True)  # soft wrap: a reason stays on one line in logs
    store = Store(exp.storage.uri, dict(exp.storage.options))
    with _loop_lease(store, exp.metadata.name, wait=args.wait, console=console) as lease:
        _save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
        gpus = visible_gpus()
        if exp.compute.gpus and not gpus:
            console.print(f"[yellow]note:[/] the spec asks for {exp.compute.gpus} GPU(s) per stage and this "
                          "machine has none: stages run on the CPU")
        backend = LocalBackend(store, retries=exp.compute.retries, gpus_per_stage=exp.compute.gpus if gpus else 0,
                               gpus=gpus)
        jobs = args.jobs or exp.compute.max_parallel
        if backend.gpu_slots is not None:
            jobs = min(jobs, backend.gpu_slots)
        backend.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
        done = _patiently(store.done_keys, "reading the store", console)
        backend.retry_failed(set(plan.stages) - done)  # a new run tries again what failed before
        backend = _checked(plan, done, backend, lambda text: console.print(text, markup=False, highlight=False))

        snapshot, interrupted = _watched_loop(plan, store, backend, console, max_parallel=max(1, jobs),
                                              lease=lease, log=lambda key: str(backend.log_path(key)))
        if interrupted:
            backend.cancel()
            console.print("interrupted: running stages were stopped; run the same command again to resume")
            return 130
        backend.wait_for_exits()
        snapshot.warnings.extend(backend.problems)
    return _summary(console, plan, snapshot, store.uri, describe, log=lambda key: str(backend.log_path(key)))


def _patiently(op: Callable[[], Any], what: str, console: Any) -> Any:
    from xtrc.orchestrate import patiently
    from xtrc.store import MissingBucket

    try:
        return patiently(op, what, lambda text: console.print(text, markup=False, highlight=False),
                         fatal=(MissingBucket,))
    except (MissingBucket, PermissionError) as exc:
        raise XtrcError(str(exc) if isinstance(exc, MissingBucket) else
                        f"the store refused access ({exc}); check storage.options and the credentials") from None


def _loop_lease(store: Any, name: str, *, wait: bool, console: Any) -> Any:
    """The experiment's loop lease in ``store`` (held for the ``with`` block), after checking that
    the store's bucket exists: xtrc never creates one."""
    from xtrc.lease import holding, loop_lease

    _patiently(store.check_bucket, "checking the store", console)
    return holding(loop_lease(store, name), wait=wait,
                   say=lambda text: console.print(text, markup=False, highlight=False))


def _save_spec(store: Any, name: str, text: bytes, console: Any) -> None:
    """experiments/<name>/spec.yaml: the spec as applied."""
    from xtrc.store import write_atomic

    _patiently(lambda: write_atomic(store.fs, store.layout.experiment(name, "spec.yaml"), text),
               "saving the spec", console)


# --- Kubernetes ------------------------------------------------------------------------------


def _kube_experiment(args: argparse.Namespace) -> Experiment:
    """The spec with --store, --rerun, --namespace and --image applied."""
    import re

    exp = load_experiment(args)
    compute: dict[str, Any] = {}
    update: dict[str, Any] = {}
    namespace = getattr(args, "namespace", None)
    if namespace:
        if len(namespace) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace):
            raise XtrcError(f"--namespace {namespace!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
        compute["namespace"] = namespace
    image = getattr(args, "image", None)
    if image:
        from xtrc.spec import image_error, image_warning

        error = image_error(image)
        if error:
            raise XtrcError(f"--image: {error}")
        warning = image_warning(image)
        if warning:
            print(f"warning: --image: {warning}", file=sys.stderr)
        update["image"] = image
    if compute:
        update["compute"] = exp.compute.model_copy(update=compute)
    return exp.model_copy(update=update) if update else exp


def _kube_store(exp: Experiment) -> Any:
    """The store, with the credentials a mounted storage Secret holds (in-cluster) added to its options."""
    from xtrc.store import Store, credential_options

    uri = exp.storage.uri
    return Store(uri, credential_options(uri, dict(exp.storage.options), os.environ.get("XTRC_STORAGE_SECRET_DIR")))


def _apply(args: argparse.Namespace) -> int:
    from xtrc.kube import (
        KubernetesBackend, api_client, apply, apply_manifests, check_store, orchestrator_args, orchestrator_env,
    )
    from xtrc.plan import build
    from xtrc.render import SPEC_DIR, Renderer, job_name

    if args.poll <= 0:
        raise XtrcError("--poll must be more than 0 seconds")
    exp = _kube_experiment(args)
    plan = build(exp)
    if args.dry_run:
        _warn_unlisted(plan)
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
                                    args=orchestrator, env=orchestrator_env())
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
    store = _kube_store(exp)
    try:
        with _loop_lease(store, exp.metadata.name, wait=args.wait, console=console) as lease:
            _save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
            retried = retry_failed(backend)  # as a new `xtrc run` does: what failed before is tried again
            if retried:
                console.print(f"retrying {len(retried)} failed stage(s)")
            backend = _checked(plan, store.done_keys(), backend,
                               lambda text: console.print(text, markup=False, highlight=False))
            snapshot, interrupted = _watched_loop(plan, store, backend, console,
                                                  max_parallel=exp.compute.max_parallel, poll_seconds=args.poll,
                                                  lease=lease)
    finally:
        backend.close()
    if interrupted:
        console.print(f"stopped watching: {snapshot.count('running')} stage Job(s) keep running in namespace "
                      f"{backend.namespace}; `xtrc apply {args.spec} --watch` watches again, `xtrc apply` hands "
                      f"them to an in-cluster orchestrator, `xtrc delete {args.spec}` stops them")
        return 130
    return _summary(console, plan, snapshot, store.uri, describe, log=lambda key: f"xtrc logs {args.spec} {key}")


def _watched_loop(plan: Plan, store: Any, backend: Any, console: Any, *, max_parallel: int,
                  poll_seconds: float = 1.0, lease: Any = None,
                  log: Callable[[str], str] | None = None) -> tuple[Any, bool]:
    """The orchestration loop with the live view; Ctrl-C ends the loop (not the stages) and
    returns (last snapshot, True)."""
    import signal

    from xtrc.live import Progress
    from xtrc.orchestrate import orchestrate

    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    progress = Progress(plan, console, store=store, log=log)
    try:
        snapshot = orchestrate(plan, store, backend, max_parallel=max_parallel, poll_seconds=poll_seconds,
                               on_pass=progress, should_stop=lambda: interrupted, lease=lease)
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    return snapshot, interrupted


def _summary(console: Any, plan: Plan, snapshot: Any, uri: str, describe: Any, *, log: Any) -> int:
    """The closing lines of a loop's run: counts, and each failed or blocked stage with its reason
    and where its log is (``log(key)``); 1 when anything failed or is blocked."""
    failed = {k: v for k, v in snapshot.stages.items() if v.state == "failed"}
    blocked = {k: v for k, v in snapshot.stages.items() if v.state == "blocked"}
    console.print(f"{snapshot.count('done')}/{len(plan.stages)} stages done in {uri}; "
                  f"{len(failed)} failed, {len(blocked)} blocked")
    for key, view in failed.items():
        console.print(f"  [red]failed[/] {key} {describe(plan, key)}: {view.reason} (log: {log(key)})")
    for key, view in blocked.items():
        console.print(f"  [yellow]blocked[/] {key} {describe(plan, key)}: {view.reason}")
    for warning in snapshot.warnings:
        console.print(f"  warning: {warning}", markup=False, highlight=False)
    return 1 if failed or blocked else 0


ORCHESTRATE_FAILED = 3
"""`xtrc orchestrate` ended with failed or blocked stages (its Job's podFailurePolicy does not retry it)."""


def _orchestrate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xtrc.kube import KubernetesBackend, Transitions, api_client
    from xtrc.live import describe
    from xtrc.orchestrate import orchestrate
    from xtrc.plan import build
    from xtrc.render import Renderer

    if args.poll <= 0:
        raise XtrcError("--poll must be more than 0 seconds")
    exp = _kube_experiment(args)
    plan = build(exp)
    plan.require_fingerprints()
    backend = KubernetesBackend(plan, api_client(args.context), renderer=Renderer(args.charts))
    store = _kube_store(exp)
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
        with _loop_lease(store, exp.metadata.name, wait=True, console=console) as lease:
            _save_spec(store, exp.metadata.name, Path(args.spec).read_bytes(), console)
            backend = _checked(plan, store.done_keys(), backend, lambda text: print(text, flush=True))
            snapshot = orchestrate(plan, store, backend, max_parallel=exp.compute.max_parallel,
                                   poll_seconds=args.poll, on_pass=on_pass, lease=lease)
    finally:
        backend.close()
    failed = _summary(console, plan, snapshot, store.uri, describe, log=lambda key: f"xtrc logs {args.spec} {key}")
    return ORCHESTRATE_FAILED if failed else 0


def _status(args: argparse.Namespace) -> int:
    from xtrc.kube import KubernetesBackend, api_client, stage_rows
    from xtrc.plan import build

    exp = _kube_experiment(args)
    plan = build(exp)
    if _is_local(args, exp):
        return _local_status(args, plan)
    backend = KubernetesBackend(plan, api_client(args.context), require_remote_store=False)
    statuses = backend.poll()  # before the store: a stage that ends in between is seen done, not failed
    store = _kube_store(exp)
    try:
        done = store.done_keys() & set(plan.stages)
    except Exception as exc:  # the store may need credentials only the cluster has
        print(f"warning: cannot read store {exp.storage.uri} ({type(exc).__name__}: {exc}); stages count as done "
              "only when their Job completed", file=sys.stderr)
        done = {key for key, status in statuses.items() if status.state == "finished"}
    rows = stage_rows(plan, done, backend, statuses)
    _add_progress(rows, store)
    return _print_status(rows, f"{exp.metadata.name} in namespace {backend.namespace}", as_json=args.json)


def _local_status(args: argparse.Namespace, plan: Plan) -> int:
    """`xtrc status` of a run on this machine: the same rows, from the local run state and the store."""
    import socket

    from xtrc.local import LocalBackend, local_rows
    from xtrc.store import Store

    exp = plan.experiment
    store = Store(exp.storage.uri, dict(exp.storage.options))
    backend = LocalBackend(store)
    statuses = backend.poll()
    try:
        done = store.done_keys() & set(plan.stages)
    except Exception as exc:
        raise XtrcError(f"cannot read store {store.uri}: {type(exc).__name__}: {exc}") from None
    rows = local_rows(plan, done, backend, statuses)
    return _print_status(rows, f"{exp.metadata.name} on {socket.gethostname()} (local run)", as_json=args.json)


def _add_progress(rows: list[Any], store: Any) -> None:
    """A running stage's reason: its progress record (step/total, ETA), where it wrote one."""
    from xtrc.live import progress_text, read_progress

    for row in rows:
        if row.state == "running" and not row.reason:
            row.reason = progress_text(read_progress(store, row.key))


def _print_status(rows: list[Any], where: str, *, as_json: bool) -> int:
    from xtrc.kube import STATUS_STATES, age_text

    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    colours = {"cached": "green", "succeeded": "green", "running": "cyan", "pending": "yellow", "ready": "blue",
               "waiting": "dim", "failed": "red", "blocked": "yellow"}
    counts = {state: sum(1 for r in rows if r.state == state) for state in STATUS_STATES}
    title = f"{where}: " + ", ".join(
        f"{n} {state}" for state, n in counts.items() if n)
    table = Table(title=title, show_header=True, header_style="bold", box=None)
    for column in ("stage", "what", "state", "pod phase", "node", "age", "attempts", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.key[:12], r.what, f"[{colours[r.state]}]{r.state}[/]", r.phase, r.node, age_text(r.age),
                      str(r.attempts or ""), r.reason)
    console = Console()
    if not console.is_terminal:  # piped or logged: one line per stage, however long its reason
        console = Console(width=max(console.width, 240))
    console.print(table)
    return 0


def _logs(args: argparse.Namespace) -> int:
    import codecs

    from xtrc.kube import KubernetesBackend, api_client, newest_pod, pod_log, resolve_stage
    from xtrc.live import describe
    from xtrc.plan import build

    exp = _kube_experiment(args)
    plan = build(exp)
    key = resolve_stage(plan, args.stage, args.seed)
    if _is_local(args, exp):
        return _local_logs(args, plan, key)
    backend = KubernetesBackend(plan, api_client(args.context), require_remote_store=False)
    pod, count = newest_pod(backend, key)
    print(f"==> stage {key} ({describe(plan, key)}): pod {pod.metadata.name}, attempt {count}", file=sys.stderr)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in pod_log(backend, pod.metadata.name, follow=args.follow):
        sys.stdout.write(decoder.decode(chunk))
        sys.stdout.flush()
    sys.stdout.write(decoder.decode(b"", final=True))
    return 0


def _local_logs(args: argparse.Namespace, plan: Plan, key: str) -> int:
    from xtrc.live import describe
    from xtrc.local import LocalBackend, follow_log
    from xtrc.store import Store

    exp = plan.experiment
    backend = LocalBackend(Store(exp.storage.uri, dict(exp.storage.options)))
    record = backend.record(key)
    where = str(backend.log_path(key)) if backend.log_path(key).exists() else "the store's log.txt"
    attempt = f", attempt {record['attempts']}" if record.get("attempts") else ""
    print(f"==> stage {key} ({describe(plan, key)}): {where}{attempt}", file=sys.stderr)
    if not follow_log(backend, key, sys.stdout.buffer, follow=args.follow):
        raise XtrcError(f"stage {key} has no log yet: it has not run on this machine, and the store holds no "
                        "log.txt for it")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from xtrc.kube import api_client, delete
    from xtrc.plan import build

    exp = _kube_experiment(args)
    plan = build(exp)
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
    store = _kube_store(exp)
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


def _report(args: argparse.Namespace) -> int:
    from xtrc.report import build_report, check_tasks, collect, local_status, plot, print_tables, render
    from xtrc.store import Store

    from xtrc.report.plot import check_plot

    if args.plot:
        check_plot(args.plot)  # before any reading: a figure that cannot be written fails now
    plan = _build_plan(args)
    exp = plan.experiment
    if args.task:
        check_tasks(args.task, exp.target_tasks)
    store = Store(exp.storage.uri, dict(exp.storage.options))
    try:
        from xtrc.local import state_dir_for

        markers = store.done_markers(workers=args.workers)
        if not set(markers) & set(plan.stages):
            how = "xtrc run" if store.uri.startswith("file://") else "xtrc apply"
            print(f"0/{len(plan.stages)} stages done in {store.uri}; run `{how} {args.spec}`", file=sys.stderr)
            return 1
        status: dict[str, str] = {}
        if state_dir_for(store.uri).is_dir():  # stages run here: their state files say running/failed
            status = local_status(plan, store, set(markers))
        results = collect(plan, store, status=status, workers=args.workers, markers=markers)
    except ImportError as exc:
        raise XtrcError(f"cannot read store {store.uri}: {exc}; install its fsspec backend "
                        "(pip install 'xtrc[s3]' for s3://)") from None
    except OSError as exc:
        raise XtrcError(f"cannot read store {store.uri}: {type(exc).__name__}: {exc}") from None
    report = build_report(results, tasks=args.task, by=args.by, bootstrap=args.bootstrap, seed=args.seed)
    if args.format == "table":
        from rich.console import Console

        from xtrc.report.render import PIPE_WIDTH

        piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
        print_tables(report, Console(width=PIPE_WIDTH) if piped else Console())
    else:
        sys.stdout.write(render(report, args.format))
    if args.plot:
        plot(results, args.plot, tasks=args.task, kind=args.plot_kind, report=report)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from xtrc.spec import Experiment

    schema = Experiment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "xtrc Experiment (xtrc.dev/v1alpha1)"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from xtrc import tasks

    if args.json:
        from xtrc import protocol

        print(json.dumps({"tasks": [_jsonable(info) for info in tasks.TASKS.values()],
                          "groups": {g: list(m) for g, m in tasks.GROUPS.items()},
                          "protocol": {b: {t: _jsonable(r) for t, r in rules.items()}
                                       for b, rules in protocol.PROTOCOLS.items()}}, indent=2))
        return 0
    from rich.console import Console

    from xtrc.report.fit import print_fitted

    rows = []
    for info in tasks.TASKS.values():
        source = info.source.dataset + (f" ({info.source.config})" if info.source.config else "") if info.source \
            else "user path"
        others: dict[str, list[str]] = {}
        for lang, elsewhere in info.sources_by_language.items():  # XTREME-R's additions
            others.setdefault(elsewhere.dataset, []).append(lang)
        source += "".join(f"; {' '.join(langs)}: {name}" for name, langs in others.items())
        rows.append([info.type, ",".join(sorted(info.roles)), str(len(info.languages)),
                     info.metrics[0] if info.metrics else "", ",".join(info.train_on) or "-", source])
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    print_fitted(Console(width=100_000) if piped else Console(), "xtrc task registry", "task", list(tasks.TASKS),
                 ["type", "roles", "langs", "headline", "trains on", "source"], rows, justify="left")
    print("groups:")
    for group, members in tasks.GROUPS.items():
        print(f"  {group} = {' '.join(members)}")
    _print_protocol(Console(width=100_000) if piped else Console(), args.benchmark)
    return 0


def _print_protocol(console: Any, benchmark: str) -> None:
    from xtrc import protocol
    from xtrc.report.fit import print_fitted

    rules = protocol.PROTOCOLS[benchmark]
    rows = [[rule.stage, ",".join(rule.train_on) or "-", rule.objective,
             "arm's SQuAD model" if rule.init == "squad" else "base/intermediate",
             ",".join(sorted(rule.augment)) or "-", rule.selection] for rule in rules.values()]
    print_fitted(console, f"{benchmark} protocol (xtrc.protocol)", "target", list(rules),
                 ["stage", "trains on", "objective", "starts from", "augmentation", "selection"], rows,
                 justify="left")
    import textwrap

    width = min(getattr(console, "width", 80) or 80, 100)

    def item(text: str) -> None:
        print(textwrap.fill(text, width=width, initial_indent="  ", subsequent_indent="    "))

    print("scoring (reference):")
    for rule in rules.values():
        item(f"{rule.task}: {rule.scoring} ({rule.reference})")
    print("deviations from the reference:")
    for rule in rules.values():
        for deviation in rule.deviations:
            item(f"{rule.task}: {deviation}")


def _jsonable(value: Any) -> Any:
    """A registry dataclass as JSON values (sets sorted, mappings and tuples as objects and lists)."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
