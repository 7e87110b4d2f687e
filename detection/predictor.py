"""A trained checkpoint (or torchvision's COCO detector) applied to images.

The detector's own transform resizes the image and maps boxes back, so predictions are
in the pixels of the file as given.
"""

from __future__ import annotations

import numpy as np
import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .detections import to_detections


class Predictor:
    def __init__(self, model: torch.nn.Module, class_names: list[str], device: torch.device):
        self.model = model.to(device).eval()
        self.class_names, self.device = class_names, device

    @classmethod
    def from_checkpoint(cls, path, device: torch.device) -> Predictor:
        ckpt = load_checkpoint(path)
        return cls(model_from_checkpoint(ckpt, path), ckpt["class_names"], device)

    @classmethod
    def coco_pretrained(cls, device: torch.device) -> Predictor:
        """torchvision's COCO Faster R-CNN (MobileNetV3), through the offline-aware weight loader."""
        from torchvision.models.detection import (
            FasterRCNN_MobileNet_V3_Large_FPN_Weights as W,
        )
        from torchvision.models.detection import (
            fasterrcnn_mobilenet_v3_large_fpn,
        )

        from .models.weights import load_state_dict, load_weights_into

        model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
        load_weights_into(model, load_state_dict(W.COCO_V1), str(W.COCO_V1))
        # torchvision's list includes background and 'N/A' gaps at their label index
        return cls(model, list(W.COCO_V1.meta["categories"])[1:], device)

    def input_scale(self, height: int, width: int) -> float:
        """The factor the detector's own transform would resize by (at most 1: never enlarged here)."""
        from .data.transforms import resize_scale

        t = self.model.transform
        if getattr(t, "fixed_size", None):  # SSD: stretched to a square, keep both sides >= it
            return min(1.0, max(t.fixed_size[0] / height, t.fixed_size[1] / width))
        return min(1.0, resize_scale(height, width, t.min_size[-1], t.max_size))

    @torch.no_grad()
    def __call__(self, image: np.ndarray, conf: float = 0.25) -> list[dict]:
        """Detections above `conf` for one HxWx3 RGB uint8 image, in its pixels.

        A large image is shrunk as uint8 first, to the size the detector would use anyway:
        a 50-megapixel photo never becomes a 600 MB float tensor."""
        import cv2

        h, w = image.shape[:2]
        s = self.input_scale(h, w)
        if s < 1.0:
            image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        back = np.array([w / image.shape[1], h / image.shape[0]] * 2, np.float32)  # per axis: sizes were rounded
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255).to(self.device)
        out = self.model([t])[0]
        return to_detections(out["boxes"].cpu().numpy() * back, out["scores"].cpu().numpy(),
                             out["labels"].cpu().numpy(), self.class_names, conf, digits=2)
