"""The error of a user's input: :class:`InputError`.

Something the user supplied is wrong: a command-line argument, a configuration value or preset,
a file (a checkpoint, a configuration, a dataset file or directory, an archive), a download that
fails its checksum, a model or dataset option. The checks and loaders of those things raise an
:class:`InputError` (or :class:`InputTypeError` for a value of the wrong kind) whose message names
the argument or the file. ``comixup`` (:func:`comixup.cli.main`) prints it as one
``comixup: error:`` line and exits with status 2; any other exception is a bug and keeps its
traceback.

:class:`InputError` is a :class:`ValueError` and :class:`InputTypeError` also a
:class:`TypeError`, so a library user's ``except ValueError`` / ``except TypeError`` catches them
as before. :func:`user_input` turns the ValueError / TypeError of a library check into one, where
a user's value is handed to a constructor (a method, a model, a dataset built from a
configuration).
"""

from __future__ import annotations

import contextlib

__all__ = ["InputError", "InputTypeError", "as_input_error", "user_input"]


class InputError(ValueError):
    """A user's input is wrong (an argument, a configuration, a file, its data); the message
    names the argument or the file. ``comixup`` answers it with one ``comixup: error:`` line,
    exit status 2."""


class InputTypeError(InputError, TypeError):
    """An :class:`InputError` about a value of the wrong kind: also a :class:`TypeError`."""


def as_input_error(exc: ValueError | TypeError, prefix: str = "") -> InputError:
    """The :class:`InputError` that reports ``exc`` (a library check's ValueError or TypeError)
    as a user's error: :class:`InputTypeError` for a TypeError, the message ``prefix + str(exc)``;
    ``exc`` itself when it already is one and there is no prefix. Raise it ``from exc``."""
    if isinstance(exc, InputError) and not prefix:
        return exc
    cls = InputTypeError if isinstance(exc, TypeError) else InputError
    return cls(f"{prefix}{exc}")


@contextlib.contextmanager
def user_input(prefix: str = ""):
    """A context in which a ValueError or TypeError is the user's: it is re-raised as
    :func:`as_input_error` (``prefix`` before its message), chained to the original. An
    :class:`InputError` passes unchanged (it names its argument or file already).

    Use it around the checks of a user's values only (building a method, a model or a dataset
    from a configuration), never around a computation, whose ValueError is a bug.
    """
    try:
        yield
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise as_input_error(exc, prefix) from exc
