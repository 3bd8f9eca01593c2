"""The optimizer of a run: SGD with (Nesterov) momentum or Adam, with the normalization layers'
parameters in their own weight-decay group (torchvision's reference scripts'
``--norm-weight-decay``; the ImageNet reference of Co-Mixup / Puzzle Mix decays every parameter
except BatchNorm's).
"""

from __future__ import annotations

import torch

__all__ = ["NORM_LAYERS", "build_optimizer", "param_groups"]

#: Modules whose parameters get ``norm_weight_decay``.
NORM_LAYERS = (
    torch.nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
    torch.nn.LocalResponseNorm,
)


def param_groups(model: torch.nn.Module, weight_decay: float,
                 norm_weight_decay: float | None = None) -> list[dict]:
    """Two parameter groups: the normalization layers' parameters with ``norm_weight_decay``
    (``None``: ``weight_decay``) and every other parameter with ``weight_decay``. Empty groups
    are left out; each parameter appears once."""
    if norm_weight_decay is None:
        norm_weight_decay = weight_decay
    norm, other, seen = [], [], set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            (norm if isinstance(module, NORM_LAYERS) else other).append(param)
    groups = [{"params": other, "weight_decay": weight_decay},
              {"params": norm, "weight_decay": norm_weight_decay}]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of configuration ``cfg`` (``optimizer``, ``lr``, ``momentum``,
    ``nesterov``, ``weight_decay``, ``norm_weight_decay``) over ``model``'s parameters."""
    groups = param_groups(model, cfg.weight_decay, cfg.norm_weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
