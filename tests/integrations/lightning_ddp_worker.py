"""Train the Lightning module of docs/integrations.md on two CPU processes (DDP over gloo) and
write ``rank<N>.json`` per rank in the working directory: the all-reduces of each
``manual_backward``, the final weights' agreement across the ranks and the step's seed.

Usage: ``python lightning_ddp_worker.py METHOD STEPS`` (run by test_lightning.py).
"""

import json
import re
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from comixup import models

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
RECIPE = re.compile(r"```python\n# recipe: lightning-module\n(.*?)```", re.DOTALL)
exec(compile(RECIPE.search(DOC.read_text()).group(1), f"{DOC}#lightning-module", "exec"))

C = 5
REDUCES = []  # one entry per all-reduced gradient bucket


def counting_hook(state, bucket):
    """DDP's default all-reduce (the mean over the ranks), counted."""
    REDUCES.append(1)
    future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return future.then(lambda f: f.value()[0] / dist.get_world_size())


class Reporting(MixupModule):  # noqa: F821 - defined by the docs' block above
    """The docs' module, counting the all-reduces of every manual_backward."""

    def on_train_start(self):
        self.reduces_per_backward = []
        self.trainer.strategy.model.register_comm_hook(None, counting_hook)

    def manual_backward(self, loss, *args, **kwargs):
        before = len(REDUCES)
        super().manual_backward(loss, *args, **kwargs)
        self.reduces_per_backward.append(len(REDUCES) - before)

    def on_train_end(self):
        w = torch.cat([p.detach().flatten() for p in self.model.parameters()])
        gathered = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, w)
        Path(f"rank{self.global_rank}.json").write_text(json.dumps({
            "rank": self.global_rank, "steps": self.trainer.global_step,
            "reduces_per_backward": self.reduces_per_backward,
            "ranks_agree": all(torch.equal(w, v) for v in gathered),
            "seed": self.step.method.generator.initial_seed()}))


def main(method: str, steps: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = models.create("preactresnet18", C, initial_channels=4)
    g = torch.Generator().manual_seed(1)
    n = 2 * 8 * steps  # 8 images per rank and step
    data = TensorDataset(torch.rand(n, 3, 16, 16, generator=g),
                         torch.randint(0, C, (n,), generator=g))
    trainer = L.Trainer(accelerator="cpu", devices=2, max_steps=steps, logger=False,
                        strategy=DDPStrategy(start_method="spawn", process_group_backend="gloo"),
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Reporting(net, method, C, lr=0.05), DataLoader(data, batch_size=8))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
