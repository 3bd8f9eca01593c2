"""The ``comixup`` command line: ``train``, ``eval`` and ``bench``.

Examples::

    comixup train --list-presets
    comixup train --preset synthetic-quick --method comixup
    comixup train --preset cifar100-preactresnet18 --method comixup --data-dir /data
    comixup train --resume runs/synthetic-quick-comixup-20250101-120000/last.pt
    comixup eval --checkpoint runs/.../last.pt
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

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _key_value(text: str):
    from .train.config import parse_option

    try:
        return parse_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: ``train`` flags that map one-to-one onto configuration keys (flag dest -> config key).
_TRAIN_KEYS = {
    "method": "method", "arch": "arch", "data": "data", "data_dir": "data_dir",
    "epochs": "epochs", "batch_size": "batch_size", "test_batch_size": "test_batch_size",
    "lr": "lr", "schedule": "schedule", "milestones": "milestones",
    "weight_decay": "weight_decay", "optimizer": "optimizer",
    "limit_train": "limit_train", "limit_test": "limit_test", "seed": "seed", "device": "device",
    "workers": "workers", "threads": "threads", "out": "out", "amp": "amp",
    "amp_dtype": "amp_dtype", "channels_last": "channels_last",
    "deterministic": "deterministic", "progress": "progress", "tensorboard": "tensorboard",
    "plot": "plot", "early_stop_patience": "early_stop_patience",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``comixup`` (sub-commands ``train``, ``eval``, ``bench``)."""
    parser = argparse.ArgumentParser(
        prog="comixup",
        description="Co-Mixup (Kim et al., ICLR 2021) and mixup baselines: train, evaluate, "
                    "benchmark.")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,bench}")
    sub.required = True

    # -- train -----------------------------------------------------------------------------
    t = sub.add_parser("train", help="train a classifier (see --list-presets)",
                       description="Train a classifier with a mixing method. Settings come from "
                                   "the defaults, then --preset, then the flags given.")
    t.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    t.add_argument("--preset", help="experiment preset (default: synthetic-quick unless "
                                    "--resume)")
    t.add_argument("--method", help="training method (vanilla, comixup, mixup, manifold, cutmix, "
                                    "mixup3/4, cutmix3/4, puzzlemix)")
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
    t.add_argument("--schedule", choices=["step", "cosine", "piecewise", "constant"])
    t.add_argument("--milestones", type=_nonneg_int, nargs="*",
                   help="epochs of the x0.1 decays of the step schedule")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--optimizer", choices=["sgd", "adam"])
    t.add_argument("--limit-train", type=_positive_int, metavar="N",
                   help="use N training samples")
    t.add_argument("--limit-test", type=_positive_int, metavar="N", help="use N test samples")
    t.add_argument("--seed", type=_nonneg_int)
    t.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    t.add_argument("--workers", type=_nonneg_int, help="data-loader workers per process")
    t.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    t.add_argument("--out", help="run directory (default runs/<preset>-<method>-<timestamp>)")
    t.add_argument("--resume", metavar="PATH", help="continue from a checkpoint (last.pt)")
    t.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision on CUDA (default on; ignored on the CPU)")
    t.add_argument("--amp-dtype", choices=["bf16", "fp16"])
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format on CUDA (default on)")
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
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as JSON and exit")

    # -- eval ------------------------------------------------------------------------------
    e = sub.add_parser("eval", help="evaluate a checkpoint on its test set",
                       description="Rebuild the model and test data from a checkpoint's "
                                   "configuration and print top-1/top-5 error and ECE.")
    e.add_argument("--checkpoint", required=True, metavar="PATH")
    e.add_argument("--data-dir", help="dataset root (default: the checkpoint's)")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--limit-test", type=_positive_int, metavar="N",
                   help="evaluate N samples (default: the checkpoint's limit_test)")
    e.add_argument("--batch-size", type=_positive_int, help="evaluation batch size")
    e.add_argument("--device", default="auto")
    e.add_argument("--workers", type=_nonneg_int, default=0)
    e.add_argument("--plot", metavar="PNG", help="also save a reliability diagram")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

    # -- bench -----------------------------------------------------------------------------
    b = sub.add_parser("bench", help="benchmarks (comixup.bench)")
    b.add_argument("what", choices=["solver", "mixers"])
    b.add_argument("--quick", action="store_true", help="a short run")
    b.add_argument("--out", help="write the results there")
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
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.config import list_presets, resolve_config

    if args.list_presets:
        presets = list_presets()
        width = max(len(n) for n in presets)
        for name, description in presets.items():
            print(f"{name:<{width}}  {description}")
        return 0
    overrides = _train_overrides(args)
    if args.resume:
        from .train import checkpoint as ckpt_io

        if args.preset:
            raise ValueError("--preset cannot be combined with --resume (the checkpoint holds "
                             "the configuration; pass flags to override single settings)")
        state = ckpt_io.load(args.resume)
        base = state["config"]
        if "out" not in overrides:
            overrides["out"] = str(Path(args.resume).resolve().parent)
        cfg = resolve_config(base=base, overrides=overrides)
    else:
        cfg = resolve_config(args.preset or "synthetic-quick", overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from .train.engine import train

    train(cfg, resume=args.resume)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .data import dataset_info, make_loader
    from .evaluate import evaluate, plot_reliability
    from .train import checkpoint as ckpt_io
    from .train.config import resolve_config
    from .train.engine import build_data, build_model, resolve_device, summary_line

    state = ckpt_io.load(args.checkpoint)
    overrides = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.limit_test is not None:
        overrides["limit_test"] = args.limit_test
    cfg = resolve_config(base=state["config"], overrides=overrides)
    device = resolve_device(args.device)
    dataset = build_data(cfg, args.split, train_transform=False, limit=cfg.limit_test)
    info = getattr(dataset, "info", None) or dataset_info(cfg.data)
    model = build_model(cfg, info.num_classes, info.channels)
    model.load_state_dict(state["model"])
    model.to(device)
    loader = make_loader(dataset, batch_size=args.batch_size or cfg.test_batch_size
                         or cfg.batch_size, shuffle=False, workers=args.workers, seed=cfg.seed,
                         device=device)
    amp_dtype = None
    if device.type == "cuda" and cfg.amp:
        amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" else torch.float16
    metrics = evaluate(model, loader, info.num_classes, device, autocast_dtype=amp_dtype)
    if args.plot:
        plot_reliability(metrics["bins"], args.plot, title=cfg.method)
    if args.json:
        print(json.dumps({k: v for k, v in metrics.items() if k != "bins"}, indent=2))
    else:
        print(f"{args.checkpoint} (epoch {state['epoch']}, {cfg.method}, {cfg.arch} on "
              f"{cfg.data}/{args.split})")
        print(summary_line(metrics))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    fn = bench.bench_solver if args.what == "solver" else bench.bench_mixers
    ns = argparse.Namespace(quick=args.quick, out=args.out)
    rows = fn(ns)
    if args.out and rows is not None and not Path(args.out).exists():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``comixup`` / ``python -m comixup``; returns the exit status.

    Configuration errors (bad values, unknown presets, methods, models or datasets, missing
    files) print ``comixup: error: ...`` and return 2; set ``COMIXUP_DEBUG=1`` to get the
    traceback instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _cmd_train, "eval": _cmd_eval, "bench": _cmd_bench}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        if os.environ.get("COMIXUP_DEBUG"):
            raise
        print(f"comixup: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("comixup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
