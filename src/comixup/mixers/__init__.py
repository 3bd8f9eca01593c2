"""Mixing methods, one file each, all called as ``x_mix, y_mix = t(x, y[, saliency])``.

* :class:`CoMixup` (Kim et al., ICLR 2021), saliency-guided joint mixup of a whole batch;
* :class:`InputMixup` (Zhang et al., ICLR 2018), :class:`CutMix` (Yun et al., ICCV 2019),
  :class:`ManifoldMixup` (Verma et al., ICML 2019, mixes inside the model),
  :class:`PuzzleMix` (Kim, Choo and Song, ICML 2020);
* :class:`MultiInputMixup`, :class:`MultiCutMix`: the k-input variants of Table 4
  (``ManifoldMixup(k=3)`` for Manifold Mixup);
* :class:`VAT` (Miyato et al., TPAMI 2018), the non-mixup baseline of Table 12 (a regularizer,
  called as ``kl, r_adv = vat(model, x, logits)``).
"""

from .comixup import CoMixup
from .cutmix import CutMix, rand_box
from .manifold import ManifoldMixup
from .mixup import InputMixup, mix_pair, sample_lambda
from .multimix import MultiCutMix, MultiInputMixup, sample_weights
from .puzzlemix import PuzzleMix
from .vat import VAT

__all__ = [
    "CoMixup",
    "InputMixup",
    "CutMix",
    "ManifoldMixup",
    "MultiInputMixup",
    "MultiCutMix",
    "PuzzleMix",
    "VAT",
    "mix_pair",
    "rand_box",
    "sample_lambda",
    "sample_weights",
]
