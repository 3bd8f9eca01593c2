"""Dataset registry: :data:`DATASETS`, :func:`dataset_info` and :func:`build_dataset`.

=====================  =======  ========  ==========  ====================  =====================
name                   classes  channels  size (H,W)  splits                options
=====================  =======  ========  ==========  ====================  =====================
``synthetic``          10       3         32 x 32     train, test           SyntheticConfig
                                                                            fields, ``cache``,
                                                                            ``padding``
``synthetic64``        10       3         64 x 64     train, test           as ``synthetic``
``synthetic-seg``      11 (*)   3         32 x 32     train, test           as ``synthetic``
``synthetic64-seg``    11 (*)   3         64 x 64     train, test           as ``synthetic``
``cifar10``            10       3         32 x 32     train, test           ``labels_per_class``,
                                                                            ``padding``
``cifar100``           100      3         32 x 32     train, test           as ``cifar10``
``tiny-imagenet``      200      3         64 x 64     train, val (= test)   ``padding``
``imagenet``           1000     3         224 x 224   train, val (= test)   ``crop``, ``resize``,
                                                                            ``scale``, ``box_dir``
``speech-commands``    30       1         160 x 100   train, val, test      ``classes``
``fashion-mnist``      10       1         32 x 32     train, test           ``labels_per_class``,
                                                                            ``padding``
``mnist``              10       1         32 x 32     train, test           as ``fashion-mnist``
=====================  =======  ========  ==========  ====================  =====================

(*) Segmentation (``info.task == "segmentation"``): samples are ``(x, mask)`` with an int64
``(H, W)`` class map, 0 = background and ``1..num_classes-1`` the object classes of
``synthetic`` (see :class:`~comixup.data.synthetic.SyntheticSegmentation`). Every other dataset
is a classification one (``task == "classification"``, samples ``(x, int)``).

See ``docs/data.md`` for the directory layout each dataset expects under ``root``.
"""

from __future__ import annotations

from dataclasses import fields

from torch.utils.data import Dataset

from .cifar import CIFAR, CIFAR10_INFO, CIFAR100_INFO
from .common import DatasetInfo
from .download import SOURCES, default_root
from .imagenet import IMAGENET_INFO, ImageNet
from .mnist import FASHION_MNIST_INFO, MNIST, MNIST_INFO, FashionMNIST
from .speech_commands import SPEECH_COMMANDS_INFO, SpeechCommands
from .synthetic import (
    SYNTHETIC64_INFO,
    SYNTHETIC64_SEG_INFO,
    SYNTHETIC_INFO,
    SYNTHETIC_SEG_INFO,
    Synthetic,
    SyntheticConfig,
    SyntheticSegmentation,
)
from .tiny_imagenet import TINY_IMAGENET_INFO, TinyImageNet

__all__ = ["DATASETS", "build_dataset", "dataset_info"]

#: The dataset names accepted by :func:`dataset_info` and :func:`build_dataset`.
DATASETS = (
    "synthetic",
    "synthetic64",
    "synthetic-seg",
    "synthetic64-seg",
    "cifar10",
    "cifar100",
    "tiny-imagenet",
    "imagenet",
    "speech-commands",
    "fashion-mnist",
    "mnist",
)

_INFO = {
    "synthetic": SYNTHETIC_INFO,
    "synthetic64": SYNTHETIC64_INFO,
    "synthetic-seg": SYNTHETIC_SEG_INFO,
    "synthetic64-seg": SYNTHETIC64_SEG_INFO,
    "cifar10": CIFAR10_INFO,
    "cifar100": CIFAR100_INFO,
    "tiny-imagenet": TINY_IMAGENET_INFO,
    "imagenet": IMAGENET_INFO,
    "speech-commands": SPEECH_COMMANDS_INFO,
    "fashion-mnist": FASHION_MNIST_INFO,
    "mnist": MNIST_INFO,
}


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _INFO:
        raise ValueError(f"name must be one of {list(DATASETS)}, got {name!r}")
    return name


def dataset_info(name: str) -> DatasetInfo:
    """The static :class:`DatasetInfo` of dataset ``name`` (its default configuration)."""
    return _INFO[_check_name(name)]


_SYNTHETIC_FIELDS = {f.name for f in fields(SyntheticConfig)}
#: The synthetic datasets: name -> (dataset class, image side).
_SYNTHETIC = {
    "synthetic": (Synthetic, 32),
    "synthetic64": (Synthetic, 64),
    "synthetic-seg": (SyntheticSegmentation, 32),
    "synthetic64-seg": (SyntheticSegmentation, 64),
}


def build_dataset(
    name: str,
    *,
    root=None,
    split: str,
    train_transform: bool = False,
    limit: int | None = None,
    seed: int = 0,
    **options,
) -> Dataset:
    """Build dataset ``name`` returning ``(x, y)``: a normalized float32 CHW tensor and an int
    (for the segmentation datasets, ``info.task == "segmentation"``, ``y`` is an int64 ``(H, W)``
    class map).

    Args:
        name: one of :data:`DATASETS`.
        root: data directory (see ``docs/data.md``). For ``synthetic*`` it is optional and is
            where the generated dataset is cached (``root/synthetic/``); for
            ``fashion-mnist``/``mnist`` it is the directory of the four IDX files. ``None``
            for a downloadable dataset is where :func:`~comixup.data.download.download` puts
            it (:func:`~comixup.data.download.default_root`: the per-user cache, or Debian's
            ``/usr/share/datasets/<name>`` when it holds the files).
        split: ``"train"`` or ``"test"``; ``"val"`` too for tiny-imagenet and imagenet (same as
            ``"test"``: their validation sets) and speech-commands (its own validation list).
        train_transform: apply the dataset's training augmentation.
        limit: keep a deterministic subset of ``limit`` samples (seeded by ``seed``).
        seed: seed of the ``limit`` subset. It does not change the synthetic images; pass the
            option ``seed_data`` for that.
        **options: dataset-specific options (see the table above). For ``synthetic*`` they are
            the fields of :class:`~comixup.data.synthetic.SyntheticConfig` (``num_classes``,
            ``num_train``, ``num_test``, ``scale``, ...; ``seed_data`` sets its ``seed``),
            ``cache`` and ``padding`` (see :class:`~comixup.data.synthetic.Synthetic`; the
            ``-seg`` variants take the same ones).

    Returns:
        A map-style dataset with ``info`` (:class:`DatasetInfo`), ``targets`` (list of int),
        ``has_boxes``, and ``boxes(index)`` when the dataset has boxes.

    Raises:
        ValueError: unknown name, split or option.
        FileNotFoundError: the dataset is not under ``root`` (the message names the expected path
            and layout).
    """
    name = _check_name(name)
    if not isinstance(train_transform, bool):
        raise TypeError(f"train_transform must be a bool, got {type(train_transform).__name__}")
    common = {"split": split, "train_transform": train_transform, "limit": limit, "seed": seed}
    if name in _SYNTHETIC:
        cls, size = _SYNTHETIC[name]
        cfg = {"image_size": size} if size != 32 else {}
        extra = {key: options.pop(key) for key in ("cache", "padding") if key in options}
        if "seed_data" in options:
            cfg["seed"] = options.pop("seed_data")
        accepted = sorted(_SYNTHETIC_FIELDS - {"seed"}) + ["cache", "padding", "seed_data"]
        unknown = set(options) - set(accepted)
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} for {name}; accepted: {accepted}"
            )
        cfg.update(options)
        return cls(SyntheticConfig(**cfg), root=root, **extra, **common)
    if root is None and name in SOURCES:
        root = default_root(name)
    builders = {
        "cifar10": (lambda **kw: CIFAR(root, 10, **kw), {"labels_per_class", "padding"}),
        "cifar100": (lambda **kw: CIFAR(root, 100, **kw), {"labels_per_class", "padding"}),
        "tiny-imagenet": (lambda **kw: TinyImageNet(root, **kw), {"padding"}),
        "imagenet": (lambda **kw: ImageNet(root, **kw), {"crop", "resize", "scale", "box_dir"}),
        "speech-commands": (lambda **kw: SpeechCommands(root, **kw), {"classes"}),
        "fashion-mnist": (lambda **kw: FashionMNIST(root, **kw), {"labels_per_class", "padding"}),
        "mnist": (lambda **kw: MNIST(root, **kw), {"labels_per_class", "padding"}),
    }
    build, accepted = builders[name]
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for {name}; accepted: {sorted(accepted)}"
        )
    return build(**common, **options)
