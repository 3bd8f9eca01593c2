"""Test metrics of the paper: top-1 / top-5 error and expected calibration error (notes 5).

* :func:`evaluate` runs a classifier over a loader and returns the top-1 error, the top-5 error
  and the expected calibration error (ECE) with 10 equal-width confidence bins on the maximum
  softmax probability (Guo et al., 2017; the paper's Tables 1, 2 and 10), all in percent, plus
  the mean cross-entropy and the per-bin statistics of a reliability diagram.
* :func:`reliability_bins` computes those per-bin statistics from confidences and correctness.
* :func:`plot_reliability` draws the confidence-vs-accuracy diagram of Figures 4 and 7-9.

Accuracy and ECE come from :mod:`torchmetrics` (``MulticlassAccuracy(average="micro", top_k=k)``
and ``MulticlassCalibrationError(n_bins=10, norm="l1")``). Under :mod:`torch.distributed` every
rank evaluates its own shard and the torchmetrics states are gathered across ranks when the
metrics are computed; the loss sum, sample count and reliability bins are summed with
``all_reduce``. Every rank must call :func:`evaluate` (it is a collective then).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["N_BINS", "evaluate", "plot_reliability", "reliability_bins"]

#: Number of equal-width confidence bins of the expected calibration error (paper, Appendix F.2).
N_BINS = 10


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    return getattr(model, "module", model)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def reliability_bins(
    confidences: torch.Tensor, correct: torch.Tensor, n_bins: int = N_BINS
) -> dict[str, torch.Tensor]:
    """Per-bin sums of a reliability diagram.

    Confidences fall into ``n_bins`` equal-width bins ``[k / n_bins, (k + 1) / n_bins)`` (a
    confidence of exactly 1 goes to the last bin).

    Args:
        confidences: ``(N,)`` maximum softmax probabilities in ``[0, 1]``.
        correct: ``(N,)`` booleans (or 0/1), whether the top-1 prediction is right.
        n_bins: number of bins, an int >= 1.

    Returns:
        ``{"count", "confidence_sum", "correct_sum"}``, each a float64 ``(n_bins,)`` tensor on
        the CPU; sums, so that shards can be added (``all_reduce``) before dividing.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    confidences = confidences.detach().double().flatten().cpu()
    correct = correct.detach().double().flatten().cpu()
    if confidences.shape != correct.shape:
        raise ValueError(
            f"confidences and correct must have the same length, got {confidences.numel()} "
            f"and {correct.numel()}"
        )
    index = (confidences * n_bins).floor().long().clamp_(0, n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=torch.float64)
    return {
        "count": zeros.index_add(0, index, torch.ones_like(confidences)),
        "confidence_sum": zeros.index_add(0, index, confidences),
        "correct_sum": zeros.index_add(0, index, correct),
    }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    num_classes: int,
    device: torch.device | str,
    *,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict:
    """Evaluate a classifier: top-1 / top-5 error, ECE (10 bins) and mean cross-entropy.

    The model is put in eval mode for the pass and restored to its previous mode afterwards.
    A DistributedDataParallel wrapper is looked through (the wrapped module is run directly, so
    ranks may hold shards of different sizes).

    Args:
        model: the classifier; ``model(x)`` returns logits ``(B, num_classes)``.
        loader: an iterable of ``(x, y)`` batches, ``y`` integer labels.
        num_classes: the number of classes, an int >= 2.
        device: where the model lives; batches are moved there.
        autocast_dtype: run the forward under :func:`torch.autocast` with this dtype (CUDA AMP);
            ``None`` runs in full precision. Probabilities are always computed in float32.
        channels_last: move batches to the channels-last memory format.

    Returns:
        A dict with ``error`` and ``error_top5`` (percent; top-5 becomes top-``num_classes``
        when there are fewer than 5 classes), ``ece`` (percent, l1, 10 bins), ``loss`` (mean
        cross-entropy), ``samples`` (number of test samples over all ranks) and ``bins``
        (the :func:`reliability_bins` sums as lists, for :func:`plot_reliability`).
    """
    from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    device = torch.device(device)
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    top5 = min(5, num_classes)
    acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro").to(device)
    acc5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro").to(device)
    ece = MulticlassCalibrationError(num_classes, n_bins=N_BINS, norm="l1").to(device)
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
            if logits.dim() != 2 or logits.shape[1] != num_classes:
                raise ValueError(
                    f"the model returned logits of shape {tuple(logits.shape)}, expected "
                    f"(B, num_classes={num_classes})"
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
    if _distributed():
        stats = torch.cat([loss_sum.view(1), count.view(1)] + [bins[k].to(device) for k in bins])
        dist.all_reduce(stats)
        loss_sum, count = stats[0], stats[1]
        for i, k in enumerate(bins):
            bins[k] = stats[2 + i * N_BINS: 2 + (i + 1) * N_BINS].cpu()
    n = int(count.item())
    if n == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return {
        "error": 100.0 * (1.0 - float(acc1.compute())),
        "error_top5": 100.0 * (1.0 - float(acc5.compute())),
        "ece": 100.0 * float(ece.compute()),
        "loss": float(loss_sum.item()) / n,
        "samples": n,
        "bins": {k: v.tolist() for k, v in bins.items()},
    }


def plot_reliability(bins: dict, path=None, *, title: str | None = None, ax=None):
    """Draw a confidence-vs-accuracy reliability diagram (the paper's Figures 4 and 7-9).

    Bars show the accuracy of each confidence bin; the diagonal is perfect calibration and the
    gap to it is shaded. Empty bins are left out.

    Args:
        bins: the ``bins`` entry of :func:`evaluate`'s result (or :func:`reliability_bins`).
        path: if given, save the figure there (format from the suffix, e.g. ``.png``).
        title: optional title; the ECE computed from the bins is appended.
        ax: an existing matplotlib axis to draw on; a new figure is made otherwise.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    count = torch.as_tensor(bins["count"], dtype=torch.float64)
    conf_sum = torch.as_tensor(bins["confidence_sum"], dtype=torch.float64)
    correct_sum = torch.as_tensor(bins["correct_sum"], dtype=torch.float64)
    n_bins = count.numel()
    if n_bins == 0 or conf_sum.numel() != n_bins or correct_sum.numel() != n_bins:
        raise ValueError("bins must hold count, confidence_sum and correct_sum of equal length")
    total = float(count.sum())
    if total <= 0:
        raise ValueError("bins are empty (count sums to 0)")
    nonempty = count > 0
    acc = torch.where(nonempty, correct_sum / count.clamp_min(1), torch.zeros_like(count))
    conf = torch.where(nonempty, conf_sum / count.clamp_min(1), torch.zeros_like(count))
    ece = float(((acc - conf).abs() * count).sum() / total) * 100.0
    width = 1.0 / n_bins
    left = torch.arange(n_bins, dtype=torch.float64) * width
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
    else:
        fig = ax.figure
    keep = nonempty.numpy()
    ax.bar(left.numpy()[keep], acc.numpy()[keep], width=width, align="edge",
           edgecolor="black", color="tab:blue", label="accuracy")
    ax.bar(left.numpy()[keep], (conf - acc).numpy()[keep], bottom=acc.numpy()[keep],
           width=width, align="edge", color="tab:red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    label = f"ECE {ece:.2f}%"
    ax.set_title(f"{title} ({label})" if title else label)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
