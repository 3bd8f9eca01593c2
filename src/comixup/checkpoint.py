"""Checkpoints: atomic writes, safe loading and the random-number-generator states.

* :func:`save_atomic` writes a checkpoint to a temporary file in the target directory, flushes
  and ``fsync``\\ s it, then ``os.replace``\\ s it over the target (and ``fsync``\\ s the
  directory), so a process killed at any moment leaves either the previous checkpoint or the new
  one, never a torn file.
* :func:`load` reads a checkpoint with ``torch.load(..., weights_only=True)``: checkpoints hold
  only tensors, numbers, strings, booleans, ``None``, lists and dicts. Every file that is not a
  usable checkpoint (random bytes, JSON, an empty or half-written file, a pickle of another
  type, missing entries, a bad configuration; and, in :func:`load_model_state`, weights of the
  wrong shapes) gives one ``InputError("<path> is not a valid comixup checkpoint: <reason>")``
  (:class:`~comixup._errors.InputError`, a ValueError: the user's file).
* :func:`rng_state` / :func:`set_rng_state` capture and restore the states of Python's
  ``random``, NumPy's global generator, torch's CPU generator and every CUDA generator, encoded
  as tensors so that they survive ``weights_only`` loading.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ._checks import first_line
from ._errors import InputError

__all__ = [
    "FORMAT",
    "REQUIRED",
    "RESUME_KEYS",
    "generator_state",
    "invalid",
    "load",
    "load_model_state",
    "restore_state",
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


#: The entries every checkpoint has (``last.pt`` and the weight snapshots).
REQUIRED = ("format", "epoch", "config", "model")
#: The further entries that ``--resume`` restores (``last.pt`` only).
RESUME_KEYS = ("optimizer", "schedule", "method", "rng")


def invalid(path, reason) -> InputError:
    """The error of a checkpoint that cannot be used, an :class:`~comixup._errors.InputError`
    (a ValueError): ``"<path> is not a valid comixup checkpoint: <reason>"`` (the reason on one
    line)."""
    return InputError(f"{path} is not a valid comixup checkpoint: {first_line(reason)}")


def load(path, map_location="cpu", *, require: tuple[str, ...] = ()) -> dict:
    """Load a checkpoint safely (``weights_only=True``) and check its structure.

    Checked: the file unpickles with ``weights_only`` (no other type is ever built), it is a
    dict with ``format`` equal to :data:`FORMAT`, the entries :data:`REQUIRED` plus
    ``require`` (e.g. :data:`RESUME_KEYS`) exist, ``epoch`` is an int >= 0, ``config`` is a
    valid configuration (:func:`comixup.config.resolve_config`) and ``model`` a
    dict of tensors. The shapes of the weights are checked where the model is built
    (:func:`load_model_state`).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        InputError: anything else (a ValueError): ``"<path> is not a valid comixup checkpoint:
            <reason>"``,
            the reason naming the missing key, the wrong format version or the bad entry.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise invalid(path, "not a file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unreadable file is the same user error
        reason = "the file is empty" if path.stat().st_size == 0 else _read_error(exc)
        raise invalid(path, reason) from None
    if not isinstance(ckpt, dict):
        raise invalid(path, f"it holds a {type(ckpt).__name__}, not a dict")
    if "format" not in ckpt:
        raise invalid(path, "missing key 'format'")
    if ckpt["format"] != FORMAT:
        raise invalid(path, f"format is {ckpt['format']!r}, expected {FORMAT!r}")
    missing = [key for key in (*REQUIRED, *require) if key not in ckpt]
    if missing:
        raise invalid(path, f"missing key {missing[0]!r}" if len(missing) == 1
                      else f"missing keys {missing}")
    epoch = ckpt["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise invalid(path, f"'epoch' must be an int >= 0, got {epoch!r}")
    if not isinstance(ckpt["config"], dict):
        raise invalid(path, f"'config' must be a dict, got {type(ckpt['config']).__name__}")
    from .config import resolve_config

    try:
        resolve_config(base=ckpt["config"])
    except (TypeError, ValueError) as exc:
        raise invalid(path, f"'config': {first_line(exc)}") from None
    model = ckpt["model"]
    if not isinstance(model, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise invalid(path, "'model' must be a dict of named tensors (a state_dict)")
    for key in require:
        if key in ("optimizer", "schedule") and not isinstance(ckpt[key], dict):
            raise invalid(path, f"'{key}' must be a dict, got {type(ckpt[key]).__name__}")
        if key in ("method", "rng") and (not isinstance(ckpt[key], list) or not ckpt[key]):
            raise invalid(path, f"'{key}' must be a non-empty list (one entry per process)")
    return ckpt


def _read_error(exc: BaseException) -> str:
    """A short reason for a failed ``torch.load(weights_only=True)``."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"cannot read it with torch.load(weights_only=True): it holds the type "
                f"{found.group(1)}, which a checkpoint never holds")
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if found:
        return f"cannot read it with torch.load(weights_only=True): {found.group(1).strip()}"
    return (f"cannot read it with torch.load(weights_only=True) ({type(exc).__name__}: "
            f"{first_line(exc, 200)})")


def load_model_state(module: torch.nn.Module, state: dict, path) -> None:
    """``module.load_state_dict(state)`` with every mismatch reported as
    ``"<path> is not a valid comixup checkpoint: ..."`` naming the first missing, unexpected
    or wrongly shaped parameter."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise invalid(path, f"parameter {missing[0]!r} of the model is missing"
                      + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if unexpected:
        raise invalid(path, f"parameter {unexpected[0]!r} is not in the model"
                      + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise invalid(path, f"parameter {key!r} has shape {tuple(state[key].shape)}, the "
                                f"model's is {tuple(value.shape)}")
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise invalid(path, exc) from None


def restore_state(path, what: str, load_fn, state) -> None:
    """``load_fn(state)`` (an optimizer's, schedule's, scaler's or method's
    ``load_state_dict``), any failure reported as an invalid checkpoint naming ``what``."""
    try:
        load_fn(state)
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise invalid(path, f"{what!r}: {type(exc).__name__}: {first_line(exc, 200)}") from None


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
