"""docs/integrations.md: every code block is Python, and the blocks marked ``# recipe:`` run (the
Lightning and Accelerate ones in their own test modules)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import DOC, C, changed, loader, recipes, tiny_net, weights

FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
DDP_WORKER = Path(__file__).with_name("ddp_recipe_worker.py")


def test_every_block_is_python():
    blocks = FENCE.findall(DOC.read_text())
    assert len(blocks) >= 10
    for language, source in blocks:
        assert language == "python", f"a {language or 'plain'} block:\n{source}"
        ast.parse(source)  # a SyntaxError names the line


def test_the_tested_recipes_are_those_the_tests_run():
    assert sorted(recipes()) == ["accelerate-loop", "accelerate-setup", "ddp-accumulation",
                                 "lightning-module", "manifold-model", "plain-accumulation",
                                 "plain-amp", "plain-loop"]


def test_the_plain_loop_trains(run_recipe):
    net = tiny_net()
    before = weights(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    scope = run_recipe("plain-loop", model=net, optimizer=optimizer, loader=loader(2),
                       num_classes=C, device=torch.device("cpu"))
    assert scope["loss"].dim() == 0 and torch.isfinite(scope["loss"])
    assert not scope["loss"].requires_grad
    assert changed(before, net)


def test_the_fp16_loop_trains(run_recipe):
    # fp16 autocast and the gradient scaler, on the CPU; the saliency pass runs in float32
    net = tiny_net()
    before = weights(net)
    dtypes = []
    net.classifier.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    scope = run_recipe("plain-amp", model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.05),
                       loader=loader(2), num_classes=C, device=torch.device("cpu"))
    assert dtypes == [torch.float32, torch.float16] * 2  # per batch: clean, mixed
    assert torch.isfinite(scope["loss"]) and scope["scaler"].get_scale() == 2.0**16
    assert changed(before, net)


@pytest.mark.slow
def test_the_ddp_accumulation_reduces_once_per_window(tmp_path):
    # two ranks, 4 batches, windows of 2: Co-Mixup's 8 forward passes per rank (clean, mixed);
    # the gradients are all-reduced only by the mixed backward ending each window (after the
    # 4th and the 8th forward), not by the clean backward nor inside the window
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(DDP_WORKER)],
        check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [row["rank"] for row in rows] == [0, 1]
    for row in rows:
        assert row["forwards"] == 8 and row["steps"] == 2
        assert row["reduced_at"] and set(row["reduced_at"]) == {4, 8}, row["reduced_at"]
        assert row["ranks_agree"] and row["loss_finite"]
    assert [row["seed"] for row in rows] == [0, 1]


def test_the_manifold_model_follows_the_contract(run_recipe):
    scope = run_recipe("manifold-model", num_classes=C)
    assert torch.isfinite(scope["loss"])
    net = scope["SmallNet"](C)
    x = torch.rand(4, 3, 8, 8)
    depths = []
    for _ in range(20):  # the depth is drawn from (0, 1): both occur
        _, _, info = scope["step"].mixer.forward_mixed(net, x, torch.arange(4) % C,
                                                       return_info=True)
        depths.append(info.depth)
    assert set(depths) == {0, 1}
