"""Training methods: what one optimization step computes for a batch.

A method turns a batch ``(x, y)`` into one or more losses and calls ``backward(loss)`` on each;
the engine zeroes the gradients before and steps the optimizer after (once, for all the
gradients accumulated by the step). ``backward`` is ``scaler.scale(loss).backward()`` under
fp16 mixed precision and plain ``loss.backward()`` otherwise.

Create one with :func:`create_method` (``create_method("comixup", 100, seed=0)``); the registry
:data:`METHODS` maps names to classes:

=====================  ==========================================================================
name                   step
=====================  ==========================================================================
vanilla                the loss on the clean batch
comixup                the paper's step (Appendix C): the clean loss backward (weight gradients
                       kept; the input gradient is the saliency,
                       :func:`comixup.saliency.clean_loss_and_saliency`), the Co-Mixup batch,
                       the mixed loss backward
puzzlemix              the same step around Puzzle Mix (Kim et al., ICML 2020)
mixup, cutmix          Input Mixup (Zhang et al., 2018), CutMix (Yun et al., 2019)
manifold               Manifold Mixup (Verma et al., 2019) at depth 0, 1 or 2
mixup3/4, cutmix3/4,   the 3- and 4-input variants with Dirichlet weights (Table 4)
manifold3/4
vat                    virtual adversarial training (Miyato et al., 2018; Table 12)
=====================  ==========================================================================

Losses. Every method takes ``loss``, one of the two families of :mod:`comixup.losses`:
``"bce"`` (BCE of the softmax; the CIFAR-100 / Tiny-ImageNet reference trains every column with
it, and the saliency methods' clean loss is ``clean_lam * 2 * CE / C``) or ``"ce"`` (the
(soft-target) cross-entropy; the ImageNet reference, clean loss ``clean_lam * CE``). The
defaults without a preset are those of each method's original code (``"ce"``, and ``"bce"`` for
Co-Mixup and Puzzle Mix); the presets set one family for every column.

Options. :meth:`Method.option_defaults` lists a method's options with their defaults (its own,
such as ``loss`` and ``clean_lam``, and its mixer's keyword arguments); the configuration shows
them under ``method_options``.

Randomness. Every method owns one CPU :class:`torch.Generator` seeded from ``seed`` (its draws
are therefore independent of torch's global RNG); :meth:`Method.state_dict` stores its state as a
uint8 tensor so that a resumed run continues the same random stream.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

import torch

from ._checks import check_int, check_num_classes, check_number
from .losses import check_loss, clean_loss, soft_cross_entropy, softmax_bce, target_loss
from .mixers import (
    CoMixup,
    CutMix,
    InputMixup,
    ManifoldMixup,
    MultiCutMix,
    MultiInputMixup,
    PuzzleMix,
)
from .saliency import _no_sync, clean_loss_and_saliency
from .vat import VAT

__all__ = [
    "METHODS",
    "CoMixupMethod",
    "CutMixMethod",
    "InputMixupMethod",
    "ManifoldMixupMethod",
    "Method",
    "MixingMethod",
    "MultiCutMixMethod",
    "MultiInputMixupMethod",
    "PuzzleMixMethod",
    "SaliencyMixingMethod",
    "VATMethod",
    "Vanilla",
    "create_method",
    "method_names",
    "soft_cross_entropy",
    "softmax_bce",
]

Backward = Callable[[torch.Tensor], None]

#: Mixer arguments that the engine or the method fills in; never shown as options.
_HIDDEN = ("generator", "mean", "std", "workers")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


class _DepthView:
    """A callable that forwards to ``model`` (e.g. a DDP wrapper) and exposes the wrapped
    network's ``mix_depths``, which :class:`~comixup.mixers.manifold.ManifoldMixup` reads."""

    def __init__(self, model):
        self._model = model
        self.mix_depths = _unwrap(model).mix_depths

    def __call__(self, *args, **kwargs):
        return self._model(*args, **kwargs)


# -- the interface ----------------------------------------------------------------------------


class Method:
    """Base class of training methods.

    Subclasses implement :meth:`step` and declare their options: :attr:`defaults` (the method's
    own) and :attr:`mixer_class` with :attr:`mixer_fixed` (the mixer built with the remaining
    options). Attributes set by the engine:

    Attributes:
        num_classes: number of classes.
        generator: the method's CPU :class:`torch.Generator` (seeded from ``seed``).
        memory_format: memory format for batches built inside the step (the engine sets
            ``torch.channels_last`` on CUDA when requested).
        loss_name: the loss family, ``"bce"`` or ``"ce"``.
        clean_lam: the weight of the clean loss, for the methods whose :attr:`defaults` have
            one (validated here, once for all of them).
    """

    name = "base"
    #: The method's own options and their defaults (the rest go to the mixer).
    defaults: ClassVar[dict] = {"loss": "ce"}
    #: The mixer class (``None``: no mixer) and the keyword arguments the name fixes (``k``).
    mixer_class: type | None = None
    mixer_fixed: ClassVar[dict] = {}
    #: Whether the mixer takes the dataset's ``mean`` / ``std`` (the engine fills them in).
    uses_normalization = False

    def __init__(self, num_classes: int, *, seed: int = 0, **options):
        self.num_classes = check_num_classes(num_classes)
        seed = check_int("seed", seed, 0)
        self.generator = torch.Generator().manual_seed(seed)
        self.memory_format = torch.contiguous_format
        unknown = sorted(set(options) - self.accepted_options())
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {self.name!r}; accepted: "
                             f"{sorted(self.accepted_options())}")
        own = {key: options.pop(key, value) for key, value in self.defaults.items()}
        self.loss_name = check_loss(own.pop("loss"))
        if "clean_lam" in own:  # the methods with a clean loss (pair-mixing and saliency ones)
            own["clean_lam"] = self.clean_lam = check_number("clean_lam", own["clean_lam"])
        self.options = own
        self.mixer = self._build_mixer(options) if self.mixer_class is not None else None

    # -- options ------------------------------------------------------------------------------

    @classmethod
    def _mixer_parameters(cls) -> dict[str, inspect.Parameter]:
        if cls.mixer_class is None:
            return {}
        params = inspect.signature(cls.mixer_class).parameters
        return {n: p for n, p in params.items()
                if p.kind is p.KEYWORD_ONLY and n != "generator" and n not in cls.mixer_fixed}

    @classmethod
    def accepted_options(cls) -> set[str]:
        """Every option name the method takes (its own and its mixer's)."""
        return set(cls.defaults) | set(cls._mixer_parameters())

    @classmethod
    def option_defaults(cls) -> dict:
        """The options in effect when none is given: the method's own defaults and its mixer's
        keyword defaults (those the engine fills in, such as ``mean`` / ``std``, excluded)."""
        out = dict(cls.defaults)
        for name, param in cls._mixer_parameters().items():
            value = param.default
            if name in _HIDDEN or value is None or value is inspect.Parameter.empty:
                continue
            if isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    def _build_mixer(self, options: dict):
        """``mixer_class(num_classes, generator=..., **mixer_fixed, **options)``."""
        return self.mixer_class(self.num_classes, generator=self.generator, **self.mixer_fixed,
                                **options)

    # -- the step -----------------------------------------------------------------------------

    def step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             backward: Backward) -> float:
        """Compute this batch's loss(es), call ``backward`` on each, return the total loss.

        Args:
            model: the network (possibly wrapped in DistributedDataParallel), in train mode.
            x: the batch ``(B, C, H, W)`` on the training device.
            y: integer labels ``(B,)`` on the same device.
            backward: ``backward(loss)`` accumulates the gradients of ``loss`` (AMP-scaled).

        Returns:
            The sum of the losses of the step as a Python float (for logging).
        """
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The trained-batch loss of the method's family (labels or soft targets)."""
        return target_loss(logits, targets, self.loss_name)

    def state_dict(self) -> dict:
        """The method's random state (its generator's state as a uint8 tensor)."""
        return {"generator": self.generator.get_state().clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"].to(torch.uint8).contiguous())

    def __repr__(self) -> str:
        inner = f"{self.mixer!r}, " if self.mixer is not None else f"num_classes={self.num_classes}, "
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({inner}loss={self.loss_name!r}{extra})"

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_format is torch.contiguous_format:
            return x
        return x.contiguous(memory_format=self.memory_format)


class Vanilla(Method):
    """Empirical risk minimization: the loss on the clean batch (the "Vanilla" column).

    Options: ``loss`` (``"ce"`` default, ``"bce"`` as every column of the CIFAR reference).
    """

    name = "vanilla"

    def step(self, model, x, y, backward):
        """Forward ``x``, backward the loss, return it."""
        loss = self.loss(model(x), y)
        backward(loss)
        return float(loss.detach())


class MixingMethod(Method):
    """A method that mixes the batch with a ``mixer(x, y) -> (x_mix, soft_targets)`` and trains
    on the mixed batch (Input Mixup, CutMix and their multi-input variants).

    Options: ``loss``, ``clean_lam`` and the mixer's keyword options (e.g. ``alpha``).
    ``clean_lam`` (default 0: the original methods, mixed batch only) adds the saliency methods'
    clean loss (``clean_lam * 2 * CE / C`` for ``"bce"``, ``clean_lam * CE`` for ``"ce"``,
    :func:`comixup.losses.clean_scale`) on the clean batch, backward before the mixed loss as in
    :class:`SaliencyMixingMethod`: with ``clean_lam = 1`` a pair-mixing baseline sees the same
    two losses per step as Co-Mixup, the control that separates the mixing from the clean loss
    (not in the paper; docs/study.md).
    """

    defaults: ClassVar[dict] = {"loss": "ce", "clean_lam": 0.0}

    def step(self, model, x, y, backward):
        """The clean loss backward when ``clean_lam > 0``; mix the batch, forward it, backward
        the mixed loss; return the sum."""
        clean = 0.0
        if self.clean_lam > 0:
            with _no_sync(model):
                logits = model(x)
                scaled = clean_loss(logits, y, self.loss_name, self.clean_lam)
                backward(scaled)
            clean = float(scaled.detach())
        x_mix, targets = self.mixer(x, y)
        loss = self.loss(model(self._format(x_mix)), targets)
        backward(loss)
        return clean + float(loss.detach())


class InputMixupMethod(MixingMethod):
    """Input Mixup (Zhang et al., ICLR 2018) through :class:`comixup.InputMixup`."""

    name = "mixup"
    mixer_class = InputMixup


class CutMixMethod(MixingMethod):
    """CutMix (Yun et al., ICCV 2019) through :class:`comixup.CutMix`."""

    name = "cutmix"
    mixer_class = CutMix


class MultiInputMixupMethod(MixingMethod):
    """Input Mixup of ``k = 3`` inputs with Dirichlet weights (Table 4)."""

    name = "mixup3"
    mixer_class = MultiInputMixup
    mixer_fixed: ClassVar[dict] = {"k": 3}


class MultiInputMixup4Method(MultiInputMixupMethod):
    """Input Mixup of ``k = 4`` inputs with Dirichlet weights (Table 4)."""

    name = "mixup4"
    mixer_fixed: ClassVar[dict] = {"k": 4}


class MultiCutMixMethod(MixingMethod):
    """CutMix of ``k = 3`` inputs, 2 overlaid boxes (Table 4)."""

    name = "cutmix3"
    mixer_class = MultiCutMix
    mixer_fixed: ClassVar[dict] = {"k": 3}


class MultiCutMix4Method(MultiCutMixMethod):
    """CutMix of ``k = 4`` inputs, 3 overlaid boxes (Table 4)."""

    name = "cutmix4"
    mixer_fixed: ClassVar[dict] = {"k": 4}


class ManifoldMixupMethod(Method):
    """Manifold Mixup (Verma et al., ICML 2019) through :class:`comixup.ManifoldMixup`: mixes
    the hidden state at a random depth. Options: ``loss``, ``alpha``, ``depths``."""

    name = "manifold"
    mixer_class = ManifoldMixup
    mixer_fixed: ClassVar[dict] = {"k": 2}

    def step(self, model, x, y, backward):
        """Forward with mixing inside the network, backward the mixed loss, return it."""
        logits, targets = self.mixer.forward(_DepthView(model), x, y)
        loss = self.loss(logits, targets)
        backward(loss)
        return float(loss.detach())


class ManifoldMixup3Method(ManifoldMixupMethod):
    """Manifold Mixup of ``k = 3`` hidden states with Dirichlet weights (Table 4)."""

    name = "manifold3"
    mixer_fixed: ClassVar[dict] = {"k": 3}


class ManifoldMixup4Method(ManifoldMixupMethod):
    """Manifold Mixup of ``k = 4`` hidden states with Dirichlet weights (Table 4)."""

    name = "manifold4"
    mixer_fixed: ClassVar[dict] = {"k": 4}


class SaliencyMixingMethod(Method):
    """Base of the saliency-guided methods (Co-Mixup, Puzzle Mix): the paper's two-loss step.

    1. :func:`comixup.saliency.clean_loss_and_saliency`: the clean loss
       (``clean_lam * 2 * CE / C`` for ``loss="bce"``, ``clean_lam * CE`` for ``"ce"``) backward
       with the weight gradients kept, under ``model.no_sync()`` with DDP; the input gradient
       gives the saliency. With ``clean_lam = 0`` the saliency comes from an eval-mode pass and
       no weight gradient is kept (Puzzle Mix's CIFAR commands).
    2. Build the mixed batch with ``mixer(x, y, saliency)``.
    3. The mixed loss of the family, backward.

    Options: ``clean_lam`` (default 1.0), ``loss`` (``"bce"`` default, or ``"ce"``), and the
    mixer's keyword options.
    """

    defaults: ClassVar[dict] = {"loss": "bce", "clean_lam": 1.0}

    def step(self, model, x, y, backward):
        """Clean step, mixing, mixed loss; returns ``clean + mixed``."""
        clean, saliency = clean_loss_and_saliency(model, x, y, loss=self.loss_name,
                                                  clean_lam=self.clean_lam, backward=backward)
        with torch.no_grad():
            x_mix, targets = self.mixer(x.detach(), y, saliency)
        loss = self.loss(model(self._format(x_mix)), targets)
        backward(loss)
        return float(clean) + float(loss.detach())


class CoMixupMethod(SaliencyMixingMethod):
    """Co-Mixup (Kim et al., ICLR 2021) with :class:`comixup.CoMixup`; the paper's step
    (:class:`SaliencyMixingMethod`). Mixer options: ``beta``, ``gamma``, ``eta``, ``tau``,
    ``omega``, ``alpha``, ``grid``, ``partition``, ``n_iter``, ``levels``, ``threshold``,
    ``resolve``, ``restarts``, ``pairwise``, ``location_stride``, ``workers`` (defaults: the
    published values, Appendix E)."""

    name = "comixup"
    mixer_class = CoMixup


class PuzzleMixMethod(SaliencyMixingMethod):
    """Puzzle Mix (Kim et al., ICML 2020) with :class:`comixup.PuzzleMix`, saliency from the
    same clean forward/backward as Co-Mixup. The training engine passes the dataset's
    normalization as ``mean`` / ``std`` (the smoothness term is computed on un-normalized
    pixels, as in the reference) unless the options set them."""

    name = "puzzlemix"
    mixer_class = PuzzleMix
    uses_normalization = True


class VATMethod(Method):
    """Virtual adversarial training (Miyato et al., TPAMI 2018; Appendix F.4, Table 12) with
    :class:`comixup.VAT`: ``loss(model(x), y) + alpha * KL(p(x) || p(x + r_adv))``.

    The supervised loss is backpropagated first under ``model.no_sync()`` (as the saliency
    methods' clean loss), then the KL term; the gradients add up to those of the sum. Options:
    ``loss``, ``alpha``, ``eps``, ``power_iterations``, ``xi``, ``norm`` (:class:`comixup.VAT`).
    The engine passes the dataset's ``std`` so that ``eps`` is measured on raw pixels.
    """

    name = "vat"
    mixer_class = VAT
    uses_normalization = True

    def _build_mixer(self, options: dict):
        return VAT(generator=self.generator, **options)

    def step(self, model, x, y, backward):
        """Supervised loss, then the weighted KL on the virtual adversarial perturbation."""
        with _no_sync(model):
            logits = model(x)
            supervised = self.loss(logits, y)
            backward(supervised)
        kl, _ = self.mixer(model, x, logits.detach())
        weighted = self.mixer.alpha * kl
        backward(weighted)
        return float(supervised.detach()) + float(weighted.detach())


#: Method name -> class. ``create_method`` builds them.
METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (Vanilla, InputMixupMethod, ManifoldMixupMethod, CutMixMethod,
                MultiInputMixupMethod, MultiInputMixup4Method, MultiCutMixMethod,
                MultiCutMix4Method, ManifoldMixup3Method, ManifoldMixup4Method,
                PuzzleMixMethod, CoMixupMethod, VATMethod)
}


def method_names() -> list[str]:
    """The names accepted by :func:`create_method`."""
    return list(METHODS)


def create_method(name: str, num_classes: int, **options) -> Method:
    """Build training method ``name``.

    Args:
        name: a key of :data:`METHODS`.
        num_classes: number of classes (>= 1, :data:`comixup._checks.MIN_CLASSES`).
        **options: ``seed`` (the method generator's seed, default 0) and the method's options
            (``loss``, ``clean_lam``, and the mixer's keyword options such as ``alpha``).

    Raises:
        ValueError: unknown name or option (the message lists the choices).
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"method must be one of {method_names()}, got {name!r}")
    return METHODS[name](num_classes, **options)
