"""Rich tables that fit the console without cutting anything: every column as wide as its widest
line (never an ellipsis), the key column (arm or contrast) repeated in each part when the columns
must be split over several tables, and keys too long for the width replaced by short labels with a
legend."""

from __future__ import annotations

from typing import Any, Sequence

_BORDER = 3
"""Characters a column adds to a rich table (padding and its rule)."""


def print_fitted(console: Any, title: str, key_header: str, keys: Sequence[str], headers: Sequence[str],
                 rows: Sequence[Sequence[Any]], *, key_styles: Sequence[str] = (), justify: str = "right") -> None:
    """Print a table (``keys[i]`` labels ``rows[i]``; cells are rich Text or str, may hold newlines)
    in as few parts as fit ``console.width``."""
    from rich.table import Table
    from rich.text import Text

    width = max(40, console.width)
    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
    col_widths = [max([_width(h)] + [_width(row[j].plain) for row in cells]) for j, h in enumerate(headers)]
    labels, legend = list(keys), []
    key_width = max([_width(key_header)] + [_width(k) for k in labels])
    if key_width + max(col_widths, default=0) + 2 * _BORDER + 1 > width:
        labels = [f"#{i + 1}" for i in range(len(keys))]
        legend = [f"#{i + 1} = {k}" for i, k in enumerate(keys)]
        key_width = max([_width(key_header)] + [_width(k) for k in labels])
    parts: list[list[int]] = [[]]
    used = key_width + _BORDER + 1
    for j, w in enumerate(col_widths):
        if parts[-1] and used + w + _BORDER > width:
            parts.append([])
            used = key_width + _BORDER + 1
        parts[-1].append(j)
        used += w + _BORDER
    for n, part in enumerate(parts):
        suffix = f" (part {n + 1} of {len(parts)})" if len(parts) > 1 else ""
        table = Table(title=Text(title + suffix), title_justify="left")
        table.add_column(key_header, style="bold", no_wrap=True, min_width=key_width)
        for j in part:
            room = width - key_width - 2 * _BORDER - 1
            if col_widths[j] <= room:
                table.add_column(Text(headers[j]), justify=justify, no_wrap=True, min_width=col_widths[j])
            else:  # wider than the console on its own: wrapped (at spaces where it can), never cut
                table.add_column(Text(headers[j]), justify=justify, overflow="fold", width=room)
        for i, row in enumerate(cells):
            key = Text(labels[i], style=key_styles[i] if i < len(key_styles) else "")
            table.add_row(key, *(row[j] for j in part))
        console.print(table)
    for line in legend:
        console.print(Text(line))


def _width(text: str) -> int:
    return max((len(line) for line in str(text).split("\n")), default=0)
