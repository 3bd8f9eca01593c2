"""The interface shared by every network in :mod:`comixup.models` (recipes 6).

Every model is a :class:`MixableNet`: its convolutional trunk is a sequence of stages, and the
hidden representation *before* stage ``d`` is "depth ``d``" (depth 0 is the input, depth 1 the
output of the first stage, i.e. ``layer1`` of a ResNet, and so on). This is where Manifold Mixup
(Verma et al., ICML 2019) and the Puzzle Mix / Co-Mixup code mix hidden states:

* ``model(x)`` returns logits;
* ``model(x, mix_depth=d, mix_fn=f)`` runs the trunk, replaces the hidden state ``h`` at depth
  ``d`` by ``f(h)`` (exactly once) and carries on; every other depth is untouched;
* ``model.mix_depths`` lists the valid depths;
* ``model.features(x)`` returns the last convolutional feature map ``(B, C, h, w)`` (after the
  final BN-ReLU where the architecture has one), what a class activation map needs;
* ``model.classifier`` is the final :class:`torch.nn.Linear` and ``model.logits_from_features(f)``
  the head (global average pooling and the classifier), so that
  ``model(x) == model.logits_from_features(model.features(x))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_int

__all__ = [
    "MixFn",
    "MixableNet",
    "init_weights",
    "make_stages",
]

#: A function applied to a hidden representation ``(B, C, H, W)``; it returns the new one.
MixFn = Callable[[torch.Tensor], torch.Tensor]


def _kaiming_fan_out(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


def init_weights(
    net: nn.Module,
    *,
    conv: Callable[[torch.Tensor], object] = _kaiming_fan_out,
    linear: Callable[[torch.Tensor], object] | None = None,
) -> None:
    """Initialize the layers of ``net`` in place, in the order of ``net.modules()``.

    Every :class:`~torch.nn.Conv2d` weight gets ``conv`` (default: Kaiming normal, ``fan_out``,
    ReLU gain) and its bias, if any, zeros; every :class:`~torch.nn.BatchNorm2d` gets weight 1
    and bias 0; with ``linear`` given, every :class:`~torch.nn.Linear` weight gets ``linear`` and
    its bias zeros (otherwise linear layers keep PyTorch's default initialization).
    """
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            conv(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif linear is not None and isinstance(m, nn.Linear):
            linear(m.weight)
            nn.init.zeros_(m.bias)


def make_stages(
    block: Callable[..., nn.Module],
    in_planes: int,
    widths: Sequence[int],
    blocks: Sequence[int],
    strides: Sequence[int],
    *args,
    projection: bool = False,
) -> list[nn.Sequential]:
    """The residual stages of a trunk, built in order (so the random initialization is too).

    Stage ``s`` is an :class:`torch.nn.Sequential` of ``blocks[s]`` blocks of width
    ``widths[s]``: the first ``block(c, widths[s], *args, strides[s])``, with ``c`` the output
    channels of the previous stage (``in_planes`` for the first), the others
    ``block(c_out, widths[s], *args)`` (stride 1), where ``c_out = widths[s] * block.expansion``
    (expansion 1 when the block class does not set it). With ``projection``, the first block
    also gets a ``downsample`` shortcut, built before it: a bias-free strided 1x1 convolution
    followed by BN when the shape changes, ``None`` otherwise (the ResNet / ResNeXt shortcut);
    without it, the block makes its own shortcut.
    """
    expansion = getattr(block, "expansion", 1)
    stages = []
    for planes, n_blocks, stride in zip(widths, blocks, strides):
        out_planes = planes * expansion
        first_args = (*args, stride)
        if projection:
            downsample = None
            if stride != 1 or in_planes != out_planes:
                downsample = nn.Sequential(
                    nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_planes),
                )
            first_args = (*first_args, downsample)
        layers = [block(in_planes, planes, *first_args)]
        layers += [block(out_planes, planes, *args) for _ in range(1, n_blocks)]
        stages.append(nn.Sequential(*layers))
        in_planes = out_planes
    return stages


class MixableNet(nn.Module):
    """Base class of the models: a trunk of stages, a pooled linear head, and mixing hooks.

    Subclasses set ``self.classifier`` (an :class:`torch.nn.Linear`) and implement
    :meth:`_stage` and :attr:`num_stages`; the hidden state before stage ``d`` is depth ``d``.
    By default ``mix_depths = tuple(range(num_stages))`` (mixing the output of the last stage
    is mixing the features and is not offered). See the module docstring and recipes 6.
    """

    classifier: nn.Linear
    #: Number of trunk stages; subclasses override it.
    num_stages: int = 0
    #: Whether the model returns per-pixel logits ``(B, C, H, W)`` (segmentation) instead of
    #: ``(B, C)``.
    dense: bool = False

    def __init__(self, num_classes: int | None = None, in_channels: int | None = None):
        """Initialize the module; check ``num_classes`` and ``in_channels`` (ints >= 1) if given."""
        super().__init__()
        if num_classes is not None:
            check_int("num_classes", num_classes, 1)
        if in_channels is not None:
            check_int("in_channels", in_channels, 1)

    @property
    def mix_depths(self) -> tuple[int, ...]:
        """Valid values of ``mix_depth``: 0 (the input) and the outputs of the stages but the
        last."""
        return tuple(range(self.num_stages))

    def _stage(self, index: int, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Run trunk stage ``index`` (0-based) on ``h``."""
        raise NotImplementedError

    def _trunk(self, x: torch.Tensor, mix_depth: int | None, mix_fn: MixFn | None) -> torch.Tensor:
        h = x
        for index in range(self.num_stages):
            if index == mix_depth:
                h = mix_fn(h)
                if not isinstance(h, torch.Tensor):
                    raise TypeError(f"mix_fn must return a torch.Tensor, got {type(h).__name__}")
            h = self._stage(index, h)
        return h

    def _check_mix(self, mix_depth, mix_fn) -> None:
        if mix_depth is None:
            if mix_fn is not None:
                raise ValueError("mix_fn was given without mix_depth; pass mix_depth as well")
            return
        if isinstance(mix_depth, bool) or not isinstance(mix_depth, int):
            # a ValueError like any other depth outside mix_depths (the documented contract)
            raise ValueError(
                f"mix_depth must be an int in {list(self.mix_depths)} or None, got {mix_depth!r}"
            )
        if mix_depth not in self.mix_depths:
            raise ValueError(
                f"mix_depth must be one of {list(self.mix_depths)} for "
                f"{type(self).__name__}, got {mix_depth}"
            )
        if mix_fn is None or not callable(mix_fn):
            raise ValueError(f"mix_fn must be a callable when mix_depth is given, got {mix_fn!r}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map ``(B, C, h, w)`` of ``x`` (no mixing)."""
        return self._trunk(x, None, None)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from a feature map: global average pooling, then :attr:`classifier`."""
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))

    def forward(
        self,
        x: torch.Tensor,
        mix_depth: int | None = None,
        mix_fn: MixFn | None = None,
    ) -> torch.Tensor:
        """Logits ``(B', num_classes)`` for images ``x`` ``(B, C, H, W)``.

        Args:
            x: input batch.
            mix_depth: if given, one of :attr:`mix_depths`; the hidden state ``h`` at that depth
                (0 = the input, 1 = after the first stage, 2 = after the second, ...) is replaced
                by ``mix_fn(h)`` before the network continues (Manifold Mixup, Co-Mixup).
            mix_fn: the function applied at ``mix_depth``; called exactly once. It may change
                the batch size (``B'``) but must keep the other dimensions.

        Raises:
            ValueError: ``mix_depth`` is not in :attr:`mix_depths`, or only one of ``mix_depth``
                and ``mix_fn`` is given.
        """
        self._check_mix(mix_depth, mix_fn)
        return self.logits_from_features(self._trunk(x, mix_depth, mix_fn))

    def extra_repr(self) -> str:
        return f"mix_depths={self.mix_depths}"
