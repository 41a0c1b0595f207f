"""How a command's failure reaches the user: an XtrcError as one message and its exit code (2 for
bad input), a traceback only with XTRC_DEBUG=1, a closed pipe or Ctrl-C without one."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from xtrc.errors import XtrcError


def debug() -> bool:
    """XTRC_DEBUG=1: let errors raise, with their traceback."""
    return os.environ.get("XTRC_DEBUG") == "1"


def run_guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``command(args)``'s exit code, with its errors turned into messages and exit codes."""
    try:
        code = int(command(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`xtrc report SPEC | head`): stop quietly with 1, as rich does for its tables
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except XtrcError as exc:
        if debug():
            raise
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
