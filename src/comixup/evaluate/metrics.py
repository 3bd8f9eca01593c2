"""Test metrics of the paper: top-1 / top-5 error and expected calibration error (recipes 5).

* :func:`evaluate` runs a classifier over a loader and returns the top-1 error, the top-5 error
  and the expected calibration error (ECE) with 10 equal-width confidence bins on the maximum
  softmax probability (Guo et al., 2017; the paper's Tables 1, 2 and 10), all in percent, plus
  the mean cross-entropy and the per-bin statistics of a reliability diagram.
* :func:`reliability_bins` (per-bin statistics) and :func:`plot_reliability` (the
  confidence-vs-accuracy diagram of Figures 4 and 7-9) live in :mod:`.calibration` and are
  re-exported here.
* A model with per-pixel logits ``(B, C, H, W)`` evaluated on class maps ``(B, H, W)`` (the
  segmentation task, not in the paper) is scored per pixel: pixel error, pixel top-5 error, the
  pixels' ECE and cross-entropy, and the mean intersection over union (mIoU, the mean over the
  classes present in the labels or the predictions of ``TP / (TP + FP + FN)``, from one
  confusion matrix over the whole test set). Pixels labelled ``ignore_index`` (-100) are left
  out.

Accuracy and ECE come from :mod:`torchmetrics` (``MulticlassAccuracy(average="micro", top_k=k)``
and ``MulticlassCalibrationError(n_bins=10, norm="l1")``). Under :mod:`torch.distributed` every
rank evaluates its own shard and the torchmetrics states are gathered across ranks when the
metrics are computed; the loss sum, sample count and reliability bins are summed with
``all_reduce``. Every rank must call :func:`evaluate` (it is a collective then), unless it is
called with ``sync=False``, which evaluates the local loader only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..losses import IGNORE_INDEX
from .calibration import N_BINS, plot_reliability, reliability_bins

__all__ = ["N_BINS", "evaluate", "iou_from_confusion", "plot_reliability", "reliability_bins",
           "summary_line"]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    return getattr(model, "module", model)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    num_classes: int,
    device: torch.device | str,
    *,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    sync: bool = True,
) -> dict:
    """Evaluate a classifier: top-1 / top-5 error, ECE (10 bins) and mean cross-entropy.

    The model is put in eval mode for the pass and restored to its previous mode afterwards.
    A DistributedDataParallel wrapper is looked through (the wrapped module is run directly, so
    ranks may hold shards of different sizes).

    Args:
        model: the classifier; ``model(x)`` returns logits ``(B, num_classes)``, or per-pixel
            logits ``(B, num_classes, H, W)`` for a segmentation model.
        loader: an iterable of ``(x, y)`` batches, ``y`` integer labels ``(B,)`` (class maps
            ``(B, H, W)`` for per-pixel logits).
        num_classes: the number of classes, an int >= 2.
        device: where the model lives; batches are moved there.
        autocast_dtype: run the forward under :func:`torch.autocast` with this dtype (CUDA AMP);
            ``None`` runs in full precision. Probabilities are always computed in float32.
        channels_last: move batches to the channels-last memory format.
        sync: under :mod:`torch.distributed`, combine the shards of all ranks (a collective);
            ``False`` evaluates this rank's loader alone (e.g. a final evaluation on rank 0).

    Returns:
        A dict with ``error`` and ``error_top5`` (percent; top-5 becomes top-``num_classes``
        when there are fewer than 5 classes), ``ece`` (percent, l1, 10 bins), ``loss`` (mean
        cross-entropy), ``samples`` (number of test samples over all ranks) and ``bins``
        (the :func:`reliability_bins` sums as lists, for :func:`plot_reliability`). For
        per-pixel logits the errors, ECE and loss are per pixel, ``samples`` counts the scored
        pixels, and ``miou`` (percent), ``iou`` (per class, percent; None for a class absent
        from labels and predictions) and ``images`` are added.
    """
    from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    device = torch.device(device)
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    top5 = min(5, num_classes)
    kw = {} if sync else {"sync_on_compute": False}
    acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro", **kw).to(device)
    acc5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro", **kw).to(device)
    ece = MulticlassCalibrationError(num_classes, n_bins=N_BINS, norm="l1", **kw).to(device)
    confusion = None  # (C * C,) label-major counts, for per-pixel logits
    images = 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    bins = {k: torch.zeros(N_BINS, dtype=torch.float64) for k in
            ("count", "confidence_sum", "correct_sum")}
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True).long()
            with autocast:
                logits = net(x)
            logits = logits.float()
            if logits.dim() == 4:
                if confusion is None:
                    confusion = torch.zeros(num_classes * num_classes, dtype=torch.float64,
                                            device=device)
                images += y.shape[0]
                logits, y = _pixels(logits, y, num_classes, confusion)
            if logits.dim() != 2 or logits.shape[1] != num_classes:
                raise ValueError(
                    f"the model returned logits of shape {tuple(logits.shape)}, expected "
                    f"(B, num_classes={num_classes}) or (B, num_classes, H, W)"
                )
            probs = logits.softmax(1)
            acc1.update(probs, y)
            acc5.update(probs, y)
            ece.update(probs, y)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            count += y.numel()
            conf, pred = probs.max(1)
            for k, v in reliability_bins(conf, pred == y).items():
                bins[k] += v
    finally:
        net.train(was_training)
    if sync and _distributed():
        stats = torch.cat([loss_sum.view(1), count.view(1)] + [bins[k].to(device) for k in bins])
        dist.all_reduce(stats)
        if confusion is not None:
            dist.all_reduce(confusion)
        loss_sum, count = stats[0], stats[1]
        for i, k in enumerate(bins):
            bins[k] = stats[2 + i * N_BINS: 2 + (i + 1) * N_BINS].cpu()
    n = int(count.item())
    if n == 0:
        raise ValueError("the evaluation loader yielded no samples")
    out = {
        "error": 100.0 * (1.0 - float(acc1.compute())),
        "error_top5": 100.0 * (1.0 - float(acc5.compute())),
        "ece": 100.0 * float(ece.compute()),
        "loss": float(loss_sum.item()) / n,
        "samples": n,
        "bins": {k: v.tolist() for k, v in bins.items()},
    }
    if confusion is not None:
        iou = iou_from_confusion(confusion.view(num_classes, num_classes).cpu())
        present = [v for v in iou if v is not None]
        out.update(miou=sum(present) / len(present), iou=iou, images=images)
    return out


def _pixels(logits: torch.Tensor, y: torch.Tensor, num_classes: int, confusion: torch.Tensor):
    """Per-pixel logits ``(B, C, H, W)`` and class maps ``(B, H, W)`` as ``(N, C)`` logits and
    ``(N,)`` labels of the scored pixels (``ignore_index`` left out); adds the batch to the
    label-major ``confusion`` counts."""
    b, _, h, w = logits.shape
    if tuple(y.shape) != (b, h, w):
        raise ValueError(f"per-pixel logits {tuple(logits.shape)} need class maps (B, H, W) = "
                         f"{(b, h, w)}, got labels of shape {tuple(y.shape)}")
    valid = (y != IGNORE_INDEX).flatten()
    logits = logits.permute(0, 2, 3, 1).reshape(-1, num_classes)[valid]
    y = y.flatten()[valid]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"class maps hold labels out of range [0, {num_classes}) "
                         f"(other than ignore_index {IGNORE_INDEX})")
    confusion += torch.bincount(y * num_classes + logits.argmax(1),
                                minlength=num_classes * num_classes).double()
    return logits, y


def iou_from_confusion(confusion: torch.Tensor) -> list[float | None]:
    """Per-class intersection over union in percent, ``TP / (TP + FP + FN)``, from a
    label-major ``(C, C)`` confusion matrix (rows: labels, columns: predictions); None for a
    class absent from both."""
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return [None if u == 0 else 100.0 * float(t / u) for t, u in zip(tp, union)]


def summary_line(metrics: dict) -> str:
    """One line with the final test error, top-5 error, ECE and throughput (the mIoU and the
    pixel error and ECE for a segmentation model)."""
    if metrics.get("miou") is not None:
        text = (f"test mIoU {metrics['miou']:.2f}% | pixel error {metrics['error']:.2f}% | "
                f"pixel ECE {metrics['ece']:.2f}% | test loss {metrics['loss']:.4f} "
                f"({metrics['images']} images)")
    else:
        text = (f"test error {metrics['error']:.2f}% | top-5 error "
                f"{metrics['error_top5']:.2f}% | ECE {metrics['ece']:.2f}% | test loss "
                f"{metrics['loss']:.4f} ({metrics['samples']} samples)")
    if metrics.get("images_per_s") is not None:
        text += f" | {metrics['images_per_s']:.1f} train img/s"
    if metrics.get("wall_seconds") is not None:
        text += f" | wall {metrics['wall_seconds']:.1f}s"
    return text
