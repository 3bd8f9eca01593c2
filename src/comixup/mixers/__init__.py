"""Mixing methods, one file each, all called as ``x_mix, y_mix = t(x, y[, saliency])``.

Every mixer is a :class:`Mixer` (:mod:`comixup.mixers.base`): its call checks the arguments,
makes the soft targets and returns a batch of one unmixed once for all; ``sample_params``
makes the random draws (and solves the graph cuts) and ``apply`` mixes any tensor with those
parameters, so the same mixing applies to, e.g., object masks. ``return_info=True`` returns the
parameters, a :class:`MixParams` with the ``(B, B)`` source ``ratios`` of every method.
Besides labels and soft targets, every mixer takes dense targets (a class map ``(B, H, W)`` or
per-pixel distributions ``(B, K, H, W)``, mixed exactly as the image; :func:`dense_targets`,
:meth:`Mixer.apply_targets`) and multi-hot targets (``multilabel=True``).
:func:`create` builds the mixer of any method name (:mod:`comixup.mixers.registry`).

* :class:`CoMixup` (Kim et al., ICLR 2021), saliency-guided joint mixup of a whole batch;
* :class:`InputMixup` (Zhang et al., ICLR 2018), :class:`CutMix` (Yun et al., ICCV 2019),
  :class:`ManifoldMixup` (Verma et al., ICML 2019, mixes inside the model),
  :class:`PuzzleMix` (Kim, Choo and Song, ICML 2020);
* :class:`MultiInputMixup`, :class:`MultiCutMix`: the k-input variants of Table 4
  (``ManifoldMixup(k=3)`` for Manifold Mixup);
* :class:`FMix` (Harris et al., 2020), :class:`ResizeMix` (Qin et al., 2020): mask baselines;
* :class:`SaliencyMix` (Uddin et al., ICLR 2021), :class:`GuidedMixup` (Kang and Kim,
  AAAI 2023): the newer saliency-guided methods;
* :class:`Identity`: no mixing (the Vanilla and VAT columns).
"""

from ._targets import dense_targets
from .base import IGNORE_INDEX, Mixer, MixParams
from .comixup import CoMixup
from .cutmix import CutMix
from .fmix import FMix
from .guidedmixup import GuidedMixup
from .identity import Identity
from .manifold import ManifoldMixup
from .mixup import InputMixup
from .multimix import MultiCutMix, MultiInputMixup
from .puzzlemix import PuzzleMix
from .registry import create, names, options
from .resizemix import ResizeMix
from .saliencymix import SaliencyMix

# the mixers, their protocol and factory; each method's parameter class (what
# ``return_info=True`` returns) and its drawing helpers are in the method's module
__all__ = [
    "IGNORE_INDEX",
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
    "create",
    "dense_targets",
    "names",
    "options",
]
