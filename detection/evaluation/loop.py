"""One pass of evaluation: a model over a validation loader into an evaluator.

Validation during training, `eval_det.py` and `detection.evaluate` all score through it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.tiles import OVERLAP, merge, tiles
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


def evaluate(model, loader, evaluator, device, amp: str = "none", tile: int = 0) -> dict:
    """Predict and score. Under DDP each rank predicts its share with rank 0's BatchNorm
    statistics, and the evaluator gathers the shares; every rank gets the same results.
    `tile` (model.tile_size): the model was trained on tiles, so it is scored sliced, as it predicts."""
    dist.sync_buffers(model)
    evaluator.reset()
    predict_into(Sliced(model, tile) if tile else model, loader, evaluator, device, amp)
    return evaluator.evaluate()


class Sliced(torch.nn.Module):
    """A detector trained on tiles run on the tiles that cover each image, its detections merged:
    what sliced inference does for such a model (`inference/slicing.py`, no whole-image pass),
    here for the native-size validation images during training."""

    def __init__(self, model, tile: int, overlap: float = OVERLAP, batch: int = 4):
        super().__init__()
        self.model, self.tile, self.overlap, self.batch = model, tile, overlap, batch

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        return [self._one(image) for image in images]

    def _one(self, image: torch.Tensor) -> dict:
        h, w = image.shape[-2:]
        windows = tiles(h, w, self.tile, self.overlap)
        parts = []
        for start in range(0, len(windows), self.batch):
            chunk = windows[start:start + self.batch]
            outs = self.model([image[:, y0:y1, x0:x1] for x0, y0, x1, y1 in chunk])
            for (x0, y0, _, _), o in zip(chunk, outs):
                parts.append((o["boxes"].float().cpu() + torch.tensor([x0, y0, x0, y0], dtype=torch.float32),
                              o["scores"].float().cpu(), o["labels"].cpu()))
        boxes, scores, labels = (torch.cat(p) for p in zip(*parts))
        keep = torch.from_numpy(merge(boxes.numpy(), scores.numpy(), labels.numpy()).astype(np.int64))
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
