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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "check_loss", "clean_scale", "soft_cross_entropy", "softmax_bce",
           "target_loss"]

#: The loss families (see the module docstring).
LOSSES = ("bce", "ce")


def check_loss(loss) -> str:
    """``loss`` if it is one of :data:`LOSSES`, else a ValueError naming ``loss``."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    return loss


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with soft targets, ``-(t * log_softmax(logits)).sum(1).mean()``, in float32.

    With the mixed targets ``lam y_a + (1 - lam) y_b`` it equals the
    ``lam CE(y_a) + (1 - lam) CE(y_b)`` of the original mixup, CutMix and Manifold Mixup code.
    """
    with torch.autocast(logits.device.type, enabled=False):
        return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between ``softmax(logits)`` and (soft) targets, averaged over batch
    and classes: the loss of every column of the CIFAR-100 / Tiny-ImageNet reference (Appendix C).

    Computed in float32 outside autocast; the log terms are clamped at -100 as in
    :func:`torch.nn.functional.binary_cross_entropy`.
    """
    with torch.autocast(logits.device.type, enabled=False):
        probs = F.softmax(logits.float(), dim=1)
        return F.binary_cross_entropy(probs, targets.float().clamp(0.0, 1.0))


def target_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """The trained-batch loss of family ``loss`` for integer labels ``(B,)`` or soft targets
    ``(B, C)``: BCE of the softmax (``"bce"``) or the (soft-target) cross-entropy (``"ce"``)."""
    check_loss(loss)
    if targets.dim() == 1:
        if loss == "ce":
            with torch.autocast(logits.device.type, enabled=False):
                return F.cross_entropy(logits.float(), targets)
        # one-hot by a scatter: F.one_hot reads the labels' range back to the host
        onehot = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        targets = onehot.scatter_(1, targets.long().view(-1, 1), 1.0)
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
    ``"bce"``, ``clean_lam * CE`` for ``"ce"``), computed in float32."""
    with torch.autocast(logits.device.type, enabled=False):
        return F.cross_entropy(logits.float(), labels) * clean_scale(loss, logits.shape[1],
                                                                     clean_lam)
