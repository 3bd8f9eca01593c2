"""Output helpers shared by the analyses: CSV and Markdown tables, matplotlib on Agg, progress.

Every analysis of :mod:`comixup.analysis` writes a CSV (one row per measured value) and, for the
tables of Appendix D (Tables 6-8), a Markdown file that prints the paper's values beside ours.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._errors import InputError

__all__ = ["markdown_table", "out_dir", "progress", "pyplot", "write_csv"]


def out_dir(path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, created (with its parents) if missing; the file of
    another kind there is an :class:`~comixup._errors.InputError` naming it."""
    if path is None:
        raise InputError("out must be a directory path, got None")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"out must be a directory, got the file {p}")
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_csv(path, rows: Sequence[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys, in order) as a CSV file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in keys})
    return path


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def markdown_table(header: Sequence[str], rows: Iterable[Sequence],
                   align: str | None = None) -> str:
    """A GitHub Markdown table; ``align`` is one character per column, ``l`` or ``r``."""
    header = [str(h) for h in header]
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def progress(iterable, *, total=None, desc: str = "", enabled: bool = True):
    """A tqdm progress bar over ``iterable`` (on stderr), or the iterable itself when disabled."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
