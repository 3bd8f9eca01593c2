"""The ``comixup eval`` and ``comixup report`` sub-commands: parsers and handlers.

:mod:`comixup.cli` adds these parsers with :func:`add_parsers` and calls
:func:`eval_command` / :func:`report_command`, each a call into
:func:`comixup.evaluate.suite.evaluate_checkpoint` or :func:`comixup.evaluate.report.make_report`.
The argument types are the shared ones of :mod:`comixup._args`; the errors of the user's input
are :class:`~comixup._errors.InputError` (and the file system's ``FileNotFoundError`` and
friends), printed by ``comixup`` as one ``comixup: error:`` line.
"""

from __future__ import annotations

import argparse
import json
import sys

from .._args import add_download_flags, comma_list, device, fetch_data, int_at_least, number
from .._errors import InputError

__all__ = ["add_parsers", "eval_command", "report_command"]

_BOOL = argparse.BooleanOptionalAction


def add_parsers(sub) -> None:
    """Add ``eval`` and ``report`` to the sub-parsers ``sub``."""
    e = sub.add_parser("eval", help="evaluate a checkpoint: error, ECE, localization, robustness",
                       description="Rebuild the model and test data from a checkpoint's "
                                   "configuration and run the paper's evaluation: top-1/top-5 "
                                   "error (Table 1), ECE and reliability (Tables 2, 10), "
                                   "localization by CAM (Table 2) and background-corruption "
                                   "robustness (Table 3). Writes eval.json, reliability.png, "
                                   "cam_samples.png and corruption_samples.png beside the "
                                   "checkpoint (or into --out). See docs/evaluation.md.")
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="the checkpoint (last.pt)")
    e.add_argument("--tasks", metavar="LIST",
                   help="comma-separated subset of clean,calibration,localization,robustness "
                        "(default: every task the dataset supports)")
    e.add_argument("--out", metavar="DIR", help="write eval.json and the figures there "
                                                "(default: beside the checkpoint)")
    e.add_argument("--corruptions", default="replace,gaussian", metavar="LIST",
                   help="robustness modes: replace, gaussian (Appendix G's formula), "
                        "gaussian_add (additive noise); default replace,gaussian")
    e.add_argument("--threshold", type=number(0.0, high=1.0), default=0.25,
                   help="CAM binarization threshold (default 0.25)")
    e.add_argument("--seed", type=int_at_least(0),
                   help="seed of the corruptions and random boxes (default: the run's seed)")
    e.add_argument("--data-dir", help="dataset root (default: the checkpoint's)")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    add_download_flags(e)
    e.add_argument("--limit-test", type=int_at_least(1), metavar="N",
                   help="evaluate N samples (default: the checkpoint's limit_test)")
    e.add_argument("--batch-size", type=int_at_least(1), help="evaluation batch size")
    e.add_argument("--device", type=device, default="auto",
                   help="auto (default), cpu, cuda or cuda:N")
    e.add_argument("--workers", type=int_at_least(0), default=0,
                   help="data-loader workers (default 0)")
    e.add_argument("--plot", metavar="PNG", help="also save the reliability diagram there")
    e.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNGs")
    e.add_argument("--progress", action=_BOOL, default=True, help="progress bars (default on)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

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
    r.add_argument("--evaluate", action=_BOOL, default=True,
                   help="evaluate runs that have no evaluation (default on)")
    r.add_argument("--device", type=device, default="auto",
                   help="auto (default), cpu, cuda or cuda:N")
    r.add_argument("--progress", action=_BOOL, default=True,
                   help="progress bars of on-the-fly evaluations (default on)")


def eval_command(args: argparse.Namespace) -> int:
    """Run ``comixup eval``: evaluate the checkpoint, print the table (or JSON)."""
    from . import plot_reliability
    from .metrics import summary_line
    from .robustness import MODES
    from .suite import evaluate_checkpoint, format_table, parse_tasks

    tasks = parse_tasks(args.tasks)
    corruptions = comma_list(args.corruptions)
    if not corruptions or any(c not in MODES for c in corruptions):
        raise InputError(f"--corruptions must be a comma-separated subset of {list(MODES)}, "
                         f"got {args.corruptions!r}")
    note = (lambda text: print(text, file=sys.stderr)) if args.json else print
    data_dir = args.data_dir
    if args.download:
        from ..checkpoint import load

        values = load(args.checkpoint)["config"]
        data_dir = fetch_data(args, values["data"], data_dir or values.get("data_dir"),
                              progress=args.progress, log=note)
    result = evaluate_checkpoint(
        args.checkpoint, tasks=tasks, out_dir=args.out, split=args.split,
        data_dir=data_dir, limit_test=args.limit_test, batch_size=args.batch_size,
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


def report_command(args: argparse.Namespace) -> int:
    """Run ``comixup report``: write the tables and figures, print the Markdown."""
    from .report import make_report

    report = make_report(args.runs, args.out, evaluate=args.evaluate, device=args.device,
                         progress=args.progress)
    print(report["markdown"])
    print("wrote " + ", ".join(report["files"]))
    return 0
