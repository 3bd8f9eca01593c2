"""The ``comixup`` command line: ``train``, ``eval``, ``report`` and ``bench``.

Examples::

    comixup train --list-presets
    comixup train --preset synthetic-quick --method comixup
    comixup train --preset cifar100-preactresnet18 --method comixup --data-dir /data
    comixup train --resume runs/synthetic-quick-comixup-20250101-120000/last.pt
    comixup eval --checkpoint runs/.../last.pt
    comixup report runs/cifar100-*  --out report/
    comixup bench solver --quick
    torchrun --nproc_per_node 4 -m comixup train --preset cifar100-preactresnet18 ...

See ``docs/training.md`` for every preset and flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ._checks import check_device, check_int, check_number, first_line
from .bench import BENCHMARKS
from .losses import LOSSES
from .config import AMP_DTYPES, OPTIMIZERS, SCHEDULES

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``comixup: error: ...``, exit 2
    (the same line as every other user error of :func:`main`)."""

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


_positive_int = _checked(check_int, int, "an integer", low=1)
_nonneg_int = _checked(check_int, int, "an integer", low=0)
_positive_float = _checked(check_number, float, "a number", low=0.0, low_open=True)
_nonneg_float = _checked(check_number, float, "a number", low=0.0)
_fraction = _checked(check_number, float, "a number", low=0.0, high=1.0)
_device = _checked(check_device, str, "a device name")


def one_line(message) -> str:
    """An error message on one line: its lines joined by spaces."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return text or first_line(message)


def _key_value(text: str):
    from .config import parse_option

    try:
        return parse_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: ``train`` flags that map one-to-one onto configuration keys (flag dest -> config key).
_TRAIN_KEYS = {
    "method": "method", "arch": "arch", "data": "data", "data_dir": "data_dir",
    "epochs": "epochs", "batch_size": "batch_size", "test_batch_size": "test_batch_size",
    "lr": "lr", "schedule": "schedule", "milestones": "milestones",
    "weight_decay": "weight_decay", "norm_weight_decay": "norm_weight_decay",
    "nesterov": "nesterov", "optimizer": "optimizer",
    "limit_train": "limit_train", "limit_test": "limit_test", "seed": "seed", "device": "device",
    "workers": "workers", "threads": "threads", "out": "out", "amp": "amp", "amp_cpu": "amp_cpu",
    "amp_dtype": "amp_dtype", "channels_last": "channels_last",
    "deterministic": "deterministic", "progress": "progress", "tensorboard": "tensorboard",
    "plot": "plot", "early_stop_patience": "early_stop_patience", "label": "label",
    "snapshots": "snapshots", "eval_every": "eval_every",
    "final_eval": "final_eval",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``comixup`` (sub-commands ``train``, ``eval``, ``report``,
    ``bench``)."""
    parser = _Parser(
        prog="comixup",
        description="Co-Mixup (Kim et al., ICLR 2021) and mixup baselines: train, evaluate, "
                    "benchmark.")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,report,study,bench,analyze,show}")
    sub.required = True

    # -- train -----------------------------------------------------------------------------
    t = sub.add_parser("train", help="train a classifier (see --list-presets)",
                       description="Train a classifier with a mixing method. Settings come from "
                                   "the defaults, then --preset, then the flags given.")
    t.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    t.add_argument("--preset", help="experiment preset (default: synthetic-quick unless "
                                    "--resume)")
    t.add_argument("--method", help="training method (vanilla, comixup, puzzlemix, mixup, "
                                    "manifold, cutmix, mixup3/4, cutmix3/4, manifold3/4, vat)")
    t.add_argument("--loss", choices=list(LOSSES),
                   help="loss family of the method (same as --method-opt loss=...): bce, the "
                        "CIFAR/Tiny-ImageNet reference; ce, the ImageNet reference")
    t.add_argument("--method-opt", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="method option, repeatable (e.g. alpha=1.0, "
                                             "clean_lam=0, loss=bce, partition=10)")
    t.add_argument("--arch", help="model name (comixup.models.names())")
    t.add_argument("--arch-opt", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="model option, repeatable (e.g. initial_channels=16)")
    t.add_argument("--data", help="dataset name (comixup.data.DATASETS)")
    t.add_argument("--data-dir", help="dataset root directory (real datasets)")
    t.add_argument("--data-opt", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="dataset option, repeatable")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int, help="global training batch size")
    t.add_argument("--test-batch-size", type=_positive_int, help="evaluation batch per process")
    t.add_argument("--lr", type=_positive_float, help="initial learning rate")
    t.add_argument("--schedule", choices=list(SCHEDULES))
    t.add_argument("--milestones", type=_nonneg_int, nargs="*",
                   help="epochs of the x0.1 decays of the step schedule")
    t.add_argument("--weight-decay", type=_nonneg_float)
    t.add_argument("--norm-weight-decay", type=_nonneg_float,
                   help="weight decay of normalization-layer parameters (default: --weight-decay)")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum for SGD")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS))
    t.add_argument("--limit-train", type=_positive_int, metavar="N",
                   help="use N training samples")
    t.add_argument("--limit-test", type=_positive_int, metavar="N", help="use N test samples")
    t.add_argument("--seed", type=_nonneg_int)
    t.add_argument("--device", type=_device, help="auto (default), cpu, cuda or cuda:N")
    t.add_argument("--workers", type=_nonneg_int, help="data-loader workers per process")
    t.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    t.add_argument("--out", help="run directory (default runs/<preset>-<method>-<timestamp>)")
    t.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint (last.pt); re-run the original command with "
                        "--resume added (flags that would change the model, data, method or "
                        "loss are refused)")
    t.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision on CUDA (default on; on the CPU only with --amp-cpu)")
    t.add_argument("--amp-cpu", action=argparse.BooleanOptionalAction, default=None,
                   help="run the GPU code paths on the CPU too: --amp (autocast; fp16 with the "
                        "gradient scaler) and --channels-last; for testing without a GPU "
                        "(default off: the CPU trains in full precision)")
    t.add_argument("--amp-dtype", choices=list(AMP_DTYPES))
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format on CUDA (default on; on the CPU only "
                        "with --amp-cpu)")
    t.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="deterministic algorithms (bitwise reproducible on the CPU)")
    t.add_argument("--early-stop-patience", type=_positive_int, metavar="N",
                   help="stop when validation accuracy has not improved for N epochs")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default on)")
    t.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="TensorBoard logs when tensorboard is installed (default on)")
    t.add_argument("--plot", action=argparse.BooleanOptionalAction, default=None,
                   help="save reliability.png at the end (default on)")
    t.add_argument("--final-eval", action=argparse.BooleanOptionalAction, default=None,
                   help="at the end, evaluate localization and background robustness when the "
                        "dataset has boxes (Tables 2 and 3; default on)")
    t.add_argument("--eval-every", type=_positive_int, metavar="N",
                   help="evaluate on the test set every N epochs and after the last (default 1)")
    t.add_argument("--snapshots", type=_positive_int, nargs="*", metavar="EPOCH",
                   help="also keep the model weights after these epochs (snapshots/epoch<N>.pt)")
    t.add_argument("--label", help="the run's column name in comixup report (default: the "
                                   "method)")
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as JSON and exit")

    # -- eval ------------------------------------------------------------------------------
    e = sub.add_parser("eval", help="evaluate a checkpoint: error, ECE, localization, robustness",
                       description="Rebuild the model and test data from a checkpoint's "
                                   "configuration and run the paper's evaluation: top-1/top-5 "
                                   "error (Table 1), ECE and reliability (Tables 2, 10), "
                                   "localization by CAM (Table 2) and background-corruption "
                                   "robustness (Table 3). Writes eval.json, reliability.png, "
                                   "cam_samples.png and corruption_samples.png beside the "
                                   "checkpoint (or into --out). See docs/evaluation.md.")
    e.add_argument("--checkpoint", required=True, metavar="PATH")
    e.add_argument("--tasks", metavar="LIST",
                   help="comma-separated subset of clean,calibration,localization,robustness "
                        "(default: every task the dataset supports)")
    e.add_argument("--out", metavar="DIR", help="write eval.json and the figures there "
                                                "(default: beside the checkpoint)")
    e.add_argument("--corruptions", default="replace,gaussian", metavar="LIST",
                   help="robustness modes: replace, gaussian (Appendix G's formula), "
                        "gaussian_add (additive noise); default replace,gaussian")
    e.add_argument("--threshold", type=_fraction, default=0.25,
                   help="CAM binarization threshold (default 0.25)")
    e.add_argument("--seed", type=_nonneg_int,
                   help="seed of the corruptions and random boxes (default: the run's seed)")
    e.add_argument("--data-dir", help="dataset root (default: the checkpoint's)")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--limit-test", type=_positive_int, metavar="N",
                   help="evaluate N samples (default: the checkpoint's limit_test)")
    e.add_argument("--batch-size", type=_positive_int, help="evaluation batch size")
    e.add_argument("--device", type=_device, default="auto",
                   help="auto (default), cpu, cuda or cuda:N")
    e.add_argument("--workers", type=_nonneg_int, default=0)
    e.add_argument("--plot", metavar="PNG", help="also save the reliability diagram there")
    e.add_argument("--no-plots", dest="plots", action="store_false",
                   help="do not draw the PNGs")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress bars (default on)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

    # -- report ----------------------------------------------------------------------------
    r = sub.add_parser("report", help="the paper's tables over runs and seeds",
                       description="Group runs by preset and method, average over seeds "
                                   "(mean ± std, n) and write Tables 1, 2, 3 and 10 as Markdown "
                                   "and CSV plus reliability_grid.png (Figure 4). Runs without "
                                   "an evaluation are evaluated on the fly (or flagged with "
                                   "--no-evaluate).")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run directories (or directories that hold run directories)")
    r.add_argument("--out", default="report", metavar="DIR",
                   help="output directory (default ./report)")
    r.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="evaluate runs that have no evaluation (default on)")
    r.add_argument("--device", type=_device, default="auto",
                   help="auto (default), cpu, cuda or cuda:N")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress bars of on-the-fly evaluations (default on)")

    # -- study -----------------------------------------------------------------------------
    s = sub.add_parser("study", help="train a method x seed grid on a preset, then report",
                       description="Train every method with every seed on one preset (each run "
                                   "in OUT/<method>/seed<k>, resumable: finished runs are "
                                   "skipped, interrupted ones resumed), then write the report. "
                                   "Flags after -- go to every `comixup train`.")
    s.add_argument("--preset", required=True)
    s.add_argument("--methods", required=True, type=lambda t: [m for m in t.split(",") if m],
                   help="comma-separated methods, e.g. vanilla,mixup,cutmix,comixup")
    s.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..N-1 (default 3)")
    s.add_argument("--method-opt", action="append", default=[], metavar="KEY=V1[,V2,...]",
                   help="method option for every run; several values sweep it (one column "
                        "per value, e.g. tau=0.79,0.83,0.87 for Table 11)")
    s.add_argument("--jobs", type=_positive_int, default=1,
                   help="runs trained at the same time, each on 1 thread (default 1)")
    s.add_argument("--out", help="study directory (default runs/study-<preset>)")
    s.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write OUT/report at the end (default on)")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    s.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="-- followed by flags for every run (e.g. -- --epochs 5)")

    # -- bench -----------------------------------------------------------------------------
    b = sub.add_parser("bench", help="benchmarks (comixup.bench)")
    b.add_argument("what", choices=list(BENCHMARKS),
                   help="solver: Algorithm 1 timing; mixers: every mixer per batch; pairwise: "
                        "mixing statistics of the two graph-cut pair costs")
    b.add_argument("--quick", action="store_true", help="a short run")
    b.add_argument("--out", metavar="PATH",
                   help="write the rows as JSON there (replacing the file)")
    from .analysis.commands import add_parsers as _add_analysis_parsers

    _add_analysis_parsers(sub)  # analyze {table6,table7,mixing,timing}, show
    return parser


def _train_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    for dest, key in _TRAIN_KEYS.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[key] = value
    for flag, key in (("method_opt", "method_options"), ("arch_opt", "arch_options"),
                      ("data_opt", "data_options")):
        pairs = getattr(args, flag)
        if pairs:
            overrides[key] = dict(pairs)
    if args.loss is not None:
        overrides.setdefault("method_options", {})["loss"] = args.loss
    return overrides


#: What a resumed run may not change, with the flag that sets it (the checkpoint's run would
#: become another run).
_RESUME_FIXED = (("method", "--method"), ("arch", "--arch"), ("arch_options", "--arch-opt"),
                 ("data", "--data"), ("data_options", "--data-opt"))


def _resume_config(args: argparse.Namespace, overrides: dict):
    """The configuration of ``--resume PATH``: the checkpoint's, with the flags applied.

    The original command may be re-run with ``--resume`` added: a flag (or ``--preset``) that
    agrees with the checkpoint is accepted, and one that would change the model, the data, the
    method or its loss is an error naming the flag.
    """
    from . import checkpoint as ckpt_io
    from .config import resolve_config

    state = ckpt_io.load(args.resume, require=ckpt_io.RESUME_KEYS)
    saved = resolve_config(base=state["config"]).to_dict()
    requested = resolve_config(args.preset, overrides).to_dict() if args.preset else None
    for key, flag in _RESUME_FIXED:
        if requested is not None and requested[key] != saved[key]:
            flag = flag if key in overrides else "--preset"
            raise ValueError(f"{flag} contradicts the checkpoint {args.resume}: {key} is "
                             f"{saved[key]!r} there, {requested[key]!r} here")
        if requested is None and key in overrides:
            value = overrides[key]
            if key.endswith("_options"):
                value = {**saved[key], **value}
            if value != saved[key]:
                raise ValueError(f"{flag} contradicts the checkpoint {args.resume}: {key} is "
                                 f"{saved[key]!r} there, {value!r} here")
    loss = (requested or {}).get("method_options", {}).get("loss")
    loss = overrides.get("method_options", {}).get("loss", loss)
    if loss is not None and loss != saved["method_options"].get("loss"):
        flag = "--loss" if args.loss is not None else ("--method-opt loss" if "loss" in
                                                       overrides.get("method_options", {})
                                                       else "--preset")
        raise ValueError(f"{flag} contradicts the checkpoint {args.resume}: the loss is "
                         f"{saved['method_options'].get('loss')!r} there, {loss!r} here")
    if "out" not in overrides:
        overrides["out"] = str(Path(args.resume).resolve().parent)
    return resolve_config(base=state["config"], overrides=overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import list_presets, resolve_config

    if args.list_presets:
        presets = list_presets()
        width = max(len(n) for n in presets)
        for name, description in presets.items():
            print(f"{name:<{width}}  {description}")
        return 0
    overrides = _train_overrides(args)
    if args.resume:
        cfg = _resume_config(args, overrides)
    else:
        cfg = resolve_config(args.preset or "synthetic-quick", overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from .train.engine import train

    train(cfg, resume=args.resume)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import plot_reliability
    from .evaluate.robustness import MODES
    from .evaluate.suite import evaluate_checkpoint, format_table, parse_tasks
    from .train.engine import summary_line

    tasks = parse_tasks(args.tasks)
    corruptions = [c.strip() for c in args.corruptions.split(",") if c.strip()]
    if not corruptions or any(c not in MODES for c in corruptions):
        raise ValueError(f"--corruptions must be a comma-separated subset of {list(MODES)}, "
                         f"got {args.corruptions!r}")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must lie in [0, 1], got {args.threshold}")
    note = (lambda text: print(text, file=sys.stderr)) if args.json else print
    result = evaluate_checkpoint(
        args.checkpoint, tasks=tasks, out_dir=args.out, split=args.split,
        data_dir=args.data_dir, limit_test=args.limit_test, batch_size=args.batch_size,
        device=args.device, workers=args.workers, corruptions=corruptions,
        threshold=args.threshold, seed=args.seed, plots=args.plots, progress=args.progress,
        log=note)
    if args.plot and "bins" in result:
        import matplotlib.pyplot as plt

        plt.close(plot_reliability(result["bins"], args.plot, title=result["run"]["method"]))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "bins"}, indent=2))
        return 0
    run = result["run"]
    print(f"{args.checkpoint} (epoch {run['epoch']}, {run['method']}, {run['arch']} on "
          f"{run['data']}/{args.split})")
    if "error" in result:
        print(summary_line(result))
    print(format_table(result))
    print("wrote " + ", ".join(result.get("files", [])))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .evaluate.report import make_report

    report = make_report(args.runs, args.out, evaluate=args.evaluate, device=args.device,
                         progress=args.progress)
    print(report["markdown"])
    print("wrote " + ", ".join(report["files"]))
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from .study import parse_sweep, run_study

    extra = list(args.train_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    for flag in ("--preset", "--method", "--seed", "--out", "--resume", "--label"):
        if flag in extra:
            raise ValueError(f"{flag} is set by comixup study for each run; remove it after --")
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
    from .bench import run_benchmark

    run_benchmark(args.what, quick=args.quick, out=args.out)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis.commands import analyze

    return analyze(args)


def _cmd_show(args: argparse.Namespace) -> int:
    from .analysis.commands import show

    return show(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``comixup`` / ``python -m comixup``; returns the exit status.

    Every user error (bad flags or values, unknown presets, methods, models or datasets, missing
    or unreadable files, damaged or foreign checkpoints) prints one line,
    ``comixup: error: ...``, and returns 2 (argparse's usage errors exit with 2 the same way);
    set ``COMIXUP_DEBUG=1`` to get the traceback instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _cmd_train, "eval": _cmd_eval, "report": _cmd_report,
                "study": _cmd_study, "bench": _cmd_bench, "analyze": _cmd_analyze,
                "show": _cmd_show}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if os.environ.get("COMIXUP_DEBUG"):
            raise
        print(f"comixup: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("comixup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
