"""tools/review_labels.py: find the likely annotation mistakes in a labelled data set.

`issues` turns a model's detections and the labels into ranked issues (cleanlab's
object-detection scores, an optional extra); `folds` gives out-of-sample detections for the
training images; `exports` writes issues.csv and the corrections to make in CVAT, Label
Studio or LabelImg.
"""
