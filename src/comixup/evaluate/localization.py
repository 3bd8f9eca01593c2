"""Weakly supervised localization with class activation maps (Section 5.2, Table 2).

The protocol (Section 5.2, following Qin and Kim, 2019, with binarization threshold 0.25):

1. compute the CAM of a class (:func:`comixup.evaluate.cam.cam`) and min-max normalize it to
   ``[0, 1]``;
2. keep the pixels ``>= 0.25``; take the largest 4-connected component and its bounding box
   (:func:`cam_to_box`);
3. a test sample is *localized* when its top-1 prediction is correct **and** the box of the
   predicted class's CAM has IoU >= 0.5 with at least one ground-truth box ("top-1
   localization", the number of Table 2). The *GT-known* variant takes the CAM of the true
   class and ignores the prediction.

**Box convention** (the datasets' one, :class:`comixup.data.common.BoxedDataset`): a box is
``(x0, y0, x1, y1)`` in *pixel-edge* coordinates, ``x1`` and ``y1`` exclusive: pixel column
``j`` spans ``[j, j + 1)``, so the box of pixels ``x0..x1-1`` x ``y0..y1-1`` is
``(x0, y0, x1, y1)`` and a full ``H x W`` image is ``(0, 0, W, H)``. Its area is
``(x1 - x0) * (y1 - y0)``. The synthetic benchmark stores such boxes; the Tiny-ImageNet and
ImageNet loaders convert their inclusive pixel indices to it (``x1 = xmax + 1``).

:func:`localize` also measures a *random-box baseline*: every CAM box is moved to a position
drawn uniformly (from a seeded generator) among the integer placements of a box of the same
size inside the image, and scored with the same criteria. A CAM that localizes beats it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "IOU_THRESHOLD",
    "THRESHOLD",
    "box_iou",
    "box_mask",
    "cam_to_box",
    "cams_to_boxes",
    "localize",
    "random_boxes",
]

#: CAM binarization threshold of the paper (Section 5.2).
THRESHOLD = 0.25
#: IoU a box needs with some ground-truth box to count as localized (Section 5.2).
IOU_THRESHOLD = 0.5


def _as_map(cam) -> np.ndarray:
    if isinstance(cam, torch.Tensor):
        cam = cam.detach().float().cpu().numpy()
    elif not isinstance(cam, np.ndarray):
        raise TypeError(f"cam must be a torch.Tensor or numpy array, got {type(cam).__name__}")
    if cam.ndim != 2 or min(cam.shape) < 1:
        raise ValueError(f"cam must be a 2-D (H, W) map, got shape {tuple(cam.shape)}")
    if not np.isfinite(cam).all():
        raise ValueError("cam must hold finite values")
    return cam.astype(np.float64, copy=False)


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return float(threshold)


def cam_to_box(cam, threshold: float = THRESHOLD) -> tuple[int, int, int, int]:
    """The bounding box of the largest region of a CAM above ``threshold`` (Section 5.2).

    The map is min-max normalized to ``[0, 1]``; pixels ``>= threshold`` are kept; the largest
    4-connected component (:func:`scipy.ndimage.label` with its default cross-shaped structure)
    gives the box. Ties between equally large components go to the one whose first pixel comes
    first in row-major order.

    A *constant* map (maximum equal to minimum) has no preferred region: every pixel is at its
    maximum, so the box is the whole image ``(0, 0, W, H)``.

    Args:
        cam: ``(H, W)`` tensor or array of finite values.
        threshold: in ``[0, 1]`` (0.25, the paper's, by default).

    Returns:
        ``(x0, y0, x1, y1)`` ints in pixel-edge coordinates, ``x1`` / ``y1`` exclusive (the
        datasets' convention; see the module docstring).
    """
    from scipy import ndimage

    m = _as_map(cam)
    threshold = _check_threshold(threshold)
    h, w = m.shape
    lo, hi = m.min(), m.max()
    if not hi > lo:
        return (0, 0, w, h)
    keep = (m - lo) / (hi - lo) >= threshold
    labels, count = ndimage.label(keep)
    if count == 0:  # pragma: no cover - the maximum always passes a threshold <= 1
        return (0, 0, w, h)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    best = int(np.argmax(sizes)) + 1
    rows = np.flatnonzero((labels == best).any(axis=1))
    cols = np.flatnonzero((labels == best).any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def cams_to_boxes(cams, threshold: float = THRESHOLD) -> torch.Tensor:
    """:func:`cam_to_box` of each map of a ``(B, H, W)`` batch: a float ``(B, 4)`` CPU tensor."""
    if isinstance(cams, torch.Tensor):
        cams = cams.detach().float().cpu().numpy()
    if not isinstance(cams, np.ndarray) or cams.ndim != 3:
        raise ValueError(f"cams must be a (B, H, W) tensor, got "
                         f"{getattr(cams, 'shape', type(cams).__name__)}")
    boxes = [cam_to_box(c, threshold) for c in cams]
    return torch.tensor(boxes, dtype=torch.float32).reshape(len(boxes), 4)


def _as_boxes(b, name: str) -> torch.Tensor:
    t = torch.as_tensor(b, dtype=torch.float64)
    if t.shape[-1:] != (4,):
        raise ValueError(f"{name} must have shape (..., 4) (x0, y0, x1, y1), got "
                         f"{tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must hold finite coordinates")
    if (t[..., 2] < t[..., 0]).any() or (t[..., 3] < t[..., 1]).any():
        raise ValueError(f"{name} must satisfy x0 <= x1 and y0 <= y1")
    return t


def box_iou(a, b):
    """Intersection over union of boxes ``(x0, y0, x1, y1)`` in pixel-edge coordinates.

    Areas are ``(x1 - x0) * (y1 - y0)`` (x1, y1 exclusive, the datasets' convention). Two
    empty boxes have IoU 0.

    Args:
        a, b: a box (a sequence of 4 numbers) or tensors / arrays of shape ``(..., 4)``;
            leading dimensions broadcast.

    Returns:
        A float for two single boxes, else a float64 tensor of the broadcast leading shape.
    """
    single = np.ndim(a) == 1 and np.ndim(b) == 1
    ta, tb = _as_boxes(a, "a"), _as_boxes(b, "b")
    ix = (torch.minimum(ta[..., 2], tb[..., 2])
          - torch.maximum(ta[..., 0], tb[..., 0])).clamp_min(0)
    iy = (torch.minimum(ta[..., 3], tb[..., 3])
          - torch.maximum(ta[..., 1], tb[..., 1])).clamp_min(0)
    inter = ix * iy
    area_a = (ta[..., 2] - ta[..., 0]) * (ta[..., 3] - ta[..., 1])
    area_b = (tb[..., 2] - tb[..., 0]) * (tb[..., 3] - tb[..., 1])
    union = area_a + area_b - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(union))
    return float(iou) if single else iou


def _pad_boxes(boxes, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K, 4)`` boxes and a ``(B, K)`` validity mask from a per-sample list of boxes."""
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 2:
        boxes = boxes[:, None]
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 3:
        t = _as_boxes(boxes, "boxes")
        if t.shape[0] != batch:
            raise ValueError(f"boxes must hold {batch} samples, got {t.shape[0]}")
        return t, torch.ones(t.shape[:2], dtype=torch.bool)
    if not isinstance(boxes, Sequence) or len(boxes) != batch:
        raise ValueError(f"boxes must be a (B, 4) / (B, K, 4) tensor or a list of {batch} lists "
                         "of boxes")
    per = [torch.zeros(0, 4, dtype=torch.float64) if len(b) == 0
           else _as_boxes(b, "boxes[i]").reshape(-1, 4) for b in boxes]
    k = max([len(p) for p in per] + [1])
    out = torch.zeros(batch, k, 4, dtype=torch.float64)
    valid = torch.zeros(batch, k, dtype=torch.bool)
    for i, p in enumerate(per):
        out[i, : len(p)] = p
        valid[i, : len(p)] = True
    return out, valid


def box_mask(boxes, height: int, width: int) -> torch.Tensor:
    """The ``(B, H, W)`` boolean mask of the pixels inside any of each sample's boxes.

    A pixel ``(i, j)`` is inside box ``(x0, y0, x1, y1)`` when its centre ``(j + 0.5, i + 0.5)``
    lies in ``[x0, x1) x [y0, y1)``: for integer boxes exactly the pixels ``x0..x1-1`` x
    ``y0..y1-1`` (the pixel-edge convention); fractional (rescaled) boxes round to the pixels
    whose centres they cover. This is the mask ``z`` of Appendix G.

    Args:
        boxes: ``(B, 4)`` or ``(B, K, 4)`` tensor, or a list of ``B`` lists of boxes (a sample
            may have several boxes, or none: then its mask is empty).
        height, width: image size.
    """
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    batch = boxes.shape[0] if isinstance(boxes, torch.Tensor) else len(boxes)
    t, valid = _pad_boxes(boxes, batch)
    cx = torch.arange(width, dtype=torch.float64) + 0.5
    cy = torch.arange(height, dtype=torch.float64) + 0.5
    in_x = (cx >= t[..., 0:1]) & (cx < t[..., 2:3])  # (B, K, W)
    in_y = (cy >= t[..., 1:2]) & (cy < t[..., 3:4])  # (B, K, H)
    inside = in_y[..., :, None] & in_x[..., None, :] & valid[..., None, None]
    return inside.any(dim=1)


def random_boxes(boxes, height: int, width: int, *, generator: torch.Generator) -> torch.Tensor:
    """Boxes of the same sizes as ``boxes`` at uniformly random positions inside the image.

    Each ``(B, 4)`` box of width ``w`` and height ``h`` is moved to ``x0`` uniform among the
    integers ``0..W - w`` and ``y0`` among ``0..H - h`` (drawn from ``generator``); this is the
    random-box baseline of :func:`localize`.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    t = _as_boxes(boxes, "boxes").reshape(-1, 4)
    bw = (t[:, 2] - t[:, 0]).clamp(0, width)
    bh = (t[:, 3] - t[:, 1]).clamp(0, height)
    u = torch.rand(t.shape[0], 2, generator=generator, dtype=torch.float64)
    x0 = torch.floor(u[:, 0] * (width - bw + 1).floor()).clamp_max(width - bw)
    y0 = torch.floor(u[:, 1] * (height - bh + 1).floor()).clamp_max(height - bh)
    return torch.stack([x0, y0, x0 + bw, y0 + bh], 1).float()


def _max_iou(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Best IoU of each ``(B, 4)`` box with that sample's valid ``(B, K, 4)`` boxes (0: none)."""
    iou = box_iou(pred.double()[:, None], gt)
    return torch.where(valid, iou, torch.zeros_like(iou)).amax(1)


@torch.no_grad()
def localize(
    model: torch.nn.Module,
    dataset,
    device: torch.device | str = "cpu",
    *,
    batch_size: int = 100,
    threshold: float = THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    seed: int = 0,
    workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    keep: int = 0,
) -> dict:
    """Localization accuracy by CAM over a dataset with boxes (Table 2).

    Args:
        model: a CAM-capable classifier (:func:`comixup.evaluate.cam.supports_cam`); it is put
            in eval mode for the pass and restored afterwards.
        dataset: a map-style dataset returning ``(x, y)`` with ``has_boxes`` true and
            ``boxes(i)`` (e.g. ``comixup.data.build_dataset(..., train_transform=False)``).
        device: where the model lives.
        batch_size: evaluation batch size.
        threshold: CAM binarization threshold (0.25, Section 5.2).
        iou_threshold: IoU needed with some ground-truth box (0.5).
        seed: seed of the random-box baseline's generator.
        workers: data-loader workers.
        autocast_dtype: run the forward under :func:`torch.autocast` with this dtype.
        progress: show a tqdm bar over the dataset.
        keep: also return the first ``keep`` samples' CAMs and boxes (for figures).

    Returns:
        A dict, accuracies in percent: ``top1_loc`` (correct class and IoU >= 0.5 for the
        predicted class's CAM box), ``gt_known_loc`` (IoU >= 0.5 for the true class's CAM box),
        ``random_top1_loc`` and ``random_gt_known_loc`` (the same criteria for boxes of the
        same sizes at random positions), ``mean_iou`` (best IoU of the true class's CAM box
        with a ground-truth box, averaged) and ``random_mean_iou`` (the same for the random
        boxes), ``error`` (top-1, %),
        ``samples``, ``threshold``, ``iou_threshold``, ``seed``; with ``keep``, ``examples``: a
        dict of tensors ``x``, ``y``, ``pred``, ``cam`` (predicted class, normalized),
        ``pred_box`` and a list ``gt_boxes``.
    """
    from tqdm.auto import tqdm

    from .cam import _check_model, cam_from_features

    net = _check_model(model)
    threshold = _check_threshold(threshold)
    iou_threshold = _check_threshold(iou_threshold)
    if not getattr(dataset, "has_boxes", False):
        raise ValueError(f"dataset: {type(dataset).__name__} has no bounding boxes")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(_Indexed(dataset), batch_size=batch_size,
                                         shuffle=False, num_workers=workers)
    counts = dict.fromkeys(("top1", "gt_known", "random_top1", "random_gt_known", "correct"), 0)
    iou_sum, random_iou_sum, n = 0.0, 0.0, 0
    examples: dict = {"x": [], "y": [], "pred": [], "cam": [], "pred_box": [], "gt_boxes": []}
    was_training = net.training
    net.eval()
    try:
        for x, y, index in tqdm(loader, desc="localization", disable=not progress, leave=False,
                                unit="batch", dynamic_ncols=True):
            x = x.to(device)
            y = y.long()
            if autocast_dtype is not None:
                with torch.autocast(device.type, dtype=autocast_dtype):
                    f = net.features(x)
                    logits = net.logits_from_features(f)
            else:
                f = net.features(x)
                logits = net.logits_from_features(f)
            f, logits = f.float(), logits.float()
            pred = logits.argmax(1).cpu()
            weight = net.classifier.weight.float()
            size = tuple(x.shape[-2:])
            both = cam_from_features(torch.cat([f, f]), weight,
                                     torch.cat([pred, y]).to(f.device), size).cpu()
            cam_pred, cam_true = both[: len(y)], both[len(y):]
            box_pred = cams_to_boxes(cam_pred, threshold)
            box_true = cams_to_boxes(cam_true, threshold)
            gt_list = [dataset.boxes(int(i)) for i in index]
            gt, valid = _pad_boxes(gt_list, len(y))
            h, w = size
            correct = pred == y
            iou_pred = _max_iou(box_pred, gt, valid)
            iou_true = _max_iou(box_true, gt, valid)
            rnd_pred = _max_iou(random_boxes(box_pred, h, w, generator=generator), gt, valid)
            rnd_true = _max_iou(random_boxes(box_true, h, w, generator=generator), gt, valid)
            counts["correct"] += int(correct.sum())
            counts["top1"] += int((correct & (iou_pred >= iou_threshold)).sum())
            counts["gt_known"] += int((iou_true >= iou_threshold).sum())
            counts["random_top1"] += int((correct & (rnd_pred >= iou_threshold)).sum())
            counts["random_gt_known"] += int((rnd_true >= iou_threshold).sum())
            iou_sum += float(iou_true.sum())
            random_iou_sum += float(rnd_true.sum())
            n += len(y)
            if keep and len(examples["x"]) < keep:
                take = min(keep - len(examples["x"]), len(y))
                lo = cam_pred[:take].flatten(1).amin(1)[:, None, None]
                hi = cam_pred[:take].flatten(1).amax(1)[:, None, None]
                norm = (cam_pred[:take] - lo) / (hi - lo).clamp_min(1e-12)
                examples["x"] += list(x[:take].cpu())
                examples["y"] += y[:take].tolist()
                examples["pred"] += pred[:take].tolist()
                examples["cam"] += list(norm)
                examples["pred_box"] += box_pred[:take].tolist()
                examples["gt_boxes"] += gt_list[:take]
    finally:
        net.train(was_training)
    if n == 0:
        raise ValueError("dataset: the localization pass saw no samples")
    result = {
        "top1_loc": 100.0 * counts["top1"] / n,
        "gt_known_loc": 100.0 * counts["gt_known"] / n,
        "random_top1_loc": 100.0 * counts["random_top1"] / n,
        "random_gt_known_loc": 100.0 * counts["random_gt_known"] / n,
        "mean_iou": iou_sum / n,
        "random_mean_iou": random_iou_sum / n,
        "error": 100.0 * (1.0 - counts["correct"] / n),
        "samples": n,
        "threshold": threshold,
        "iou_threshold": iou_threshold,
        "seed": seed,
    }
    if keep:
        result["examples"] = examples
    return result


class _Indexed(torch.utils.data.Dataset):
    """``(x, y, index)`` samples, so that boxes can be looked up per batch."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return x, y, index
