"""Mixer registry: :func:`create` the mixer of a method by name, as :func:`comixup.models.create`.

Every name ``comixup train --method`` accepts has one entry: the mixer class, the options the
name fixes, and the kind of training step that uses it (:mod:`comixup.methods`):

=====================  ==========================  ============  ==========================
name                   mixer                       fixed         step
=====================  ==========================  ============  ==========================
``vanilla``            :class:`Identity`                         ``clean``
``mixup``              :class:`InputMixup`                       ``mix``
``cutmix``             :class:`CutMix`                           ``mix``
``mixup3/4``           :class:`MultiInputMixup`    ``k=3 / 4``   ``mix``
``cutmix3/4``          :class:`MultiCutMix`        ``k=3 / 4``   ``mix``
``manifold``           :class:`ManifoldMixup`      ``k=2``       ``manifold`` (in the model)
``manifold3/4``        :class:`ManifoldMixup`      ``k=3 / 4``   ``manifold``
``puzzlemix``          :class:`PuzzleMix`                        ``saliency``
``comixup``            :class:`CoMixup`                          ``saliency``
``vat``                :class:`Identity`                         ``vat`` (:mod:`comixup.vat`)
``fmix``               :class:`FMix`                             ``mix``
``resizemix``          :class:`ResizeMix`                        ``mix``
``saliencymix``        :class:`SaliencyMix`                      ``mix``
``guidedmixup-sr``     :class:`GuidedMixup`        ``spectral``  ``mix``
``guidedmixup-ap``     :class:`GuidedMixup`        ``gradient``  ``saliency``
=====================  ==========================  ============  ==========================
"""

from __future__ import annotations

import dataclasses
import inspect

from .base import Mixer
from .comixup import CoMixup
from .cutmix import CutMix
from .fmix import FMix
from .guidedmixup import GuidedMixup
from .identity import Identity
from .manifold import ManifoldMixup
from .mixup import InputMixup
from .multimix import MultiCutMix, MultiInputMixup
from .puzzlemix import PuzzleMix
from .resizemix import ResizeMix
from .saliencymix import SaliencyMix

__all__ = ["STEPS", "Entry", "create", "entry", "names", "options"]

#: The kinds of training step (:mod:`comixup.methods`).
STEPS = ("clean", "mix", "manifold", "saliency", "vat")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One method name: its mixer class, the keyword options the name fixes, its step kind."""

    mixer: type[Mixer]
    fixed: dict = dataclasses.field(default_factory=dict)
    step: str = "mix"


_ENTRIES: dict[str, Entry] = {
    "vanilla": Entry(Identity, step="clean"),
    "mixup": Entry(InputMixup),
    "manifold": Entry(ManifoldMixup, {"k": 2}, "manifold"),
    "cutmix": Entry(CutMix),
    "mixup3": Entry(MultiInputMixup, {"k": 3}),
    "mixup4": Entry(MultiInputMixup, {"k": 4}),
    "cutmix3": Entry(MultiCutMix, {"k": 3}),
    "cutmix4": Entry(MultiCutMix, {"k": 4}),
    "manifold3": Entry(ManifoldMixup, {"k": 3}, "manifold"),
    "manifold4": Entry(ManifoldMixup, {"k": 4}, "manifold"),
    "puzzlemix": Entry(PuzzleMix, step="saliency"),
    "comixup": Entry(CoMixup, step="saliency"),
    "vat": Entry(Identity, step="vat"),
    "fmix": Entry(FMix),
    "resizemix": Entry(ResizeMix),
    "saliencymix": Entry(SaliencyMix),
    "guidedmixup-sr": Entry(GuidedMixup, {"saliency": "spectral"}),
    "guidedmixup-ap": Entry(GuidedMixup, {"saliency": "gradient"}, "saliency"),
}


def names() -> list[str]:
    """The names accepted by :func:`create`."""
    return list(_ENTRIES)


def entry(name: str) -> Entry:
    """The registry :class:`Entry` of ``name``.

    Raises:
        ValueError: unknown name (the message lists the names).
    """
    if not isinstance(name, str) or name not in _ENTRIES:
        raise ValueError(f"method must be one of {names()}, got {name!r}")
    return _ENTRIES[name]


def options(name: str) -> dict[str, object]:
    """The keyword options of ``name``'s mixer and their defaults (``generator`` and the options
    the name fixes excluded)."""
    e = entry(name)
    params = inspect.signature(e.mixer).parameters.values()
    return {p.name: p.default for p in params
            if p.kind is p.KEYWORD_ONLY and p.name != "generator" and p.name not in e.fixed}


def create(name: str, num_classes: int, **kwargs) -> Mixer:
    """Build the mixer of method ``name``.

    Args:
        name: one of :func:`names`.
        num_classes: number of classes of the soft targets, an int >= 1.
        **kwargs: the mixer's keyword options (:func:`options`; e.g. ``alpha``), and
            ``generator``.

    Raises:
        ValueError: unknown name or option (the message lists the choices), or a bad value.
    """
    e = entry(name)
    allowed = {*options(name), "generator"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for mixer {name!r}; choices: "
                         f"{sorted(allowed)}")
    return e.mixer(num_classes, **e.fixed, **kwargs)
