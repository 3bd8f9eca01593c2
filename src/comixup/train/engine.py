"""The training loop, readable top to bottom (in the spirit of nanoGPT's ``train.py``).

``train(config)`` runs one experiment described by a :class:`~comixup.config.TrainConfig`:

1. devices, DDP process group (``torchrun``), seeds and determinism;
2. data (``comixup.data``), model (``comixup.models``), optimizer (SGD with Nesterov momentum),
   learning-rate schedule, AMP gradient scaler and training method
   (:mod:`comixup.methods`); the data, model, method, device and precision are built by
   :mod:`comixup.run`, as evaluation and analysis rebuild them;
3. optionally a checkpoint to resume from (every state, the RNGs included);
4. per epoch: at a phase's start its batch size, data options and method options (the method
   is rebuilt with them, its random stream continued); train (the method computes and
   backpropagates the loss(es) of a batch; one optimizer step per batch), evaluate top-1/top-5
   error and ECE on the test set (per pixel, and the mean IoU, for a segmentation dataset),
   log a row of ``metrics.csv`` (and TensorBoard), save ``last.pt`` atomically, maybe stop
   early;
5. a summary (final errors, ECE, throughput) and ``reliability.png``; with ``final_eval`` and a
   test set with boxes, also localization by CAM (Table 2) and background-corruption
   robustness (Table 3), see :mod:`comixup.evaluate.suite`.

A run directory holds ``config.json`` (the resolved configuration), ``metrics.csv`` (one row
per epoch), ``last.pt`` (the latest checkpoint), ``summary.json`` and ``reliability.png``, and
``snapshots/epoch<N>.pt`` (model weights) for the epochs listed in ``snapshots``.
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

from .. import checkpoint as ckpt_io
from .._errors import InputError, user_input
from .._provenance import code_version
from ..config import TrainConfig
from ..methods import TrainStep
from ..run import (
    autocast_dtype,
    build_data,
    build_method,
    build_model,
    data_info,
    resolve_device,
    use_channels_last,
)
from . import distributed as ddp
from .optimizer import build_optimizer
from .schedule import EpochSchedule

__all__ = ["METRIC_FIELDS", "TrainResult", "default_out_dir", "train"]

#: The progress bar shows the epoch's mean loss and throughput every this many batches.
BAR_EVERY = 20

#: Columns of ``metrics.csv``. Errors and ECE are in percent; ``seconds`` is the epoch's wall
#: time (training and evaluation), ``images_per_s`` the training throughput over all ranks. For
#: a segmentation model the errors, ECE and loss are per pixel and ``test_miou`` is the mean IoU
#: (percent; empty for a classifier).
METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_error", "test_error_top5", "ece",
                 "val_error", "lr", "seconds", "train_seconds", "images_per_s", "test_miou"]


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


def default_out_dir(cfg: TrainConfig) -> Path:
    """``runs/<preset>-<method>-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.preset or 'custom'}-{cfg.method}-{stamp}"


def _float64(loss):
    """A method step's loss (a float, or a 0-dim tensor on the device) in float64, without
    reading a tensor back: the sum of the epoch's losses stays on the device."""
    return loss.detach().to(torch.float64) if isinstance(loss, torch.Tensor) else float(loss)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    text = f"epoch {row['epoch']} | train loss {row['train_loss']:.4f}"
    if row.get("test_miou") not in (None, ""):
        text += f" | test mIoU {row['test_miou']:.2f}%"
    if row.get("test_error") not in (None, ""):
        text += (f" | test error {row['test_error']:.2f}% (top-5 {row['test_error_top5']:.2f}%)"
                 f" | ECE {row['ece']:.2f}%")
    if row.get("val_error") not in (None, ""):
        text += f" | val error {row['val_error']:.2f}%"
    return text + f" | lr {row['lr']:.4g} | {row['images_per_s']:.0f} img/s | {row['seconds']:.1f}s"


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
# the loop: build, restore, train one epoch, evaluate, checkpoint, finish
# ----------------------------------------------------------------------------------------------


class _Run:
    """Everything one call of :func:`train` holds; each step of the loop is a method."""

    def __init__(self, cfg: TrainConfig, world, device: torch.device):
        from tqdm.auto import tqdm

        self.cfg, self.world, self.device = cfg, world, device
        self.amp_dtype = autocast_dtype(cfg, device)
        self.channels_last = use_channels_last(cfg, device)
        self.show = world.is_main and cfg.progress
        self.log = (lambda text: tqdm.write(text, file=sys.stdout)) if world.is_main \
            else (lambda text: None)
        self.history: list = []
        self.images_total = self.train_seconds_total = 0.0
        self.early = {"best": -1.0, "bad_epochs": 0}
        self.phase_index, self.train_loader, self.writer = None, None, None

    # -- build -----------------------------------------------------------------------------------

    def build(self) -> None:
        """Data, training method, model (DDP-wrapped under torchrun), optimizer, schedule and
        gradient scaler, in this order (the order of the random draws); the pieces a run is
        rebuilt from come from :mod:`comixup.run`."""
        cfg, world, device = self.cfg, self.world, self.device
        self.test_set = build_data(cfg, "test", train_transform=False, limit=cfg.limit_test)
        self.info = data_info(cfg, self.test_set)
        self.num_classes = self.info.num_classes
        self.method_options = cfg.effective_method_options()
        self.method = self._make_method(self.method_options)
        self.test_bs = cfg.test_batch_size or max(1, cfg.batch_size // world.world_size)
        self.test_loader = self._eval_loader(self.test_set)
        self.val_loader = None
        if cfg.early_stop_patience:
            self.val_loader = self._eval_loader(build_data(
                cfg, cfg.early_stop_split, train_transform=False, limit=cfg.limit_test))
        net = build_model(cfg, self.num_classes, self.info.channels, self.info.task).to(device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = self.model = net
        if world.enabled:
            self.model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = build_optimizer(cfg, net)
        self.schedule = EpochSchedule(self.optimizer, schedule=cfg.schedule, lr=cfg.lr,
                                      epochs=cfg.epochs, milestones=cfg.milestones,
                                      gamma=cfg.gamma, lr_points=cfg.lr_points)
        self.scaler = torch.amp.GradScaler(device.type,
                                           enabled=self.amp_dtype == torch.float16)

    def _make_method(self, options: dict) -> TrainStep:
        """The training step with ``options``: the public :class:`comixup.methods.TrainStep`
        that :func:`comixup.run.build_method` builds (the dataset's normalization filled in for
        the methods that take it; a generator seeded per rank), backpropagating with
        :meth:`_backward`."""
        step = build_method(self.cfg, self.info, rank=self.world.rank, options=options,
                            channels_last=self.channels_last)
        step.backward = self._backward
        return step

    def _set_method_options(self, options: dict) -> None:
        """Switch the method to a phase's options (``phases[].method_options``): a method built
        with them that continues the current one's random stream. Nothing changes when the
        options are those in effect."""
        if options == self.method_options:
            return
        method = self._make_method(options)
        method.load_state_dict(self.method.state_dict())
        changed = {k: v for k, v in options.items() if self.method_options.get(k) != v}
        self.method, self.method_options = method, dict(options)
        self.log(f"method options from this phase on: {changed}")

    def _eval_loader(self, dataset):
        from ..data import make_loader

        sampler = ddp.ShardSampler(len(dataset), self.world) if self.world.enabled else None
        return make_loader(dataset, batch_size=self.test_bs, shuffle=False,
                           workers=self.cfg.workers, seed=self.cfg.seed, drop_last=False,
                           device=self.device, sampler=sampler)

    def _train_loader(self, phase: dict):
        """The training loader of a phase (its batch size and data options)."""
        from ..data import make_loader

        cfg, world = self.cfg, self.world
        batch = phase["batch_size"]
        if batch % world.world_size:
            raise InputError(f"batch_size {batch} must be divisible by the number of "
                             f"processes ({world.world_size})")
        train_set = build_data(cfg, "train", train_transform=True, limit=cfg.limit_train,
                               data_options=phase["data_options"], data_dir=phase["data_dir"])
        sampler = None
        if world.enabled:
            sampler = torch.utils.data.DistributedSampler(
                train_set, num_replicas=world.world_size, rank=world.rank, shuffle=True,
                seed=cfg.seed, drop_last=False)
        loader = make_loader(train_set, batch_size=batch // world.world_size, shuffle=True,
                             workers=cfg.workers, seed=cfg.seed, drop_last=True,
                             device=self.device, sampler=sampler)
        if len(loader) == 0:
            raise InputError(f"no training batch: {len(train_set)} training samples "
                             f"(limit_train={cfg.limit_train}) for batch_size {batch}")
        return loader

    # -- restore ---------------------------------------------------------------------------------

    def restore(self, resume) -> int:
        """Load every state of checkpoint ``resume`` (None: nothing); return the first epoch.

        A checkpoint that does not fit the run (missing entries, weights of other shapes,
        states the optimizer, schedule, scaler or method cannot take) raises
        ``InputError("<path> is not a valid comixup checkpoint: <reason>")`` (a ValueError).
        """
        if resume is None:
            return 0
        state = ckpt_io.load(resume, map_location="cpu", require=ckpt_io.RESUME_KEYS)
        ckpt_io.load_model_state(self.net, state["model"], resume)
        restore = ckpt_io.restore_state
        restore(resume, "optimizer", self.optimizer.load_state_dict, state["optimizer"])
        restore(resume, "schedule", self.schedule.load_state_dict, state["schedule"])
        if state.get("scaler"):
            restore(resume, "scaler", self.scaler.load_state_dict, state["scaler"])
        early = state.get("early_stop", self.early)
        if not isinstance(early, dict) or set(early) != {"best", "bad_epochs"}:
            raise ckpt_io.invalid(resume, "'early_stop' must be a dict with 'best' and "
                                          "'bad_epochs'")
        self.early = dict(early)
        methods_state, rngs = state["method"], state["rng"]
        world = self.world
        if len(rngs) == world.world_size and len(methods_state) == world.world_size:
            restore(resume, "method", self.method.load_state_dict, methods_state[world.rank])
            restore(resume, "rng", ckpt_io.set_rng_state, rngs[world.rank])
        else:
            self.log(f"warning: checkpoint from {len(rngs)} process(es), running on "
                     f"{world.world_size}: random streams restart (results will differ from an "
                     "uninterrupted run)")
            restore(resume, "method", self.method.load_state_dict, methods_state[0])
        epoch = int(state["epoch"])
        self.log(f"resumed from {resume} after epoch {epoch}")
        return epoch

    def open_run_dir(self, resume_epoch: int | None) -> None:
        """Create the run directory: ``config.json``, ``metrics.csv`` (rows after a resumed
        checkpoint dropped) and the TensorBoard writer."""
        cfg = self.cfg
        self.out_dir = Path(cfg.out) if cfg.out else default_out_dir(cfg)
        cfg.out = str(self.out_dir)
        self.csv_path = self.out_dir / "metrics.csv"
        if self.world.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            _open_csv(self.csv_path, resume_epoch)
            if cfg.tensorboard:
                self.writer = _tensorboard(self.out_dir)
        self.log(f"run {self.out_dir} | {cfg.method} | {cfg.arch} on {cfg.data} | {self.device} "
                 f"| {self.world.world_size} process(es) | amp {self.amp_dtype or 'off'}")

    # -- one epoch ---------------------------------------------------------------------------------

    def _backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of ``loss`` (scaled for fp16 AMP), outside autocast."""
        with torch.autocast(self.device.type, enabled=False) if self.amp_dtype \
                else contextlib.nullcontext():
            self.scaler.scale(loss).backward()

    def _check_batch(self, x: torch.Tensor) -> None:
        """The mixer's checks of its options against the batch's shape
        (:meth:`comixup.mixers.Mixer.check_batch`: e.g. Puzzle Mix's ``grid`` must divide the
        image side) and against the model (Manifold Mixup's ``depths`` and the model's
        ``mix_depths``), made on each epoch's first batch: a configuration that does not fit
        the data or the model is an InputError naming the method. Only shapes are read."""
        mixer = self.method.mixer
        with user_input(f"method {self.cfg.method!r} with {self.cfg.arch!r} on "
                        f"{self.cfg.data!r}: "):
            mixer.check_batch(x)
            if hasattr(mixer, "usable_depths"):  # Manifold Mixup
                mixer.usable_depths(self.model)

    def train_one_epoch(self, epoch: int) -> dict:
        """One pass over the training set: per batch the method's step (its losses call
        :meth:`_backward`) and one optimizer step. Returns the row's training fields."""
        from tqdm.auto import tqdm

        from ..data import set_epoch

        cfg, device = self.cfg, self.device
        start = time.perf_counter()
        phase = cfg.phase_at(epoch)
        if phase["index"] != self.phase_index:
            self.phase_index, self.train_loader = phase["index"], self._train_loader(phase)
            self._set_method_options(phase["method_options"])
        set_epoch(self.train_loader, epoch)
        self.model.train()
        steps = len(self.train_loader)
        autocast = (lambda: torch.autocast(device.type, dtype=self.amp_dtype)) \
            if self.amp_dtype else contextlib.nullcontext
        # the epoch's loss adds up on the device; reading it waits for the GPU, so it is read at
        # a bar update (every BAR_EVERY batches, when the bar shows) and once at the end
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        bar = tqdm(self.train_loader, total=steps, disable=not self.show, leave=False,
                   unit="batch", desc=f"epoch {epoch + 1}/{cfg.epochs}", dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            self.schedule.set(epoch + i / steps)
            x = x.to(device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True).long()
            if i == 0:
                self._check_batch(x)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = self.method(self.model, x, y)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += _float64(loss) * x.shape[0]
            seen += x.shape[0]
            if self.show and (i % BAR_EVERY == 0 or i == steps - 1):
                rate = seen * self.world.world_size / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", img_s=f"{rate:.0f}",
                                refresh=False)
        bar.close()
        seconds = time.perf_counter() - start
        loss_sum, seen_all = ddp.all_reduce_sum([loss_sum, seen], self.world, device)
        ddp.broadcast_buffers(self.net, self.world)  # identical BN statistics on every rank
        self.images_total += seen_all
        self.train_seconds_total += seconds
        return {"epoch": epoch + 1, "train_loss": loss_sum / max(seen_all, 1),
                "lr": self.schedule.last_lr, "train_seconds": seconds,
                "images_per_s": seen_all / max(seconds, 1e-9)}

    # -- evaluate ----------------------------------------------------------------------------------

    def evaluate(self, loader=None) -> dict:
        """Top-1 / top-5 error, ECE and loss on ``loader`` (the test set by default)."""
        from ..evaluate import evaluate

        return evaluate(self.model, loader or self.test_loader, self.num_classes, self.device,
                        autocast_dtype=self.amp_dtype, channels_last=self.channels_last)

    def evaluate_epoch(self, row: dict, *, test: bool = True) -> dict | None:
        """Fill ``row`` with the test metrics when ``test`` (empty strings otherwise) and the
        validation error with early stopping, updating its state; return the test metrics
        (``None`` when not evaluated)."""
        metrics = self.evaluate() if test else None
        row.update(test_loss="", test_error="", test_error_top5="", ece="", val_error="",
                   test_miou="")
        if metrics is not None:
            row.update(test_loss=metrics["loss"], test_error=metrics["error"],
                       test_error_top5=metrics["error_top5"], ece=metrics["ece"],
                       test_miou=metrics.get("miou", ""))
        if self.val_loader is not None:
            val = self.evaluate(self.val_loader)
            row["val_error"] = val["error"]
            accuracy = val.get("miou", 100.0 - row["val_error"])  # the mIoU for segmentation
            if accuracy > self.early["best"]:
                self.early = {"best": accuracy, "bad_epochs": 0}
            else:
                self.early = {"best": self.early["best"],
                              "bad_epochs": self.early["bad_epochs"] + 1}
        return metrics

    # -- checkpoint --------------------------------------------------------------------------------

    def checkpoint(self, row: dict) -> None:
        """Log the row (CSV, TensorBoard, console) and save ``last.pt`` atomically (rank 0
        writes; every rank contributes its RNG and method states)."""
        rngs = ddp.all_gather_objects(ckpt_io.rng_state(), self.world)
        method_states = ddp.all_gather_objects(self.method.state_dict(), self.world)
        if self.world.is_main:
            _append_csv(self.csv_path, row)
            if self.writer is not None:
                for key in ("train_loss", "test_loss", "test_error", "test_error_top5", "ece",
                            "val_error", "lr", "images_per_s", "test_miou"):
                    if row[key] != "":
                        self.writer.add_scalar(key, row[key], row["epoch"])
                self.writer.flush()
            ckpt_io.save_atomic({
                "format": ckpt_io.FORMAT,
                "epoch": row["epoch"],
                "config": self.cfg.to_dict(),
                "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "method": method_states,
                "rng": rngs,
                "early_stop": self.early,
                "metrics": {k: v for k, v in row.items() if v != ""},
                "world_size": self.world.world_size,
            }, self.out_dir / "last.pt")
            if row["epoch"] in self.cfg.snapshots:
                ckpt_io.save_atomic({"format": ckpt_io.FORMAT, "epoch": row["epoch"],
                                     "config": self.cfg.to_dict(), "model": self.net.state_dict()},
                                    self.out_dir / "snapshots" / f"epoch{row['epoch']}.pt")
        self.history.append(row)
        self.log(_fmt(row))

    def should_stop(self) -> bool:
        """Early stopping: no validation improvement for ``early_stop_patience`` epochs."""
        patience = self.cfg.early_stop_patience
        if patience and self.early["bad_epochs"] >= patience:
            self.log(f"early stop: no validation improvement for {patience} epochs")
            return True
        return False

    # -- finish ------------------------------------------------------------------------------------

    def finish(self, metrics: dict | None, stopped_early: bool, wall_start: float) -> TrainResult:
        """The final metrics (and, with ``final_eval`` and boxes, localization and robustness),
        ``summary.json``, ``reliability.png`` and the final log lines."""
        from ..evaluate import plot_reliability
        from ..evaluate.metrics import summary_line

        cfg, log = self.cfg, self.log
        if metrics is None:  # resumed a finished run, or stopped early between evaluations
            metrics = self.evaluate()
        metrics = dict(metrics)
        metrics["images_per_s"] = (self.images_total / self.train_seconds_total
                                   if self.train_seconds_total else None)
        if cfg.final_eval and self.world.is_main and getattr(self.test_set, "has_boxes", False):
            # rank 0 alone, on the whole test set (no collective): Tables 2 and 3
            from ..evaluate.suite import run_evaluation

            metrics["final_eval"] = run_evaluation(
                self.net, self.test_set, self.num_classes, self.device,
                tasks=("localization", "robustness"), clean=metrics, seed=cfg.seed,
                batch_size=self.test_bs, workers=cfg.workers, autocast_dtype=self.amp_dtype,
                progress=self.show, strict=False, log=log)
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        if self.world.is_main:
            summary = dict(metrics)  # with the reliability bins, for `comixup report`
            summary.update(epochs_trained=len(self.history), stopped_early=stopped_early,
                           method=cfg.method, arch=cfg.arch, data=cfg.data, preset=cfg.preset,
                           seed=cfg.seed, code_version=code_version())
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if cfg.plot:
                try:
                    fig = plot_reliability(metrics["bins"], self.out_dir / "reliability.png",
                                           title=f"{cfg.method}")
                    import matplotlib.pyplot as plt

                    plt.close(fig)
                except Exception as exc:
                    log(f"warning: could not draw reliability.png: {exc}")
            if self.writer is not None:
                self.writer.close()
            log(f"final: {summary_line(metrics)} | out {self.out_dir}")
            if metrics.get("final_eval"):
                log(f"final eval: {_final_eval_line(metrics['final_eval'])}")
        return TrainResult(model=self.net, metrics=metrics, history=self.history,
                           out_dir=self.out_dir, config=cfg, stopped_early=stopped_early)


def _world_and_device(cfg: TrainConfig) -> tuple[ddp.DistInfo, torch.device]:
    """This process's device and place in the job (the process group initialized under
    torchrun). Under torchrun the device is the rank's own GPU, ``cuda:LOCAL_RANK``, the one
    NCCL binds it to; an explicit ``cuda:N`` is refused before anything is initialized
    (:func:`~comixup.run.resolve_device`)."""
    rank = ddp.local_rank()
    device = resolve_device(cfg.device, rank or 0, distributed=rank is not None)
    return ddp.setup(device.type), device


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
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    cfg.validate()
    wall_start = time.perf_counter()
    world, device = _world_and_device(cfg)
    saved_flags = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(),
                   torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        _set_determinism(cfg, device)
        _seed_everything(cfg.seed + world.rank)
        run = _Run(cfg, world, device)
        run.build()
        start_epoch = run.restore(resume)
        run.open_run_dir(start_epoch if resume is not None else None)
        metrics, stopped_early = None, False
        for epoch in range(start_epoch, cfg.epochs):
            epoch_start = time.perf_counter()
            row = run.train_one_epoch(epoch)
            test = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
            metrics = run.evaluate_epoch(row, test=test)
            row["seconds"] = time.perf_counter() - epoch_start
            run.checkpoint(row)
            if run.should_stop():
                stopped_early = True
                break
        return run.finish(metrics, stopped_early, wall_start)
    finally:
        ddp.cleanup(world)
        # leave the process as we found it (train() may be called from a larger program)
        torch.set_num_threads(saved_flags[0])
        torch.use_deterministic_algorithms(saved_flags[1], warn_only=saved_flags[2])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved_flags[3:]
