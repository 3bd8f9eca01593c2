"""Which code produced a result: the package version and, from a git checkout, the commit.

A study's tables are only as true as the code behind them, so every run records
:func:`code_version` in its ``summary.json`` and ``comixup report`` prints the versions of the
runs it covers. Per-seed values also depend on the CPU (float reductions), so a version names
the code, not a bitwise result.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import sys
from pathlib import Path

__all__ = ["code_version", "describe"]


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"version": "0.1.0", "commit": "<40 hex>" or None, "dirty": bool or None}``.

    The commit is that of the git checkout the package was imported from (an editable install
    or a source tree); an installed wheel has none (``None``). ``dirty`` says whether tracked
    files differed from the commit.
    """
    try:
        version = importlib.metadata.version("comixup")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        version = getattr(sys.modules.get("comixup"), "__version__", None)
    where = Path(__file__).resolve().parent
    commit = dirty = None
    try:
        top = subprocess.run(["git", "-C", str(where), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        # only a checkout whose tree holds this very package (not a venv inside another repo)
        if where.is_relative_to(Path(top) / "src" / "comixup") or \
                Path(top) / "src" / "comixup" == where:
            commit = subprocess.run(["git", "-C", top, "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
            status = subprocess.run(["git", "-C", top, "status", "--porcelain",
                                     "--untracked-files=no"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return {"version": version, "commit": commit, "dirty": dirty}


def describe(version: dict | None) -> str:
    """A short form of a :func:`code_version` dict: ``comixup 0.1.0 @ 1a2b3c4d5e6f (+changes)``."""
    if not version:
        return "unrecorded"
    text = f"comixup {version.get('version') or '?'}"
    if version.get("commit"):
        text += f" @ {version['commit'][:12]}"
        if version.get("dirty"):
            text += " (+uncommitted changes)"
    return text
