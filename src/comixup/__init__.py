"""comixup: fast, faithful and installable Co-Mixup (Kim et al., ICLR 2021).

Co-Mixup mixes a whole batch at once: it measures where each input is salient, then solves a
discrete problem (Algorithm 1) so that every output gathers many salient regions while the
outputs stay different from each other. See :class:`comixup.CoMixup` for the batch transform and
:mod:`comixup.solver` for Algorithm 1.

The top level holds what a training loop needs: every mixer class, :func:`create` (the mixer
of a method name) and :func:`names`, :class:`TrainStep` (one training step of any method),
:class:`VAT`, :func:`solve` (Algorithm 1 alone), :mod:`comixup.losses` and the
:func:`validation` policy of the value checks.
"""

__version__ = "0.1.0"

from . import losses
from ._validation import validation
from .methods import TrainStep
from .mixers import (
    CoMixup,
    CutMix,
    FMix,
    GuidedMixup,
    Identity,
    InputMixup,
    ManifoldMixup,
    Mixer,
    MixParams,
    MultiCutMix,
    MultiInputMixup,
    PuzzleMix,
    ResizeMix,
    SaliencyMix,
    create,
    names,
)
from .solver import solve
from .vat import VAT

__all__ = [
    "VAT",
    "CoMixup",
    "CutMix",
    "FMix",
    "GuidedMixup",
    "Identity",
    "InputMixup",
    "ManifoldMixup",
    "MixParams",
    "Mixer",
    "MultiCutMix",
    "MultiInputMixup",
    "PuzzleMix",
    "ResizeMix",
    "SaliencyMix",
    "TrainStep",
    "create",
    "losses",
    "names",
    "solve",
    "validation",
]
