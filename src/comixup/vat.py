"""Virtual adversarial training (Miyato, Maeda, Koyama and Ishii, "Virtual Adversarial Training:
a Regularization Method for Supervised and Semi-Supervised Learning", TPAMI 2018).

VAT is the non-mixup baseline of Co-Mixup's Appendix F.4 (Table 12); it regularizes the
clean batch instead of mixing it (its training step is :mod:`comixup.methods`'s ``vat``). For a
batch ``x`` with predictions ``p(x)``, VAT adds ``alpha * KL(p(x) || p(x + r_adv))`` to the
supervised loss, where ``r_adv`` is the direction of largest KL increase within a ball of radius
``eps``, estimated by power iteration:

1. ``d ~ N(0, I)`` (from the generator);
2. ``power_iterations`` times: ``r = xi d / ||d||_2``; ``d <- grad_r KL(p(x) || p(x + r))``
   (a finite-difference step of size ``xi``);
3. ``r_adv`` = the steepest point of the ball along ``d``.

The ball. The paper tunes ``eps in {1, 2}`` as "the radius of an l-inf ball" on CIFAR-100. Here
``eps`` is measured on the 0-255 pixel scale, the usual unit of l-inf radii: ``eps = 1`` lets
each raw pixel move by ``1/255`` on the ``[0, 1]`` scale. With ``norm="linf"`` (the default)
``r_adv = eps/255 * sign(d)`` in raw pixels; with ``norm="l2"`` (Miyato et al.'s original ball)
``r_adv = eps/255 * d_raw / ||d_raw||_2`` with ``d_raw`` the direction in raw pixels. The
perturbation is then divided by the dataset's ``std`` to act on normalized inputs.
``power_iterations = 0`` is a random perturbation of the same size (Table 12's "update = 0").

``xi`` is the finite-difference step of the power iteration as an l2 length on the network's
(normalized) input. Miyato et al. use ``1e-6``; in float32 that step is lost in rounding (on a
fixed LeNet and 16x16 inputs, eps = 2: the KL reached with ``xi = 1e-6`` was half of that with
``1e-3 .. 1e-1`` in the l-inf ball, and the l2 direction barely beat a random one). The default
here is ``1e-2``, well inside the ball (the l-inf ball of eps = 1 on a normalized 32x32x3 image
has an l2 size of about 0.2).

The perturbed forwards (the power iteration's and the final ``x + r_adv``) run with BatchNorm's
running statistics frozen (:func:`frozen_batchnorm_stats`), as Miyato et al.'s
``update_batch_stats=False``: in train mode they normalize with the batch's own statistics but
leave the running mean and variance (and the batch counter) as the clean forward left them.
The power-iteration forward runs on the unwrapped network (no DistributedDataParallel
bookkeeping) in the model's current mode.

Precision. The power iteration measures how the KL changes over a step of ``xi`` (1e-2 on the
normalized input), below bfloat16's resolution of the input (8 bits of mantissa: a step of
``2^-8`` relative); under autocast the direction is noise (on a width-8 PreActResNet18 and 16
random 32x32 inputs its cosine to the float32 direction averaged -0.07). So the power
iteration always runs in float32 with autocast off; under autocast its reference point
``p(x)`` is recomputed in float32 too (one extra forward without gradient), since the clean
logits of the autocast forward differ from the float32 forward by more than the ``xi`` step
changes them. The final perturbed forward (whose gradient trains the model) runs in the
caller's precision.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_generator, check_int, check_number, check_tensor, check_values
from .mixers.base import check_images

__all__ = ["VAT", "frozen_batchnorm_stats", "kl_divergence"]

#: The ball of the perturbation.
NORMS = ("linf", "l2")


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(p_logits) || softmax(q_logits))`` summed over classes, averaged over the
    batch (and the pixels, for per-pixel logits ``(B, K, H, W)``), in float32; ``p_logits`` is
    treated as a constant (detached)."""
    with torch.autocast(q_logits.device.type, enabled=False):
        log_p = F.log_softmax(p_logits.detach().float(), dim=1)
        log_q = F.log_softmax(q_logits.float(), dim=1)
        return (log_p.exp() * (log_p - log_q)).sum(1).mean()


@contextlib.contextmanager
def frozen_batchnorm_stats(model):
    """Within the block, BatchNorm layers of ``model`` do not update their running statistics.

    Every :class:`torch.nn.modules.batchnorm._BatchNorm` (BatchNorm1d/2d/3d, SyncBatchNorm) that
    tracks running statistics stops tracking for the block: in train mode it normalizes with the
    batch's statistics (as before) and leaves ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` untouched; in eval mode it still uses the running statistics. This is
    Miyato et al.'s ``update_batch_stats=False`` for VAT's perturbed forwards. ``model`` may be
    any object; modules are found through its ``modules()`` when it has one.
    """
    modules = model.modules() if isinstance(model, nn.Module) else ()
    frozen = [m for m in modules
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in frozen:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in frozen:
            m.track_running_stats = True


def _per_sample_l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (t.dim() - 1)))


class VAT:
    """The VAT regularizer: ``kl, r_adv = VAT(...)(model, x, logits)``.

    Args:
        alpha: weight of the KL term in the loss (Table 12: {0.001, 0.01, 0.1}; default 0.001,
            the best of Table 12 with the power iteration on and ``eps = 1``: 24.76% error).
        eps: radius of the ball on the 0-255 pixel scale (Table 12: {1, 2}; default 1).
        power_iterations: power-iteration steps, 0 (random direction) or 1 (Table 12: {0, 1};
            default 1, the VAT of Miyato et al.). Table 12's best cell overall has no power
            iteration: ``power_iterations = 0, alpha = 0.01, eps = 1`` (23.14%).
        xi: finite-difference step of the power iteration (default 1e-2; Miyato et al.'s 1e-6
            is too small for float32, see the module docstring).
        norm: ``"linf"`` (the paper's ball, default) or ``"l2"`` (Miyato et al.'s).
        std: the dataset's per-channel std on the ``[0, 1]`` scale (default 1: inputs are raw
            ``[0, 1]`` pixels); the training engine passes the dataset's.
        generator: CPU :class:`torch.Generator` for the random start ``d``; ``None`` uses torch's
            default generator.

    Call:
        ``vat(model, x, logits)`` with ``logits = model(x)`` returns ``(kl, r_adv)``: the
        un-weighted ``KL(p(x) || p(x + r_adv))`` (differentiable in the weights) and the detached
        perturbation, in ``x``'s (normalized) space. The training loss is
        ``supervised + alpha * kl``.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.001,
        eps: float = 1.0,
        power_iterations: int = 1,
        xi: float = 1e-2,
        norm: str = "linf",
        std=None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.alpha = check_number("alpha", alpha)
        self.eps = check_number("eps", eps, low_open=True)
        self.power_iterations = check_int("power_iterations", power_iterations, 0, 1)
        self.xi = check_number("xi", xi, low_open=True)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        self.norm = norm
        self.std = self._check_std(std)
        self.generator = check_generator(generator)

    @staticmethod
    def _check_std(std):
        if std is None:
            return None
        values = torch.as_tensor(std, dtype=torch.float64).flatten()
        if (values.numel() == 0 or not bool(torch.isfinite(values).all())
                or bool((values <= 0).any())):
            raise ValueError(f"std must hold finite numbers > 0, got {std!r}")
        return values.tolist()

    def __repr__(self) -> str:
        return (f"VAT(alpha={self.alpha}, eps={self.eps}, "
                f"power_iterations={self.power_iterations}, "
                f"xi={self.xi}, norm={self.norm!r})")

    def _std(self, x: torch.Tensor) -> torch.Tensor:
        if self.std is None:
            return torch.ones(1, 1, 1, 1, dtype=x.dtype, device=x.device)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)
        if std.numel() not in (1, x.shape[1]):
            raise ValueError(f"std has {std.numel()} values for {x.shape[1]} channels")
        return std.view(1, -1, *([1] * (x.dim() - 2)))

    def perturbation(self, model, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``r_adv`` for the batch ``x`` whose (clean) logits are ``logits``, in ``x``'s space.

        Its raw-pixel norm (``r_adv * std``, per sample) is exactly ``eps / 255`` in the chosen
        ball. The power iteration runs in float32 (float64 for float64 inputs) with autocast
        off and BatchNorm's running statistics frozen; under autocast ``p(x)`` is recomputed in
        that precision (module docstring).
        """
        x = x.detach()
        d = torch.randn(x.shape, generator=self.generator, dtype=torch.float32)
        d = d.to(device=x.device, dtype=x.dtype)
        if self.power_iterations:
            device = x.device.type
            compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
            recompute = torch.is_autocast_enabled(device) or logits.dtype not in (torch.float32,
                                                                                  torch.float64)
            with torch.autocast(device, enabled=False), frozen_batchnorm_stats(model):
                xc, d = x.to(compute), d.to(compute)
                target = logits
                if recompute:
                    with torch.no_grad():
                        target = model(xc)
                for _ in range(self.power_iterations):
                    r = (self.xi * d / _per_sample_l2(d)).requires_grad_(True)
                    kl = kl_divergence(target, model(xc + r))
                    (d,) = torch.autograd.grad(kl, r)
            d = d.to(x.dtype)
        std = self._std(x)
        radius = self.eps / 255.0
        if self.norm == "linf":
            sign = torch.sign(d)
            raw = radius * torch.where(sign == 0, torch.ones_like(sign), sign)
        else:
            d_raw = d / std  # the gradient with respect to raw pixels
            raw = radius * d_raw / _per_sample_l2(d_raw)
        return (raw / std).detach()

    def __call__(self, model, x: torch.Tensor, logits: torch.Tensor):
        """``(kl, r_adv)``: the KL divergence ``KL(p(x) || p(x + r_adv))`` (a scalar with
        gradients into ``model``) and the perturbation.

        ``x`` must be a ``(B, C, H, W)`` floating tensor, finite when on the CPU (a ValueError or
        TypeError names it); ``logits`` are its clean logits ``(B, K)`` (or per-pixel
        ``(B, K, H, W)`` for a segmentation model: the KL is averaged over the pixels), used as
        the fixed target
        (they may be non-finite on an fp16 overflow step, which the gradient scaler then skips).
        """
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        x = check_images(x, values=check_values(None, x))
        check_tensor("logits", logits, finite=False)
        dense = logits.dim() == 4 and tuple(logits.shape[2:]) == tuple(x.shape[2:])
        if not (logits.dim() == 2 or dense) or logits.shape[0] != x.shape[0]:
            raise ValueError(f"logits must have shape (B, K) or (B, K, H, W) with B = "
                             f"{x.shape[0]} and x's H, W, got {tuple(logits.shape)}")
        net = getattr(model, "module", model)  # the power iteration bypasses DDP
        r_adv = self.perturbation(net, x, logits)
        with frozen_batchnorm_stats(net):
            perturbed = model(x.detach() + r_adv)
        return kl_divergence(logits, perturbed), r_adv
