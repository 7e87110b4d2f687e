"""An exported detector resizes its input to the size eager PyTorch does. torchvision's own
resize, traced or scripted, computes `min_size / side` as a reciprocal times a product: at 427
(and 41, 97, 418, 440, ...) that is 0.99999994, the graph made a 427-px side 426 and every box
moved, so the exports at such a size failed their parity check."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detection.inference.export import ExactResize, export

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SHAPES = [(320, 427), (310, 427), (320, 426), (480, 640), (427, 300), (100, 700), (320, 320), (1, 5)]


class _Resize(torch.nn.Module):
    def __init__(self, transform):
        super().__init__()
        self.transform = transform

    def forward(self, image):
        return self.transform.resize(image)[0]


def _eager(shape, fixed=None):
    t = GeneralizedRCNNTransform(320, 427, MEAN, STD, fixed_size=fixed).eval()
    image = torch.rand(3, *shape, generator=torch.Generator().manual_seed(sum(shape)))
    return image, t.resize(image)[0]


def _runtimes(tmp_path, fixed=None):
    """name -> a function of a CHW image: the resize exported (ONNX Runtime, OpenVINO) and scripted."""
    module = _Resize(ExactResize(320, 427, MEAN, STD, fixed_size=fixed)).eval()
    path = str(tmp_path / "resize.onnx")
    torch.onnx.export(module, (torch.rand(3, 320, 427),), path, opset_version=17, input_names=["image"],
                      output_names=["out"], dynamic_axes={"image": {1: "h", 2: "w"}}, dynamo=False)
    scripted = torch.jit.script(module)
    found = {"torchscript": lambda x: scripted(x).numpy()}
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    found["onnxruntime"] = lambda x: session.run(None, {"image": x.numpy()})[0]
    try:
        from detection.inference.predictor import openvino_core

        compiled = openvino_core(path).compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        found["openvino"] = lambda x: next(iter(compiled([x.numpy()]).values()))
    except ImportError:
        pass
    return found


def test_the_exported_resize_makes_the_size_and_pixels_eager_pytorch_makes(tmp_path):
    runtimes = _runtimes(tmp_path)
    for shape in SHAPES:
        image, want = _eager(shape)
        for name, run in runtimes.items():
            got = run(image)
            assert got.shape == tuple(want.shape), (name, shape, got.shape, tuple(want.shape))
            np.testing.assert_allclose(got, want.numpy(), atol=1e-4, err_msg=f"{name} at {shape}")


def test_a_fixed_size_export_still_resizes_to_it(tmp_path):
    for name, run in _runtimes(tmp_path, fixed=(256, 192)).items():
        image, want = _eager((480, 640), fixed=(256, 192))
        assert run(image).shape == tuple(want.shape) == (3, 192, 256), name


def test_a_model_exported_at_such_a_size_passes_its_parity_check(tiny_run, tmp_path):
    """97: min_size / 97 traces as 0.99999994; the validation images, fitted to 97 px, went to 96."""
    pytest.importorskip("onnxruntime")
    out = export(tiny_run / "weights" / "best.pt", "onnx", size=97, out=str(tmp_path / "s97.onnx"))
    assert out.is_file()
