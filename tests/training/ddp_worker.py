"""Run by tests/training/test_ddp.py under torchrun on 2 CPU processes (gloo).

    ddp_worker.py train OUT DATA_ROOT   the real trainer
    ddp_worker.py nonfinite OUT         train_one_epoch with a NaN loss on rank 1 only

Not a test module itself (pytest collects test_*.py only).
"""

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from detection.config import load_config  # noqa: E402
from detection.training import trainer  # noqa: E402
from detection.training.engine import StepOptions, TrainParts, train_one_epoch  # noqa: E402
from detection.utils import distributed as dist  # noqa: E402

# Instrument the trainer, not the test: what each rank had before and after the loss sync,
# and a digest of the weights each rank validates (DDP must keep them identical).
record = {"stats": [], "weights": []}
_mean_over_ranks, _evaluate = dist.mean_over_ranks, trainer.evaluate


def recording_mean(values, device):
    synced = _mean_over_ranks(values, device)
    record["stats"].append({"local": dict(values), "synced": synced})
    return synced


def digest(tensors) -> str:
    h = hashlib.sha256()
    for name, t in sorted(tensors):
        h.update(name.encode() + t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def recording_evaluate(model, *args, **kwargs):
    # parameters as training left them; the whole state (BatchNorm statistics included)
    # as validation used it, after rank 0's buffers were taken
    params = digest(model.named_parameters())
    results = _evaluate(model, *args, **kwargs)
    record["weights"].append({"params": params, "state": digest(model.state_dict().items())})
    return results


dist.mean_over_ranks = recording_mean
trainer.evaluate = recording_evaluate


def main(out: str, data_root: str) -> None:
    cfg = load_config(None, {
        "name": "ddp", "output_dir": out, "device": "cpu",
        "data": {"format": "coco", "root": data_root, "num_workers": 0},
        "model": {"weights": "none", "min_size": 128, "max_size": 128, "fpn_channels": 32},
        "train": {"epochs": 2, "batch_size": 2, "warmup_iters": 2, "milestones": [], "lr": 0.01},
    })
    run, results = trainer.train(cfg)
    rank = dist.rank()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"world": torch.distributed.get_world_size(),
                                                         "AP": results["coco"]["AP"], "run": str(run),
                                                         **record}))
    dist.cleanup()


def nonfinite(out: str) -> None:
    from tests.training.test_trainer import FakeDetector, fake_loader

    rank, _, device = dist.init("cpu")
    model = torch.nn.parallel.DistributedDataParallel(FakeDetector(bad={2} if rank == 1 else ()))
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    stats = train_one_epoch(TrainParts(model, opt, sched), fake_loader(4), device, StepOptions(max_nonfinite=3))
    Path(out, f"nonfinite{rank}.json").write_text(json.dumps({
        "skipped": stats["skipped_nonfinite"], "iters": stats["iters"], "w": model.module.w.tolist()}))
    dist.cleanup()


if __name__ == "__main__":
    if sys.argv[1] == "train":
        main(sys.argv[2], sys.argv[3])
    else:
        nonfinite(sys.argv[2])
