"""Saliency and compatibility for Co-Mixup (Kim et al., ICLR 2021).

* :func:`input_saliency`: per-pixel saliency from the input gradient, the l2 norm of the gradient
  across channels (Section 4.1, Simonyan et al. 2013; notes 1.1: ``sqrt(mean_c grad^2)``, a
  constant factor away from the l2 norm and irrelevant after normalization).
* :func:`pooled_unary`: the saliency average-pooled to the labeling grid and normalized to sum 1
  per input; the unary cost is its negation (notes 1.3, Appendix E).
* :func:`compatibility`: ``A = (1 - omega) I + omega A_c`` with ``A_c`` the l1 distance between the
  most salient locations (Section 4.1, notes 1.6).
* :func:`clean_loss_and_saliency`: the paper's training step, one clean forward/backward that
  keeps the weight gradients and yields the saliency (Appendix C, notes 3).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "input_saliency",
    "pooled_unary",
    "salient_location",
    "compatibility",
    "clean_loss_and_saliency",
]


def input_saliency(grad: torch.Tensor) -> torch.Tensor:
    """Per-pixel saliency ``sqrt(mean over channels of grad^2)`` of an input gradient (notes 1.1).

    Args:
        grad: gradient of the loss with respect to the input, ``(B, C, H, W)``.

    Returns:
        ``(B, H, W)`` non-negative saliency in float32.
    """
    if not isinstance(grad, torch.Tensor) or grad.dim() != 4:
        raise ValueError(f"grad must be a (B, C, H, W) tensor, got {getattr(grad, 'shape', grad)}")
    return grad.detach().float().pow(2).mean(1).sqrt()


def pooled_unary(saliency: torch.Tensor, grid: int) -> torch.Tensor:
    """Average-pool saliency to a ``grid x grid`` labeling grid and normalize each map to sum 1.

    Sizes that ``grid`` does not divide use adaptive average pooling. An all-zero map becomes
    uniform (``1 / grid^2`` per cell), so it is legal input (notes 1.3).

    Args:
        saliency: ``(B, H, W)`` non-negative saliency.
        grid: the number of cells per side, ``g``.

    Returns:
        ``(B, g, g)`` float32 maps that sum to 1; the unary cost of Eq. (1) is their negation.
    """
    if saliency.dim() != 3:
        raise ValueError(f"saliency must have shape (B, H, W), got {tuple(saliency.shape)}")
    pooled = F.adaptive_avg_pool2d(saliency.float().unsqueeze(1), grid).squeeze(1)
    total = pooled.sum((1, 2), keepdim=True)
    uniform = torch.full_like(pooled, 1.0 / (grid * grid))
    return torch.where(total > 0, pooled / total.clamp_min(1e-30), uniform)


def salient_location(saliency: torch.Tensor, window: int = 8) -> torch.Tensor:
    """Row and column of each input's most salient ``window x window`` region (notes 1.6).

    The saliency is average-pooled with the given window at stride 1 (the window shrinks to the
    image size for small images); ties resolve to the first location in row-major order.

    Returns:
        ``(B, 2)`` long tensor of ``(row, col)`` in pooled coordinates.
    """
    b, h, w = saliency.shape
    kh, kw = min(window, h), min(window, w)
    # Window sums from an integral image (same argmax as avg_pool2d, a fraction of the cost).
    integral = F.pad(saliency.double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    pooled = (integral[:, kh:, kw:] - integral[:, :-kh, kw:]
              - integral[:, kh:, :-kw] + integral[:, :-kh, :-kw])
    flat = pooled.reshape(b, -1).argmax(1)
    width = pooled.shape[-1]
    return torch.stack([flat // width, flat % width], dim=1)


def compatibility(locations: torch.Tensor, omega: float = 1e-3) -> torch.Tensor:
    """The compatibility matrix ``A = (1 - omega) I + omega A_c`` of one partition (notes 1.6).

    ``A_c[i, j] = |r_i - r_j| + |c_i - c_j|`` is normalized within the partition to
    ``A_c * m / sum(A_c)``; when all locations coincide ``A_c`` stays zero.

    Args:
        locations: ``(m, 2)`` salient locations from :func:`salient_location`.
        omega: weight of ``A_c`` (paper: 0.001, Appendix E).

    Returns:
        ``(m, m)`` float64 tensor on the locations' device.
    """
    if not 0.0 <= omega <= 1.0:
        raise ValueError(f"omega must be in [0, 1], got {omega}")
    loc = locations.double()
    m = loc.shape[0]
    a_c = (loc[:, None, :] - loc[None, :, :]).abs().sum(-1)
    total = a_c.sum()
    a_c = torch.where(total > 0, a_c * m / total.clamp_min(1e-30), a_c)
    eye = torch.eye(m, dtype=torch.float64, device=loc.device)
    return (1.0 - omega) * eye + omega * a_c


def clean_loss_and_saliency(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward the clean batch once, backpropagate, and return ``(clean_loss, saliency)``.

    This is the first half of the paper's training step (Appendix C, notes 3): the weight
    gradients of the clean loss are *kept* (accumulated in ``.grad``), and the input gradient
    gives the saliency, so the caller adds the mixed loss and takes one optimizer step for both.

    Args:
        model: the classifier.
        x: clean inputs ``(B, C, H, W)``.
        y: labels ``(B,)`` (or whatever ``loss_fn`` takes).
        loss_fn: ``loss_fn(logits, y)``; cross-entropy by default.
        scale: factor applied to the loss before backward (the reference uses
            ``2 / num_classes``, notes 3); the returned loss is the scaled one.

    Returns:
        The detached scaled clean loss and the ``(B, H, W)`` saliency of :func:`input_saliency`.
    """
    loss_fn = loss_fn or F.cross_entropy
    inp = x.detach().requires_grad_(True)
    loss = loss_fn(model(inp), y) * scale
    loss.backward()
    return loss.detach(), input_saliency(inp.grad)
