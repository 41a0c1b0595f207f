"""The `xtrc-runtime` command: what every stage Job runs. Training arrives with the runtime issue."""

from __future__ import annotations

import argparse
import sys

from xtrc_runtime import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xtrc-runtime", description="Run one xtrc stage inside the runtime image.")
    parser.add_argument("--version", action="version", version=f"xtrc-runtime {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
