"""The ``comixup`` command line: ``train``, ``eval``, ``report``, ``study``, ``bench``,
``analyze`` and ``show``.

Examples::

    comixup train --list-presets
    comixup train --preset synthetic-quick --method comixup
    comixup train --preset cifar100-preactresnet18 --method comixup --data-dir /data
    comixup train --resume runs/synthetic-quick-comixup-20250101-120000/last.pt
    comixup eval --checkpoint runs/.../last.pt
    comixup report runs/cifar100-*  --out report/
    comixup bench solver --quick
    torchrun --nproc_per_node 4 -m comixup train --preset cifar100-preactresnet18 ...

The ``train`` flags of the configuration are generated from :class:`comixup.config.TrainConfig`
(one per field marked as a flag); the argument types are those of :mod:`comixup._args`. See
``docs/training.md`` for every preset and flag.

Errors. A user's error is one line on stderr, ``comixup: error: <message>``, and exit status 2:

* a bad flag or flag value (argparse's usage errors, the same line);
* an :class:`~comixup._errors.InputError` (a ValueError; ``InputTypeError`` is also a
  TypeError), which the checks of everything the user supplies raise: the configuration and
  presets, the method, model and dataset options of a configuration (their constructors' checks
  are converted where a run is built, :mod:`comixup.run`), checkpoints, configuration files,
  dataset directories and files, archives and downloads (a
  :class:`~comixup.data.download.DownloadError`, a checksum mismatch included);
* a file-system error about a path: ``FileNotFoundError``, ``FileExistsError``,
  ``PermissionError``, ``IsADirectoryError``, ``NotADirectoryError``, or any ``OSError`` that
  names a file (every path ``comixup`` opens, reads or writes is one the user gave, or under
  one: the message of the operating system names it);
* a missing package of the ``comixup[train]`` extra (:data:`TRAIN_EXTRA`): the line says which
  extra to install.

Anything else is a bug and keeps its traceback: :func:`main` re-raises it (a plain ValueError or
TypeError from inside the library included), so the ``comixup`` command and ``python -m comixup``
print the traceback and exit with status 1. ``COMIXUP_DEBUG=1`` re-raises the user's errors too,
to show where they were raised. Ctrl-C prints ``comixup: interrupted`` and exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from ._args import (
    Parser,
    add_download_flags,
    add_field_flags,
    comma_list,
    device,
    fetch_data,
    field_overrides,
    int_at_least,
    key_value,
    one_line,
)
from ._errors import InputError
from .config import TrainConfig
from .losses import LOSSES
from .tools.bench import BENCHMARKS

__all__ = ["build_parser", "main"]

_BOOL = argparse.BooleanOptionalAction


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a classifier (see --list-presets)",
                       description="Train a classifier with a mixing method. Settings come from "
                                   "the defaults, then --preset, then the flags given.")
    t.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    t.add_argument("--preset", help="experiment preset (default: synthetic-quick unless "
                                    "--resume)")
    t.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint (last.pt); re-run the original command with "
                        "--resume added (flags that would change the model, data, method or "
                        "loss are refused)")
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as JSON and exit")
    t.add_argument("--loss", choices=list(LOSSES),
                   help="loss family of the method (same as --method-opt loss=...): bce, the "
                        "CIFAR/Tiny-ImageNet reference; ce, the ImageNet reference")
    for kind, what, example in (
            ("method", "method", "alpha=1.0, clean_lam=0, loss=bce, partition=10"),
            ("arch", "model", "initial_channels=16"), ("data", "dataset", "num_train=1000")):
        t.add_argument(f"--{kind}-opt", action="append", type=key_value, default=[],
                       metavar="KEY=VALUE", help=f"{what} option, repeatable (e.g. {example})")
    add_download_flags(t)
    add_field_flags(t, TrainConfig)  # --method, --epochs, --batch-size, --amp/--no-amp, ...


def _add_study_bench(sub) -> None:
    s = sub.add_parser("study", help="train a method x seed grid on a preset, then report",
                       description="Train every method with every seed on one preset (each run "
                                   "in OUT/<method>/seed<k>, resumable: finished runs are "
                                   "skipped, interrupted ones resumed), then write the report. "
                                   "Flags after -- go to every `comixup train`.")
    s.add_argument("--preset", required=True, help="the preset of every run")
    s.add_argument("--methods", required=True, type=comma_list,
                   help="comma-separated methods, e.g. vanilla,mixup,cutmix,comixup")
    s.add_argument("--seeds", type=int_at_least(1), default=3, help="seeds 0..N-1 (default 3)")
    s.add_argument("--method-opt", action="append", default=[], metavar="KEY=V1[,V2,...]",
                   help="method option for every run; several values sweep it (one column "
                        "per value, e.g. tau=0.79,0.83,0.87 for Table 11)")
    s.add_argument("--jobs", type=int_at_least(1), default=1,
                   help="runs trained at the same time, each on 1 thread (default 1)")
    s.add_argument("--out", help="study directory (default runs/study-<preset>)")
    s.add_argument("--report", action=_BOOL, default=True,
                   help="write OUT/report at the end (default on)")
    s.add_argument("--progress", action=_BOOL, default=True, help="progress bars (default on)")
    add_download_flags(s)
    s.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="-- followed by flags for every run (e.g. -- --epochs 5)")
    b = sub.add_parser("bench", help="benchmarks (comixup.tools.bench)")
    b.add_argument("what", choices=list(BENCHMARKS),
                   help="solver: Algorithm 1 timing; mixers: every mixer per batch; pairwise: "
                        "mixing statistics of the two graph-cut pair costs; gpu: the GPU code "
                        "paths checked and timed (device equality, AMP epochs, host syncs, "
                        "step times, Co-Mixup's overhead)")
    b.add_argument("--quick", action="store_true", help="a short run")
    b.add_argument("--out", metavar="PATH",
                   help="write the rows as JSON there (replacing the file); for gpu, the "
                        "directory of bench_gpu.json and bench_gpu.md (default ./bench_gpu)")
    b.add_argument("--device", type=device, default=None,
                   help="gpu only: cuda (default), cuda:N, or cpu for a smoke test of the same "
                        "code on the CPU")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``comixup`` (sub-commands ``train``, ``eval``, ``report``,
    ``study``, ``bench``, ``analyze``, ``show``)."""
    from .analysis import commands as analysis
    from .evaluate import commands as evaluation

    parser = Parser(prog="comixup",
                    description="Co-Mixup (Kim et al., ICLR 2021) and mixup baselines: train, "
                                "evaluate, benchmark.")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,eval,report,study,bench,analyze,show}")
    sub.required = True
    _add_train(sub)
    evaluation.add_parsers(sub)  # eval, report
    _add_study_bench(sub)
    analysis.add_parsers(sub)  # analyze {table6,table7,mixing,timing,fidelity}, show
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import list_presets, resolve_config
    from .run import resume_config

    if args.list_presets:
        presets = list_presets()
        width = max(len(n) for n in presets)
        for name, description in presets.items():
            print(f"{name:<{width}}  {description}")
        return 0
    overrides = field_overrides(args, TrainConfig)
    for kind in ("method", "arch", "data"):
        if getattr(args, f"{kind}_opt"):
            overrides[f"{kind}_options"] = dict(getattr(args, f"{kind}_opt"))
    if args.loss is not None:
        overrides.setdefault("method_options", {})["loss"] = args.loss
    if args.resume:
        cfg = resume_config(args.resume, args.preset, overrides,
                            loss_flag="--loss" if args.loss is not None else "--method-opt loss")
    else:
        cfg = resolve_config(args.preset or "synthetic-quick", overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    if args.download:
        cfg = dataclasses.replace(cfg, data_dir=fetch_data(args, cfg.data, cfg.data_dir,
                                                           progress=cfg.progress))
    from .train.engine import train

    train(cfg, resume=args.resume)
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from .study import parse_sweep, run_study

    extra = list(args.train_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    for flag in ("--preset", "--method", "--seed", "--out", "--resume", "--label"):
        if flag in extra:
            raise InputError(f"{flag} is set by comixup study for each run; remove it after --")
    if args.download:  # fetched once here, then every run reads it
        from .config import resolve_config

        given = extra[extra.index("--data-dir") + 1] if "--data-dir" in extra[:-1] else None
        cfg = resolve_config(args.preset, {"data_dir": given} if given else {})
        root = fetch_data(args, cfg.data, cfg.data_dir, progress=args.progress)
        if root is not None and given is None:
            extra += ["--data-dir", root]
    result = run_study(args.preset, args.methods, args.seeds, out=args.out,
                       sweep=parse_sweep(args.method_opt), jobs=args.jobs, train_args=extra,
                       report=args.report, progress=args.progress)
    if result["report"]:
        print(result["report"]["markdown"])
        print("wrote " + ", ".join(result["report"]["files"]))
    if result["failed"]:
        print(f"comixup: error: {len(result['failed'])} run(s) failed; see their train.log "
              "(re-run the same command to retry them)", file=sys.stderr)
        return 1
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import run_benchmark

    result = run_benchmark(args.what, quick=args.quick, out=args.out, device=args.device)
    if args.what == "gpu":
        print("wrote " + ", ".join(result["files"]))
    elif args.out:
        print(f"wrote {args.out}")
    return 0


def _command(name: str):
    """The handler of sub-command ``name``: a function of the parsed arguments that returns
    the exit status."""
    from .analysis import commands as analysis
    from .evaluate import commands as evaluation

    return {"train": _cmd_train, "eval": evaluation.eval_command,
            "report": evaluation.report_command, "study": _cmd_study, "bench": _cmd_bench,
            "analyze": analysis.analyze, "show": analysis.show}[name]


#: The import names of the ``comixup[train]`` extra: the CLI, the engine's metrics, plots,
#: progress bars and downloads need them; the library (mixers, solver, saliency, losses,
#: ``TrainStep``, VAT) needs only torch, numpy and numba.
TRAIN_EXTRA = ("scipy", "tqdm", "pooch", "torchmetrics", "matplotlib", "PIL")


#: The file-system errors that are the user's whatever their message (an ``OSError`` that names
#: a file is too): a path given on the command line, in a configuration or under one of those.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
               NotADirectoryError)


def _user_error(exc: BaseException) -> str | None:
    """The one-line message of ``exc`` when it is a user's error (module docstring: an
    :class:`~comixup._errors.InputError`, a file-system error about a path, a missing package of
    the ``comixup[train]`` extra), else None: a bug, whose traceback is kept."""
    if isinstance(exc, ImportError):
        missing = (exc.name or "").split(".")[0]
        if missing in TRAIN_EXTRA:
            return (f"this command needs {missing}, from the training extra: "
                    "pip install 'comixup[train]'")
        return None
    if isinstance(exc, InputError) or isinstance(exc, _FILE_ERRORS) or (
            isinstance(exc, OSError) and exc.filename is not None):
        return one_line(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``comixup`` / ``python -m comixup``; returns the exit status.

    A user's error (bad flags or values, unknown presets, methods, models or datasets, bad
    method, model or dataset options, missing, unreadable, damaged or foreign files and
    checkpoints, failed downloads, a missing package of ``comixup[train]``; see
    :func:`_user_error`) prints one line, ``comixup: error: ...``, and returns 2 (argparse's
    usage errors exit with 2 the same way); set ``COMIXUP_DEBUG=1`` to get its traceback
    instead. Any other exception is a bug: it propagates with its traceback. Ctrl-C returns
    130.
    """
    args = build_parser().parse_args(argv)
    try:
        return _command(args.command)(args)
    except KeyboardInterrupt:
        print("comixup: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _user_error(exc)
        if message is None or os.environ.get("COMIXUP_DEBUG"):
            raise
        print(f"comixup: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
