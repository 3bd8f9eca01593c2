"""Calibration: expected calibration error and reliability diagrams (Table 2, Table 10, Fig. 4).

The paper measures calibration with the expected calibration error (ECE; Guo et al., 2017) with
10 equal-width bins on the maximum softmax probability (Appendix F.2; Section 5.3) and shows
confidence-vs-accuracy reliability diagrams (Figure 4, Figures 7-9).

* :func:`reliability_bins` sums the per-bin statistics (count, confidence, correct) of a set of
  predictions; sums, so that shards, batches and seeds can be added before dividing.
* :func:`ece_from_bins` and :func:`reliability_curve` turn those sums into the ECE (percent) and
  the per-bin accuracy / confidence.
* :func:`plot_reliability` draws one diagram; :func:`plot_reliability_grid` draws one per
  method side by side (the layout of Figure 4).

:func:`comixup.evaluate.evaluate` computes the ECE with ``torchmetrics`` and the bins with
:func:`reliability_bins`; both give the same number (checked in the tests).
"""

from __future__ import annotations

import torch

__all__ = [
    "N_BINS",
    "add_bins",
    "ece_from_bins",
    "plot_reliability",
    "plot_reliability_grid",
    "reliability_bins",
    "reliability_curve",
]

#: Number of equal-width confidence bins of the expected calibration error (paper, Appendix F.2).
N_BINS = 10


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


def _bins_tensors(bins: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(bins, dict) or not {"count", "confidence_sum", "correct_sum"} <= set(bins):
        raise ValueError("bins must be a dict with count, confidence_sum and correct_sum")
    count = torch.as_tensor(bins["count"], dtype=torch.float64).flatten()
    conf_sum = torch.as_tensor(bins["confidence_sum"], dtype=torch.float64).flatten()
    correct_sum = torch.as_tensor(bins["correct_sum"], dtype=torch.float64).flatten()
    n_bins = count.numel()
    if n_bins == 0 or conf_sum.numel() != n_bins or correct_sum.numel() != n_bins:
        raise ValueError("bins must hold count, confidence_sum and correct_sum of equal length")
    if float(count.sum()) <= 0:
        raise ValueError("bins are empty (count sums to 0)")
    return count, conf_sum, correct_sum


def reliability_curve(bins: dict) -> dict[str, torch.Tensor]:
    """Per-bin accuracy and mean confidence of a reliability diagram (Figure 4).

    Args:
        bins: the sums of :func:`reliability_bins` (tensors or lists), e.g. the ``bins`` entry
            of :func:`comixup.evaluate.evaluate`'s result.

    Returns:
        ``{"count", "accuracy", "confidence", "nonempty"}``: float64 ``(n_bins,)`` tensors
        (accuracy and confidence are 0 in empty bins; ``nonempty`` is boolean).
    """
    count, conf_sum, correct_sum = _bins_tensors(bins)
    nonempty = count > 0
    denom = count.clamp_min(1)
    zero = torch.zeros_like(count)
    return {
        "count": count,
        "accuracy": torch.where(nonempty, correct_sum / denom, zero),
        "confidence": torch.where(nonempty, conf_sum / denom, zero),
        "nonempty": nonempty,
    }


def ece_from_bins(bins: dict) -> float:
    """The expected calibration error, in percent, from reliability-bin sums (Table 10).

    ``ECE = sum_k (n_k / N) |acc_k - conf_k|`` over the bins (l1 norm, Guo et al., 2017;
    Appendix F.2). With the default 10 bins this equals
    ``torchmetrics``' ``MulticlassCalibrationError(n_bins=10, norm="l1")``.

    Args:
        bins: the sums of :func:`reliability_bins` (tensors or lists); adding the sums of
            several evaluations (e.g. seeds) gives the ECE of the pooled predictions.
    """
    curve = reliability_curve(bins)
    count = curve["count"]
    gap = (curve["accuracy"] - curve["confidence"]).abs()
    return float((gap * count).sum() / count.sum()) * 100.0


def add_bins(*bins: dict) -> dict[str, list[float]]:
    """Sum several :func:`reliability_bins` results (e.g. over seeds), as lists."""
    if not bins:
        raise ValueError("add_bins needs at least one bins dict")
    tensors = [_bins_tensors(b) for b in bins]
    if len({t[0].numel() for t in tensors}) != 1:
        raise ValueError("bins must all have the same number of bins")
    keys = ("count", "confidence_sum", "correct_sum")
    return {k: sum(t[i] for t in tensors).tolist() for i, k in enumerate(keys)}


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

    curve = reliability_curve(bins)
    count, acc, conf, nonempty = (curve[k] for k in ("count", "accuracy", "confidence",
                                                     "nonempty"))
    n_bins = count.numel()
    ece = ece_from_bins(bins)
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


def plot_reliability_grid(panels, path=None, *, suptitle: str | None = None):
    """Reliability diagrams side by side, one per method (the layout of Figure 4).

    Args:
        panels: a list of rows; each row a list of ``(title, bins)`` pairs (one row per
            dataset / preset, one panel per method). A flat list of pairs is one row.
        path: if given, save the figure there.
        suptitle: optional title of the whole figure.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = list(panels)
    if not rows:
        raise ValueError("panels must hold at least one (title, bins) pair")
    if isinstance(rows[0], tuple) and len(rows[0]) == 2 and isinstance(rows[0][1], dict):
        rows = [rows]
    ncols = max(len(r) for r in rows)
    if ncols == 0:
        raise ValueError("panels must hold at least one (title, bins) pair")
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 3.2 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(row):
                ax.axis("off")
                continue
            title, bins = row[c]
            plot_reliability(bins, title=title, ax=ax)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
