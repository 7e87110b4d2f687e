"""Inference: opening a model (`loading`), one preprocessing and the backends with the one
streaming pipeline (`predictor`), what it reads (`sources`), and export to ONNX / TorchScript."""
