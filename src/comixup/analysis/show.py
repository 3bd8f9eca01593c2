"""Figures 1, 12 and 13: an input batch and its mixed batch, for any method.

``comixup show --method NAME`` draws the input batch (Figure 11) and the mixed batch (Figures 1
and 12); under every output the top sources and their shares (from the mixer's soft targets
with ``y = arange(B)``, see :mod:`comixup.analysis.mixing`). For Co-Mixup several ``--tau``
values draw the batch side by side, Figure 12 against Figure 13 ("another mixed output batch
with larger tau").

Images: the synthetic benchmark's test split (``--data synthetic``), the test split of an
installed real dataset (``--data fashion-mnist`` / ``mnist``, 32x32 grayscale, read from
``--data-dir`` or Debian's directory), or a folder of the user's own JPEG / PNG images
(``--images DIR``; resized and centre-cropped to ``size x size`` with Pillow). Saliency:

* ``model``: the paper's (input gradient of the cross-entropy, Section 4.1) under the
  checkpoint's model (needs ``--checkpoint``; the images are normalized with its dataset's
  statistics, and labelled with the model's predictions when they are the user's);
* ``gradient``: without a model, the image's own gradient magnitude (finite differences of the
  grey levels, smoothed by a 5x5 box filter): edges and texture count as salient;
* ``box``: for the built-in datasets, the object box of each image (1 inside, 0.05 outside):
  the saliency of a perfect localizer.

The default is ``model`` with a checkpoint, else ``box`` for ``--data`` and ``gradient`` for a
folder of images.

``--data synthetic-seg`` adds the objects' pixel masks: beside the input and mixed batches, the
input masks and the masks mixed by the same parameters (``docs/dense-targets.md``), each class in
its colour and a blended pixel in the blend of its classes' colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_int
from .._errors import InputError, user_input
from ._io import pyplot
from .mixing import _LABELS, make_mixer, mix_batch

__all__ = [
    "SALIENCY_SOURCES",
    "SHOW_DATASETS",
    "SHOW_METHODS",
    "box_saliency",
    "gradient_saliency",
    "load_image_folder",
    "mask_colours",
    "run_show",
]

#: Methods ``comixup show`` draws.
SHOW_METHODS = tuple(_LABELS)
#: The built-in image sources of ``--data``.
SHOW_DATASETS = ("synthetic", "synthetic-seg", "fashion-mnist", "mnist")
#: Where the saliency comes from.
SALIENCY_SOURCES = ("model", "gradient", "box")
_EXTENSIONS = (".jpg", ".jpeg", ".png")


def load_image_folder(path, size: int = 64, limit: int = 16) -> tuple[torch.Tensor, list[str]]:
    """The JPEG / PNG images of a folder (sorted by name, at most ``limit``) as ``(B, 3, S, S)``
    float32 in ``[0, 1]``: the shorter side resized to ``size`` (bicubic), centre-cropped. A
    folder with fewer than two images, or an image that does not decode, is an
    :class:`~comixup._errors.InputError` naming it."""
    from PIL import Image

    from ..data.common import load_rgb

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"--images: no such directory: {folder}")
    size = check_int("size", size, 8)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS)[:limit]
    if len(files) < 2:
        raise InputError(f"--images: {folder} holds {len(files)} JPEG/PNG image(s); need >= 2")
    images = []
    for p in files:
        im = Image.fromarray(load_rgb(p))  # an InputError naming the file if it does not decode
        scale = size / min(im.size)
        im = im.resize((max(size, round(im.width * scale)),
                        max(size, round(im.height * scale))), Image.BICUBIC)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
        images.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0))
    return torch.stack(images).permute(0, 3, 1, 2).contiguous(), [p.name for p in files]


def gradient_saliency(x: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the grey levels of ``x`` ``(B, C, H, W)``, box-filtered 5x5:
    ``(B, H, W)``."""
    grey = x.float().mean(1, keepdim=True)
    gy = F.pad(grey[:, :, 1:] - grey[:, :, :-1], (0, 0, 0, 1))
    gx = F.pad(grey[..., 1:] - grey[..., :-1], (0, 1, 0, 0))
    mag = (gx ** 2 + gy ** 2).sqrt()
    return F.avg_pool2d(mag, 5, stride=1, padding=2, count_include_pad=False)[:, 0]


def box_saliency(boxes, size: int) -> torch.Tensor:
    """1 inside each ``(x0, y0, x1, y1)`` pixel box and 0.05 outside: ``(B, size, size)``."""
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    inside_x = (centres[None] >= boxes[:, 0:1]) & (centres[None] <= boxes[:, 2:3])
    inside_y = (centres[None] >= boxes[:, 1:2]) & (centres[None] <= boxes[:, 3:4])
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    return torch.where(inside, 1.0, 0.05)


def mask_colours(dense: torch.Tensor) -> torch.Tensor:
    """Per-pixel class distributions ``(B, K, H, W)`` as RGB ``(B, 3, H, W)`` in [0, 1]: the
    background (class 0) dark grey, class ``k`` the ``k - 1``-th colour of matplotlib's
    ``tab10`` cycle, a blended pixel the blend of its colours (an ignored pixel black)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    k = dense.shape[1]
    palette = torch.tensor([(0.15, 0.15, 0.15)] + [cmap(i % 10)[:3] for i in range(k - 1)],
                           dtype=torch.float32)
    return torch.einsum("bkhw,kc->bchw", dense.float(), palette).clamp(0, 1)


def _load(images, data, checkpoint, batch, size, seed, data_dir=None):
    """``(x01, names, boxes, model, info, masks)`` with ``x01`` in [0, 1] and ``masks`` the
    class maps of ``synthetic-seg`` (else None)."""
    model = info = None
    if checkpoint is not None:
        from ..run import load_run

        run = load_run(checkpoint, device="cpu", split=None)  # the model; the images are ours
        model, info = run.model, run.info
    if images is not None:
        if model is not None:
            size = info.image_size[0]
        x, names = load_image_folder(images, size=size, limit=batch)
        return x, names, None, model, info, None
    if data not in SHOW_DATASETS:
        raise InputError(f"--data must be one of {list(SHOW_DATASETS)} (or pass --images DIR), "
                         f"got {data!r}")
    if not data.startswith("synthetic"):
        from ..data import build_dataset

        ds = build_dataset(data, root=data_dir, split="test")
        if seed + batch > len(ds):
            raise InputError(f"--seed {seed} + --batch {batch} exceeds the {len(ds)} test images")
        sl = slice(seed, seed + batch)
        x = ds.data[sl][:, None].float() / 255.0
        names = [f"{y}: {ds.classes[y]}" for y in ds.targets[sl]]
        return x, names, ds.all_boxes[sl].numpy(), model, info, None
    from ..data.synthetic import COLOURS_NAMES, SHAPES, SyntheticConfig, generate

    data_ = generate(SyntheticConfig(), "test", n=seed + batch)
    sl = slice(seed, seed + batch)
    x = torch.from_numpy(data_["images"][sl]).permute(0, 3, 1, 2).float() / 255.0
    attrs = data_["attributes"]
    names = [f"{int(lab)}: {COLOURS_NAMES[attrs[lab][2]]} {SHAPES[attrs[lab][0]]}"
             for lab in data_["labels"][sl]]
    masks = torch.from_numpy(data_["masks"][sl]).long() if data == "synthetic-seg" else None
    return x, names, data_["boxes"][sl], model, info, masks


def run_show(*, method: str = "comixup", images=None, data: str = "synthetic", data_dir=None,
             checkpoint=None,
             taus: Sequence[float] | None = None, batch: int = 16, size: int = 64,
             saliency: str | None = None, seed: int = 0, top: int = 3, out="show.png",
             log: Callable[[str], None] = print) -> dict:
    """``comixup show``: draw an input batch and its mixed batch (Figures 1, 12, 13).

    Args:
        method: one of :data:`SHOW_METHODS` (``comixup``, ``puzzlemix``, ``mixup``, ``cutmix``,
            ``mixup3`` ...).
        images: a folder of JPEG / PNG images (else ``data``).
        data: one of :data:`SHOW_DATASETS`: test images ``seed .. seed + batch - 1`` of the
            benchmark or of the installed dataset.
        data_dir: the directory of a real ``data`` (default: its Debian directory).
        checkpoint: a ``last.pt`` whose model gives the saliency.
        taus: Co-Mixup's tau values, one panel each (default: the paper's 0.83).
        batch: images in the batch (Co-Mixup solves them as one partition, as Figure 12's 24).
        size: side of the folder images (a multiple of 16 for Puzzle Mix).
        saliency: one of :data:`SALIENCY_SOURCES` (default: see the module docstring).
        seed: seed of the mixers' generators (and the first synthetic image).
        top: sources printed under every output.
        out: the PNG written.

    Returns:
        dict with ``file``, ``saliency`` (the source used) and ``panels`` (per tau: the
        ``(B, B)`` ratios).
    """
    if method not in SHOW_METHODS:
        raise InputError(f"--method must be one of {list(SHOW_METHODS)}, got {method!r}")
    batch = check_int("batch", batch, 2)
    top = check_int("top", top, 1)
    if taus and method != "comixup":
        raise InputError(f"--tau applies to --method comixup only, not {method!r}")
    taus = [float(t) for t in (taus or [0.83])]
    if any(t < 0 for t in taus):
        raise InputError(f"--tau values must be >= 0, got {taus}")
    if checkpoint is not None and images is None and data == "synthetic-seg":
        raise InputError("--data synthetic-seg draws the masks with box or gradient saliency; "
                         "--checkpoint is not supported with it")
    x, names, boxes, model, info, masks = _load(images, data, checkpoint, batch, size, seed,
                                                 data_dir)
    if saliency is None:
        saliency = "model" if model is not None else ("box" if boxes is not None else "gradient")
    if saliency not in SALIENCY_SOURCES:
        raise InputError(f"--saliency must be one of {SALIENCY_SOURCES}, got {saliency!r}")
    if saliency == "model":
        if model is None:
            raise InputError("--saliency model needs --checkpoint")
        from .mixing import model_saliency

        mean = torch.tensor(info.mean).view(1, -1, 1, 1)
        std = torch.tensor(info.std).view(1, -1, 1, 1)
        xn = (x - mean) / std
        with torch.no_grad():
            pred = model(xn).argmax(1)
        sal = model_saliency(model, xn, pred)
        if boxes is None:
            names = [f"{n} (pred {int(p)})" for n, p in zip(names, pred)]
        note = f"input-gradient saliency of the model of {checkpoint}"
    elif saliency == "box":
        if boxes is None:
            raise InputError("--saliency box needs --data (the dataset's object boxes)")
        sal = box_saliency(boxes, x.shape[-1])
        note = "saliency = the object box (1 inside, 0.05 outside)"
    else:
        sal = gradient_saliency(x)
        note = "saliency = image gradient magnitude (no model)"
    dense = None
    if masks is not None:
        from ..data.synthetic import SYNTHETIC_SEG_INFO
        from ..losses import one_hot

        dense = one_hot(masks, SYNTHETIC_SEG_INFO.num_classes)
    columns = [("input batch", x, [f"#{i} {n}"[:22] for i, n in enumerate(names)])]
    panels = []
    for tau in (taus if method == "comixup" else [None]):
        mixer = make_mixer(method, x.shape[0], seed=seed, tau=0.83 if tau is None else tau,
                           partition=x.shape[0])
        with user_input(f"--method {method} on {x.shape[-2]}x{x.shape[-1]} images: "):
            mixer.check_batch(x)  # the method's options against the image size (--size)
        res = mix_batch(mixer, x, sal, dense)
        ratios = res["ratios"].detach().double().numpy()
        panels.append((tau, ratios))
        title = _LABELS[method] + ("" if tau is None else f", tau = {tau:g}")
        captions = [_sources(r, top) for r in ratios]
        columns.append((title, res["x_mix"].clamp(0, 1), captions))
        if dense is not None:
            columns.append((f"{title}: masks", mask_colours(res["dense"]), captions))
    if dense is not None:
        columns.insert(1, ("input masks", mask_colours(dense), columns[0][2]))
    path = _draw(columns, note + "; under each output: its top sources #input:share", out)
    log(f"{_LABELS[method]}: {note}; wrote {path}")
    return dict(file=str(path), saliency=saliency, panels=panels)


def _sources(r: np.ndarray, top: int) -> str:
    """The ``top`` largest shares of one output: ``#input:share ...``."""
    return " ".join(f"#{k}:{r[k]:.2f}" for k in np.argsort(-r)[:top] if r[k] > 1e-6)


def _draw(columns, note, out):
    """One panel per ``(title, images (B, C, H, W) in [0, 1], captions)`` of ``columns``, side
    by side, and ``note`` below; saves the PNG ``out``."""
    plt = pyplot()
    b = columns[0][1].shape[0]
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    n_panels = len(columns)
    fig = plt.figure(figsize=(1.5 * cols * n_panels + 0.3 * n_panels, 1.75 * rows + 0.6))
    subs = fig.subfigures(1, n_panels, wspace=0.02)
    for sub, (title, imgs, captions) in zip(np.atleast_1d(subs), columns):
        sub.suptitle(title, fontsize=10)
        axes = sub.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= imgs.shape[0]:
                ax.axis("off")
                continue
            img = imgs[i].permute(1, 2, 0).numpy()
            if img.shape[-1] == 1:  # grayscale
                ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_title(captions[i], fontsize=6)
    fig.text(0.5, 0.005, note, ha="center", fontsize=7)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
