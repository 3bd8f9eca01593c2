"""ImageNet (ILSVRC-2012) in class-folder layout, with optional PASCAL-VOC XML boxes.

Layout::

    <root>/imagenet/train/<wnid>/*.JPEG
    <root>/imagenet/val/<wnid>/*.JPEG          (validation images sorted into class folders)
    <box_dir>/<image stem>.xml                 optional, or <box_dir>/<wnid>/<image stem>.xml

(``<root>`` may also be the ``imagenet`` directory itself.) ``box_dir`` defaults to
``<root>/imagenet/bbox/<split>`` when that directory exists, e.g. the extracted
``ILSVRC2012_bbox_val_v3.tgz``. Each XML is an ``<annotation>`` with ``<size><width>/<height>``
and one ``<object><bndbox><xmin>/<ymin>/<xmax>/<ymax>`` per box, in pixels of the original
image, read as inclusive 0-based indices (the ILSVRC convention).

Labels are the indices of the sorted class folders of ``train/`` (of the split's folder when
``train/`` is absent), the order of torchvision's ``ImageFolder``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .._errors import InputError
from . import transforms as T
from .common import BoxedDataset, DatasetInfo, SampleListDataset, load_rgb

__all__ = ["IMAGENET_INFO", "ImageNet", "imagenet_transform", "read_voc_boxes"]

IMAGENET_INFO = DatasetInfo(
    num_classes=1000,
    channels=3,
    image_size=(224, 224),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)

_LAYOUT = """    train/<wnid>/*.JPEG
    val/<wnid>/*.JPEG
    (optional boxes: bbox/<split>/<image stem>.xml, PASCAL-VOC style)"""

_EXTENSIONS = (".jpeg", ".jpg", ".png")


def imagenet_transform(
    info: DatasetInfo, train: bool, *, crop: int = 224, resize: int = 256, scale=(0.08, 1.0)
) -> T.Compose:
    """ImageNet pipelines.

    ``train=True``: ``ToTensor`` + ``RandomResizedCrop(crop, scale)`` + flip + ``Normalize``;
    otherwise ``ToTensor`` + ``Resize(resize)`` (shorter side) + ``CenterCrop(crop)`` +
    ``Normalize``.
    """
    if train:
        steps = [T.RandomResizedCrop(crop, scale=scale), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(resize), T.CenterCrop(crop)]
    return T.Compose([T.ToTensor(), *steps, T.Normalize(info.mean, info.std)])


def read_voc_boxes(path) -> tuple[list[tuple[float, float, float, float]], tuple[int, int] | None]:
    """Parse a PASCAL-VOC XML file.

    Returns:
        ``(boxes, size)``: boxes ``(x0, y0, x1, y1)`` in pixel-edge coordinates (inclusive
        indices ``xmin..xmax`` become ``xmin, xmax + 1``) and the annotated ``(H, W)`` or None.

    Raises:
        InputError: the file is not readable VOC XML, or a ``<bndbox>`` is malformed (naming
            the file).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{path}: not a readable PASCAL-VOC XML file ({exc})") from None
    size = None
    s = root.find("size")
    if s is not None and s.findtext("width") and s.findtext("height"):
        try:
            size = (int(float(s.findtext("height"))), int(float(s.findtext("width"))))
        except ValueError:
            raise InputError(f"{path}: malformed <size>") from None
    boxes = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: malformed <bndbox>") from e
        boxes.append((x0, y0, x1 + 1.0, y1 + 1.0))
    return boxes, size


class ImageNet(SampleListDataset, BoxedDataset):
    """ImageNet returning ``(x, y)``: ``x`` normalized float32 ``(3, crop, crop)``, ``y`` int.

    Args:
        root: directory containing ``imagenet/`` (or the ImageNet directory itself).
        split: ``"train"``, or ``"val"`` / ``"test"`` (both the validation set).
        train_transform: ``RandomResizedCrop(crop, scale)`` + flip instead of resize + center crop.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset.
        crop: output size (default 224).
        resize: shorter side before the evaluation center crop (default 256).
        scale: area range of the random resized crop (default ``(0.08, 1.0)``).
        box_dir: directory of VOC XML files (default ``<imagenet>/bbox/<split>`` if present).
            Boxes are rescaled to the returned image of the evaluation pipeline; with
            ``train_transform=True`` they are in pixels of the original image.
    """

    dataset = "imagenet"
    dirname = "imagenet"
    layout = _LAYOUT

    def __init__(
        self,
        root,
        *,
        crop: int = 224,
        resize: int = 256,
        scale=(0.08, 1.0),
        box_dir=None,
        **options,
    ):
        self._crop, self._resize, self._scale, self._box_dir = crop, resize, scale, box_dir
        super().__init__(root, **options)

    @staticmethod
    def _folder(split: str) -> str:
        return "train" if split == "train" else "val"

    def _marker(self, split: str) -> str:
        return self._folder(split)

    def _list_samples(self, base: Path, split: str) -> list[tuple[Path, int]]:
        split_dir = base / self._folder(split)
        class_dir = base / "train" if (base / "train").is_dir() else split_dir
        self.classes = sorted(p.name for p in class_dir.iterdir() if p.is_dir())
        if not self.classes:
            raise FileNotFoundError(
                f"imagenet: no class folder in {class_dir}. "
                f"Expected layout under {base}:\n{_LAYOUT}"
            )
        self.class_to_idx = {w: i for i, w in enumerate(self.classes)}
        samples = []
        for wnid in sorted(p.name for p in split_dir.iterdir() if p.is_dir()):
            if wnid not in self.class_to_idx:
                raise InputError(f"imagenet: class folder {split_dir / wnid} is not in {class_dir}")
            for p in sorted((split_dir / wnid).iterdir()):
                if p.suffix.lower() in _EXTENSIONS:
                    samples.append((p, self.class_to_idx[wnid]))
        return samples

    def _setup(self, base: Path, keep, train_transform: bool) -> None:
        crop, resize, box_dir = self._crop, self._resize, self._box_dir
        self.info = (
            IMAGENET_INFO
            if crop == 224
            else DatasetInfo(
                IMAGENET_INFO.num_classes, 3, (crop, crop), IMAGENET_INFO.mean, IMAGENET_INFO.std
            )
        )
        self.transform = imagenet_transform(
            self.info, train_transform, crop=crop, resize=resize, scale=self._scale
        )
        self.box_transform = (
            None if train_transform else T.Compose([T.Resize(resize), T.CenterCrop(crop)])
        )
        folder = self._folder(self.split)
        if box_dir is None and (base / "bbox" / folder).is_dir():
            box_dir = base / "bbox" / folder
        self.box_dir = None if box_dir is None else Path(box_dir)
        self._xml = {}
        if self.box_dir is not None:
            if not self.box_dir.is_dir():
                raise FileNotFoundError(
                    f"imagenet: box_dir {self.box_dir} is not a directory of "
                    "PASCAL-VOC XML files (<image stem>.xml)"
                )
            self._xml = {p.stem: p for p in sorted(self.box_dir.rglob("*.xml"))}

    @property
    def has_boxes(self) -> bool:
        """True when a ``box_dir`` with XML files is in use."""
        return bool(self._xml)

    def _raw_boxes(self, index: int):
        from PIL import Image

        path, _ = self.samples[index]
        xml = self._xml.get(path.stem)
        if xml is None:
            return None
        boxes, annotated = read_voc_boxes(xml)
        with Image.open(path) as img:
            w, h = img.size
        if annotated is not None and annotated != (h, w):
            sy, sx = h / annotated[0], w / annotated[1]
            boxes = [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes]
        boxes = [
            (max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3]))
            for b in boxes
        ]
        return boxes, (h, w)

    def _load(self, path: Path):
        return self.transform(load_rgb(path))
