"""One pass of evaluation: a model over a validation loader into an evaluator.

Validation during training, `eval_det.py` and `detection.evaluate` all score through it.
"""

from __future__ import annotations

import torch

from ..data.tiles import OVERLAP, detect_merged, tiles
from ..utils import distributed as dist
from ..utils.precision import autocast
from ..utils.progress import Progress


@torch.no_grad()
def predict_into(model, loader, evaluator, device, amp: str = "none", what: str = "eval") -> None:
    """Run `model` over `loader`, handing every batch to `evaluator.process`; `what` names the
    pass in the progress lines."""
    model.eval()
    bar = Progress(loader, what)
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

        def detect(chunk):
            outs = self.model([image[:, y0:y1, x0:x1] for x0, y0, x1, y1 in chunk])
            return [(o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy(), o["labels"].cpu().numpy())
                    for o in outs]

        boxes, scores, labels = detect_merged(tiles(h, w, self.tile, self.overlap), detect, self.batch)
        return {"boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores),
                "labels": torch.from_numpy(labels)}
