"""The ``comixup analyze`` and ``comixup show`` sub-commands: parsers and handlers.

:mod:`comixup.cli` adds these parsers with :func:`add_parsers` and calls :func:`analyze` /
:func:`show`; every handler is a call into one analysis module (Appendix D Tables 6-8,
Figures 1, 2, 6, 12 and 13 of Co-Mixup). The argument types are the shared ones of
:mod:`comixup._args`. The errors of the user's input are :class:`~comixup._errors.InputError`
(and the file system's ``FileNotFoundError`` and friends), printed by ``comixup`` as one
``comixup: error:`` line; any other error keeps its traceback.
"""

from __future__ import annotations

import argparse

from .._args import int_at_least, number

__all__ = ["add_parsers", "analyze", "show"]

_OUT_HELP = "output directory of the Markdown / CSV / PNG files (default analysis-results)"


def add_parsers(sub) -> None:
    """Add ``analyze {table6, table7, mixing, timing, fidelity, labelings}`` and ``show`` to the
    sub-parsers ``sub``."""
    from .mixing import DEFAULT_TAUS
    from .show import SALIENCY_SOURCES, SHOW_DATASETS, SHOW_METHODS

    a = sub.add_parser("analyze", help="algorithm analysis: Tables 6-8, Figures 2 and 6",
                       description="Algorithm analysis of Co-Mixup (Appendix D, Figures 2 and "
                                   "6). See docs/analysis.md.")
    asub = a.add_subparsers(dest="analysis",
                            metavar="{table6,table7,mixing,timing,fidelity,labelings}")
    asub.required = True
    t6 = asub.add_parser("table6", help="Table 6: Algorithm 1 against brute force")
    t6.add_argument("--seeds", type=int_at_least(1), default=100, help="seeds (default 100)")
    t7 = asub.add_parser("table7", help="Tables 7-8: Algorithm 1 against Narasimhan-Bilmes")
    t7.add_argument("--seeds", type=int_at_least(1), default=20, help="seeds (default 20)")
    t7.add_argument("--m", type=int_at_least(2), nargs="+", default=[5, 10, 20, 50, 100],
                    help="numbers of inputs m = m' (default 5 10 20 50 100)")
    t7.add_argument("--setting", choices=("reference", "table6"), default="reference",
                    help="problem setting: the reference implementation's Table 7 script "
                         "(default; 8x8 grid) or the Table 6 setting (4x4 grid)")
    t7.add_argument("--grid", type=int_at_least(1), default=None,
                    help="labeling grid side (default: the setting's, 8 or 4)")
    t7.add_argument("--nb-patience", type=int_at_least(1), default=1,
                    help="Narasimhan-Bilmes: non-improving permutations before it stops "
                         "(default 1, the original procedure)")
    mx = asub.add_parser("mixing", help="Figure 2 (b)-(d): inputs per output, batch saliency, "
                                        "diversity against tau")
    mx.add_argument("--checkpoint", metavar="PATH",
                    help="a last.pt whose model gives the saliency (and whose test set the "
                         "batch); default: the synthetic benchmark and a model trained on the fly")
    mx.add_argument("--taus", type=number(0.0), nargs="+", default=list(DEFAULT_TAUS),
                    help="Co-Mixup tau values (0.83 is always added)")
    mx.add_argument("--batch", type=int_at_least(2), default=100, help="batch size (default 100)")
    mx.add_argument("--epochs", type=int_at_least(0), default=2,
                    help="epochs of the on-the-fly saliency model (default 2)")
    mx.add_argument("--train-images", type=int_at_least(1), default=5000,
                    help="training images of the on-the-fly model (default 5000)")
    mx.add_argument("--draws", type=int_at_least(1), default=5,
                    help="mixing draws averaged per method (default 5)")
    mx.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    tm = asub.add_parser("timing", help="Figure 6: time of Algorithm 1 over |L| and m")
    tm.add_argument("--problems", type=int_at_least(1), default=100,
                    help="problems per (m, |L|) (default 100, the paper's trials)")
    tm.add_argument("--m", type=int_at_least(2), nargs="+", default=[2, 10, 20, 50, 100],
                    help="numbers of inputs m (default 2 10 20 50 100)")
    fd = asub.add_parser("fidelity", help="label fidelity and saliency-in-box of trained runs "
                                          "over their snapshots")
    fd.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="run directories, or directories holding them (e.g. a study)")
    fd.add_argument("--batches", type=int_at_least(1), default=5,
                    help="test batches per checkpoint (default 5)")
    fd.add_argument("--batch", type=int_at_least(2), default=100, help="batch size (default 100)")
    fd.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    lb = asub.add_parser("labelings", help="Co-Mixup's labelings over training: inputs per "
                                           "output and mixed cells (solver or random control)")
    lb.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="Co-Mixup run directories, or directories holding them")
    lb.add_argument("--batches", type=int_at_least(1), default=5,
                    help="test batches of the run's batch size per checkpoint (default 5)")
    lb.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    for p in (t6, t7, mx, tm, fd, lb):
        p.add_argument("--out", default="analysis-results", metavar="DIR", help=_OUT_HELP)
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="progress bars (default on)")

    s = sub.add_parser("show", help="draw an input batch and its mixed batch (Figures 1, 12, 13)",
                       description="Draw an input batch and its mixed batch with each output's "
                                   "top sources. Two --tau values give Figure 12 against 13.")
    s.add_argument("--method", default="comixup", choices=list(SHOW_METHODS))
    src = s.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="DIR", help="a folder of JPEG / PNG images")
    src.add_argument("--data", default="synthetic", choices=list(SHOW_DATASETS),
                     help="built-in images (synthetic-seg: with their masks, mixed alongside), "
                          "or the test images of an installed dataset (default synthetic)")
    s.add_argument("--data-dir", metavar="DIR",
                   help="directory of --data fashion-mnist / mnist (default: Debian's)")
    s.add_argument("--checkpoint", metavar="PATH", help="a last.pt whose model gives the saliency")
    s.add_argument("--saliency", choices=list(SALIENCY_SOURCES),
                   help="model (needs --checkpoint), gradient (image gradient magnitude) or box "
                        "(the dataset's object boxes); default model with a checkpoint, else "
                        "box for --data and gradient for --images")
    s.add_argument("--tau", type=number(0.0), nargs="+", help="Co-Mixup tau value(s)")
    s.add_argument("--batch", type=int_at_least(2), default=16, help="images (default 16)")
    s.add_argument("--size", type=int_at_least(16), default=64,
                   help="side of --images after resizing (default 64)")
    s.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    s.add_argument("--out", default="show.png", metavar="PNG", help="default show.png")


def analyze(args: argparse.Namespace) -> int:
    """Run ``comixup analyze <what>``."""
    kw = {"out": args.out, "show_progress": args.progress}
    if args.analysis == "table6":
        from .table6 import run_table6

        run_table6(seeds=args.seeds, **kw)
    elif args.analysis == "table7":
        from .table7 import run_table7

        run_table7(ms=args.m, seeds=args.seeds, grid=args.grid, patience=args.nb_patience,
                   setting=args.setting, **kw)
    elif args.analysis == "mixing":
        from .mixing import run_mixing

        run_mixing(checkpoint=args.checkpoint, taus=args.taus, batch=args.batch,
                   epochs=args.epochs, train_images=args.train_images, draws=args.draws,
                   seed=args.seed, **kw)
    elif args.analysis == "labelings":
        from .labelings import run_labelings

        run_labelings(args.runs, batches=args.batches, seed=args.seed, **kw)
    elif args.analysis == "fidelity":
        from .fidelity import run_fidelity

        run_fidelity(args.runs, batches=args.batches, batch_size=args.batch, seed=args.seed,
                     **kw)
    else:
        from .timing import run_timing

        run_timing(problems=args.problems, ms=args.m, **kw)
    return 0


def show(args: argparse.Namespace) -> int:
    """Run ``comixup show``."""
    from .show import run_show

    run_show(method=args.method, images=args.images, data=args.data, data_dir=args.data_dir,
             checkpoint=args.checkpoint, taus=args.tau, batch=args.batch, size=args.size,
             saliency=args.saliency, seed=args.seed, out=args.out)
    return 0
