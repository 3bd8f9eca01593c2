"""Figures of the evaluation: CAM samples (Section 5.2) and corrupted samples (Figure 10).

* :func:`plot_cam_samples`: a grid of test images, each with its class activation map as a heat
  map, the box of the predicted class's CAM (red) and the ground-truth boxes (green).
* :func:`plot_corruption_samples`: one row per corruption mode (clean first), the ground-truth
  boxes drawn, like the paper's Figure 10.

Both use matplotlib with the Agg backend and close nothing the caller passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["plot_cam_samples", "plot_corruption_samples", "to_pixels"]


def to_pixels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
    """Undo the normalization of one ``(C, H, W)`` image: an ``(H, W, C)`` (or ``(H, W)`` for
    one channel) numpy array clipped to ``[0, 1]``, ready for ``imshow``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a (C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    c = x.shape[0]
    m = torch.as_tensor(mean, dtype=torch.float32).flatten().expand(c).view(c, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).flatten().expand(c).view(c, 1, 1)
    p = (x.detach().float().cpu() * s + m).clamp(0, 1)
    return p[0].numpy() if c == 1 else p.permute(1, 2, 0).numpy()


def _grid(n: int, cols: int):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _box(ax, box, colour: str, lw: float = 1.2) -> None:
    from matplotlib import patches

    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=lw,
                                   edgecolor=colour))


def plot_cam_samples(examples: dict, path=None, *, mean, std, class_names=None, cols: int = 8):
    """A grid of images with their CAM heat map, predicted box and ground-truth boxes.

    Args:
        examples: the ``examples`` of :func:`comixup.evaluate.localization.localize` (keys
            ``x``, ``y``, ``pred``, ``cam``, ``pred_box``, ``gt_boxes``).
        path: where to save the figure (PNG), or None.
        mean, std: the dataset normalization (to show the images).
        class_names: optional names of the classes for the titles.
        cols: panels per row.

    Returns:
        The matplotlib figure.
    """
    n = len(examples["x"])
    if n == 0:
        raise ValueError("examples holds no sample")
    fig, axes = _grid(n, cols)

    def name(k):
        return class_names[k] if class_names else str(k)

    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        img = to_pixels(examples["x"][i], mean, std)
        h, w = img.shape[:2]
        extent = (0, w, h, 0)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, extent=extent,
                  interpolation="nearest")
        ax.imshow(torch.as_tensor(examples["cam"][i]).numpy(), cmap="jet", alpha=0.4,
                  extent=extent, interpolation="bilinear", vmin=0, vmax=1)
        for gt in examples["gt_boxes"][i]:
            _box(ax, gt, "lime")
        _box(ax, examples["pred_box"][i], "red")
        y, p = examples["y"][i], examples["pred"][i]
        ax.set_title(f"true {name(y)}\npred {name(p)}", fontsize=6,
                     color="black" if y == p else "red")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    fig.suptitle("CAM of the predicted class; red: CAM box, green: ground truth", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_corruption_samples(dataset, modes: Sequence[str], path=None, *, seed: int = 0,
                            n: int = 8):
    """The first ``n`` test images, clean and with each background corruption (Figure 10).

    Args:
        dataset: the clean test set (with boxes and ``info``).
        modes: corruption modes (:data:`comixup.evaluate.robustness.MODES`).
        path: where to save the figure (PNG), or None.
        seed: the seed of the corruptions (as in the evaluation).
        n: images per row.

    Returns:
        The matplotlib figure.
    """
    from .robustness import BackgroundCorrupted

    n = min(int(n), len(dataset))
    if n < 1:
        raise ValueError("dataset is empty")
    info = dataset.info
    rows = [("clean", dataset)] + [(m, BackgroundCorrupted(dataset, m, seed=seed)) for m in modes]
    fig, axes = _grid(n * len(rows), n)
    for r, (label, ds) in enumerate(rows):
        for i in range(n):
            ax = axes[r][i]
            img = to_pixels(ds[i][0], info.mean, info.std)
            h, w = img.shape[:2]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, extent=(0, w, h, 0),
                      interpolation="nearest")
            for gt in dataset.boxes(i):
                _box(ax, gt, "red")
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("background corruption (Appendix G); red: ground-truth box", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
