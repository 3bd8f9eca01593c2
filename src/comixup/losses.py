"""The two loss families of the reference code bases (Kim et al., ICLR 2021, Appendix C; the
fidelity table of ``docs/training.md``), in one place.

==========  ==========================================  ===========================================
family      trained batch (clean for Vanilla, mixed      clean loss of the saliency methods
            otherwise)                                   (Co-Mixup, Puzzle Mix)
==========  ==========================================  ===========================================
``"bce"``   binary cross-entropy between                 ``clean_lam * 2 * CE / C``
            ``softmax(logits)`` and the (one-hot or
            soft) targets, mean over batch and classes
            (CIFAR-100 and Tiny-ImageNet reference:
            every column of Tables 1-4)
``"ce"``    cross-entropy, with soft targets             ``clean_lam * CE``
            ``-(t * log_softmax(logits)).sum(1).mean()``
            for mixed batches (ImageNet reference;
            the original mixup / CutMix / Manifold
            Mixup code)
==========  ==========================================  ===========================================

The BCE gradient is about ``1 / C`` of the cross-entropy's, so the two families train at very
different effective learning rates: compare methods within one family only.

Dense targets (segmentation). Every function also takes per-pixel logits ``(B, C, H, W)`` with
a class-index map ``(B, H, W)`` (pixels equal to ``ignore_index``, -100 as in
:func:`torch.nn.functional.cross_entropy`, are left out) or per-pixel soft targets
``(B, C, H, W)`` (the mixers' dense output). A pixel's weight is its target mass: 1 for a
labelled pixel, 0 for an ignored one, the share of labelled sources for a mixed one. The
averages are over the pixels' mass, so a batch without ignored pixels averages over every pixel
as the classification losses average over the batch, and a class map gives the same value as
its one-hot encoding.

Multi-label targets (multi-hot rows that need not sum to 1) are not a family here: the natural
loss for them is the binary cross-entropy of the sigmoid,
:func:`torch.nn.functional.binary_cross_entropy_with_logits`, with the mixed multi-hot targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "LOSSES", "check_loss", "clean_scale", "one_hot", "soft_cross_entropy",
           "softmax_bce", "target_loss"]

#: The loss families (see the module docstring).
LOSSES = ("bce", "ce")

#: The label of a pixel left out of a dense loss (as in :func:`torch.nn.functional.cross_entropy`).
IGNORE_INDEX = -100


def check_loss(loss) -> str:
    """``loss`` if it is one of :data:`LOSSES`, else a ValueError naming ``loss``."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    return loss


def one_hot(labels: torch.Tensor, num_classes: int, *, ignore_index: int = IGNORE_INDEX,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot targets ``(B, C[, H, W])`` of labels ``(B[, H, W])`` by one scatter on their
    device (:func:`torch.nn.functional.one_hot` reads the labels' range back to the host).
    A label equal to ``ignore_index``, or outside ``[0, C)``, gets the all-zero vector (no
    out-of-bounds scatter; the callers that take user labels check the range first)."""
    labels = labels.long()
    kept = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    out = torch.zeros(labels.shape[0], num_classes, *labels.shape[1:], dtype=dtype,
                      device=labels.device)
    out.scatter_(1, torch.where(kept, labels, 0).unsqueeze(1), kept.unsqueeze(1).to(dtype))
    return out


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with soft targets, ``-(t * log_softmax(logits)).sum(1).mean()``, in float32.

    With the mixed targets ``lam y_a + (1 - lam) y_b`` it equals the
    ``lam CE(y_a) + (1 - lam) CE(y_b)`` of the original mixup, CutMix and Manifold Mixup code.
    Per-pixel targets ``(B, C, H, W)`` average over the pixels' target mass (module docstring).
    """
    with torch.autocast(logits.device.type, enabled=False):
        t = targets.float()
        per_sample = -(t * F.log_softmax(logits.float(), dim=1)).sum(1)
        if t.dim() == 2:
            return per_sample.mean()
        return per_sample.sum() / t.sum().clamp_min(1.0)


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between ``softmax(logits)`` and (soft) targets, averaged over batch
    and classes: the loss of every column of the CIFAR-100 / Tiny-ImageNet reference (Appendix C).

    Computed in float32 outside autocast; the log terms are clamped at -100 as in
    :func:`torch.nn.functional.binary_cross_entropy`. Per-pixel targets ``(B, C, H, W)``
    weigh each pixel by its target mass (module docstring): the mean over classes and pixels
    when no pixel is ignored.
    """
    with torch.autocast(logits.device.type, enabled=False):
        probs = F.softmax(logits.float(), dim=1)
        t = targets.float().clamp(0.0, 1.0)
        if t.dim() == 2:
            return F.binary_cross_entropy(probs, t)
        mass = t.sum(1, keepdim=True).clamp(0.0, 1.0)
        bce = F.binary_cross_entropy(probs, t, reduction="none")
        return (bce * mass).sum() / (mass.sum() * t.shape[1]).clamp_min(1.0)


def target_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """The trained-batch loss of family ``loss``: BCE of the softmax (``"bce"``) or the
    (soft-target) cross-entropy (``"ce"``), for integer labels ``(B,)`` or soft targets
    ``(B, C)``, and per pixel for a class map ``(B, H, W)`` or soft targets ``(B, C, H, W)``
    with logits ``(B, C, H, W)``."""
    check_loss(loss)
    if not targets.is_floating_point():
        if loss == "ce":
            with torch.autocast(logits.device.type, enabled=False):
                return F.cross_entropy(logits.float(), targets.long(), ignore_index=IGNORE_INDEX)
        targets = one_hot(targets, logits.shape[1])
    return softmax_bce(logits, targets) if loss == "bce" else soft_cross_entropy(logits, targets)


def clean_scale(loss: str, num_classes: int, clean_lam: float = 1.0) -> float:
    """Factor of the clean cross-entropy in the saliency methods' step: ``clean_lam * 2 / C``
    for ``"bce"`` (CIFAR / Tiny-ImageNet reference) and ``clean_lam`` for ``"ce"`` (ImageNet)."""
    check_loss(loss)
    return clean_lam * (2.0 / num_classes if loss == "bce" else 1.0)


def clean_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str,
               clean_lam: float = 1.0) -> torch.Tensor:
    """The saliency methods' clean loss (Appendix C; recipes 3, "One Co-Mixup step"): the
    cross-entropy of the clean batch times :func:`clean_scale` (``clean_lam * 2 * CE / C`` for
    ``"bce"``, ``clean_lam * CE`` for ``"ce"``), computed in float32; per pixel for a class
    map ``(B, H, W)`` (ignored pixels left out)."""
    with torch.autocast(logits.device.type, enabled=False):
        ce = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        return ce * clean_scale(loss, logits.shape[1], clean_lam)
