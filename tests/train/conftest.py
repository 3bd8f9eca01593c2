"""Fixtures of the training-engine tests: a tiny synthetic setup that trains in about a second."""

import pytest

#: Dataset options of the tiny synthetic benchmark (16 x 16 images, 64 train / 32 test).
TINY_DATA = {"image_size": 16, "num_train": 64, "num_test": 32}


def tiny_settings(tmp_path, **overrides):
    """A configuration dict for :func:`comixup.train.train`: LeNet on 16 x 16 synthetic images."""
    cfg = {
        "method": "vanilla",
        "arch": "lenet",
        "data": "synthetic",
        "data_dir": str(tmp_path / "data"),
        "data_options": dict(TINY_DATA),
        "epochs": 2,
        "batch_size": 16,
        "lr": 0.05,
        "schedule": "cosine",
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "deterministic": True,
        "progress": False,
        "tensorboard": False,
        "plot": False,
        "out": str(tmp_path / "run"),
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def tiny(tmp_path):
    """Factory: ``tiny(**overrides)`` returns a tiny configuration dict under ``tmp_path``."""
    return lambda **overrides: tiny_settings(tmp_path, **overrides)

