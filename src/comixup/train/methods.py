"""Training methods: what one optimization step computes for a batch.

A method turns a batch ``(x, y)`` into one or more losses and calls ``backward(loss)`` on each;
the engine zeroes the gradients before and steps the optimizer after (once, for all the
gradients accumulated by the step). ``backward`` is ``scaler.scale(loss).backward()`` under
fp16 mixed precision and plain ``loss.backward()`` otherwise.

Create one with :func:`create_method` (``create_method("comixup", 100, seed=0)``); the registry
:data:`METHODS` maps names to classes:

============  ==============================================================================
name          step
============  ==============================================================================
vanilla       cross-entropy on the clean batch
comixup       the paper's step (Appendix C, notes 3): clean loss ``clean_lam * 2 * CE / C``
              backward (weight gradients kept; the input gradient is the saliency), the
              Co-Mixup batch, then BCE between ``softmax(logits)`` and the soft targets
              (averaged over batch and classes) backward
puzzlemix     the same clean step and loss around Puzzle Mix (Kim et al., ICML 2020)
mixup         Input Mixup (Zhang et al., 2018), soft-target cross-entropy
cutmix        CutMix (Yun et al., 2019), soft-target cross-entropy
manifold      Manifold Mixup (Verma et al., 2019) at depth 0, 1 or 2, soft-target CE
mixup3/4      Input Mixup of 3 / 4 inputs with Dirichlet weights (Table 4)
cutmix3/4     CutMix with 2 / 3 overlaid boxes (Table 4)
============  ==============================================================================

Losses of the baselines. Input Mixup, CutMix and Manifold Mixup use the soft-target
cross-entropy ``-(t * log_softmax(logits)).sum(1).mean()``, which equals the
``lam * CE(y_a) + (1 - lam) * CE(y_b)`` of the original mixup, CutMix and Manifold Mixup code.
The Puzzle Mix / Co-Mixup code base computes BCE of the softmax for its mixed batches; pass
``loss="bce"`` (``--method-opt loss=bce``) to any mixing method to use it, or ``loss="ce"`` to
Co-Mixup / Puzzle Mix to use the soft-target cross-entropy instead.

Randomness. Every method owns one CPU :class:`torch.Generator` seeded from ``seed`` (its draws
are therefore independent of torch's global RNG); :meth:`Method.state_dict` stores its state as a
uint8 tensor so that a resumed run continues the same random stream.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..saliency import input_saliency

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
    "Vanilla",
    "create_method",
    "method_names",
    "soft_cross_entropy",
    "softmax_bce",
]

Backward = Callable[[torch.Tensor], None]


# -- losses -----------------------------------------------------------------------------------


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with soft targets, ``-(t * log_softmax(logits)).sum(1).mean()``, in float32."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between ``softmax(logits)`` and soft targets, averaged over batch
    and classes (the Co-Mixup / Puzzle Mix reference loss, notes 3); computed in float32 outside
    autocast (log terms are clamped at -100 as in :func:`torch.nn.functional.binary_cross_entropy`).
    """
    with torch.autocast(logits.device.type, enabled=False):
        probs = F.softmax(logits.float(), dim=1)
        return F.binary_cross_entropy(probs, targets.float().clamp(0.0, 1.0))


_LOSSES = {"ce": soft_cross_entropy, "bce": softmax_bce}


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def _no_sync(model):
    """``model.no_sync()`` for a DistributedDataParallel model, else a null context."""
    no_sync = getattr(model, "no_sync", None)
    return no_sync() if callable(no_sync) else contextlib.nullcontext()


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

    Subclasses implement :meth:`step`. Attributes set by the engine:

    Attributes:
        num_classes: number of classes.
        generator: the method's CPU :class:`torch.Generator` (seeded from ``seed``).
        memory_format: memory format for batches built inside the step (the engine sets
            ``torch.channels_last`` on CUDA when requested).
    """

    name = "base"
    #: Options handled by the method itself (the rest go to the mixer's constructor).
    own_options: tuple[str, ...] = ()

    def __init__(self, num_classes: int, *, seed: int = 0):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.num_classes = num_classes
        self.generator = torch.Generator().manual_seed(seed)
        self.memory_format = torch.contiguous_format

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

    def state_dict(self) -> dict:
        """The method's random state (its generator's state as a uint8 tensor)."""
        return {"generator": self.generator.get_state().clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"].to(torch.uint8).contiguous())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_format is torch.contiguous_format:
            return x
        return x.contiguous(memory_format=self.memory_format)


class Vanilla(Method):
    """Empirical risk minimization: cross-entropy on the clean batch (the "Vanilla" column)."""

    name = "vanilla"

    def step(self, model, x, y, backward):
        """Forward ``x``, backward the cross-entropy, return it."""
        loss = F.cross_entropy(model(x).float(), y)
        backward(loss)
        return float(loss.detach())


def _check_loss(loss) -> Callable:
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
    return _LOSSES[loss]


def _build_mixer(cls, method: str, num_classes: int, generator, options: dict, fixed: dict,
                 own: tuple = ()):
    """``cls(num_classes, generator=generator, **fixed, **options)`` with a clear error for
    options the mixer does not take (``own``: the method's own options, for the message)."""
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"generator"} - set(fixed)
    unknown = sorted(set(options) - allowed)
    if unknown and not accepts_any:
        raise ValueError(
            f"unknown option(s) {unknown} for method {method!r}; accepted: "
            f"{sorted(allowed | set(own))}"
        )
    kwargs = dict(fixed)
    kwargs.update(options)
    if "generator" in params or accepts_any:
        kwargs["generator"] = generator
    return cls(num_classes, **kwargs)


class MixingMethod(Method):
    """A method that mixes the batch with a ``mixer(x, y) -> (x_mix, soft_targets)`` and trains
    on the mixed batch only (Input Mixup, CutMix and their multi-input variants).

    Options: ``loss`` (``"ce"``, the default, or ``"bce"``) and the mixer's own keyword options
    (e.g. ``alpha``).
    """

    own_options = ("loss",)
    default_loss = "ce"
    #: ``(module, class name, fixed keyword options)`` of the mixer.
    mixer_spec: tuple[str, str, dict] = ("", "", {})

    def __init__(self, num_classes: int, *, seed: int = 0, **options):
        super().__init__(num_classes, seed=seed)
        self.loss_name = options.pop("loss", self.default_loss)
        self.loss_fn = _check_loss(self.loss_name)
        module, cls_name, fixed = self.mixer_spec
        cls = _import(module, cls_name, self.name)
        self.mixer = _build_mixer(cls, self.name, num_classes, self.generator, options, fixed,
                                  self.own_options)

    def step(self, model, x, y, backward):
        """Mix the batch, forward it, backward the mixed loss, return it."""
        x_mix, targets = self.mixer(x, y)
        loss = self.loss_fn(model(self._format(x_mix)), targets)
        backward(loss)
        return float(loss.detach())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mixer!r}, loss={self.loss_name!r})"


def _import(module: str, name: str, method: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"method {method!r} needs {module}.{name}, which is not available: {exc}"
        ) from exc


class InputMixupMethod(MixingMethod):
    """Input Mixup (Zhang et al., ICLR 2018) through :class:`comixup.mixers.mixup.InputMixup`."""

    name = "mixup"
    mixer_spec = ("comixup.mixers.mixup", "InputMixup", {})


class CutMixMethod(MixingMethod):
    """CutMix (Yun et al., ICCV 2019) through :class:`comixup.mixers.cutmix.CutMix`."""

    name = "cutmix"
    mixer_spec = ("comixup.mixers.cutmix", "CutMix", {})


class MultiInputMixupMethod(MixingMethod):
    """Input Mixup of ``k`` inputs with Dirichlet weights (Table 4); ``k`` is set by the name."""

    name = "mixup3"
    mixer_spec = ("comixup.mixers.multimix", "MultiInputMixup", {"k": 3})


class MultiCutMixMethod(MixingMethod):
    """CutMix with ``k - 1`` overlaid boxes (Table 4); ``k`` is set by the name."""

    name = "cutmix3"
    mixer_spec = ("comixup.mixers.multimix", "MultiCutMix", {"k": 3})


def _multi(base, name: str, k: int):
    module, cls_name, _ = base.mixer_spec
    doc = (base.__doc__ or "").split(";")[0] + f"; k = {k}."
    return type(f"{base.__name__}{k}", (base,), {
        "name": name, "mixer_spec": (module, cls_name, {"k": k}), "__doc__": doc,
    })


class ManifoldMixupMethod(Method):
    """Manifold Mixup (Verma et al., ICML 2019) through
    :class:`comixup.mixers.manifold.ManifoldMixup`: mixes the hidden state at a random depth.

    Options: ``loss`` (``"ce"`` default, or ``"bce"``), ``alpha``, ``depths``.
    """

    name = "manifold"
    own_options = ("loss",)

    def __init__(self, num_classes: int, *, seed: int = 0, **options):
        super().__init__(num_classes, seed=seed)
        self.loss_name = options.pop("loss", "ce")
        self.loss_fn = _check_loss(self.loss_name)
        cls = _import("comixup.mixers.manifold", "ManifoldMixup", self.name)
        self.mixer = _build_mixer(cls, self.name, num_classes, self.generator, options, {},
                                  self.own_options)

    def step(self, model, x, y, backward):
        """Forward with mixing inside the network, backward the mixed loss, return it."""
        logits, targets = self.mixer.forward(_DepthView(model), x, y)
        loss = self.loss_fn(logits, targets)
        backward(loss)
        return float(loss.detach())


class SaliencyMixingMethod(Method):
    """Base of the saliency-guided methods (Co-Mixup, Puzzle Mix): the paper's two-loss step.

    1. Forward the clean batch with input gradients on; clean loss
       ``clean_lam * 2 * CE / num_classes``; backward it (the weight gradients are kept, under
       ``model.no_sync()`` with DDP so that gradients are all-reduced once, in step 3). The input
       gradient gives the saliency ``sqrt(mean_c grad^2)``; a map that is not finite (an fp16
       overflow step, which the gradient scaler then skips) becomes zeros. With
       ``clean_lam = 0`` only the input gradient is computed.
    2. Build the mixed batch with ``mixer(x, y, saliency)``.
    3. Mixed loss (BCE of the softmax by default, see the module docstring), backward.

    Options: ``clean_lam`` (default 1.0), ``loss`` (``"bce"`` default, or ``"ce"``), and the
    mixer's keyword options.
    """

    own_options = ("clean_lam", "loss")
    mixer_module = ""
    mixer_class = ""
    #: Whether the mixer takes the dataset's ``mean`` / ``std`` (the engine fills them in).
    uses_normalization = False

    def __init__(self, num_classes: int, *, seed: int = 0, **options):
        super().__init__(num_classes, seed=seed)
        clean_lam = options.pop("clean_lam", 1.0)
        if isinstance(clean_lam, bool) or not isinstance(clean_lam, (int, float)) \
                or not math.isfinite(clean_lam) or clean_lam < 0:
            raise ValueError(f"clean_lam must be a finite number >= 0, got {clean_lam!r}")
        self.clean_lam = float(clean_lam)
        self.loss_name = options.pop("loss", "bce")
        self.loss_fn = _check_loss(self.loss_name)
        cls = _import(self.mixer_module, self.mixer_class, self.name)
        self.mixer = _build_mixer(cls, self.name, num_classes, self.generator, options, {},
                                  self.own_options)

    def clean_step(self, model, x, y, backward) -> tuple[float, torch.Tensor]:
        """Step 1: the clean loss (backward, weight gradients kept) and the ``(B, H, W)``
        saliency. Returns ``(clean_loss, saliency)``."""
        inp = x.detach().requires_grad_(True)
        with _no_sync(model):
            ce = F.cross_entropy(model(inp).float(), y)
            if self.clean_lam > 0:
                loss = ce * (self.clean_lam * 2.0 / self.num_classes)
                backward(loss)
                grad = inp.grad
            else:
                loss = ce.detach() * 0.0
                (grad,) = torch.autograd.grad(ce, inp)
        saliency = input_saliency(grad)
        finite = torch.isfinite(saliency).flatten(1).all(1)
        if not bool(finite.all()):
            saliency = torch.where(finite[:, None, None], saliency, torch.zeros_like(saliency))
        return float(loss.detach()), saliency

    def step(self, model, x, y, backward):
        """Clean step, mixing, mixed loss; returns ``clean + mixed``."""
        clean, saliency = self.clean_step(model, x, y, backward)
        with torch.no_grad():
            x_mix, targets = self.mixer(x.detach(), y, saliency)
        loss = self.loss_fn(model(self._format(x_mix)), targets)
        backward(loss)
        return clean + float(loss.detach())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.mixer!r}, clean_lam={self.clean_lam}, "
                f"loss={self.loss_name!r})")


class CoMixupMethod(SaliencyMixingMethod):
    """Co-Mixup (Kim et al., ICLR 2021) with :class:`comixup.CoMixup`; the paper's step
    (:class:`SaliencyMixingMethod`). Mixer options: ``beta``, ``gamma``, ``eta``, ``tau``,
    ``omega``, ``alpha``, ``grid``, ``partition``, ``n_iter``, ``levels``, ``threshold``,
    ``resolve``, ``workers`` (defaults: the published values, notes 1.4)."""

    name = "comixup"
    mixer_module = "comixup.mixers.comixup"
    mixer_class = "CoMixup"


class PuzzleMixMethod(SaliencyMixingMethod):
    """Puzzle Mix (Kim et al., ICML 2020) with :class:`comixup.mixers.puzzlemix.PuzzleMix`,
    saliency from the same clean forward/backward as Co-Mixup. The training engine passes the
    dataset's normalization as ``mean`` / ``std`` (the smoothness term is computed on
    un-normalized pixels, as in the reference) unless the options set them."""

    name = "puzzlemix"
    mixer_module = "comixup.mixers.puzzlemix"
    mixer_class = "PuzzleMix"
    uses_normalization = True


#: Method name -> class. ``create_method`` builds them.
METHODS: dict[str, type[Method]] = {
    "vanilla": Vanilla,
    "mixup": InputMixupMethod,
    "manifold": ManifoldMixupMethod,
    "cutmix": CutMixMethod,
    "mixup3": _multi(MultiInputMixupMethod, "mixup3", 3),
    "mixup4": _multi(MultiInputMixupMethod, "mixup4", 4),
    "cutmix3": _multi(MultiCutMixMethod, "cutmix3", 3),
    "cutmix4": _multi(MultiCutMixMethod, "cutmix4", 4),
    "puzzlemix": PuzzleMixMethod,
    "comixup": CoMixupMethod,
}


def method_names() -> list[str]:
    """The names accepted by :func:`create_method`."""
    return list(METHODS)


def create_method(name: str, num_classes: int, **options) -> Method:
    """Build training method ``name``.

    Args:
        name: a key of :data:`METHODS`.
        num_classes: number of classes (>= 2).
        **options: ``seed`` (the method generator's seed, default 0) and the method's options
            (``loss``, ``clean_lam``, and the mixer's keyword options such as ``alpha``).

    Raises:
        ValueError: unknown name or option (the message lists the choices).
        ImportError: the mixer of the method is not installed (e.g. Puzzle Mix).
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"method must be one of {method_names()}, got {name!r}")
    cls = METHODS[name]
    if cls is Vanilla:
        unknown = sorted(set(options) - {"seed"})
        if unknown:
            raise ValueError(f"method 'vanilla' takes no options, got {unknown}")
    return cls(num_classes, **options)
