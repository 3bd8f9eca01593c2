"""Training: the loop (:mod:`.engine`), its optimizer, schedule and DDP helpers.

* :func:`train` runs an experiment from a :class:`TrainConfig` (:mod:`.engine`);
* :class:`TrainStep`: one training step of vanilla, Co-Mixup or a baseline
  (:mod:`comixup.methods`, re-exported here);
* :func:`resolve_config`, :func:`list_presets`, :func:`load_preset`: configurations and the
  presets of the paper's experiments (:mod:`comixup.config`, ``presets/*.json``, re-exported);
* :mod:`.optimizer`, :mod:`.schedule`: SGD / Adam and the learning-rate schedules;
* :mod:`.distributed`: ``torchrun`` / DistributedDataParallel helpers.

A run's data, model, method, device and precision are built by :mod:`comixup.run`, which
evaluation and the analyses rebuild runs with too; checkpoints are :mod:`comixup.checkpoint`.
The command line front end is ``comixup train`` (:mod:`comixup.cli`).
"""

from ..config import TrainConfig, list_presets, load_preset, resolve_config
from ..methods import TrainStep
from .engine import TrainResult, train

__all__ = [
           "TrainConfig",
           "TrainResult",
           "TrainStep",
           "list_presets",
           "load_preset",
           "resolve_config",
           "train",
]
