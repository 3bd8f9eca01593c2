"""The training loop, readable top to bottom (in the spirit of nanoGPT's ``train.py``).

``train(config)`` runs one experiment described by a :class:`~comixup.train.config.TrainConfig`:

1. devices, DDP process group (``torchrun``), seeds and determinism;
2. data (``comixup.data``), model (``comixup.models``), optimizer (SGD with Nesterov momentum),
   learning-rate schedule, AMP gradient scaler and training method
   (:mod:`comixup.train.methods`);
3. optionally a checkpoint to resume from (every state, the RNGs included);
4. per epoch: train (the method computes and backpropagates the loss(es) of a batch; one
   optimizer step per batch), evaluate top-1/top-5 error and ECE on the test set, log a row of
   ``metrics.csv`` (and TensorBoard), save ``last.pt`` atomically, maybe stop early;
5. a summary (final errors, ECE, throughput) and ``reliability.png``; with ``final_eval`` and a
   test set with boxes, also localization by CAM (Table 2) and background-corruption
   robustness (Table 3), see :mod:`comixup.evaluate.suite`.

A run directory holds ``config.json`` (the resolved configuration), ``metrics.csv`` (one row
per epoch), ``last.pt`` (the latest checkpoint), ``summary.json`` and ``reliability.png``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt_io
from . import distributed as ddp
from .config import TrainConfig
from .methods import METHODS, create_method
from .optimizer import build_optimizer
from .schedule import EpochSchedule

__all__ = [
    "METRIC_FIELDS",
    "TrainResult",
    "build_data",
    "build_model",
    "default_out_dir",
    "resolve_device",
    "train",
]

#: Columns of ``metrics.csv``. Errors and ECE are in percent; ``seconds`` is the epoch's wall
#: time (training and evaluation), ``images_per_s`` the training throughput over all ranks.
METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_error", "test_error_top5", "ece",
                 "val_error", "lr", "seconds", "train_seconds", "images_per_s"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained network (unwrapped from DDP).
        metrics: final test metrics (``error``, ``error_top5``, ``ece``, ``loss``, ``samples``,
            ``bins``) plus ``images_per_s`` and ``wall_seconds``.
        history: the rows of ``metrics.csv`` written by this call.
        out_dir: the run directory.
        config: the resolved configuration.
        stopped_early: whether early stopping ended the run.
    """

    model: torch.nn.Module
    metrics: dict
    history: list = field(default_factory=list)
    out_dir: Path | None = None
    config: TrainConfig | None = None
    stopped_early: bool = False


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available (the local rank's GPU under DDP), else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was requested but CUDA is not available")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def build_model(cfg: TrainConfig, num_classes: int, channels: int) -> torch.nn.Module:
    """``comixup.models.create(cfg.arch, num_classes, **cfg.arch_options)``; ``in_channels`` is
    filled in from the dataset when the model takes it and the configuration does not set it."""
    from .. import models

    options = dict(cfg.arch_options)
    if "in_channels" in models.options(cfg.arch) and "in_channels" not in options:
        options["in_channels"] = channels
    return models.create(cfg.arch, num_classes, **options)


def build_data(cfg: TrainConfig, split: str, *, train_transform: bool, limit=None,
               data_options: dict | None = None, data_dir=None):
    """``comixup.data.build_dataset`` for ``split`` with the run's root, seed and options."""
    from .. import data

    options = dict(cfg.data_options if data_options is None else data_options)
    return data.build_dataset(cfg.data, root=data_dir if data_dir is not None else cfg.data_dir,
                              split=split, train_transform=train_transform, limit=limit,
                              seed=cfg.seed, **options)


def default_out_dir(cfg: TrainConfig) -> Path:
    """``runs/<preset>-<method>-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset or 'custom'}-{cfg.method}-{stamp}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _method_seed(seed: int, rank: int) -> int:
    """Seed of the method's generator: distinct per rank, so each rank mixes differently."""
    return (seed * 1_000_003 + rank * 7_919 + 0xC0FFEE) % 2**63


def _set_determinism(cfg: TrainConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _open_csv(path: Path, resume_epoch: int | None) -> None:
    """Create ``metrics.csv`` with its header, or on resume drop the rows after the checkpoint."""
    if resume_epoch is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= resume_epoch]
    else:
        rows = []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict) -> None:
    row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore").writerow(row)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(out_dir / "tb"))


def _fmt(row: dict) -> str:
    text = (f"epoch {row['epoch']} | train loss {row['train_loss']:.4f} | test error "
            f"{row['test_error']:.2f}% (top-5 {row['test_error_top5']:.2f}%) | ECE "
            f"{row['ece']:.2f}%")
    if row.get("val_error") not in (None, ""):
        text += f" | val error {row['val_error']:.2f}%"
    return text + f" | lr {row['lr']:.4g} | {row['images_per_s']:.0f} img/s | {row['seconds']:.1f}s"


def summary_line(metrics: dict) -> str:
    """One line with the final test error, top-5 error, ECE and throughput."""
    text = (f"test error {metrics['error']:.2f}% | top-5 error {metrics['error_top5']:.2f}% | "
            f"ECE {metrics['ece']:.2f}% | test loss {metrics['loss']:.4f} "
            f"({metrics['samples']} samples)")
    if metrics.get("images_per_s") is not None:
        text += f" | {metrics['images_per_s']:.1f} train img/s"
    if metrics.get("wall_seconds") is not None:
        text += f" | wall {metrics['wall_seconds']:.1f}s"
    return text


def _final_eval_line(result: dict) -> str:
    """One line with the localization accuracies and corruption errors of a final evaluation."""
    parts = []
    loc = result.get("localization")
    if loc:
        parts.append(f"top-1 loc {loc['top1_loc']:.2f}% | GT-known loc {loc['gt_known_loc']:.2f}% "
                     f"(random boxes {loc['random_top1_loc']:.2f}% / "
                     f"{loc['random_gt_known_loc']:.2f}%)")
    for mode, rob in (result.get("robustness") or {}).items():
        if isinstance(rob, dict):
            parts.append(f"{mode} error {rob['error']:.2f}% ({rob['increase']:+.2f})")
    parts += [f"{task} skipped: {why}" for task, why in result.get("skipped", {}).items()]
    return " | ".join(parts) or "nothing to evaluate"


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------


def train(config: TrainConfig | dict, *, resume: str | os.PathLike | None = None) -> TrainResult:
    """Run the experiment described by ``config``; see the module docstring.

    Args:
        config: a :class:`TrainConfig` (or a dict for :meth:`TrainConfig.from_dict`).
        resume: a ``last.pt`` to continue from. The checkpoint's model, optimizer, schedule,
            scaler, method and RNG states are restored and training continues at the epoch after
            the saved one, so the result equals that of a run that was never interrupted
            (bitwise on the CPU with ``deterministic``). The caller decides the configuration
            (``comixup train --resume`` starts from the checkpoint's and applies the explicit
            flags).

    Returns:
        A :class:`TrainResult`.
    """
    from tqdm.auto import tqdm

    from ..data import dataset_info, make_loader, set_epoch
    from ..evaluate import evaluate, plot_reliability

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    cfg.validate()
    wall_start = time.perf_counter()

    # -- devices, process group, seeds -------------------------------------------------------
    device_type = resolve_device(cfg.device).type
    world = ddp.setup(device_type)
    device = resolve_device(cfg.device, world.local_rank)
    saved_flags = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _set_determinism(cfg, device)
    _seed_everything(cfg.seed + world.rank)
    on_cuda = device.type == "cuda"
    use_amp = cfg.amp and on_cuda
    amp_dtype = None
    if use_amp:
        amp_dtype = torch.bfloat16 if (cfg.amp_dtype == "bf16" and torch.cuda.is_bf16_supported()) \
            else torch.float16
    channels_last = cfg.channels_last and on_cuda
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    show = world.is_main and cfg.progress
    log = (lambda text: tqdm.write(text, file=sys.stdout)) if world.is_main else (lambda text: None)

    try:
        # -- data ----------------------------------------------------------------------------
        test_set = build_data(cfg, "test", train_transform=False, limit=cfg.limit_test)
        info = getattr(test_set, "info", None) or dataset_info(cfg.data)  # options may change it
        num_classes = info.num_classes
        method_options = cfg.effective_method_options()
        if getattr(METHODS[cfg.method], "uses_normalization", False):  # Puzzle Mix
            method_options.setdefault("mean", list(info.mean))
            method_options.setdefault("std", list(info.std))
        method = create_method(cfg.method, num_classes, seed=_method_seed(cfg.seed, world.rank),
                               **method_options)  # early: bad options fail fast
        method.memory_format = memory_format
        test_bs = cfg.test_batch_size or max(1, cfg.batch_size // world.world_size)
        test_sampler = ddp.ShardSampler(len(test_set), world) if world.enabled else None
        test_loader = make_loader(test_set, batch_size=test_bs, shuffle=False,
                                  workers=cfg.workers, seed=cfg.seed, drop_last=False,
                                  device=device, sampler=test_sampler)
        val_loader = None
        if cfg.early_stop_patience:
            val_set = build_data(cfg, cfg.early_stop_split, train_transform=False,
                                 limit=cfg.limit_test)
            val_sampler = ddp.ShardSampler(len(val_set), world) if world.enabled else None
            val_loader = make_loader(val_set, batch_size=test_bs, shuffle=False,
                                     workers=cfg.workers, seed=cfg.seed, drop_last=False,
                                     device=device, sampler=val_sampler)

        def make_train_loader(phase: dict):
            """The training loader of a phase (its batch size and data options)."""
            batch = phase["batch_size"]
            if batch % world.world_size:
                raise ValueError(f"batch_size {batch} must be divisible by the number of "
                                 f"processes ({world.world_size})")
            local = batch // world.world_size
            train_set = build_data(cfg, "train", train_transform=True, limit=cfg.limit_train,
                                   data_options=phase["data_options"], data_dir=phase["data_dir"])
            sampler = None
            if world.enabled:
                sampler = torch.utils.data.DistributedSampler(
                    train_set, num_replicas=world.world_size, rank=world.rank, shuffle=True,
                    seed=cfg.seed, drop_last=False)
            loader = make_loader(train_set, batch_size=local, shuffle=True, workers=cfg.workers,
                                 seed=cfg.seed, drop_last=True, device=device, sampler=sampler)
            if len(loader) == 0:
                raise ValueError(f"no training batch: {len(train_set)} training samples "
                                 f"(limit_train={cfg.limit_train}) for batch_size {batch}")
            return loader

        # -- model, optimizer, schedule, scaler ---------------------------------------------
        model = build_model(cfg, num_classes, info.channels).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        net = model
        if world.enabled:
            model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if on_cuda else None)
        optimizer = build_optimizer(cfg, net)
        schedule = EpochSchedule(optimizer, schedule=cfg.schedule, lr=cfg.lr, epochs=cfg.epochs,
                                 milestones=cfg.milestones, gamma=cfg.gamma,
                                 lr_points=cfg.lr_points)
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
        autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if use_amp \
            else contextlib.nullcontext

        def backward(loss: torch.Tensor) -> None:
            """Accumulate the gradients of ``loss`` (scaled for fp16 AMP)."""
            with torch.autocast(device.type, enabled=False) if use_amp else contextlib.nullcontext():
                scaler.scale(loss).backward()

        # -- resume ----------------------------------------------------------------------------
        start_epoch, early = 0, {"best": -1.0, "bad_epochs": 0}
        if resume is not None:
            state = ckpt_io.load(resume, map_location="cpu")
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start_epoch = int(state["epoch"])
            early = dict(state.get("early_stop", early))
            methods_state = state["method"]
            rngs = state["rng"]
            if len(rngs) == world.world_size and len(methods_state) == world.world_size:
                method.load_state_dict(methods_state[world.rank])
                ckpt_io.set_rng_state(rngs[world.rank])
            else:
                log(f"warning: checkpoint from {len(rngs)} process(es), running on "
                    f"{world.world_size}: random streams restart (results will differ from an "
                    "uninterrupted run)")
                method.load_state_dict(methods_state[0])
            log(f"resumed from {resume} after epoch {start_epoch}")

        # -- run directory -----------------------------------------------------------------
        out_dir = Path(cfg.out) if cfg.out else default_out_dir(cfg)
        cfg.out = str(out_dir)
        csv_path = out_dir / "metrics.csv"
        writer = None
        if world.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            _open_csv(csv_path, start_epoch if resume is not None else None)
            if cfg.tensorboard:
                writer = _tensorboard(out_dir)
        log(f"run {out_dir} | {cfg.method} | {cfg.arch} on {cfg.data} | {device} | "
            f"{world.world_size} process(es) | amp {amp_dtype if use_amp else 'off'}")

        # -- epochs --------------------------------------------------------------------------
        history, metrics, stopped_early = [], None, False
        images_total, train_seconds_total = 0.0, 0.0
        phase_index, train_loader = None, None
        for epoch in range(start_epoch, cfg.epochs):
            epoch_start = time.perf_counter()
            phase = cfg.phase_at(epoch)
            if phase["index"] != phase_index:
                phase_index, train_loader = phase["index"], make_train_loader(phase)
            set_epoch(train_loader, epoch)
            model.train()
            steps = len(train_loader)
            loss_sum, seen = 0.0, 0
            bar = tqdm(train_loader, total=steps, disable=not show, leave=False, unit="batch",
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", dynamic_ncols=True)
            for i, (x, y) in enumerate(bar):
                schedule.set(epoch + i / steps)
                x = x.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True).long()
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = method.step(model, x, y, backward)
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss * x.shape[0]
                seen += x.shape[0]
                if show and (i % 5 == 0 or i == steps - 1):
                    rate = seen * world.world_size / max(time.perf_counter() - epoch_start, 1e-9)
                    bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}", refresh=False)
            bar.close()
            train_seconds = time.perf_counter() - epoch_start
            loss_sum, seen_all = ddp.all_reduce_sum([loss_sum, seen], world, device)
            ddp.broadcast_buffers(net, world)  # identical BN statistics on every rank

            metrics = evaluate(model, test_loader, num_classes, device, autocast_dtype=amp_dtype,
                               channels_last=channels_last)
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen_all, 1),
                "test_loss": metrics["loss"],
                "test_error": metrics["error"],
                "test_error_top5": metrics["error_top5"],
                "ece": metrics["ece"],
                "val_error": "",
                "lr": schedule.last_lr,
                "train_seconds": train_seconds,
                "images_per_s": seen_all / max(train_seconds, 1e-9),
            }
            if val_loader is not None:
                val = evaluate(model, val_loader, num_classes, device, autocast_dtype=amp_dtype,
                               channels_last=channels_last)
                row["val_error"] = val["error"]
                accuracy = 100.0 - val["error"]
                if accuracy > early["best"]:
                    early = {"best": accuracy, "bad_epochs": 0}
                else:
                    early = {"best": early["best"], "bad_epochs": early["bad_epochs"] + 1}
            row["seconds"] = time.perf_counter() - epoch_start
            images_total += seen_all
            train_seconds_total += train_seconds

            # -- log and checkpoint (rank 0 writes; every rank contributes its RNG state) ----
            rngs = ddp.all_gather_objects(ckpt_io.rng_state(), world)
            method_states = ddp.all_gather_objects(method.state_dict(), world)
            if world.is_main:
                _append_csv(csv_path, row)
                if writer is not None:
                    for key in ("train_loss", "test_loss", "test_error", "test_error_top5", "ece",
                                "lr", "images_per_s"):
                        writer.add_scalar(key, row[key], epoch + 1)
                    if row["val_error"] != "":
                        writer.add_scalar("val_error", row["val_error"], epoch + 1)
                    writer.flush()
                ckpt_io.save_atomic({
                    "format": ckpt_io.FORMAT,
                    "epoch": epoch + 1,
                    "config": cfg.to_dict(),
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "scaler": scaler.state_dict(),
                    "method": method_states,
                    "rng": rngs,
                    "early_stop": early,
                    "metrics": {k: v for k, v in row.items() if v != ""},
                    "world_size": world.world_size,
                }, out_dir / "last.pt")
            history.append(row)
            log(_fmt(row))
            if cfg.early_stop_patience and early["bad_epochs"] >= cfg.early_stop_patience:
                log(f"early stop: no validation improvement for {cfg.early_stop_patience} epochs")
                stopped_early = True
                break

        # -- summary -------------------------------------------------------------------------
        if metrics is None:  # nothing left to train (resumed a finished run): just evaluate
            metrics = evaluate(model, test_loader, num_classes, device, autocast_dtype=amp_dtype,
                               channels_last=channels_last)
        metrics = dict(metrics)
        metrics["images_per_s"] = images_total / train_seconds_total if train_seconds_total else None
        if cfg.final_eval and world.is_main and getattr(test_set, "has_boxes", False):
            # rank 0 alone, on the whole test set (no collective): Tables 2 and 3
            from ..evaluate.suite import run_evaluation

            metrics["final_eval"] = run_evaluation(
                net, test_set, num_classes, device, tasks=("localization", "robustness"),
                clean=metrics, seed=cfg.seed, batch_size=test_bs, workers=cfg.workers,
                autocast_dtype=amp_dtype, progress=show, strict=False, log=log)
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        if world.is_main:
            summary = dict(metrics)  # with the reliability bins, for `comixup report`
            summary.update(epochs_trained=len(history), stopped_early=stopped_early,
                           method=cfg.method, arch=cfg.arch, data=cfg.data, preset=cfg.preset,
                           seed=cfg.seed)
            (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if cfg.plot:
                try:
                    fig = plot_reliability(metrics["bins"], out_dir / "reliability.png",
                                           title=f"{cfg.method}")
                    import matplotlib.pyplot as plt

                    plt.close(fig)
                except Exception as exc:  # noqa: BLE001 - plotting must never lose a finished run
                    log(f"warning: could not draw reliability.png: {exc}")
            if writer is not None:
                writer.close()
            log(f"final: {summary_line(metrics)} | out {out_dir}")
            if metrics.get("final_eval"):
                log(f"final eval: {_final_eval_line(metrics['final_eval'])}")
        return TrainResult(model=net, metrics=metrics, history=history, out_dir=out_dir,
                           config=cfg, stopped_early=stopped_early)
    finally:
        ddp.cleanup(world)
        # leave the process as we found it (train() may be called from a larger program)
        torch.set_num_threads(saved_flags[0])
        torch.use_deterministic_algorithms(saved_flags[1], warn_only=saved_flags[2])
