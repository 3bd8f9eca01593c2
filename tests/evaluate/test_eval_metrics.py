"""comixup.evaluate: top-1/top-5 error and ECE against a hand-computed example."""

import math

import pytest
import torch

from comixup.evaluate import N_BINS, evaluate, plot_reliability, reliability_bins

# Four samples over 6 classes; the model returns log-probabilities, so softmax gives them back.
PROBS = torch.tensor([
    [0.95, 0.01, 0.01, 0.01, 0.01, 0.01],  # label 0: conf .95, correct      (bin 9)
    [0.92, 0.04, 0.01, 0.01, 0.01, 0.01],  # label 1: conf .92, wrong, top-5 (bin 9)
    [0.62, 0.30, 0.02, 0.02, 0.02, 0.02],  # label 0: conf .62, correct      (bin 6)
    [0.35, 0.33, 0.12, 0.10, 0.06, 0.04],  # label 5: conf .35, wrong, not in top-5 (bin 3)
])
LABELS = torch.tensor([0, 1, 0, 5])
# ECE = 2/4 |0.5 - 0.935| + 1/4 |1 - 0.62| + 1/4 |0 - 0.35| = 0.2175 + 0.095 + 0.0875 = 0.4
ECE = 40.0


class LogProbs(torch.nn.Module):
    """A "model" whose logits are the log of its input rows."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.log() + self.dummy


def loader(batch_size):
    return [(PROBS[i:i + batch_size], LABELS[i:i + batch_size]) for i in range(0, 4, batch_size)]


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_hand_computed_example(batch_size):
    model = LogProbs().train()
    out = evaluate(model, loader(batch_size), 6, "cpu")
    assert out["error"] == pytest.approx(50.0, abs=1e-4)
    assert out["error_top5"] == pytest.approx(25.0, abs=1e-4)
    assert out["ece"] == pytest.approx(ECE, abs=1e-4)
    nll = -sum(math.log(PROBS[i, LABELS[i]].item()) for i in range(4)) / 4
    assert out["loss"] == pytest.approx(nll, rel=1e-5)
    assert out["samples"] == 4
    assert model.training  # mode restored


def test_bins_match_the_example():
    out = evaluate(LogProbs(), loader(2), 6, "cpu")
    bins = out["bins"]
    assert bins["count"] == [0, 0, 0, 1, 0, 0, 1, 0, 0, 2]
    assert bins["correct_sum"][9] == 1 and bins["correct_sum"][6] == 1
    assert bins["confidence_sum"][9] == pytest.approx(0.95 + 0.92, abs=1e-6)
    # the ECE recomputed from the bins equals the torchmetrics value
    total = sum(bins["count"])
    ece = sum(abs(c - s) for c, s, n in zip(bins["correct_sum"], bins["confidence_sum"],
                                            bins["count"]) if n) / total
    assert 100 * ece == pytest.approx(out["ece"], abs=1e-4)


def test_reliability_bins_edges():
    b = reliability_bins(torch.tensor([0.0, 0.1, 0.999, 1.0]), torch.tensor([1, 0, 1, 1]))
    assert b["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert len(b["count"]) == N_BINS
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(torch.zeros(2), torch.zeros(2), n_bins=0)
    with pytest.raises(ValueError, match="same length"):
        reliability_bins(torch.zeros(2), torch.zeros(3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        evaluate(LogProbs(), loader(4), 1, "cpu")
    with pytest.raises(ValueError, match="no samples"):
        evaluate(LogProbs(), [], 6, "cpu")
    with pytest.raises(ValueError, match="num_classes=5"):
        evaluate(LogProbs(), loader(4), 5, "cpu")


def test_top5_with_fewer_classes_is_top_c():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    out = evaluate(LogProbs(), [(probs, torch.tensor([2, 2]))], 3, "cpu")
    assert out["error"] == pytest.approx(100.0)
    assert out["error_top5"] == pytest.approx(0.0)


def test_plot_reliability(tmp_path):
    out = evaluate(LogProbs(), loader(4), 6, "cpu")
    fig = plot_reliability(out["bins"], tmp_path / "r.png", title="example")
    assert (tmp_path / "r.png").stat().st_size > 0
    assert "ECE 40.00%" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="empty"):
        plot_reliability({"count": [0] * 10, "confidence_sum": [0] * 10, "correct_sum": [0] * 10})


# -- per-pixel logits (segmentation) -----------------------------------------------------------


def _as_image(rows: torch.Tensor) -> torch.Tensor:
    """The four samples as the four pixels of one 2 x 2 image: (1, C, 2, 2)."""
    return rows.t().reshape(1, -1, 2, 2)


def test_per_pixel_metrics_equal_the_per_sample_ones_on_the_same_numbers():
    pixels = [(_as_image(PROBS), LABELS.reshape(1, 2, 2))]
    dense = evaluate(LogProbs(), pixels, 6, "cpu")
    flat = evaluate(LogProbs(), loader(4), 6, "cpu")
    for key in ("error", "error_top5", "ece", "loss", "samples"):
        assert dense[key] == pytest.approx(flat[key]), key
    for key in flat["bins"]:
        assert dense["bins"][key] == pytest.approx(flat["bins"][key]), key
    assert dense["images"] == 1
    # predictions 0, 0, 0, 0 against labels 0, 1, 0, 5: IoU 2/4 for class 0, 0 for 1 and 5,
    # classes 2-4 absent
    assert dense["iou"] == [50.0, 0.0, None, None, None, 0.0]
    assert dense["miou"] == pytest.approx(50.0 / 3)


def test_ignored_pixels_are_left_out_of_every_metric():
    labels = LABELS.clone().reshape(1, 2, 2)
    labels[0, 1, 1] = -100  # the fourth sample
    dense = evaluate(LogProbs(), [(_as_image(PROBS), labels)], 6, "cpu")
    flat = evaluate(LogProbs(), [(PROBS[:3], LABELS[:3])], 6, "cpu")
    for key in ("error", "ece", "loss", "samples"):
        assert dense[key] == pytest.approx(flat[key]), key
    assert dense["iou"] == [pytest.approx(200 / 3), 0.0, None, None, None, None]


def test_per_pixel_logits_need_class_maps_in_range():
    with pytest.raises(ValueError, match="class maps"):
        evaluate(LogProbs(), [(_as_image(PROBS), LABELS)], 6, "cpu")
    with pytest.raises(ValueError, match="out of range"):
        evaluate(LogProbs(), [(_as_image(PROBS), torch.full((1, 2, 2), 6))], 6, "cpu")
