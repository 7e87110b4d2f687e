"""Detection metrics: pycocotools COCO numbers and Pascal VOC AP, behind one evaluator."""
