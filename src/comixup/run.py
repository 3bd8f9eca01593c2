"""The run layer: a run's device, data, model and training method, built from its configuration.

Training (:mod:`comixup.train`), evaluation (:mod:`comixup.evaluate`) and the analyses
(:mod:`comixup.analysis`) all rebuild the pieces of a run the same way, from a
:class:`~comixup.config.TrainConfig`; this module is where that happens, below all three (it
imports the configuration, checkpoints, methods, data and models, never the layers above):

* :func:`resolve_device`, :func:`autocast_dtype`, :func:`use_channels_last`: where a run
  computes and in which precision and memory format;
* :func:`build_data`, :func:`data_info`, :func:`build_model`: its datasets and its network;
* :func:`method_options`, :func:`build_method`: its training method, with the dataset's
  normalization filled in for the methods that take it;
* :func:`read_config`, :func:`load_run`: a finished run back from its checkpoint or
  configuration, as a :class:`Run` (the model with its weights, in eval mode, and its test data);
* :func:`resume_config`: the configuration of a resumed run (``comixup train --resume``).

Everything here is built from a user's configuration, files and flags: a bad device, option,
file or setting is an :class:`~comixup._errors.InputError` (a ValueError; a TypeError too for a
value of the wrong kind) naming it, which ``comixup`` prints as one line.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import checkpoint as ckpt_io
from ._checks import check_device
from ._errors import InputError, user_input
from .config import TrainConfig, resolve_config
from .methods import TrainStep, accepted_options, uses_normalization

if TYPE_CHECKING:
    from .data import DatasetInfo

__all__ = [
    "Run",
    "autocast_dtype",
    "build_data",
    "build_method",
    "build_model",
    "data_info",
    "load_run",
    "method_options",
    "read_config",
    "resolve_device",
    "resume_config",
    "use_channels_last",
]


# ----------------------------------------------------------------------------------------------
# device, precision, memory format
# ----------------------------------------------------------------------------------------------


def resolve_device(name: str | torch.device, local_rank: int = 0, *,
                   distributed: bool = False) -> torch.device:
    """``"auto"`` -> CUDA when available (the local rank's GPU under DDP), else the CPU.

    ``name`` is checked as the configuration's ``device`` (:func:`comixup._checks.check_device`):
    ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (or a :class:`torch.device` of those); an
    :class:`~comixup._errors.InputError` (a ValueError) names it otherwise, or when CUDA is
    requested but not available.

    Under ``torchrun`` (``distributed``) every rank trains on its own GPU, ``cuda:LOCAL_RANK``,
    the one its NCCL communicator is bound to: ``"cuda"`` and ``"auto"`` resolve to it, and an
    explicit ``"cuda:N"`` (one GPU for every rank) is refused with an InputError. A CUDA result
    becomes the current device (:func:`torch.cuda.set_device`), so that the streams, events and
    pinned-memory copies of the mixers run on it and not on GPU 0.
    """
    if isinstance(name, torch.device):
        name = str(name)
    with user_input():
        check_device("device", name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        return torch.device(name)
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r} was requested but CUDA is not available")
    if distributed and name != "cuda":
        raise InputError(f"device {name!r} names one GPU for every rank, but under torchrun each "
                         f"rank trains on its own (cuda:LOCAL_RANK): use device 'cuda' or 'auto'")
    count = torch.cuda.device_count()
    device = torch.device("cuda", local_rank if name == "cuda" else int(name.split(":")[1]))
    if device.index >= count:
        raise InputError(f"device {str(device)!r}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    torch.cuda.set_device(device)
    return device


def _gpu_paths(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the run takes the GPU code paths (autocast, the fp16 gradient scaler,
    channels-last): on CUDA, and on the CPU when ``cfg.amp_cpu`` asks for them."""
    return device.type == "cuda" or (device.type == "cpu" and cfg.amp_cpu)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype of a run on ``device``, shared by training and evaluation.

    ``None`` (full precision) unless ``cfg.amp`` and the device is CUDA (or the CPU with
    ``cfg.amp_cpu``); then bfloat16 when ``cfg.amp_dtype == "bf16"`` and the device supports it
    (every CPU does), else float16 (with a gradient scaler).
    """
    if not cfg.amp or not _gpu_paths(cfg, device):
        return None
    if cfg.amp_dtype == "bf16" and (device.type == "cpu" or torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether batches and the model use the channels-last memory format: ``cfg.channels_last``
    on CUDA, and on the CPU with ``cfg.amp_cpu``."""
    return cfg.channels_last and _gpu_paths(cfg, device)


# ----------------------------------------------------------------------------------------------
# data, model, method
# ----------------------------------------------------------------------------------------------


def build_data(cfg: TrainConfig, split: str, *, train_transform: bool, limit=None,
               data_options: dict | None = None, data_dir=None):
    """``comixup.data.build_dataset`` for ``split`` with the run's root, seed and options
    (``data_options`` / ``data_dir``, e.g. a phase's, replace the configuration's).

    The dataset's checks of those (the user's) are InputErrors.
    """
    from . import data

    options = dict(cfg.data_options if data_options is None else data_options)
    with user_input():  # the dataset checks the user's root, split and options as it is built
        return data.build_dataset(cfg.data, root=data_dir if data_dir is not None else cfg.data_dir,
                                  split=split, train_transform=train_transform, limit=limit,
                                  seed=cfg.seed, **options)


def data_info(cfg: TrainConfig, dataset=None) -> DatasetInfo:
    """The :class:`~comixup.data.DatasetInfo` of a run: ``dataset.info`` when the dataset has one
    (it reflects the data options, e.g. the synthetic benchmark's number of classes), else
    ``comixup.data.dataset_info(cfg.data)``."""
    from .data import dataset_info

    return getattr(dataset, "info", None) or dataset_info(cfg.data)


def build_model(cfg: TrainConfig, num_classes: int, channels: int,
                task: str = "classification") -> torch.nn.Module:
    """``comixup.models.create(cfg.arch, num_classes, **cfg.arch_options)``; ``in_channels`` is
    filled in from the dataset when the model takes it and the configuration does not set it.

    The model's checks of the options are InputErrors, and so is
    the error naming ``arch`` when the model does not fit the dataset's ``task``: a per-pixel
    model (``dense``) for ``"segmentation"``, a classifier otherwise."""
    from . import models

    options = dict(cfg.arch_options)
    if "in_channels" in models.options(cfg.arch) and "in_channels" not in options:
        options["in_channels"] = channels
    with user_input(f"arch {cfg.arch!r}: "):  # the model checks the user's arch options
        model = models.create(cfg.arch, num_classes, **options)
    if getattr(model, "dense", False) != (task == "segmentation"):
        kind = "per-pixel logits" if getattr(model, "dense", False) else "one class per image"
        raise InputError(f"arch {cfg.arch!r} predicts {kind}, but data {cfg.data!r} is a "
                         f"{task} task (segmentation takes 'preactresnet18_unet')")
    return model


def method_options(cfg: TrainConfig, info: DatasetInfo, options: dict | None = None) -> dict:
    """The options the run's method is built with: ``options`` (by default
    :meth:`TrainConfig.effective_method_options`), with the dataset's normalization ``mean`` and
    ``std`` (of ``info``, a :class:`~comixup.data.DatasetInfo`) filled in for the methods that
    take them (Puzzle Mix's smoothness and VAT's ball are measured on raw pixels; VAT takes the
    ``std`` only), unless the options set them."""
    options = dict(cfg.effective_method_options() if options is None else options)
    if uses_normalization(cfg.method):
        accepted = accepted_options(cfg.method)
        for key, value in (("mean", info.mean), ("std", info.std)):
            if key in accepted:
                options.setdefault(key, list(value))
    return options


def _method_seed(seed: int, rank: int) -> int:
    """Seed of the method's generator: distinct per rank, so each rank mixes differently."""
    return (seed * 1_000_003 + rank * 7_919 + 0xC0FFEE) % 2**63


def build_method(cfg: TrainConfig, info: DatasetInfo, *, seed: int | None = None, rank: int = 0,
                 options: dict | None = None, channels_last: bool = False) -> TrainStep:
    """The run's training step (a :class:`comixup.methods.TrainStep`) for ``info.num_classes``
    classes with :func:`method_options`; the method's checks of those options (the user's) are
    InputErrors.

    Args:
        cfg: the run's configuration (``method``, ``seed``, the method options).
        info: the dataset's :class:`~comixup.data.DatasetInfo`.
        seed: the seed of the method's generator; by default one derived from ``cfg.seed`` and
            ``rank``, distinct per rank (each rank of a DDP run mixes differently).
        rank: the process's rank.
        options: the method options (default: the configuration's effective options).
        channels_last: the batches the method builds inside its step use the channels-last
            memory format (as the engine's inputs do).
    """
    options = method_options(cfg, info, options)
    with user_input(f"method {cfg.method!r}: "):  # the mixer checks the user's options
        return TrainStep(cfg.method, info.num_classes,
                         seed=_method_seed(cfg.seed, rank) if seed is None else seed,
                         memory_format=torch.channels_last if channels_last
                         else torch.contiguous_format, **options)


# ----------------------------------------------------------------------------------------------
# a run back from its checkpoint or configuration
# ----------------------------------------------------------------------------------------------


def read_config(path) -> dict:
    """The configuration dict (as written, not resolved) of a run directory (its
    ``config.json``, else its ``last.pt``'s), of a ``.json`` configuration file or of a
    checkpoint.

    Raises:
        FileNotFoundError: nothing at ``path``, or a run directory with neither file.
        InputError: a file that is not a JSON object or a valid checkpoint (naming it).
    """
    path = Path(path)
    if path.is_dir():
        for name in ("config.json", "last.pt"):
            if (path / name).is_file():
                return read_config(path / name)
        raise FileNotFoundError(f"{path} is not a run directory: it has neither config.json "
                                "nor last.pt")
    if path.suffix != ".json":
        return ckpt_io.load(path)["config"]
    if not path.is_file():
        raise FileNotFoundError(f"configuration not found: {path}")
    try:
        values = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a JSON configuration: {exc}") from None
    if not isinstance(values, dict):
        raise InputError(f"{path} is not a configuration: it holds a {type(values).__name__}, "
                         "not a JSON object")
    return values


@dataclass
class Run:
    """A run rebuilt by :func:`load_run`.

    Attributes:
        cfg: the resolved configuration (with the overrides of :func:`load_run`).
        device: where the model lives.
        model: the network, in eval mode on ``device`` (contiguous memory format), with the
            checkpoint's weights when loaded from one (else freshly initialized).
        info: the dataset's :class:`~comixup.data.DatasetInfo`.
        num_classes: ``info.num_classes``.
        dataset: the evaluation split, without training augmentation (``None`` when
            :func:`load_run` was asked for no split).
        split: that split's name (or ``None``).
        autocast_dtype: the run's mixed-precision dtype on ``device`` (:func:`autocast_dtype`).
        channels_last: whether the run computes in channels-last on ``device``
            (:func:`use_channels_last`).
        checkpoint: the checkpoint the weights come from (``None``: none).
        state: that checkpoint's content (:func:`comixup.checkpoint.load`).
        epoch: the epochs the checkpoint's model was trained for.
    """

    cfg: TrainConfig
    device: torch.device
    model: torch.nn.Module
    info: DatasetInfo
    num_classes: int
    dataset: torch.utils.data.Dataset | None = None
    split: str | None = None
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    checkpoint: Path | None = None
    state: dict | None = None
    epoch: int | None = None

    def load_weights(self, checkpoint) -> int:
        """Load the model weights of ``checkpoint`` (a ``last.pt`` or a snapshot of the same
        run); ``checkpoint``, ``state`` and ``epoch`` follow. Returns the epoch.

        Raises:
            FileNotFoundError / InputError: as :func:`comixup.checkpoint.load`, and an
                InputError naming the file when its weights do not fit the model.
        """
        state = ckpt_io.load(checkpoint)
        ckpt_io.load_model_state(self.model, state["model"], checkpoint)
        self.checkpoint, self.state, self.epoch = Path(checkpoint), state, int(state["epoch"])
        return self.epoch


def load_run(source, *, device: str | torch.device = "auto", split: str | None = "test",
             data_dir=None, limit_test: int | None = None, overrides: dict | None = None) -> Run:
    """Rebuild a run: its configuration, device, evaluation data and model.

    Args:
        source: a :class:`~comixup.config.TrainConfig`, a configuration dict, the path of a
            ``.json`` configuration (a run's ``config.json``) or the path of a checkpoint
            (``last.pt`` or a snapshot), whose configuration and weights are used (any other
            path, a directory included, is read as a checkpoint).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (:func:`resolve_device`).
        split: the split to build (without training augmentation, limited to the
            configuration's ``limit_test``); ``None`` builds no dataset (the
            :class:`~comixup.data.DatasetInfo` then comes from the dataset's name alone).
        data_dir, limit_test: replace the configuration's values when not ``None`` (the data
            moved; evaluate on fewer samples).
        overrides: further configuration settings for :func:`comixup.config.resolve_config`
            (e.g. ``{"limit_test": None}`` for the whole split).

    Returns:
        A :class:`Run`.

    Raises:
        TypeError: ``source`` of another type.
        FileNotFoundError / InputError: a missing or invalid file (naming it), a bad
            configuration or device.
    """
    state = checkpoint = None
    if isinstance(source, TrainConfig):
        values = source.to_dict()
    elif isinstance(source, dict):
        values = source
    elif isinstance(source, (str, os.PathLike)):
        if Path(source).suffix == ".json":
            values = read_config(source)
        else:
            checkpoint = Path(source)
            state = ckpt_io.load(checkpoint)
            values = state["config"]
    else:
        raise TypeError("source must be a TrainConfig, a configuration dict or the path of a "
                        f"checkpoint or config.json, got {type(source).__name__}")
    overrides = dict(overrides or {})
    if data_dir is not None:
        overrides["data_dir"] = os.fspath(data_dir)
    if limit_test is not None:
        overrides["limit_test"] = limit_test
    cfg = resolve_config(base=values, overrides=overrides)
    dev = resolve_device(device)
    dataset = None
    if split is not None:
        dataset = build_data(cfg, split, train_transform=False, limit=cfg.limit_test)
    info = data_info(cfg, dataset)
    model = build_model(cfg, info.num_classes, info.channels, info.task)
    if state is not None:
        ckpt_io.load_model_state(model, state["model"], checkpoint)
    model.to(dev).eval()
    return Run(cfg=cfg, device=dev, model=model, info=info, num_classes=info.num_classes,
               dataset=dataset, split=split, autocast_dtype=autocast_dtype(cfg, dev),
               channels_last=use_channels_last(cfg, dev), checkpoint=checkpoint, state=state,
               epoch=None if state is None else int(state["epoch"]))


#: What a resumed run may not change, with the ``comixup train`` flag that sets it (the
#: checkpoint's run would become another run).
_RESUME_FIXED = (("method", "--method"), ("arch", "--arch"), ("arch_options", "--arch-opt"),
                 ("data", "--data"), ("data_options", "--data-opt"))


def resume_config(checkpoint, preset: str | None = None, overrides: dict | None = None, *,
                  loss_flag: str = "--method-opt loss") -> TrainConfig:
    """The configuration of ``comixup train --resume CHECKPOINT``: the checkpoint's, with
    ``overrides`` applied (and ``out`` the checkpoint's directory unless they set it).

    The original command may be re-run with ``--resume`` added: a setting (or a ``preset``)
    that agrees with the checkpoint is accepted; one that would change the model, the data, the
    method or its loss is an error naming the flag that set it.

    Args:
        checkpoint: path of a resumable checkpoint (``last.pt``).
        preset: the preset of the command, if it names one; it must agree with the checkpoint
            on the method, model, data and loss.
        overrides: the settings of the flags (as for :func:`resolve_config`).
        loss_flag: the flag that set ``overrides["method_options"]["loss"]`` (``--loss`` or
            ``--method-opt loss``), named when that loss contradicts the checkpoint.

    Raises:
        InputError: an unreadable or foreign checkpoint, or a setting that contradicts it
            (``--method contradicts the checkpoint PATH: method is 'mixup' there, ...``).
    """

    overrides = copy.deepcopy(overrides or {})
    state = ckpt_io.load(checkpoint, require=ckpt_io.RESUME_KEYS)
    saved = resolve_config(base=state["config"]).to_dict()
    requested = resolve_config(preset, overrides).to_dict() if preset else None
    for key, flag in _RESUME_FIXED:
        if requested is not None and requested[key] != saved[key]:
            flag = flag if key in overrides else "--preset"
            raise InputError(f"{flag} contradicts the checkpoint {checkpoint}: {key} is "
                             f"{saved[key]!r} there, {requested[key]!r} here")
        if requested is None and key in overrides:
            value = overrides[key]
            if key.endswith("_options"):
                value = {**saved[key], **value}
            if value != saved[key]:
                raise InputError(f"{flag} contradicts the checkpoint {checkpoint}: {key} is "
                                 f"{saved[key]!r} there, {value!r} here")
    options = overrides.get("method_options", {})
    loss = options.get("loss", (requested or {}).get("method_options", {}).get("loss"))
    if loss is not None and loss != saved["method_options"].get("loss"):
        flag = loss_flag if "loss" in options else "--preset"
        raise InputError(f"{flag} contradicts the checkpoint {checkpoint}: the loss is "
                         f"{saved['method_options'].get('loss')!r} there, {loss!r} here")
    overrides.setdefault("out", str(Path(checkpoint).resolve().parent))
    return resolve_config(base=state["config"], overrides=overrides)
