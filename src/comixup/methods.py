"""Training methods: what one optimization step computes for a batch.

A method turns a batch ``(x, y)`` into one or more losses and calls ``backward(loss)`` on each;
the engine zeroes the gradients before and steps the optimizer after (once, for all the
gradients accumulated by the step). ``backward`` is ``scaler.scale(loss).backward()`` under
fp16 mixed precision and plain ``loss.backward()`` otherwise.

Create one with :class:`TrainStep` (``TrainStep("comixup", 100, seed=0)``). Every name has one
entry in the mixer registry (:mod:`comixup.mixers.registry`: the mixer, the options the name
fixes, the step kind); the registry's step kind picks one of a handful of step classes below,
built with the name:

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
saliencymix            SaliencyMix (Uddin et al., ICLR 2021): CutMix centred on the source's
                       spectral-residual saliency peak
guidedmixup-sr,        GuidedMixup (Kang and Kim, AAAI 2023) with spectral-residual saliency, and
guidedmixup-ap         with the gradient saliency of the clean pass (the saliency methods' step)
fmix, resizemix        FMix (Harris et al., 2020), ResizeMix (Qin et al., 2020)
=====================  ==========================================================================

Losses. Every method takes ``loss``, one of the two families of :mod:`comixup.losses`:
``"bce"`` (BCE of the softmax; the CIFAR-100 / Tiny-ImageNet reference trains every column with
it, and the saliency methods' clean loss is ``clean_lam * 2 * CE / C``) or ``"ce"`` (the
(soft-target) cross-entropy; the ImageNet reference, clean loss ``clean_lam * CE``). The
default is ``"ce"`` for every method, so that two methods compared in one loop are trained on one
loss (the references choose the family by dataset, never by method); the presets set ``"bce"``
for every column where the reference trained with it (CIFAR, Tiny-ImageNet).

Options. :func:`option_defaults` lists a method's options with their defaults (its own,
such as ``loss`` and ``clean_lam``, and its mixer's keyword arguments); the configuration shows
them under ``method_options``.

Randomness. Every method owns one CPU :class:`torch.Generator` seeded from ``seed`` (its draws
are therefore independent of torch's global RNG); :meth:`Method.state_dict` stores its state as a
uint8 tensor so that a resumed run continues the same random stream.

Host reads. A step returns the detached loss on the batch's device; the caller
reads it when it logs, not per batch.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import ClassVar

import torch

from . import mixers
from ._checks import check_int, check_num_classes, check_number
from .losses import check_loss, clean_loss, target_loss
from .saliency import _no_sync, clean_loss_and_saliency
from .vat import VAT

__all__ = [
    "TrainStep",
    "accepted_options",
    "method_names",
    "option_defaults",
]

Backward = Callable[[torch.Tensor], None]

#: Options that the engine or the method fills in; never shown as options.
_HIDDEN = ("generator", "mean", "std", "workers")


def _keyword_defaults(fn, skip=()) -> dict:
    """The keyword-only parameters of ``fn`` and their defaults (``generator`` excluded)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params
            if p.kind is p.KEYWORD_ONLY and p.name != "generator" and p.name not in skip}


class Method:
    """Base class of the training steps (:class:`TrainStep` builds the one a name's registry
    entry asks for).

    Subclasses implement :meth:`step` and declare :attr:`defaults`, the step's own options; the
    other options go to the name's mixer (:func:`comixup.mixers.create`).

    Args:
        name: the method name (:func:`method_names`).
        num_classes: number of classes.
        seed: the seed of the method's generator.
        **options: the method's options (:func:`accepted_options`).

    Attributes:
        name: the method name.
        num_classes: number of classes.
        generator: the method's CPU :class:`torch.Generator` (seeded from ``seed``).
        mixer: the name's mixer.
        memory_format: memory format for batches built inside the step (the engine sets
            ``torch.channels_last`` on CUDA when requested).
        no_sync: a factory of the context in which a step's first backward runs (``None``:
            ``model.no_sync()`` for a DistributedDataParallel model, else nothing), so that the
            gradients are all-reduced once, with the last backward of the step.
        loss_name: the loss family, ``"bce"`` or ``"ce"``.
        clean_lam: the weight of the clean loss, for the steps whose :attr:`defaults` have
            one.
    """

    #: The step's own options and their defaults (the rest go to the mixer).
    defaults: ClassVar[dict] = {"loss": "ce"}

    def __init__(self, name: str, num_classes: int, *, seed: int = 0, **options):
        self.name = name
        self.num_classes = check_num_classes(num_classes)
        seed = check_int("seed", seed, 0)
        self.generator = torch.Generator().manual_seed(seed)
        self.memory_format = torch.contiguous_format
        self.no_sync: Callable[[], contextlib.AbstractContextManager] | None = None
        accepted = accepted_options(name)
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {name!r}; accepted: "
                             f"{sorted(accepted)}")
        own = {key: options.pop(key, value) for key, value in self.defaults.items()}
        self.loss_name = check_loss(own.pop("loss"))
        if "clean_lam" in own:
            own["clean_lam"] = self.clean_lam = check_number("clean_lam", own["clean_lam"])
        self.options = own
        self.mixer = self._build(options)

    # -- options ------------------------------------------------------------------------------

    @classmethod
    def _component_options(cls, name: str) -> dict:
        """The keyword options of what the step builds for ``name`` (its mixer) and their
        defaults."""
        return mixers.options(name)

    def _build(self, options: dict):
        """The name's mixer with ``options``."""
        return mixers.create(self.name, self.num_classes, generator=self.generator, **options)

    # -- the step -----------------------------------------------------------------------------

    def step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             backward: Backward) -> torch.Tensor:
        """Compute this batch's loss(es), call ``backward`` on each, return the total loss.

        Args:
            model: the network (possibly wrapped in DistributedDataParallel), in train mode.
            x: the batch ``(B, C, H, W)`` on the training device.
            y: integer labels ``(B,)`` on the same device, or class maps ``(B, H, W)`` for a
                per-pixel model (every step mixes them as the images, see
                ``docs/dense-targets.md``).
            backward: ``backward(loss)`` accumulates the gradients of ``loss`` (AMP-scaled).

        Returns:
            The sum of the losses of the step, a detached 0-dim tensor on ``x``'s device
            (read it when logging, not per batch).
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
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.mixer!r}, loss={self.loss_name!r}{extra})"

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_format is torch.contiguous_format:
            return x
        return x.contiguous(memory_format=self.memory_format)

    def _sync(self, model) -> contextlib.AbstractContextManager:
        """The context of a step's first backward: :attr:`no_sync`, or DDP's ``no_sync``."""
        return self.no_sync() if self.no_sync is not None else _no_sync(model)

    def _clean(self, model, x, y, backward) -> torch.Tensor:
        """The clean loss ``clean_lam * ...`` backward (under ``no_sync`` with DDP)."""
        with self._sync(model):
            scaled = clean_loss(model(x), y, self.loss_name, self.clean_lam)
            backward(scaled)
        return scaled.detach()


class CleanStep(Method):
    """The loss on the clean batch (the Vanilla column). Options: ``loss`` (``"ce"`` default)."""

    def step(self, model, x, y, backward):
        """Forward ``x``, backward the loss, return it."""
        loss = self.loss(model(x), y)
        backward(loss)
        return loss.detach()


class MixStep(Method):
    """Mix the batch (``mixer(x, y)``) and train on it: Input Mixup, CutMix and their
    ``k``-input variants.

    Options: ``loss``, ``clean_lam`` and the mixer's (e.g. ``alpha``). ``clean_lam`` (default 0:
    the original methods) adds the saliency methods' clean loss on the clean batch, backward
    before the mixed loss: with ``clean_lam = 1`` a pair-mixing baseline sees the same two
    losses per step as Co-Mixup, the control that separates the mixing from the clean loss (not
    in the paper; docs/study.md).
    """

    defaults: ClassVar[dict] = {"loss": "ce", "clean_lam": 0.0}

    def step(self, model, x, y, backward):
        """The clean loss when ``clean_lam > 0``; the mixed loss; return the sum."""
        total = self._clean(model, x, y, backward) if self.clean_lam > 0 else 0.0
        x_mix, targets = self.mixer(x, y)
        loss = self.loss(model(self._format(x_mix)), targets)
        backward(loss)
        return loss.detach() + total


class ManifoldStep(Method):
    """Mix inside the network (:meth:`comixup.mixers.ManifoldMixup.forward_mixed`).
    Options: ``loss``, ``alpha``, ``depths``."""

    def step(self, model, x, y, backward):
        """Forward with mixing inside the network, backward the mixed loss, return it."""
        logits, targets = self.mixer.forward_mixed(model, x, y)
        loss = self.loss(logits, targets)
        backward(loss)
        return loss.detach()


class SaliencyStep(Method):
    """The saliency-guided methods' step (Co-Mixup, Appendix C; Puzzle Mix):

    1. :func:`comixup.saliency.clean_loss_and_saliency`: the clean loss
       (``clean_lam * 2 * CE / C`` for ``loss="bce"``, ``clean_lam * CE`` for ``"ce"``)
       backward with the weight gradients kept, under ``model.no_sync()`` with DDP; the input
       gradient gives the saliency. With ``clean_lam = 0`` the saliency comes from an eval-mode
       pass and no weight gradient is kept (Puzzle Mix's CIFAR commands).
    2. The mixed batch, ``mixer(x, y, saliency)``.
    3. The mixed loss of the family, backward.

    Options: ``clean_lam`` (default 1.0), ``loss`` (``"ce"`` default) and the mixer's (the
    published values by default). The engine passes the dataset's normalization to Puzzle Mix
    as ``mean`` / ``std`` (its smoothness term is computed on raw pixels).
    """

    defaults: ClassVar[dict] = {"loss": "ce", "clean_lam": 1.0}

    def step(self, model, x, y, backward):
        """Clean step, mixing, mixed loss; returns ``clean + mixed``."""
        clean, saliency = clean_loss_and_saliency(model, x, y, loss=self.loss_name,
                                                  clean_lam=self.clean_lam, backward=backward,
                                                  sync=lambda: self._sync(model))
        with torch.no_grad():
            x_mix, targets = self.mixer(x.detach(), y, saliency)
        loss = self.loss(model(self._format(x_mix)), targets)
        backward(loss)
        return loss.detach() + clean


class VATStep(Method):
    """Virtual adversarial training (Miyato et al., TPAMI 2018; Appendix F.4, Table 12) with
    :class:`comixup.vat.VAT`: ``loss(model(x), y) + alpha * KL(p(x) || p(x + r_adv))``.

    The supervised loss is backpropagated first under ``model.no_sync()`` (as the saliency
    methods' clean loss), then the KL term; the gradients add up to those of the sum. Options:
    ``loss`` and VAT's (``alpha``, ``eps``, ``power_iterations``, ``xi``, ``norm``); the engine
    passes the dataset's ``std`` so that ``eps`` is measured on raw pixels.
    """

    @classmethod
    def _component_options(cls, name: str) -> dict:
        return _keyword_defaults(VAT)

    def _build(self, options: dict):
        self.vat = VAT(generator=self.generator, **options)
        return mixers.create(self.name, self.num_classes)

    def step(self, model, x, y, backward):
        """Supervised loss, then the weighted KL on the virtual adversarial perturbation."""
        with self._sync(model):
            logits = model(x)
            supervised = self.loss(logits, y)
            backward(supervised)
        kl, _ = self.vat(model, x, logits.detach())
        weighted = self.vat.alpha * kl
        backward(weighted)
        return supervised.detach() + weighted.detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vat!r}, loss={self.loss_name!r})"


_STEPS: dict[str, type[Method]] = {"clean": CleanStep, "mix": MixStep, "manifold": ManifoldStep,
                                   "saliency": SaliencyStep, "vat": VATStep}


def method_names() -> list[str]:
    """The method names :class:`TrainStep` accepts (those of :func:`comixup.mixers.names`)."""
    return mixers.names()


def _step_class(name: str) -> type[Method]:
    """The step class of method ``name`` (its registry entry's step kind).

    Raises:
        ValueError: an unknown name (the message lists the names).
    """
    if not isinstance(name, str) or name not in mixers.names():
        raise ValueError(f"method must be one of {method_names()}, got {name!r}")
    return _STEPS[mixers.registry.entry(name).step]


def accepted_options(name: str) -> set[str]:
    """Every option name method ``name`` takes (its step's and its mixer's)."""
    cls = _step_class(name)
    return set(cls.defaults) | set(cls._component_options(name))


def option_defaults(name: str) -> dict:
    """The options of method ``name`` in effect when none is given: its step's defaults and its
    mixer's keyword defaults (those the engine fills in, such as ``mean`` / ``std``, excluded)."""
    cls = _step_class(name)
    out = dict(cls.defaults)
    for key, value in cls._component_options(name).items():
        if key in _HIDDEN or value is None or value is inspect.Parameter.empty:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def uses_normalization(name: str) -> bool:
    """Whether method ``name`` takes the dataset's ``std`` (and ``mean``, if it has that
    option): Puzzle Mix's smoothness and VAT's ball are measured on raw pixels."""
    return "std" in _step_class(name)._component_options(name)


def _step_for_mixer(mixer: mixers.Mixer) -> str:
    """The registry name whose step suits an existing mixer (its class and fixed options)."""
    for name in mixers.names():
        entry = mixers.registry.entry(name)
        if type(mixer) is entry.mixer and all(getattr(mixer, k) == v
                                              for k, v in entry.fixed.items()):
            return name
    kind = ("saliency" if mixer.uses_saliency else
            "manifold" if isinstance(mixer, mixers.ManifoldMixup) else "mix")
    return next(n for n in mixers.names() if mixers.registry.entry(n).step == kind)


class TrainStep:
    """One training step of any method, for the user's own loop: ``loss = step(model, x, y)``.

    It runs every pass the method needs and calls ``backward`` on each loss: for Co-Mixup and
    Puzzle Mix the clean pass (the clean loss backward with the weight gradients kept; its input
    gradient is the saliency) and the mixed pass; for the mixing baselines the mixed pass (and
    the clean one with ``clean_lam > 0``); Manifold Mixup mixes inside the model
    (:meth:`comixup.mixers.ManifoldMixup.forward_mixed`); VAT adds its KL term. The training
    engine calls the same steps.

    The caller owns the optimizer: ``zero_grad()`` before the step, ``optimizer.step()`` after
    (once for all the backward calls of the step). For gradient accumulation over ``n`` batches,
    scale: ``backward=lambda loss: (loss / n).backward()``, and step every ``n`` batches.

    Args:
        method: a method name (:func:`method_names`: ``"comixup"``, ``"puzzlemix"``,
            ``"cutmix"``, ...) or a :class:`comixup.mixers.Mixer` (its class picks the step).
        num_classes: the number of classes (for a name; a mixer has its own).
        seed: the seed of the step's generator (for a name).
        backward: how a loss is backpropagated: ``loss.backward()`` by default;
            ``lambda loss: scaler.scale(loss).backward()`` for fp16 AMP,
            ``accelerator.backward``, Lightning's ``self.manual_backward``.
        no_sync: a factory of the context of the step's first backward under data parallelism
            (default: ``model.no_sync()`` when the model has it, e.g. DistributedDataParallel;
            ``lambda: accelerator.no_sync(model)`` with Accelerate).
        memory_format: the memory format of the batches built inside the step (e.g.
            ``torch.channels_last`` when the model's inputs use it on CUDA).
        **options: the method's options: ``loss`` (``"bce"`` or ``"ce"``), ``clean_lam``, and,
            for a name, the mixer's (``alpha``, ``grid``, ...).

    Calling it returns the sum of the step's losses as a detached 0-dim tensor on ``x``'s
    device: no value is read back, so log it (``float(loss)``) only when you print.

    Attributes:
        method: the :class:`Method` that computes the step (its options, generator, loss).
        backward: the default ``backward`` of :meth:`__call__` (``None``: ``loss.backward()``).
    """

    def __init__(self, method, num_classes: int | None = None, *, seed: int = 0,
                 backward: Callable[[torch.Tensor], None] | None = None,
                 no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 **options):
        if isinstance(method, mixers.Mixer):
            name = _step_for_mixer(method)
            cls = _step_class(name)
            unknown = sorted(set(options) - set(cls.defaults))
            if unknown:
                raise ValueError(f"unknown option(s) {unknown} for a step around a "
                                 f"{type(method).__name__}; accepted: {sorted(cls.defaults)} "
                                 "(the mixer's own options are set on the mixer)")
            self.method = cls(name, method.num_classes, seed=seed, **options)
            self.method.mixer = method
            if method.generator is not None:  # its state is the step's
                self.method.generator = method.generator
        elif isinstance(method, str):
            if num_classes is None:
                raise TypeError("num_classes is required with a method name")
            self.method = _step_class(method)(method, num_classes, seed=seed, **options)
        else:
            raise TypeError(f"method must be a method name or a Mixer, got "
                            f"{type(method).__name__}")
        if backward is not None and not callable(backward):
            raise TypeError(f"backward must be callable, got {type(backward).__name__}")
        if no_sync is not None and not callable(no_sync):
            raise TypeError(f"no_sync must be callable, got {type(no_sync).__name__}")
        if not isinstance(memory_format, torch.memory_format):
            raise TypeError(f"memory_format must be a torch.memory_format, got "
                            f"{type(memory_format).__name__}")
        self.backward = backward
        self.method.no_sync = no_sync
        self.method.memory_format = memory_format

    @property
    def name(self) -> str:
        """The method name (for a step around a mixer, the registry name its class matches)."""
        return self.method.name

    @property
    def mixer(self) -> mixers.Mixer:
        """The step's mixer."""
        return self.method.mixer

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 backward: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the step on the batch ``x`` (``(B, C, H, W)``) with labels ``y`` (``(B,)``, or
        class maps ``(B, H, W)`` for a model with per-pixel logits: every method mixes them
        with the images, ``docs/dense-targets.md``), in the model's current (train) mode;
        ``backward`` overrides the one given at construction. Returns the detached total loss
        on ``x``'s device."""
        backward = backward or self.backward or _plain_backward
        return self.method.step(model, x, y, backward)

    def state_dict(self) -> dict:
        """The step's random state (to checkpoint with the model)."""
        return self.method.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.method.load_state_dict(state)

    def __repr__(self) -> str:
        return f"TrainStep({self.method!r})"


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()
