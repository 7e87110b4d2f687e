"""One pass of evaluation: a model over a validation loader into an evaluator.

Validation during training, `eval_det.py` and `detection.evaluate` all score through it.
"""

from __future__ import annotations

import torch

from ..utils import distributed as dist
from ..utils.precision import autocast
from ..utils.progress import Progress


@torch.no_grad()
def predict_into(model, loader, evaluator, device, amp: str = "none") -> None:
    """Run `model` over `loader`, handing every batch to `evaluator.process`."""
    model.eval()
    bar = Progress(loader, "eval")
    for images, targets in bar:
        with autocast(device, amp):
            outputs = model([i.to(device, non_blocking=True) for i in images])
        evaluator.process(targets, outputs)
        bar.update()
    bar.close()


def evaluate(model, loader, evaluator, device, amp: str = "none") -> dict:
    """Predict and score. Under DDP each rank predicts its share with rank 0's BatchNorm
    statistics, and the evaluator gathers the shares; every rank gets the same results."""
    dist.sync_buffers(model)
    evaluator.reset()
    predict_into(model, loader, evaluator, device, amp)
    return evaluator.evaluate()
