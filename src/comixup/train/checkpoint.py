"""Checkpoints: atomic writes, safe loading and the random-number-generator states.

* :func:`save_atomic` writes a checkpoint to a temporary file in the target directory, flushes
  and ``fsync``\\ s it, then ``os.replace``\\ s it over the target (and ``fsync``\\ s the
  directory), so a process killed at any moment leaves either the previous checkpoint or the new
  one, never a torn file.
* :func:`load` reads a checkpoint with ``torch.load(..., weights_only=True)``: checkpoints hold
  only tensors, numbers, strings, booleans, ``None``, lists and dicts.
* :func:`rng_state` / :func:`set_rng_state` capture and restore the states of Python's
  ``random``, NumPy's global generator, torch's CPU generator and every CUDA generator, encoded
  as tensors so that they survive ``weights_only`` loading.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "FORMAT",
    "generator_state",
    "load",
    "rng_state",
    "save_atomic",
    "set_generator_state",
    "set_rng_state",
]

#: Value of the ``format`` entry of every checkpoint written by :mod:`comixup.train`.
FORMAT = "comixup-train-checkpoint-v1"


def save_atomic(obj, path) -> Path:
    """Write ``torch.save(obj)`` to ``path`` atomically.

    The data goes to a temporary file in ``path``'s directory (same file system), is flushed and
    ``fsync``-ed, and then replaces ``path`` with :func:`os.replace`; the directory is
    ``fsync``-ed afterwards where the platform allows it. On error the temporary file is removed
    and ``path`` is untouched.

    Args:
        obj: what to save (tensors, numbers, strings, lists and dicts for ``weights_only``
            loading).
        path: the checkpoint file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; checkpoints are ordinary files
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return path
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)
    return path


def load(path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file is not a comixup training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a comixup training checkpoint (format {FORMAT!r})")
    return ckpt


def generator_state(generator: torch.Generator) -> torch.Tensor:
    """The state of a :class:`torch.Generator` as a uint8 tensor (a copy)."""
    return generator.get_state().clone()


def set_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a generator from :func:`generator_state`."""
    generator.set_state(state.to(device="cpu", dtype=torch.uint8).contiguous())


def rng_state() -> dict:
    """The global RNG states (Python, NumPy, torch CPU, CUDA) as weights-only-safe data."""
    version, internal, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore the global RNG states captured by :func:`rng_state`.

    CUDA states are restored only when the number of devices matches.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((
        npst["kind"],
        npst["keys"].numpy().astype(np.uint32),
        int(npst["pos"]),
        int(npst["has_gauss"]),
        float(npst["gauss"]),
    ))
    torch.set_rng_state(state["torch"].to(dtype=torch.uint8))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.to(dtype=torch.uint8) for s in cuda])
