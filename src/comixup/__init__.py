"""comixup: fast, faithful and installable Co-Mixup (Kim et al., ICLR 2021).

Co-Mixup mixes a whole batch at once: it measures where each input is salient, then solves a
discrete problem (Algorithm 1) so that every output gathers many salient regions while the
outputs stay different from each other. See :class:`comixup.CoMixup` for the batch transform and
:mod:`comixup.solver` for Algorithm 1.
"""

__version__ = "0.1.0"

from ._validation import validation
from .methods import TrainStep
from .mixers import (
    CoMixup,
    CutMix,
    InputMixup,
    ManifoldMixup,
    MultiCutMix,
    MultiInputMixup,
    PuzzleMix,
)
from .vat import VAT

__all__ = [
    "VAT",
    "CoMixup",
    "CutMix",
    "InputMixup",
    "ManifoldMixup",
    "MultiCutMix",
    "MultiInputMixup",
    "PuzzleMix",
    "TrainStep",
    "validation",
]
