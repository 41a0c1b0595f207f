"""User-facing errors: each points at FILE:LINE:COL and a field path, and says what to change."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_USAGE = 2
"""Exit code for bad input (specs, flags): nothing was started, nothing was lost."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a spec."""

    file: str
    line: int
    """1-based; 0 when the problem has no position in the file."""
    column: int
    path: str
    """Dotted field path, e.g. ``factors.intermediate[1].tasks[0]``; empty for the document."""
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def did_you_mean(word: str, choices: "list[str] | tuple[str, ...]") -> str:
    """``"did you mean 'xnli'? "`` for the closest of ``choices``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


class XtrcError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits 2."""

    exit_code = EXIT_USAGE


class SpecError(XtrcError):
    """Every problem found in one spec, reported together."""

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(loc: tuple[str | int, ...]) -> str:
    """``("a", 1, "b")`` → ``a[1].b``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
