"""The GPU code paths on the CPU: ``amp_cpu`` runs autocast, the fp16
gradient scaler and channels-last on the CPU, so CI exercises them without a GPU.

Every method trains one step under bf16 autocast with channels-last batches and model; the fp16
gradient scaler skips a step whose gradients overflow (forced by a huge initial scale) and the
saliency methods still mix that step (the non-finite saliency becomes zeros before the mixer).
"""

import pytest
import torch

from comixup.methods import method_names
from comixup.run import autocast_dtype, use_channels_last
from comixup.train import TrainConfig
from comixup.train import distributed as ddp
from comixup.train.engine import _Run

from .conftest import tiny_settings


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("amp_cpu_data")


def _run(tmp_path, data_dir, **overrides) -> _Run:
    """A built engine run of one training step (batch 8 of 8 training images)."""
    settings = tiny_settings(tmp_path, data_dir=str(data_dir), amp=True, amp_cpu=True,
                             channels_last=True, batch_size=8, limit_train=8, limit_test=8,
                             epochs=1, deterministic=False)
    settings.update(overrides)
    cfg = TrainConfig.from_dict(settings)
    run = _Run(cfg, ddp.setup("cpu"), torch.device("cpu"))
    run.build()
    return run


def test_the_cpu_trains_in_full_precision_unless_asked():
    cpu = torch.device("cpu")
    assert autocast_dtype(TrainConfig(amp=True), cpu) is None
    assert not use_channels_last(TrainConfig(channels_last=True), cpu)
    assert autocast_dtype(TrainConfig(amp=True, amp_cpu=True), cpu) is torch.bfloat16
    assert autocast_dtype(TrainConfig(amp=True, amp_cpu=True, amp_dtype="fp16"), cpu) \
        is torch.float16
    assert autocast_dtype(TrainConfig(amp=False, amp_cpu=True), cpu) is None
    assert use_channels_last(TrainConfig(channels_last=True, amp_cpu=True), cpu)
    with pytest.raises(TypeError, match="amp_cpu"):
        TrainConfig(amp_cpu="yes").validate()


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_one_step_under_bf16_autocast_and_channels_last(
        method, tmp_path, data_dir, monkeypatch):
    run = _run(tmp_path, data_dir, method=method)
    assert run.amp_dtype is torch.bfloat16 and run.channels_last
    assert not run.scaler.is_enabled()  # bf16 needs no gradient scaler
    conv = next(m for m in run.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = {}
    real_step = run.method.method.step  # the TrainStep around the method

    def step(model, x, y, backward):
        seen["channels_last"] = x.is_contiguous(memory_format=torch.channels_last)
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = torch.get_autocast_dtype("cpu")
        return real_step(model, x, y, backward)

    monkeypatch.setattr(run.method.method, "step", step)
    before = [p.detach().clone() for p in run.net.parameters()]
    row = run.train_one_epoch(0)
    assert seen == {"channels_last": True, "autocast": True, "dtype": torch.bfloat16}
    assert torch.isfinite(torch.tensor(row["train_loss"]))
    assert any(not torch.equal(a, p) for a, p in zip(before, run.net.parameters()))
    metrics = run.evaluate()  # evaluation under the same autocast and memory format
    assert 0 <= metrics["error"] <= 100


@pytest.mark.parametrize("method", ["vanilla", "comixup"])
def test_fp16_scaler_skips_a_step_whose_gradients_overflow(method, tmp_path, data_dir):
    run = _run(tmp_path, data_dir, method=method, amp_dtype="fp16")
    assert run.amp_dtype is torch.float16 and run.scaler.is_enabled()
    # a scale so large that the fp16 backward overflows: the scaler must skip the step
    run.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 100)
    before = [p.detach().clone() for p in run.net.parameters()]
    run.train_one_epoch(0)
    assert all(torch.equal(a, p) for a, p in zip(before, run.net.parameters()))
    assert run.scaler.get_scale() == 2.0 ** 99  # halved by the skip
