"""Label fidelity: hand-computed statistics and the mixers' exact cases."""

import pytest
import torch

from comixup import CoMixup, CutMix, InputMixup
from comixup.analysis.fidelity import (
    fidelity_from_masks,
    label_fidelity,
    object_masks,
    saliency_in_box,
)


def test_statistics_equal_a_hand_computation():
    # two sources with 4-pixel objects; output 0 shows all of object 0 (weight 1, target 0.75)
    # and one pixel of object 1 at weight 1 (target 0.25); output 1 shows object 1 at 0.5
    masks = torch.zeros(2, 2, 4, dtype=torch.bool)
    masks[0, 0] = True
    masks[1, 1] = True
    mixed = torch.zeros(2, 2, 2, 4)
    mixed[0, 0, 0] = 1.0
    mixed[0, 1, 1, 0] = 1.0
    mixed[1, 1, 1] = 0.5
    ratios = torch.tensor([[0.75, 0.25], [0.0, 1.0]])
    got = fidelity_from_masks(mixed, masks, ratios)
    # coverage f: (0,0) = 1, (0,1) = 1/4, (1,1) = 1; mass = 2
    assert got["visible"] == pytest.approx((0.75 * 1 + 0.25 * 0.25 + 1.0 * 1) / 2)
    assert got["hidden_mass"] == pytest.approx(0.25 / 2)
    assert got["hidden_pairs"] == pytest.approx(1 / 3)
    # object share v: output 0: 1 + 1/4, output 1: 0.5
    assert got["object_mass"] == pytest.approx((1.25 + 0.5) / 2)
    with pytest.raises(ValueError, match="non-empty"):
        fidelity_from_masks(mixed, torch.zeros_like(masks), ratios)


def _batch(b=12):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, 16, 16, generator=g)
    y = torch.arange(b) % 5
    masks = torch.zeros(b, 16, 16, dtype=torch.bool)
    for i in range(b):
        r, c = 2 * (i % 4), 2 * (i % 3)
        masks[i, r:r + 6, c:c + 8] = True
    return x, y, masks


def test_input_mixup_shows_every_object_at_its_target_share():
    x, y, masks = _batch()
    got = label_fidelity(InputMixup(5, generator=torch.Generator().manual_seed(1)), x, y, masks)
    assert got == pytest.approx({"visible": 1.0, "hidden_mass": 0.0, "hidden_pairs": 0.0,
                                 "object_mass": 1.0})


def test_cutmix_with_whole_image_objects_shows_the_pasted_area():
    x, y, _ = _batch()
    full = torch.ones(12, 16, 16, dtype=torch.bool)
    mixer = CutMix(5, generator=torch.Generator().manual_seed(2))
    got = label_fidelity(mixer, x, y, full)
    _, _, params = CutMix(5, generator=torch.Generator().manual_seed(2))(x, y, return_info=True)
    t = params.ratios.float()
    # a whole-image object is covered exactly in its pasted area: f = t, so
    # visible = sum t^2 / sum t
    assert got["visible"] == pytest.approx(float((t * t).sum() / t.sum()), rel=1e-6)
    assert got["object_mass"] == pytest.approx(1.0, rel=1e-6)


def test_comixup_fidelity_is_a_valid_statistic():
    x, y, masks = _batch(20)
    sal = masks.float() + 0.01  # saliency on the objects
    got = label_fidelity(CoMixup(5, generator=torch.Generator().manual_seed(3)), x, y, masks, sal)
    assert 0.0 <= got["hidden_mass"] <= 1.0 and 0.0 < got["visible"] <= 1.0
    with pytest.raises(ValueError, match="masks must have shape"):
        label_fidelity(InputMixup(5), x, y, masks[:, :8])


def test_object_masks_and_saliency_in_box():
    masks = torch.zeros(3, 2, 2, dtype=torch.bool)
    masks[:, 0, 0] = True
    stack = object_masks(masks)
    assert stack.shape == (3, 3, 2, 2) and stack.sum() == 3 and stack[1, 1, 0, 0] == 1
    sal = torch.ones(3, 2, 2)
    assert saliency_in_box(sal, masks) == pytest.approx(0.25)


def test_fidelity_over_training_reads_snapshots_and_last(tmp_path):
    from comixup.analysis.fidelity import fidelity_over_training
    from comixup.train import train

    settings = {"method": "cutmix", "arch": "lenet", "data": "synthetic",
                "data_dir": str(tmp_path / "data"),
                "data_options": {"image_size": 16, "num_train": 64, "num_test": 32},
                "epochs": 2, "batch_size": 16, "device": "cpu", "threads": 1, "progress": False,
                "tensorboard": False, "plot": False, "final_eval": False, "snapshots": [1],
                "out": str(tmp_path / "run")}
    train(settings)
    rows = fidelity_over_training([tmp_path / "run"], batches=2, batch_size=16, progress=False)
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["method"] == "cutmix" and 0.0 <= r["saliency_in_box"] <= 1.0
        assert 0.0 < r["visible"] <= 1.0 and 0.0 <= r["hidden_mass"] <= 1.0


def test_analyze_fidelity_command_writes_the_table(tmp_path, capsys):
    from comixup.cli import main
    from comixup.train import train

    for seed in (0, 1):
        train({"method": "mixup", "arch": "lenet", "data": "synthetic", "seed": seed,
               "data_dir": str(tmp_path / "data"),
               "data_options": {"image_size": 16, "num_train": 64, "num_test": 32},
               "epochs": 1, "batch_size": 16, "device": "cpu", "threads": 1, "progress": False,
               "tensorboard": False, "plot": False, "final_eval": False,
               "out": str(tmp_path / "study" / "mixup" / f"seed{seed}")})
    assert main(["analyze", "fidelity", str(tmp_path / "study"), "--batches", "1", "--batch",
                 "16", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    text = (tmp_path / "out" / "fidelity.md").read_text()
    assert "| mixup | 1 | 2 |" in text and "100.0 ± 0.0" in text  # Input Mixup shows every object
    assert len((tmp_path / "out" / "fidelity.csv").read_text().splitlines()) == 3
    capsys.readouterr()


def test_fidelity_of_a_segmentation_run_uses_the_object_pixels(tmp_path):
    from comixup.analysis.fidelity import fidelity_over_training
    from comixup.train import train

    train({"method": "comixup", "arch": "preactresnet18_unet",
           "arch_options": {"initial_channels": 2}, "data": "synthetic-seg",
           "data_dir": str(tmp_path / "data"),
           "data_options": {"image_size": 16, "num_train": 32, "num_test": 32},
           "epochs": 1, "batch_size": 16, "device": "cpu", "threads": 1, "progress": False,
           "tensorboard": False, "plot": False, "out": str(tmp_path / "run")})
    (row,) = fidelity_over_training([tmp_path / "run"], batches=2, batch_size=16,
                                    progress=False)
    assert row["method"] == "comixup" and 0.0 <= row["saliency_in_box"] <= 1.0
    assert 0.0 < row["visible"] <= 1.0 and row["object_mass"] > 0.0
