"""Figure 2 statistics against hand computations on hand-built labelings."""

import numpy as np
import pytest
import torch

from comixup.analysis.mixing import (
    batch_saliency,
    diversity,
    input_histogram,
    inputs_per_output,
    make_mixer,
    mix_batch,
    mixing_statistics,
    normalize_saliency,
)

# Four outputs of four inputs: output 0 is input 0; output 1 half 0, half 1; output 2 mixes
# 1, 2, 3 as 1/4, 1/4, 1/2; output 3 is input 3.
R = np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.25, 0.25, 0.5], [0, 0, 0, 1.0]])


def test_inputs_per_output_and_histogram():
    counts = inputs_per_output(R)
    assert counts.tolist() == [1, 2, 3, 1]
    assert input_histogram(counts, 4).tolist() == [2, 1, 1, 0]
    assert input_histogram([1, 9], 3).tolist() == [1, 0, 1]  # the last bin holds the rest


def test_diversity_by_hand():
    # Off-diagonal dot products: (0,1) 0.5, (1,2) 0.125, (2,3) 0.5, others 0; each counted
    # twice: 2 * 1.125 = 2.25, divided by m = 4.
    assert diversity(R) == pytest.approx(1 - 2.25 / 4)
    assert diversity(np.eye(5)) == 1.0
    assert diversity(torch.full((2, 2), 0.5)) == pytest.approx(1 - 2 * 0.5 / 2)


def test_batch_saliency_by_hand_on_a_hand_built_labeling():
    # Two 2x2 inputs, normalized saliency s0 = [[.4, .1], [.1, .4]], s1 = [[.7, .1], [.1, .1]].
    sal = torch.tensor([[[4.0, 1], [1, 4]], [[7.0, 1], [1, 1]]])
    s = normalize_saliency(sal)
    assert torch.allclose(s.sum((1, 2)), torch.ones(2))
    # Output 0 shows input 1 at the top-left pixel and input 0 elsewhere; output 1 is the
    # 50/50 mix of the two everywhere.
    out0 = torch.where(torch.tensor([[True, False], [False, False]]), s[1], s[0])
    out1 = 0.5 * s[0] + 0.5 * s[1]
    # out0 carries .7 + .1 + .1 + .4 = 1.3, out1 carries 1: the batch saliency is 1.15.
    assert batch_saliency(torch.stack([out0, out1])) == pytest.approx(1.15)


def _batch(b=8, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=gen)
    sal = torch.rand(b, size, size, generator=gen) ** 4
    return x, sal


@pytest.mark.parametrize("method", ["none", "mixup"])
def test_no_mixing_and_input_mixup_carry_exactly_one(method):
    x, sal = _batch()
    out = mix_batch(make_mixer(method, 8, seed=1), x, sal)
    assert batch_saliency(out["saliency"]) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(out["ratios"].sum(1).float(), torch.ones(8))


def test_cutmix_batch_saliency_is_one_per_batch():
    # One box and a permutation for the whole batch: the saliency moved out of the outputs
    # is moved into others, so the batch total is exactly one per output.
    x, sal = _batch()
    out = mix_batch(make_mixer("cutmix", 8, seed=3), x, sal)
    assert batch_saliency(out["saliency"]) == pytest.approx(1.0, abs=1e-5)


def test_comixup_mixed_saliency_equals_the_labeling_by_hand():
    # Co-Mixup's output j carries sum_k sum_i z[j, k, i] * (mass of s_i in cell k).
    x, sal = _batch(6, 16, seed=2)
    mixer = make_mixer("comixup", 6, seed=5, partition=6)
    out = mix_batch(mixer, x, sal)
    _, _, info = make_mixer("comixup", 6, seed=5, partition=6)(x, torch.arange(6), sal,
                                                                return_info=True)
    z = info.labelings[0]  # (6, 4, 4, 6)
    s = normalize_saliency(sal).double()
    mass = s.view(6, 4, 4, 4, 4).sum((2, 4)).numpy()  # (input, cell row, cell col)
    expected = np.einsum("jrci,irc->j", z, mass)
    got = out["saliency"].double().flatten(1).sum(1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(out["ratios"].double().numpy(), z.mean((1, 2)), atol=1e-6)
    # The images are mixed with the same labeling as a second call of the same seed.
    x_mix = make_mixer("comixup", 6, seed=5, partition=6)(x, torch.arange(6), sal)[0]
    np.testing.assert_allclose(out["x_mix"].numpy(), x_mix.numpy(), atol=1e-6)


def test_puzzlemix_mixed_saliency_keeps_the_ratios_and_is_a_mass():
    x, sal = _batch(8, 32, seed=4)
    out = mix_batch(make_mixer("puzzlemix", 8, seed=2), x, sal)
    assert out["saliency"].shape == (8, 32, 32)
    assert (out["saliency"] >= 0).all()
    assert torch.allclose(out["ratios"].sum(1).float(), torch.ones(8), atol=1e-6)


def test_mixing_statistics_of_no_mixing():
    x, sal = _batch(4, 16)
    st = mixing_statistics("none", x, sal, seeds=[0, 1])
    assert st["histogram"].tolist()[:2] == [4.0, 0.0]
    assert st["mode_inputs"] == 1 and st["diversity"] == 1.0
    assert st["batch_saliency"] == pytest.approx(1.0)


def test_unknown_method_is_a_value_error():
    with pytest.raises(ValueError, match="method"):
        make_mixer("nope", 4)
