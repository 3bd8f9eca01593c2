"""Run the ``ddp-accumulation`` block of docs/integrations.md on one rank of a torchrun launch
(CPU, gloo) and write ``rank<N>.json`` in the working directory: at which forward pass of the
DDP model each all-reduce came, the optimizer steps, and whether the ranks' final weights
agree.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2
ddp_recipe_worker.py`` (run by test_docs.py).
"""

import json
import re
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from comixup import models

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
RECIPE = re.compile(r"```python\n# recipe: ddp-accumulation\n(.*?)```", re.DOTALL)
C = 5
BATCHES = 4


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # the same initial weights on every rank
    model = torch.nn.parallel.DistributedDataParallel(
        models.create("preactresnet18", C, initial_channels=4))
    forwards, reduced_at, steps = [0], [], [0]
    model.register_forward_pre_hook(lambda module, args: forwards.__setitem__(0, forwards[0] + 1))

    def counting_hook(state, bucket):  # DDP's default all-reduce, noting the forward it follows
        reduced_at.append(forwards[0])
        future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
        return future.then(lambda f: f.value()[0] / dist.get_world_size())

    model.register_comm_hook(None, counting_hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    optimizer.register_step_post_hook(lambda opt, args, kwargs: steps.__setitem__(0, steps[0] + 1))
    g = torch.Generator().manual_seed(1 + rank)  # each rank its own shard
    n = 8 * BATCHES
    data = TensorDataset(torch.rand(n, 3, 16, 16, generator=g),
                         torch.randint(0, C, (n,), generator=g))
    scope = {"__name__": "integrations_recipe", "model": model, "optimizer": optimizer,
             "loader": DataLoader(data, batch_size=8), "num_classes": C,
             "device": torch.device("cpu")}
    exec(compile(RECIPE.search(DOC.read_text()).group(1), f"{DOC}#ddp-accumulation", "exec"),
         scope)
    w = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, w)
    Path(f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "forwards": forwards[0], "reduced_at": reduced_at, "steps": steps[0],
        "ranks_agree": all(torch.equal(w, v) for v in gathered),
        "seed": scope["step"].method.generator.initial_seed(),
        "loss_finite": bool(torch.isfinite(scope["loss"]))}))
    del scope, model  # the DDP model (its reducer and comm hook) before the process group
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
