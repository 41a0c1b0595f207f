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
        return int(args.command(args) or 0)
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

    p = command("render", _render, "Print one Kubernetes Job per stage (and a NetworkPolicy).")
    _spec_args(p)
    p.add_argument("-o", "--output", metavar="DIR", help="write one file per object into DIR")
    p.add_argument("--charts", metavar="DIR", help="use the templates in DIR instead of the built-in charts")

    p = command("run", _run, "Run the whole experiment on this machine (stages as local processes).")
    _spec_args(p)
    p.add_argument("--jobs", type=int, metavar="N", help="stages at once (default: compute.max_parallel, "
                   "limited by the GPUs here)")

    command("schema", _schema, "Print the spec's JSON Schema (for editors: yaml-language-server).")
    command("tasks", _tasks, "List the task registry: types, languages, metrics, data sources.")
    return parser


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--store", metavar="URI", help="store root (overrides storage.uri; env XTRC_STORE)")
    p.add_argument("--rerun", metavar="SALT", help="add SALT to the spec's salt: every stage gets a new key")


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

    return build(load_experiment(args))


def _validate(args: argparse.Namespace) -> int:
    from xtrc.errors import SpecError
    from xtrc.loader import load
    from xtrc.plan import build

    failed = False
    for path in args.specs:
        try:
            plan = build(load(path))
        except SpecError as exc:
            if os.environ.get("XTRC_DEBUG") == "1":
                raise
            failed = True
            print(exc, file=sys.stderr)
            continue
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
    if args.json:
        print(json.dumps(plan_summary(plan, done), indent=2, sort_keys=True))
    else:
        print_plan(plan, done)
    return 0


def _render(args: argparse.Namespace) -> int:
    from xtrc.render import Renderer

    plan = _build_plan(args)
    manifests = Renderer(args.charts).render(plan)
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        for manifest in manifests:
            (out / manifest.filename).write_text(manifest.text, encoding="utf-8")
        print(f"wrote {len(manifests)} manifests to {out}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(m.text for m in manifests))
    return 0


def _run(args: argparse.Namespace) -> int:
    import signal

    from rich.console import Console

    from xtrc.live import Progress, describe
    from xtrc.local import LocalBackend, visible_gpus
    from xtrc.orchestrate import orchestrate
    from xtrc.store import Store

    plan = _build_plan(args)
    exp = plan.experiment
    console = Console(stderr=True, soft_wrap=True)  # soft wrap: a reason stays on one line in logs
    store = Store(exp.storage.uri, dict(exp.storage.options))
    _save_spec(store, exp.metadata.name, Path(args.spec).read_bytes())
    gpus = visible_gpus()
    if exp.compute.gpus and not gpus:
        console.print(f"[yellow]note:[/] the spec asks for {exp.compute.gpus} GPU(s) per stage and this machine "
                      "has none: stages run on the CPU")
    backend = LocalBackend(store, retries=exp.compute.retries, gpus_per_stage=exp.compute.gpus if gpus else 0,
                           gpus=gpus)
    jobs = args.jobs or exp.compute.max_parallel
    if backend.gpu_slots is not None:
        jobs = min(jobs, backend.gpu_slots)
    backend.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    done = store.done_keys()
    for key in plan.stages:  # a new run tries again what failed before
        if key not in done:
            backend.forget(key)

    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    progress = Progress(plan, console)
    try:
        snapshot = orchestrate(plan, store, backend, max_parallel=max(1, jobs), on_pass=progress,
                               should_stop=lambda: interrupted)
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        backend.cancel()
        console.print("interrupted: running stages were stopped; run the same command again to resume")
        return 130
    failed = {k: v for k, v in snapshot.stages.items() if v.state == "failed"}
    blocked = {k: v for k, v in snapshot.stages.items() if v.state == "blocked"}
    console.print(f"{snapshot.count('done')}/{len(plan.stages)} stages done in {store.uri}; "
                  f"{len(failed)} failed, {len(blocked)} blocked")
    for key, view in failed.items():
        console.print(f"  [red]failed[/] {key} {describe(plan, key)}: {view.reason} (log: {backend.log_path(key)})")
    for key, view in blocked.items():
        console.print(f"  [yellow]blocked[/] {key} {describe(plan, key)}: {view.reason}")
    return 1 if failed or blocked else 0


def _save_spec(store: Any, name: str, text: bytes) -> None:
    """experiments/<name>/spec.yaml: the spec as applied (written whole, then moved into place)."""
    fs = store.fs
    final = store.layout.experiment(name, "spec.yaml")
    tmp = f"{final}.tmp-{os.getpid()}"
    fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(tmp, "wb") as f:
        f.write(text)
    fs.mv(tmp, final)


def _schema(args: argparse.Namespace) -> int:
    from xtrc.spec import Experiment

    schema = Experiment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "xtrc Experiment (xtrc.dev/v1alpha1)"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from xtrc import tasks

    table = Table(title="xtrc task registry")
    for column in ("task", "type", "roles", "langs", "headline", "trains on", "source"):
        table.add_column(column)
    for info in tasks.TASKS.values():
        source = info.source.dataset + (f" ({info.source.config})" if info.source.config else "") if info.source \
            else "user path"
        table.add_row(info.name, info.type, ",".join(sorted(info.roles)), str(len(info.languages)),
                      info.metrics[0] if info.metrics else "", ",".join(info.train_on) or "-", source)
    Console().print(table)
    print("groups: " + "; ".join(f"{g} = {' '.join(m)}" for g, m in tasks.GROUPS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
