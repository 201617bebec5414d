"""Tables for the terminal and for logs: rich boxes on a terminal; plain, complete, aligned text
when stdout is a pipe or a file (a CI log, ``gankd zoo | grep``), where a table wrapped to 80
columns would cut cells into unreadable pieces."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
                styles: Sequence[str | None] | None = None, out: TextIO | None = None) -> None:
    """``rows`` under ``columns``; ``styles`` (one per row, e.g. "bold red") only on a terminal."""
    out = out or sys.stdout
    cells = [[str(c) for c in row] for row in rows]
    if out.isatty():
        t = Table(title=title)
        for col in columns:
            t.add_column(col, overflow="fold")
        for i, row in enumerate(cells):
            t.add_row(*row, style=(styles[i] if styles else None))
        Console(file=out).print(t)
        return
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    print(title, file=out)
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
