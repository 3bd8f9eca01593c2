"""Worker of test_distributed.py, run by torchrun: train, then save this rank's weights.

Usage: ``torchrun --standalone --nproc_per_node 2 ddp_worker.py CONFIG_JSON OUT_DIR``.
"""

import json
import os
import sys

import torch

from comixup.train import train

if __name__ == "__main__":
    torch.set_num_threads(1)
    config, out = json.loads(sys.argv[1]), sys.argv[2]
    result = train(config)
    rank = int(os.environ["RANK"])
    torch.save(result.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({k: v for k, v in result.metrics.items() if k != "bins"}, f)
