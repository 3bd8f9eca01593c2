"""Tiny-ImageNet-200 in its distributed layout (no reorganisation of ``val/`` needed).

Layout (the extracted ``tiny-imagenet-200.zip``)::

    <root>/tiny-imagenet-200/wnids.txt                      200 WordNet ids, one per line
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 images per class
    <root>/tiny-imagenet-200/train/<wnid>/<wnid>_boxes.txt  optional: file x0 y0 x1 y1
    <root>/tiny-imagenet-200/val/images/*.JPEG              10,000 images
    <root>/tiny-imagenet-200/val/val_annotations.txt        file wnid x0 y0 x1 y1 (tab separated)

Labels are the indices of the *sorted* wnids (the order of torchvision's ``ImageFolder`` on
``train/``, which the reference code uses). The unlabeled ``test/`` set is not used: the
``"test"`` split is the validation set, which has one ground-truth box per image.
"""

from __future__ import annotations

from pathlib import Path

from .._errors import InputError
from . import transforms as T
from .common import BoxedDataset, DatasetInfo, SampleListDataset, load_rgb

__all__ = ["TINY_IMAGENET_INFO", "TinyImageNet", "tiny_imagenet_transform"]

TINY_IMAGENET_INFO = DatasetInfo(
    num_classes=200, channels=3, image_size=(64, 64), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
)

_LAYOUT = """    wnids.txt
    train/<wnid>/images/*.JPEG  (+ optional train/<wnid>/<wnid>_boxes.txt)
    val/images/*.JPEG
    val/val_annotations.txt  (lines: file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1)"""

_EXTENSIONS = (".jpeg", ".jpg", ".png")


def tiny_imagenet_transform(info: DatasetInfo, train: bool, padding: int = 4) -> T.Compose:
    """``ToTensor`` + (train: ``RandomCrop(64, padding)`` + flip) + ``Normalize(0.5, 0.5)``."""
    steps = [T.ToTensor()]
    if train:
        steps += [T.RandomCrop(info.image_size, padding=padding), T.RandomHorizontalFlip()]
    return T.Compose(steps + [T.Normalize(info.mean, info.std)])


def _box(fields) -> tuple[float, float, float, float]:
    # Tiny-ImageNet boxes are inclusive 0-based pixel indices; convert to pixel edges.
    x0, y0, x1, y1 = (float(v) for v in fields)
    return (x0, y0, x1 + 1.0, y1 + 1.0)


class TinyImageNet(SampleListDataset, BoxedDataset):
    """Tiny-ImageNet-200 returning ``(x, y)``: ``x`` normalized float32 ``(3, 64, 64)``, ``y`` int.

    Images are decoded lazily with Pillow. ``boxes(i)`` returns the ground-truth box of a
    validation image (and of a training image when ``<wnid>_boxes.txt`` files are present).

    Args:
        root: directory containing ``tiny-imagenet-200/`` (or that directory itself).
        split: ``"train"``, or ``"val"`` / ``"test"`` (both the labeled validation set).
        train_transform: apply ``RandomCrop(64, padding)`` + horizontal flip.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset.
        padding: random-crop padding (default 4).
    """

    dataset = "tiny-imagenet"
    dirname = "tiny-imagenet-200"
    layout = _LAYOUT

    def __init__(self, root, *, padding: int = 4, **options):
        self._padding = padding
        super().__init__(root, **options)

    def _marker(self, split: str) -> str:
        return "wnids.txt"

    def _list_samples(self, base: Path, split: str) -> list[tuple[Path, int]]:
        wnids = [w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip()]
        if not wnids:
            raise InputError(f"tiny-imagenet: {base / 'wnids.txt'} lists no class")
        self.classes = sorted(set(wnids))
        self.class_to_idx = {w: i for i, w in enumerate(self.classes)}
        samples: list[tuple[Path, int]] = []
        boxes: list = []
        if split == "train":
            for wnid in self.classes:
                img_dir = base / "train" / wnid / "images"
                if not img_dir.is_dir():
                    raise FileNotFoundError(
                        f"tiny-imagenet: missing {img_dir}. "
                        f"Expected layout under {base}:\n{_LAYOUT}"
                    )
                box_file = base / "train" / wnid / f"{wnid}_boxes.txt"
                table = {}
                if box_file.exists():
                    for line in box_file.read_text().splitlines():
                        f = line.split()
                        if len(f) >= 5:
                            table[f[0]] = _box(f[1:5])
                for p in sorted(img_dir.iterdir()):
                    if p.suffix.lower() in _EXTENSIONS:
                        samples.append((p, self.class_to_idx[wnid]))
                        boxes.append(table.get(p.name))
        else:
            ann = base / "val" / "val_annotations.txt"
            if not ann.exists():
                raise FileNotFoundError(
                    f"tiny-imagenet: missing {ann}. Expected layout under {base}:\n{_LAYOUT}"
                )
            for line_no, line in enumerate(ann.read_text().splitlines(), 1):
                f = line.split()
                if not f:
                    continue
                if len(f) < 6:
                    raise InputError(
                        f"{ann}:{line_no}: expected 'file wnid x0 y0 x1 y1', got {line!r}"
                    )
                if f[1] not in self.class_to_idx:
                    raise InputError(f"{ann}:{line_no}: wnid {f[1]!r} is not in wnids.txt")
                samples.append((base / "val" / "images" / f[0], self.class_to_idx[f[1]]))
                boxes.append(_box(f[2:6]))
            samples_boxes = sorted(zip(samples, boxes), key=lambda sb: sb[0][0].name)
            samples = [s for s, _ in samples_boxes]
            boxes = [b for _, b in samples_boxes]
        self._boxes = boxes
        return samples

    def _setup(self, base: Path, keep, train_transform: bool) -> None:
        self.info = TINY_IMAGENET_INFO
        self._boxes = [self._boxes[i] for i in keep]
        self._has_boxes = any(b is not None for b in self._boxes)
        self.transform = tiny_imagenet_transform(self.info, train_transform, self._padding)

    @property
    def has_boxes(self) -> bool:
        """True when boxes were found (always for the validation split)."""
        return self._has_boxes

    def _raw_boxes(self, index: int):
        b = self._boxes[index]
        return None if b is None else ([b], self.info.image_size)

    def _load(self, path: Path):
        return self.transform(load_rgb(path))
