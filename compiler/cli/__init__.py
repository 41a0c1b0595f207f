"""The `xtrc` command line: the parser and the dispatch to one module per command group. Heavy
modules are imported inside commands: `xtrc --help` stays fast."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from xtrc import __version__
from xtrc.cli.errors import run_guarded
from xtrc.cli.kube import apply_command, delete_command, orchestrate_command
from xtrc.cli.plan import plan_command, render_command, validate_command
from xtrc.cli.registry import schema_command, tasks_command
from xtrc.cli.report import report_command
from xtrc.cli.run import run_command
from xtrc.cli.status import logs_command, status_command
from xtrc.errors import EXIT_USAGE

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    return run_guarded(args.command, args)


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

    p = command("validate", validate_command, "Check spec files; print every problem at once.")
    p.add_argument("specs", nargs="+", metavar="SPEC")

    p = command("plan", plan_command, "Show arms, the stage DAG, what is already done, and the GPU-hours left.")
    _spec_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-store", action="store_true", help="do not read the store (every stage shown as not done; "
                   "hub revisions resolved now, not pinned)")
    _refresh_arg(p)
    p.add_argument("--check-data", action="store_true",
                   help="also validate every (task, language, split) the stages not done read: one line per gap, "
                   "exit 2 on gaps, 1 when some could not be checked (e.g. the hub is unreachable)")

    p = command("render", render_command, "Print one Kubernetes Job per stage (and a NetworkPolicy). The Jobs carry no "
                "ordering: `xtrc apply` runs the plan in order.")
    _spec_args(p)
    p.add_argument("-o", "--output", metavar="DIR", help="write one file per object into DIR")
    p.add_argument("--ready-only", action="store_true",
                   help="only the stages that can start now: not done, their upstream stages done in the store "
                        "(what `xtrc apply` would create first)")
    p.add_argument("--charts", metavar="DIR", help="use the templates in DIR instead of the built-in charts")
    _refresh_arg(p)

    p = command("run", run_command, "Run the whole experiment on this machine (stages as local processes).")
    _spec_args(p)
    p.add_argument("--jobs", type=_at_least(1), metavar="N", help="stages at once (default: compute.max_parallel, "
                   "limited by the GPUs here)")
    p.add_argument("--cold", action="store_true", help="start each stage as a fresh interpreter instead of "
                   "forking it from a parent that already imported torch and transformers (the default; "
                   "XTRC_WARM_STAGES=0 does the same)")
    _wait_arg(p)
    _refresh_arg(p)

    p = command("report", report_command, "Tables of the results (arms x tasks, Δ vs the baseline) and the research "
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

    p = command("apply", apply_command, "Run the experiment on Kubernetes: store the spec in a ConfigMap and start an "
                "in-cluster orchestrator Job (with its ServiceAccount, Role and RoleBinding) that creates each "
                "stage's Job when it is ready; idempotent. --watch runs that loop here instead.")
    _loop_args(p, image_help="container image of the stages and the orchestrator (overrides the spec's image)")
    p.add_argument("--watch", action="store_true", help="run the orchestration loop here, with a live view, "
                   "instead of the orchestrator Job")
    dry = p.add_mutually_exclusive_group()
    dry.add_argument("--dry-run", action="store_true", help="print what would be created; contact no cluster")
    dry.add_argument("--server-dry-run", action="store_true", help="send every create with dryRun=All: the "
                     "API server validates and admits, nothing is stored")
    _refresh_arg(p)

    p = command("orchestrate", orchestrate_command, "The orchestration loop on Kubernetes, without a live view (what the "
                "orchestrator Job of `xtrc apply` runs in-cluster). Exits 0 when every stage is done, 3 when "
                "stages failed.")
    _loop_args(p, image_help="container image of the stages (overrides the spec's image)")

    p = command("status", status_command, "One row per stage: state (cached, waiting, ready, pending, running, "
                "succeeded, failed, blocked), pod phase, node, age, attempts, and why, from the store and the "
                "cluster.")
    _spec_args(p)
    _kube_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    _local_arg(p)

    p = command("logs", logs_command, "Print (or follow) the log of a stage's newest pod (or of its process, for "
                "a local run).")
    _spec_args(p)
    p.add_argument("stage", metavar="STAGE", help="a stage key prefix, or ARM/TASK such as none+cs/panx "
                   "(TASK: a target task, or intermediate)")
    _kube_args(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the container ends")
    p.add_argument("--seed", type=int, metavar="S", help="the seed, when ARM/TASK matches several")
    _local_arg(p)

    p = command("delete", delete_command, "Remove the experiment from the cluster: its stage Jobs and pods, the "
                "orchestrator Job, ConfigMap, ServiceAccount, Role, RoleBinding and NetworkPolicy. Stored "
                "results stay unless --purge-store.")
    _spec_args(p)
    _kube_args(p)
    p.add_argument("--purge-store", action="store_true", help="also delete this experiment's stages "
                   "(checkpoints, models, metrics) from the store; asks first")
    p.add_argument("-y", "--yes", action="store_true", help="with --purge-store: do not ask")

    command("schema", schema_command, "Print the spec's JSON Schema (for editors: yaml-language-server).")
    p = command("tasks", tasks_command, "List the task registry (types, languages, metrics, data sources) and the "
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


def _refresh_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refresh-revisions", action="store_true", help="resolve every hub revision again (branches "
                   "such as main, the registry's refs/convert/parquet, model_revision) and re-pin it in "
                   "experiments/NAME/revisions.json: stages whose hub input moved get new keys. Without it the "
                   "pinned commits are used, whatever the hub did since")


def _wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="if another loop runs this experiment on this store "
                   "(it holds the lease experiments/NAME/lease.json), wait for it to end instead of exiting 4 "
                   "(`xtrc orchestrate` always waits)")


def _local_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", action="store_true", help="the stages `xtrc run` runs on this machine, not the "
                   "cluster's (the default when this machine has run state for the store and neither --context "
                   "nor --namespace is given)")


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--store", metavar="URI", help="store root (overrides storage.uri; env XTRC_STORE)")
    p.add_argument("--rerun", metavar="SALT", help="add SALT to the spec's salt: every stage gets a new key")


def _kube_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", metavar="C", help="kubeconfig context (default: the current one; inside a pod: "
                   "the in-cluster configuration)")
    p.add_argument("-n", "--namespace", metavar="N", help="namespace (default: compute.namespace)")
