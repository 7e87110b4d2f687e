"""A model scored on a config's validation split: what `eval_det.py` and `detection.evaluate` share.

A checkpoint runs as the PyTorch detector it is (the numbers validation printed); an exported
file runs through its backend, fed the same full-size images, so its AP is the file's own.
"""

from __future__ import annotations

import torch

from ..errors import DataError, UnknownClassesError
from ..inference.loading import LoadedModel


class PredictorModule(torch.nn.Module):
    """An exported model (a Predictor) as a module of the validation loop's form: float CHW
    images in [0, 1] in, `{boxes, scores, labels 1..K}` in the images' own pixels out."""

    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    @torch.no_grad()
    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        arrays = [t.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy() for t in images]
        out = []
        for r in self.predictor.predict(arrays, score=0.0, max_det=None, raw_scores=True):
            out.append({"boxes": torch.from_numpy(r.boxes), "scores": torch.from_numpy(r.scores),
                        "labels": torch.from_numpy(r.labels + 1)})
        return out


def evaluate_model(loaded: LoadedModel, cfg: dict) -> tuple[dict, object]:
    """(results, evaluator) of `loaded` (opened on the CPU) on `cfg`'s validation split, in the
    model's class order, on the device `cfg` names (auto: CUDA when present)."""
    from ..data.dataset import get_dataset
    from ..evaluation.evaluator import build_validation, check_ground_truth
    from ..evaluation.loop import evaluate
    from ..inference.loading import on_device
    from ..utils.distributed import device_for

    device = device_for(cfg["device"], 0)
    loaded = on_device(loaded, device)

    p = loaded.predictor
    # the images as the model takes them, whatever config names the data: its own input size, or
    # the images' own pixels when it slices (tiles are cut from the image as infer.py reads it;
    # cut from an image already shrunk to another model's input, they would be at the wrong scale)
    sliced = p.slicing is not None  # tiles go through the predictor, whatever the backend
    size = (0, 0, 0) if sliced else (p.min_size, p.max_size, 0)
    try:
        val_ds = get_dataset(cfg, train=False, class_names=loaded.class_names, size=size)
        loader, ev = build_validation(val_ds, cfg["eval"], cfg["train"]["batch_size"], cfg["data"]["num_workers"],
                                      device)
    except UnknownClassesError as e:
        raise DataError(class_mismatch(loaded, e)) from None
    model = loaded.torch_model if loaded.torch_model is not None and not sliced else PredictorModule(loaded.predictor)
    res = evaluate(model, loader, ev, device)
    check_ground_truth(res, ev.info.source, loaded.class_names)
    return res, ev


def class_mismatch(loaded: LoadedModel, e: UnknownClassesError) -> str:
    """The model was trained on other classes than the data has: say that, not 'fix data.classes'."""
    unknown = ", ".join(f"{c} ({n} boxes)" for c, n in sorted(e.unknown.items())[:10])
    return (f"the model's classes and the data's differ: {loaded.path} was trained on "
            f"{', '.join(loaded.class_names[:20])}; the validation data has boxes of {unknown} as well. Score it on "
            f"data of its own classes (--cfg, data.root=...), or train a model on this data; "
            "data.ignore_unknown_classes=true scores only the classes both have")
