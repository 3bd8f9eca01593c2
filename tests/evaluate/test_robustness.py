"""Background corruption (Appendix G, Table 3): exact properties of every mode."""

import math

import pytest
import torch

from comixup.evaluate import BackgroundCorrupted, corrupt_background, derangement, robustness

from .conftest import ToyBoxes

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
BOXES = [[(2, 3, 10, 9)], [(0, 0, 16, 4), (12, 12, 16, 16)], [(5, 5, 6, 6)], []]


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(4, 3, 16, 16, generator=g)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def inside_mask():
    m = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
    m[0, :, 3:9, 2:10] = True
    m[1, :, 0:4, :] = True
    m[1, :, 12:, 12:] = True
    m[2, :, 5, 5] = True
    return m.expand(4, 3, 16, 16)


@pytest.mark.parametrize("mode", ["replace", "gaussian", "gaussian_add"])
def test_inside_the_boxes_nothing_changes(mode):
    x = batch()
    out = corrupt_background(x, BOXES, mode, generator=torch.Generator().manual_seed(3),
                             mean=MEAN, std=STD)
    inside = inside_mask()
    assert torch.equal(out[inside], x[inside])          # bit for bit
    assert not torch.equal(out[~inside], x[~inside])
    again = corrupt_background(x, BOXES, mode, generator=torch.Generator().manual_seed(3),
                               mean=MEAN, std=STD)
    assert torch.equal(out, again)                      # deterministic for a fixed generator
    other = corrupt_background(x, BOXES, mode, generator=torch.Generator().manual_seed(4),
                               mean=MEAN, std=STD)
    assert not torch.equal(out, other)


def test_replaced_pixels_come_from_the_permuted_image():
    x, y = batch(0), batch(1)
    out = corrupt_background(x, BOXES, "replace", other=y)
    inside = inside_mask()
    assert torch.equal(out[~inside], y[~inside])
    # without `other`: a derangement of the batch drawn from the generator
    out = corrupt_background(x, BOXES, "replace", generator=torch.Generator().manual_seed(7))
    perm = derangement(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out[~inside], x[perm][~inside])
    assert (perm != torch.arange(4)).all()


def test_derangement():
    for n in (2, 3, 10, 1000):
        p = derangement(n, generator=torch.Generator().manual_seed(n))
        assert sorted(p.tolist()) == list(range(n)) and (p != torch.arange(n)).all()
    assert derangement(2, generator=torch.Generator()).tolist() == [1, 0]
    a = derangement(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, derangement(50, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        derangement(1, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        derangement(5, generator=0)


def pixels_outside(mode, x, boxes, seed=0):
    out = corrupt_background(x, boxes, mode, generator=torch.Generator().manual_seed(seed),
                             mean=MEAN, std=STD)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return out * std + mean


def test_gaussian_background_is_clipped_noise():
    # Appendix G: x * z + eps * (1 - z), eps ~ N(0, 0.1^2), clipped to [0, 1]
    x = torch.zeros(8, 3, 64, 64)
    p = pixels_outside("gaussian", x, [[]] * 8)  # no box: every pixel is background
    assert p.min() >= -1e-6 and p.max() <= 1 + 1e-6
    sigma = 0.1
    mean = sigma / math.sqrt(2 * math.pi)                     # E[max(eps, 0)] = 0.0399
    std = sigma * math.sqrt(0.5 - 1 / (2 * math.pi))          # 0.0584
    assert p.mean().item() == pytest.approx(mean, abs=1e-3)
    assert p.std().item() == pytest.approx(std, abs=1e-3)
    assert (p.abs() < 1e-6).float().mean().item() == pytest.approx(0.5, abs=0.01)


def test_gaussian_add_adds_noise():
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = (torch.full((8, 3, 64, 64), 0.5) - mean) / std         # mid-grey: no clipping at 5 sigma
    p = pixels_outside("gaussian_add", x, [[]] * 8)
    eps = p - 0.5
    assert eps.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert eps.std().item() == pytest.approx(0.1, abs=1e-3)
    dark = pixels_outside("gaussian_add", (torch.zeros(2, 3, 32, 32) - mean) / std, [[]] * 2)
    assert dark.min() >= -1e-6 and (dark.abs() < 1e-6).float().mean() > 0.4  # clipped at 0


def test_corrupt_background_errors():
    x = batch()
    with pytest.raises(ValueError, match="mode must be one of"):
        corrupt_background(x, BOXES, "blur")
    with pytest.raises(ValueError, match="mean is required"):
        corrupt_background(x, BOXES, "gaussian", generator=torch.Generator())
    with pytest.raises(TypeError, match="generator must be"):
        corrupt_background(x, BOXES, "gaussian", mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="boxes must hold 4 samples"):
        corrupt_background(x, BOXES[:2], "replace", other=x)
    with pytest.raises(ValueError, match="other must be a tensor of shape"):
        corrupt_background(x, BOXES, "replace", other=x[:2])
    with pytest.raises(ValueError, match="mean must have one value per channel"):
        corrupt_background(x, BOXES, "gaussian", generator=torch.Generator(), mean=(0, 0),
                           std=STD)


def toy():
    boxes = [(1, 1, 4, 4), (2, 3, 7, 8), (0, 0, 8, 2), (2, 2, 6, 6), (4, 4, 8, 8)]
    return ToyBoxes(boxes, [0, 0, 0, 1, 1])


def test_dataset_wrapper_replaces_with_the_whole_test_set():
    ds = toy()
    wrapped = BackgroundCorrupted(ds, "replace", seed=5)
    perm = wrapped.permutation
    assert torch.equal(perm, derangement(5, generator=torch.Generator().manual_seed(5)))
    for i in range(len(ds)):
        x, y = wrapped[i]
        inside = torch.zeros(8, 8, dtype=torch.bool)
        x0, y0, x1, y1 = ds.box_list[i]
        inside[int(y0):int(y1), int(x0):int(x1)] = True
        assert y == ds.targets[i]
        assert torch.equal(x[0][inside], ds[i][0][0][inside])
        assert torch.equal(x[0][~inside], ds[int(perm[i])][0][0][~inside])


def test_dataset_wrapper_noise_is_per_sample_and_seeded():
    ds = toy()
    a = BackgroundCorrupted(ds, "gaussian", seed=1)
    b = BackgroundCorrupted(ds, "gaussian", seed=1)
    assert torch.equal(a[3][0], b[3][0])              # same seed, any order of access
    assert torch.equal(torch.stack([a[i][0] for i in (4, 3)]),
                       torch.stack([b[i][0] for i in (4, 3)]))
    assert not torch.equal(a[3][0], BackgroundCorrupted(ds, "gaussian", seed=2)[3][0])
    with pytest.raises(ValueError, match="has no bounding boxes"):
        BackgroundCorrupted(torch.utils.data.TensorDataset(torch.zeros(2, 1)), "replace")


def test_robustness_errors_and_increase(oracle):
    ds = toy()
    out = robustness(oracle, ds, 2, modes=["replace", "gaussian", "gaussian_add"], batch_size=2)
    assert out["clean_error"] == pytest.approx(40.0)  # the oracle predicts class 0 for these images
    for mode in ("replace", "gaussian", "gaussian_add"):
        assert out[mode]["samples"] == 5
        assert out[mode]["increase"] == out[mode]["error"] - out["clean_error"]
    with pytest.raises(ValueError, match="modes must be"):
        robustness(oracle, ds, 2, modes=["nope"])
