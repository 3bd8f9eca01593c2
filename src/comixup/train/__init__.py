"""Training engine: the loop, the methods, configuration, presets, checkpoints and DDP.

* :func:`train` runs an experiment from a :class:`TrainConfig` (:mod:`.engine`);
* :data:`METHODS` / :func:`create_method`: vanilla, Co-Mixup and the baselines (:mod:`.methods`);
* :func:`resolve_config`, :func:`list_presets`, :func:`load_preset`: configurations and the
  presets of the paper's experiments (:mod:`.config`, ``presets/*.json``);
* :mod:`.checkpoint`: atomic checkpoints loadable with ``weights_only=True``;
* :mod:`.distributed`: ``torchrun`` / DistributedDataParallel helpers.

The command line front end is ``comixup train`` (:mod:`comixup.cli`).
"""

from ..config import TrainConfig, list_presets, load_preset, resolve_config
from .engine import TrainResult, train
from ..methods import METHODS, Method, create_method

__all__ = [
           "METHODS",
           "Method",
           "TrainConfig",
           "TrainResult",
           "create_method",
           "list_presets",
           "load_preset",
           "resolve_config",
           "train",
]
