"""Labeling statistics: a hand computation, the control's requested values, the command."""

import pytest
import torch

from comixup.analysis.labelings import labeling_statistics
from comixup.mixers.comixup import CoMixupParams


def test_statistics_equal_a_hand_computation():
    # output 0: inputs 0 and 1, one of its 4 cells mixed; output 1: input 1 only; output 2:
    # inputs 0, 1, 2 with two mixed cells
    ratios = torch.tensor([[0.625, 0.375, 0.0], [0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])
    weight = torch.zeros(3, 2, 2, 2)
    weight[..., 0] = 1.0
    weight[0, 0, 0] = torch.tensor([0.5, 0.5])
    weight[2, 0, 0] = torch.tensor([0.5, 0.5])
    weight[2, 1, 1] = torch.tensor([0.5, 0.5])
    got = labeling_statistics(CoMixupParams(ratios=ratios, weight=weight))
    assert got["inputs_per_output"] == pytest.approx((2 + 1 + 3) / 3)
    assert got["mixed_cells"] == pytest.approx(3 / 12)
    assert got["mixed_cells_multi"] == pytest.approx(3 / 8)
    assert got["histogram"] == [1, 1, 1]
    with pytest.raises(ValueError, match="CoMixupParams"):
        labeling_statistics(CoMixupParams(ratios=ratios))


def test_the_controls_statistics_are_what_it_was_asked_for():
    from comixup import CoMixup

    mixer = CoMixup(10, partition=20, labeling="random", random_inputs=2.4, random_mixed=0.3,
                    generator=torch.Generator().manual_seed(0))
    x = torch.rand(4000, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    got = labeling_statistics(mixer(x, torch.zeros(4000, dtype=torch.long),
                                    torch.rand(4000, 8, 8), return_info=True)[2])
    assert got["inputs_per_output"] == pytest.approx(2.4, abs=0.03)
    assert got["mixed_cells"] == pytest.approx(0.3, abs=0.01)
    assert got["mixed_cells_multi"] == got["mixed_cells"]  # every output has two or more


def _train(tmp_path, name, **options):
    from comixup.train import train

    train({"method": "comixup", "method_options": options, "arch": "lenet", "data": "synthetic",
           "data_dir": str(tmp_path / "data"),
           "data_options": {"image_size": 16, "num_train": 16, "num_test": 32},
           "epochs": 2, "batch_size": 16, "device": "cpu", "threads": 1, "progress": False,
           "tensorboard": False, "plot": False, "final_eval": False, "snapshots": [1],
           "out": str(tmp_path / "study" / name / "seed0")})


def test_analyze_labelings_reports_solver_and_control(tmp_path, capsys):
    from comixup.cli import main

    _train(tmp_path, "comixup")
    _train(tmp_path, "random", labeling="random", random_inputs=2.0, random_mixed=0.5)
    assert main(["analyze", "labelings", str(tmp_path / "study"), "--batches", "2",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    text = (tmp_path / "out" / "labelings.md").read_text()
    rows = (tmp_path / "out" / "labelings.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # two runs, each at epoch 1 (snapshot) and 2 (last.pt)
    # the control draws exactly two inputs per output and mixes half its cells, every epoch
    control = [r for r in rows[1:] if r.startswith("random,")]
    assert len(control) == 2 and all(",2.0," in r for r in control)
    assert "| comixup | 2 |" in text and "| random | 2 | 2.00 ± 0.00 |" in text
    capsys.readouterr()
    assert main(["analyze", "labelings", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("comixup: error:")
