"""Run by tests/test_ddp.py under torchrun: the real trainer on 2 CPU processes (gloo).

Not a test module itself (pytest collects test_*.py only).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from detection import distributed as dist  # noqa: E402
from detection.config import load_config  # noqa: E402
from detection.trainer import train  # noqa: E402


def main(out: str, data_root: str) -> None:
    cfg = load_config(None, {
        "name": "ddp", "output_dir": out, "device": "cpu",
        "data": {"format": "coco", "root": data_root, "num_workers": 0},
        "model": {"weights": "none", "min_size": 128, "max_size": 128, "fpn_channels": 32},
        "train": {"epochs": 1, "batch_size": 2, "warmup_iters": 2, "milestones": [], "lr": 0.01},
    })
    run, results = train(cfg)
    # what each rank would log after the sync: the mean over ranks of a rank-dependent value
    rank = dist.rank()
    synced = dist.mean_over_ranks({"loss": 1.0 + rank, "other": 10.0 * rank}, torch.device("cpu"))
    Path(out, f"rank{rank}.json").write_text(json.dumps({"world": torch.distributed.get_world_size(),
                                                         "synced": synced, "AP": results["coco"]["AP"],
                                                         "run": str(run)}))
    dist.cleanup()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
