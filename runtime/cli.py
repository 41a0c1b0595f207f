"""`xtrc-runtime`: what every stage Job runs, plus the tools researchers use beside it.

Exit codes of run-stage: 0 done; 2 configuration error (the Job must not retry); 1 anything
else (transient: a retry resumes from the latest checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from xtrc_runtime import __version__

EXIT_OK, EXIT_TRANSIENT, EXIT_CONFIG = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xtrc-runtime", description="Run one xtrc stage; score predictions.")
    parser.add_argument("--version", action="version", version=f"xtrc-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run-stage", help="run one stage (skips at once if its _SUCCESS exists)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-env", metavar="VAR", help="environment variable holding the stage config JSON")
    source.add_argument("--config", metavar="JSON_OR_FILE", help="the stage config as JSON, or a file holding it")
    p.add_argument("--workdir", help="local scratch directory (default: $TMPDIR)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")

    p = sub.add_parser("score", help="score predictions from any system with xtrc's metric code")
    p.add_argument("--task", required=True)
    p.add_argument("--language", required=True)
    p.add_argument("predictions", help='JSONL of {"id", "prediction"}')
    p.add_argument("gold", help="JSONL in the task's schema")

    p = sub.add_parser("check-data", help="validate the data a list of stage configs reads, without training")
    p.add_argument("configs", help="JSON array of stage configs, a file holding it, or - for stdin")
    p.add_argument("--jobs", type=int, default=8, help="checks run in parallel (default 8)")

    from xtrc_runtime import augment_cli, fixtures

    fixtures_parser = sub.add_parser("fixtures", help="write deterministic synthetic data for every task",
                                     description=fixtures.DESCRIPTION)
    fixtures.add_arguments(fixtures_parser)
    p = sub.add_parser("augment", help="write augmented training examples to a file, to look at them",
                       description=augment_cli.AUGMENT_DESCRIPTION)
    augment_cli.add_arguments(p)

    p = sub.add_parser("warm-server")  # the local backend's pre-imported parent (not listed: no help)
    p.add_argument("--socket", required=True, help="Unix socket to serve stage requests on")

    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    _logging(quiet_hub=args.command == "run-stage")
    if args.command == "warm-server":
        from xtrc_runtime.warm import serve

        return serve(args.socket)
    if args.command == "fixtures":
        return fixtures.run(args, fixtures_parser)
    if args.command == "augment":
        return augment_cli.run_augment(args)
    if args.command == "score":
        return _score(args)
    if args.command == "check-data":
        return _check_data(args)
    return _run_stage(args)


def _logging(*, quiet_hub: bool) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "botocore", "aiobotocore", "s3fs", "fsspec", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # progress bars garble stage logs
    if not quiet_hub:  # importing transformers costs seconds: only stages need it
        return
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_warning()
    except ImportError:
        pass


def _run_stage(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from xtrc.lease import LeaseLost
    from xtrc.stage import StageConfig
    from xtrc.store import MissingBucket
    from xtrc_runtime.stage import ConfigError, StageBusy, run_stage
    from xtrc_runtime.data import DataError, is_rust_panic

    log = logging.getLogger("xtrc_runtime")
    try:
        raw = os.environ.get(args.config_env, "") if args.config_env else args.config
        if not raw:
            raise ConfigError(f"${args.config_env} is empty" if args.config_env else "--config is empty")
        if not raw.lstrip().startswith("{"):
            try:
                with open(raw, encoding="utf-8") as f:
                    raw = f.read()
            except OSError as exc:
                raise ConfigError(f"cannot read the stage config {raw}: {exc.strerror or exc}") from None
        config = StageConfig.model_validate_json(raw)
        summary = run_stage(config, workdir=args.workdir, secret_dir=os.environ.get("XTRC_STORAGE_SECRET_DIR"),
                            device=args.device)
    except (ConfigError, DataError, ValidationError, MissingBucket) as exc:
        # A missing object or checkpoint (FileNotFoundError) is not here: another writer or a
        # store hiccup can cause it, and a retry resumes; only what the user must change exits 2.
        log.error("configuration error: %s", exc)
        print(json.dumps({"status": "config-error", "error": str(exc)}))
        return EXIT_CONFIG
    except (StageBusy, LeaseLost) as exc:  # transient, and told plainly: no traceback
        log.error("stage not run: %s", exc)
        print(json.dumps({"status": "busy", "error": str(exc)}))
        return EXIT_TRANSIENT
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # transient by default: the Job retries and resumes
        if isinstance(exc, SystemExit):
            raise
        if is_rust_panic(exc):  # its input decides it: a retry panics again
            message = f"a Rust library panicked on this stage's input (not retried): {exc}"
            log.error("configuration error: %s", message)
            print(json.dumps({"status": "config-error", "error": message}))
            return EXIT_CONFIG
        if os.environ.get("XTRC_DEBUG") == "1":
            raise
        log.exception("stage failed: %s", exc)
        print(json.dumps({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}))
        return EXIT_TRANSIENT
    print(json.dumps(summary, sort_keys=True))
    return EXIT_OK


def _check_data(args: argparse.Namespace) -> int:
    """Print ``{"results": [...]}`` (one entry per need); exit 2 on any gap, 1 if some could not be checked."""
    from pydantic import TypeAdapter, ValidationError

    from xtrc.datacheck import Result, exit_code
    from xtrc.stage import StageConfig
    from xtrc_runtime.preflight import check_data

    try:
        raw = sys.stdin.read() if args.configs == "-" else args.configs
        if not raw.lstrip().startswith("["):
            with open(raw, encoding="utf-8") as f:
                raw = f.read()
        configs = TypeAdapter(list[StageConfig]).validate_json(raw)
    except (OSError, ValidationError) as exc:
        print(f"error: check-data needs a JSON array of stage configs: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    results = [c.to_json() for c in check_data(configs, jobs=args.jobs)]
    print(json.dumps({"results": results}, ensure_ascii=False))
    return exit_code([Result.from_json(r) for r in results])


def _score(args: argparse.Namespace) -> int:
    from xtrc import tasks
    from xtrc_runtime.score import score_files

    try:
        task = tasks.resolve(args.task)
    except KeyError:
        hint = tasks.suggest(args.task)
        known = hint if hint is not None and hint in {*tasks.TASKS, *tasks.ALIASES} else None
        print(f"error: unknown task {args.task!r}" + (f" (did you mean {known!r}?)" if known else "")
              + "; `xtrc tasks` lists them", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result: dict[str, Any] = score_files(task, args.language, args.predictions, args.gold)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(result, sort_keys=True))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
