"""The argparse pieces shared by every ``comixup`` sub-command (:mod:`comixup.cli`,
:mod:`comixup.analysis.commands`): the parser whose usage errors are one line, the argument
types (each checks its value with :mod:`comixup._checks`, so a flag's error reads like the
library's) and the ``comixup train`` flags generated from the metadata of
:class:`comixup.config.TrainConfig`'s fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

from ._checks import check_device, check_int, check_number, first_line

__all__ = [
    "Parser",
    "add_download_flags",
    "add_field_flags",
    "comma_list",
    "device",
    "fetch_data",
    "field_overrides",
    "int_at_least",
    "key_value",
    "number",
    "one_line",
]


def one_line(message) -> str:
    """An error message on one line: its lines joined by spaces."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return text or first_line(message)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``comixup: error: ...``, exit 2
    (the same line as every other user error of :func:`comixup.cli.main`)."""

    def error(self, message: str):
        """Print ``comixup: error: <message>`` and exit with status 2."""
        hint = f" (see '{self.prog} --help')" if self.prog != "comixup" else ""
        self.exit(2, f"comixup: error: {one_line(message)}{hint}\n")


def _checked(check, parse, expected: str, **bounds):
    """An argparse ``type`` that parses the text with ``parse`` and checks the value with a
    check of :mod:`comixup._checks` (``check_int``, ``check_number``, ``check_device``)."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return check("value", value, **bounds)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = expected  # argparse names the type in some messages
    return convert


def int_at_least(low: int | None):
    """The argparse type of an integer flag ``>= low`` (``None``: any integer)."""
    return _checked(check_int, int, "an integer", low=low)


def number(low: float = 0.0, *, low_open: bool = False, high: float = math.inf):
    """The argparse type of a finite number flag in ``[low, high]`` (``(low, high]`` with
    ``low_open``)."""
    return _checked(check_number, float, "a number", low=low, low_open=low_open, high=high)


#: The argparse type of a device flag: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
device = _checked(check_device, str, "a device name")


def key_value(text: str):
    """The argparse type of ``KEY=VALUE`` flags (``--method-opt`` and friends), with
    :func:`comixup.config.parse_option`."""
    from .config import parse_option

    try:
        return parse_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def comma_list(text: str) -> list[str]:
    """The argparse type of a comma-separated list (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _flag_fields(cls):
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def add_field_flags(parser: argparse.ArgumentParser, cls) -> None:
    """Add a flag ``--<name-with-dashes>`` for every field of dataclass ``cls`` whose metadata
    has ``flag`` (see :func:`comixup.config._field`): its help, and its type, choices or
    ``--x/--no-x`` pair from the field's ``kind`` and bounds. Every default is ``None``
    (not given), so :func:`field_overrides` holds only the flags given."""
    for f in _flag_fields(cls):
        meta = f.metadata
        kind, options = meta["kind"], {"help": meta["help"], "default": None}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        elif kind == "choice":
            options["choices"] = list(meta["choices"])
        elif kind in ("int", "ints"):
            options["type"] = int_at_least(meta["low"])
        elif kind == "number":
            options["type"] = number(meta["low"], low_open=meta["low_open"])
        elif kind == "device":
            options["type"] = device
        elif kind != "str":
            raise TypeError(f"field {f.name} of kind {kind!r} cannot be a flag")
        if kind == "ints":
            options["nargs"] = "*"
        if meta.get("metavar") and kind != "bool":
            options["metavar"] = meta["metavar"]
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **options)


def field_overrides(args: argparse.Namespace, cls) -> dict:
    """The values of the flags of :func:`add_field_flags` that were given, by field name."""
    return {f.name: getattr(args, f.name) for f in _flag_fields(cls)
            if getattr(args, f.name) is not None}


def add_download_flags(parser) -> None:
    """``--download`` and ``--data-mirror`` (train, eval, study; see :func:`fetch_data`)."""
    parser.add_argument("--download", action="store_true",
                        help="fetch the dataset when it is not in place, checked against its "
                             "published checksums (default location: the per-user cache "
                             "~/.cache/comixup/datasets or $COMIXUP_DATA_DIR; --data-dir wins; "
                             "see docs/data.md)")
    parser.add_argument("--data-mirror", metavar="URL",
                        help="with --download, fetch every file as URL/<file name> (default: "
                             "$COMIXUP_DATA_MIRROR, else the upstream addresses)")


def fetch_data(args: argparse.Namespace, name: str, data_dir, *, progress: bool = True,
               log=None):
    """The dataset root after ``--download`` (:func:`comixup.data.download.download`):
    ``data_dir`` itself without the flag, or for the datasets that are generated."""
    if not args.download or name.startswith("synthetic"):
        return data_dir
    from .data.download import download

    return os.fspath(download(name, data_dir, mirror=args.data_mirror, progress=progress,
                              log=log))

