"""comixup.TrainStep under PyTorch Lightning: the module of docs/integrations.md, trained by a
real ``lightning.Trainer`` on the CPU (manual optimization; the step's backward is
``self.manual_backward``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import C, changed, loader, tiny_net, weights

STEPS = 3
WORKER = Path(__file__).with_name("lightning_ddp_worker.py")
NORMALIZATION = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def _trainer(lightning, steps=STEPS, **options):
    return lightning.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, **options)


def _recording(run_recipe):
    """The docs' MixupModule, recording the loss of every training step."""
    base = run_recipe("lightning-module")["MixupModule"]

    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.losses = []

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.losses.append(float(loss))
            return loss

    return Recording


@pytest.mark.parametrize(("method", "options"), [("comixup", {}),
                                                 ("puzzlemix", NORMALIZATION),
                                                 ("cutmix", {})])
def test_the_docs_module_trains(lightning, run_recipe, method, options):
    net = tiny_net()
    before = weights(net)
    module = _recording(run_recipe)(net, method, C, lr=0.05, **options)
    trainer = _trainer(lightning)
    trainer.fit(module, loader(batches=STEPS))
    assert trainer.global_step == STEPS  # one optimizer step per batch
    assert len(module.losses) == STEPS and all(math.isfinite(v) for v in module.losses)
    assert changed(before, net)
    assert math.isfinite(float(trainer.callback_metrics["loss"]))
    assert module.step.name == method


def test_manual_backward_is_the_steps_backward(lightning, run_recipe):
    # Co-Mixup's two losses (clean, then mixed) both go through Lightning's manual_backward,
    # and the weights move as one optimizer step on their summed gradients
    recording = _recording(run_recipe)
    calls = []

    class Counting(recording):
        def manual_backward(self, loss, *args, **kwargs):
            calls.append(self.trainer.global_step)
            super().manual_backward(loss, *args, **kwargs)

    module = Counting(tiny_net(), "comixup", C, lr=0.05)
    trainer = _trainer(lightning, steps=1)
    trainer.fit(module, loader(batches=1))
    assert calls == [0, 0]

    # the same batch in a plain loop: the step's default backward, one step of the module's SGD
    from comixup import TrainStep

    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    x, y = next(iter(loader(batches=1)))
    net.train()
    opt.zero_grad()
    expected = TrainStep("comixup", C, seed=0)(net, x, y)
    opt.step()
    assert module.losses == [float(expected)]
    for p, q in zip(module.model.parameters(), net.parameters()):
        torch.testing.assert_close(p, q)


def test_bf16_mixed_precision(lightning, run_recipe):
    # Lightning's precision plugin runs training_step under autocast; the saliency pass of the
    # step leaves it, the mixed pass runs in bfloat16
    net = tiny_net()
    before = weights(net)
    module = _recording(run_recipe)(net, "comixup", C, lr=0.05)
    dtypes = []
    net.classifier.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    trainer = _trainer(lightning, steps=2, precision="bf16-mixed")
    trainer.fit(module, loader(batches=2))
    assert trainer.global_step == 2 and all(math.isfinite(v) for v in module.losses)
    assert dtypes == [torch.float32, torch.bfloat16] * 2  # per step: clean, mixed
    assert changed(before, net)


@pytest.mark.slow
def test_the_docs_module_under_ddp(lightning, tmp_path):
    # Lightning wraps the whole module in DDP, not the step's model: the module passes the
    # strategy's block_backward_sync as the step's no_sync, so that of Co-Mixup's two backward
    # calls only the mixed one all-reduces (the docs' note). The ranks end equal and each draws
    # from its own seed.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, str(WORKER), "comixup", "2"], check=False, env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [row["rank"] for row in rows] == [0, 1]
    for row in rows:
        assert row["steps"] == 2 and row["ranks_agree"]
        per_backward = row["reduces_per_backward"]
        assert len(per_backward) == 4, per_backward  # per step: clean, mixed
        assert per_backward[0::2] == [0, 0] and min(per_backward[1::2]) >= 1, per_backward
    assert [row["seed"] for row in rows] == [0, 1]
