"""Model out: infer.py on real sources, the Python API, ONNX / TorchScript export with parity."""

import json
import os
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detection.checkpoint import save_checkpoint
from detection.cli import evaluate as eval_cli
from detection.cli import export as export_cli
from detection.cli import infer as infer_cli
from detection.config import load_config
from detection.inference.export import ExportError, export, match
from detection.models.builders import build_model

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD" / "JPEGImages"


def _checkpoint(path: Path, arch="fasterrcnn_mobilenet_v2_fpn", classes=("cell", "blob"), size=(224, 288)) -> Path:
    """A checkpoint with random weights scaled so scores spread out (torchvision's heads start at
    std 0.01: every score would tie, and no comparison could tell a good export from a bad one)."""
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"},
                             "model": {"arch": arch, "weights": "none", "min_size": size[0], "max_size": size[1],
                                       "fpn_channels": 32}})
    torch.manual_seed(0)
    model = build_model(cfg["model"], list(classes), verbose=False)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
    save_checkpoint(path, model=model.state_dict(), config=cfg, class_names=list(classes), freeze=model.facts.freeze)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("run") / "tiny" / "weights" / "best.pt")


def _images(folder: Path, n=3, size=(120, 160)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        img = np.full((*size, 3), 90, np.uint8)
        cv2.circle(img, (40 + 20 * i, 60), 25, (230, 40, 40), -1)
        cv2.imwrite(str(folder / f"img{i}.jpg"), img + rng.integers(0, 20, img.shape, np.uint8))
    return folder


def _real_images(tmp_path, n=4):
    """BCCD images when ../shared is there (real photos), else generated ones."""
    if BCCD.is_dir():
        return [str(p) for p in sorted(BCCD.glob("*.jpg"))[:n]]
    return [str(p) for p in sorted(_images(tmp_path / "gen", n).glob("*.jpg"))]


# --- infer.py on sources ------------------------------------------------------------------------


def test_folders_keep_relative_paths_skip_bad_files_and_never_overwrite(tmp_path, ckpt, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "data" / "a", 2)
    _images(tmp_path / "data" / "b", 2)  # the same file names in another folder
    (tmp_path / "data" / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["--source", "data", "--recursive", "--ckpt", str(ckpt), "--score", "0", "--save-json", "--save-txt",
            "--save-conf", "--save-crops", "--max-det", "3"]
    infer_cli.main(args)
    out = tmp_path / "runs" / "predict" / "tiny"
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.jpg")) == [
        "a/img0.jpg", "a/img1.jpg", "b/img0.jpg", "b/img1.jpg"]
    assert not list((tmp_path / "data").rglob("*_det*"))  # nothing written beside the inputs
    log = capsys.readouterr().err
    assert "broken.jpg" in log and "1 skipped" in log and "4 images/frames" in log
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["file_name"] for p in preds} <= {"a/img0.jpg", "a/img1.jpg", "b/img0.jpg", "b/img1.jpg"}
    assert all(p["category_name"] in ("cell", "blob") and len(p["bbox"]) == 4 for p in preds)
    lines = (out / "labels" / "a" / "img0.txt").read_text().splitlines()
    assert 0 < len(lines) <= 3 and all(len(line.split()) == 6 for line in lines)  # class cx cy w h score
    assert all(0 <= float(v) <= 1 for line in lines for v in line.split()[1:5])
    assert list((out / "crops").rglob("*.jpg"))
    infer_cli.main(args)  # a second run gets its own folder
    assert (tmp_path / "runs" / "predict" / "tiny-2" / "a" / "img0.jpg").is_file()


def test_globs_lists_class_filter_and_no_save(tmp_path, ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "x", 3)
    (tmp_path / "list.txt").write_text("x/img0.jpg\nx/img2.jpg\n")
    infer_cli.main(["--source", "list.txt", "--ckpt", str(ckpt), "--name", "lst", "--score", "0", "--save-json",
                    "--classes", "blob", "--no-save"])
    out = tmp_path / "runs" / "predict" / "lst"
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["file_name"] for p in preds} == {"img0.jpg", "img2.jpg"}
    assert {p["category_name"] for p in preds} == {"blob"}
    assert not list(out.glob("*.jpg"))
    infer_cli.main(["--source", str(tmp_path / "x" / "img*.jpg"), "--ckpt", str(ckpt), "--name", "glob"])
    assert len(list((tmp_path / "runs" / "predict" / "glob").glob("*.jpg"))) == 3


def _video(path: Path, frames=9, fps=12.0, size=(96, 128)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    for i in range(frames):
        img = np.full((*size, 3), 60, np.uint8)
        cv2.circle(img, (20 + 8 * i, 48), 15, (40, 200, 40), -1)
        writer.write(img)
    writer.release()
    return path


def _frames(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps


def test_video_file_and_http_stream(tmp_path, ckpt, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = _video(tmp_path / "clip.mp4")
    infer_cli.main(["--source", str(video), "--ckpt", str(ckpt), "--name", "vid", "--vid-stride", "2", "--save-json"])
    n, fps = _frames(tmp_path / "runs" / "predict" / "vid" / "clip.mp4")
    assert n == 5 and fps == pytest.approx(6.0, abs=0.1)  # every 2nd of 9 frames, at half the source's rate
    frames = {p["frame"] for p in json.loads((tmp_path / "runs/predict/vid/predictions.json").read_text())}
    assert frames <= {0, 2, 4, 6, 8}
    # the same clip served over HTTP by a local server: the stream path, without the internet
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        infer_cli.main(["--source", url, "--ckpt", str(ckpt), "--name", "stream"])
    finally:
        server.shutdown()
    assert _frames(tmp_path / "runs" / "predict" / "stream" / "clip.mp4")[0] == 9


def test_nothing_readable_is_one_line(tmp_path, ckpt, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"x")
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", str(tmp_path / "bad.jpg"), "--ckpt", str(ckpt), "--out", str(tmp_path / "o")])
    assert str(e.value).startswith("error: no image could be read") and "bad.jpg" in str(e.value)
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", str(tmp_path / "nowhere"), "--ckpt", str(ckpt), "--out", str(tmp_path / "o")])
    assert "no such file or folder" in str(e.value)


def test_broken_exported_files_are_one_line(tmp_path):
    import zipfile

    from detection.errors import CheckpointError
    from detection.inference.loading import open_model

    (tmp_path / "junk.torchscript").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "bare.torchscript", "w") as z:  # an archive without our metadata
        z.writestr("m/data.pkl", b"")
    with zipfile.ZipFile(tmp_path / "nomodel.torchscript", "w") as z:  # metadata, but no model to load
        z.writestr("m/extra/detection", json.dumps({"class_names": ["a"], "min_size": 64, "max_size": 64}))
    for name, text in (("badjson", "{not json"), ("nokeys", json.dumps({"min_size": 64})),
                       ("huge", " " * (2 << 20))):  # 2 MB unpacked from a few kB
        with zipfile.ZipFile(tmp_path / f"{name}.torchscript", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("m/extra/detection", text)
    expected = {"junk": "not a readable TorchScript file", "bare": "has no 'detection' metadata",
                "nomodel": "not a loadable TorchScript file", "badjson": "metadata is not what python tools/export.py",
                "nokeys": "metadata is not what python tools/export.py", "huge": "not the short json"}
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=message) as e:
            open_model(tmp_path / f"{name}.torchscript")
        assert f"{name}.torchscript" in str(e.value) and "\n" not in str(e.value)
    pytest.importorskip("openvino")
    (tmp_path / "alone.xml").write_text("<net/>")  # an OpenVINO .xml without its .bin
    (tmp_path / "junk.xml").write_text("<not openvino")
    (tmp_path / "junk.bin").write_bytes(b"x")
    for name, message in (("alone", "are not beside it"), ("junk", "not a readable OpenVINO model")):
        with pytest.raises(CheckpointError, match=message) as e:
            open_model(tmp_path / f"{name}.xml")
        assert f"{name}.xml" in str(e.value) and "\n" not in str(e.value)


# --- the Python API ------------------------------------------------------------------------------


def test_readme_api_example_runs(tmp_path, ckpt, monkeypatch):
    """The README's Python block, run as written (with this test's run folder and images)."""
    from PIL import Image

    readme = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(from detection import Detector.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "folder", 2)
    (tmp_path / "runs").mkdir()
    os.symlink(ckpt.parent.parent, tmp_path / "runs" / "bccd_frcnn")
    cv2.imwrite("a.jpg", np.zeros((50, 60, 3), np.uint8))
    cv2.imwrite("b.jpg", np.zeros((70, 40, 3), np.uint8))
    scope = {"numpy_rgb_array": np.zeros((80, 100, 3), np.uint8), "pil_image": Image.new("RGB", (90, 60))}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["det"].class_names == ["cell", "blob"]
    assert (scope["det"].saved_to / "predictions.json").is_file() and (scope["det"].saved_to / "labels_yolo").is_dir()


def test_detector_results_are_in_the_images_pixels(ckpt):
    from PIL import Image

    from detection import Detector

    det = Detector.from_checkpoint(ckpt.parent.parent, device="cpu")  # a run folder
    img = np.random.default_rng(0).integers(0, 255, (600, 900, 3), np.uint8)
    a = det.predict(img, score=0.0)[0]
    b = det.predict(Image.fromarray(img), score=0.0)[0]
    assert a.shape == (600, 900) and len(a) > 0 and np.array_equal(a.boxes, b.boxes)
    assert a.boxes[:, [0, 2]].max() <= 900 and a.boxes[:, [1, 3]].max() <= 600
    assert a.names == [det.class_names[i] for i in a.labels] and np.all(np.diff(a.scores) <= 0)
    two = det.predict([img, img[:300]], score=0.0, batch=2)
    assert len(two) == 2 and two[1].shape == (300, 900)
    assert set(det.predict(img, score=0.0, classes=["blob"])[0].names) <= {"blob"}
    with pytest.raises(Exception, match="not a class"):
        det.predict(img, classes=["dog"])


# --- export ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v2_fpn", "retinanet_mobilenet_v2_fpn", "ssdlite_mobilenet_v2"])
def test_onnx_and_torchscript_give_pytorchs_detections_on_real_images(tmp_path, arch):
    from detection.inference.loading import open_model

    pytest.importorskip("onnxruntime")
    size = (320, 320) if arch.startswith("ssd") else (224, 288)
    ckpt = _checkpoint(tmp_path / "run" / "weights" / "best.pt", arch, size=size)
    onnx_file = export(ckpt, "onnx")  # dynamic input: the default
    ts_file = export(ckpt, "torchscript")
    assert onnx_file == ckpt.with_suffix(".onnx") and ts_file == ckpt.with_suffix(".torchscript")
    images = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in _real_images(tmp_path)]
    ref = open_model(ckpt).predictor.predict(images, score=0.0)
    for path in (onnx_file, ts_file):
        got = open_model(path).predictor
        assert got.class_names == ["cell", "blob"] and (got.min_size, got.max_size) == size
        for r, g in zip(ref, got.predict(images, score=0.0)):
            assert len(r) > 10
            assert match((r.boxes, r.scores, r.labels), (g.boxes, g.scores, g.labels), iou=0.99, score_tol=1e-3) == 1.0


def test_static_onnx_pads_and_infer_uses_exported_files(tmp_path, ckpt, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "imgs", 2, size=(200, 150))  # portrait: fitted inside the fixed landscape input
    export_cli.main(["--ckpt", str(ckpt.parent.parent), "--format", "onnx", "--static",
                     "--out", str(tmp_path / "m.onnx")])
    from detection.inference.metadata import read_metadata

    assert read_metadata(tmp_path / "m.onnx", "onnx")["fixed_size"] == [224, 288]
    infer_cli.main(["--source", "imgs", "--ckpt", "m.onnx", "--name", "o", "--score", "0", "--save-json"])
    preds = json.loads((tmp_path / "runs/predict/o/predictions.json").read_text())
    assert preds and all(p["bbox"][0] + p["bbox"][2] <= 150.01 and p["bbox"][1] + p["bbox"][3] <= 200.01 for p in preds)
    with pytest.raises(SystemExit, match="--size cannot change an exported model"):
        infer_cli.main(["--source", "imgs", "--ckpt", "m.onnx", "--size", "320"])


def test_an_export_that_fails_names_the_arch_and_why(tmp_path, ckpt, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match=r"fasterrcnn_mobilenet_v2_fpn cannot be exported to onnx with torch .*foo"):
        export(ckpt, "onnx", out=str(tmp_path / "x.onnx"))
    assert not list(tmp_path.glob("*.onnx*")) and not list(ckpt.parent.glob(".*"))  # nothing half-written kept


# --- a results file scored against a config's validation split --------------------------------


def test_results_file_scores_like_the_checkpoint(tmp_path, monkeypatch):
    from detection.cli import train as train_cli
    from detection.config import CONFIG_DIR

    monkeypatch.chdir(tmp_path)
    small = ["data.root=data", "data.synthetic.num_train=8", "data.synthetic.num_val=6", "data.synthetic.image_size=96",
             "data.num_workers=0", "model.weights=none", "model.min_size=96", "model.max_size=96",
             "model.fpn_channels=32", "train.epochs=1", "train.warmup_iters=1", "name=r"]
    train_cli.main(["--cfg", str(CONFIG_DIR / "demo.yaml")] + small)
    eval_cli.main(["--ckpt", "runs/r/weights/best.pt"])
    direct = json.loads(Path("runs/r/eval/results.json").read_text())
    infer_cli.main(["--source", "data/coco/val", "--ckpt", "runs/r", "--save-json", "--no-save", "--name", "v"])
    eval_cli.main(["--pred", "runs/predict/v/predictions.json", "--cfg", str(CONFIG_DIR / "demo.yaml"), "--out", "ev"]
                  + small)
    scored = json.loads(Path("ev/results.json").read_text())
    assert scored["num_images"] == direct["num_images"] == 6
    for k in ("AP", "AP50", "AP75"):
        assert round(scored["coco"][k], 3) == round(direct["coco"][k], 3)
    bad = Path("bad.json")
    bad.write_text(json.dumps([{**json.loads(Path("runs/predict/v/predictions.json").read_text())[0],
                                "category_name": "dog"}]))
    with pytest.raises(SystemExit, match="entry 0 has category_name 'dog', not a class"):
        eval_cli.main(["--pred", str(bad), "--cfg", str(CONFIG_DIR / "demo.yaml"), "--out", "ev2"] + small)


def test_python_train_and_evaluate_are_the_commands(tmp_path, monkeypatch):
    import detection

    monkeypatch.chdir(tmp_path)
    run, last = detection.train("demo.yaml", name="api", epochs=1, warmup_iters=1, num_workers=0, weights="none",
                                min_size=96, max_size=96, fpn_channels=32, root="data",
                                **{"data.synthetic.num_train": 8, "data.synthetic.num_val": 4,
                                   "data.synthetic.image_size": 96})
    assert run == Path("runs/api") and (run / "weights" / "best.pt").is_file()
    metrics = detection.evaluate(run)
    assert metrics["num_images"] == 4 and metrics["coco"]["AP"] == pytest.approx(last["coco"]["AP"], abs=1e-9)
    with pytest.raises(Exception, match="in several sections|not a config key"):
        detection.get_config("demo.yaml", nonsense=1)


# --- every command opens the same four things, and evaluation never overwrites ----------------

SMALL = ["data.synthetic.num_train=8", "data.synthetic.num_val=6", "data.synthetic.image_size=96",
         "data.num_workers=0", "model.weights=none", "model.min_size=96", "model.max_size=96",
         "model.fpn_channels=32", "train.epochs=1", "train.warmup_iters=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a small synthetic set, with its ONNX and TorchScript exports beside best.pt."""
    from detection.cli import train as train_cli
    from detection.config import CONFIG_DIR

    top = tmp_path_factory.mktemp("four")
    cwd = os.getcwd()
    os.chdir(top)
    try:
        train_cli.main(["--cfg", str(CONFIG_DIR / "demo.yaml"), "data.root=data", "name=r"] + SMALL)
    finally:
        os.chdir(cwd)
    run = top / "runs" / "r"
    export(run, "torchscript")
    if _has_onnxruntime():
        export(run, "onnx")
    return run


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _four(run: Path) -> list[Path]:
    kinds = [run, run / "weights" / "best.pt", run / "weights" / "best.torchscript"]
    return kinds + ([run / "weights" / "best.onnx"] if _has_onnxruntime() else [])


def test_every_command_takes_a_run_a_checkpoint_and_both_exports(trained, tmp_path, monkeypatch):
    """eval_det, infer, the API's Detector and evaluate: one loader, the same four kinds, the same AP."""
    import detection
    from detection import Detector

    monkeypatch.chdir(trained.parent.parent)
    image = str(trained.parent.parent / "data" / "coco" / "val" / "val_00000.jpg")
    aps, dets = [], []
    for k, model in enumerate(_four(trained)):
        eval_cli.main(["--ckpt", str(model)])
        out = trained / ("eval" if k == 0 else f"eval-{k + 1}")  # a new folder each time
        report = json.loads((out / "results.json").read_text())
        assert report["num_images"] == 6 and str(model.name) in report["source"]
        aps.append(report["coco"]["AP50"])
        dets.append(sum(c["dets"] for c in report["voc"]))
        assert detection.evaluate(model)["coco"]["AP50"] == pytest.approx(report["coco"]["AP50"], abs=1e-6)
        infer_cli.main(["--source", image, "--ckpt", str(model), "--name", f"p{k}", "--score", "0"])
        assert (trained.parent / "predict" / f"p{k}" / "val_00000.jpg").is_file()
        assert Detector.from_checkpoint(model).predict(image, score=0.0)[0].class_names
    assert max(aps) - min(aps) < 0.02 and max(dets) - min(dets) <= 0.02 * max(dets)  # exports score like the .pt
    with pytest.raises(SystemExit, match="already an exported torchscript file"):
        export_cli.main(["--ckpt", str(trained / "weights" / "best.torchscript"), "--format", "onnx"])


def test_evaluations_never_overwrite_or_mix(trained, tmp_path, monkeypatch):
    """Scoring other data after the run's own evaluation leaves that report as it was; results
    files scored without a run go under runs/eval/, not into the current folder."""
    from detection.config import CONFIG_DIR

    monkeypatch.chdir(trained.parent.parent)
    eval_cli.main(["--ckpt", str(trained), "--save-pred", "--score", "0"])
    first = sorted(p for p in trained.glob("eval*") if p.is_dir())[-1]
    before = {p.name: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    eval_cli.main(["--ckpt", str(trained), "data.val_split=train", "--score", "0.99"])
    second = sorted((p for p in trained.glob("eval*") if p.is_dir()), key=lambda p: p.stat().st_mtime)[-1]
    assert second != first and {p.name: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
    assert json.loads((second / "results.json").read_text())["num_images"] == 8  # the other data
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        eval_cli.main(["--pred", str(first / "predictions.json"), "--cfg", str(CONFIG_DIR / "demo.yaml"),
                       f"data.root={trained.parent.parent / 'data'}"] + SMALL)
    assert not (tmp_path / "eval").exists()
    assert sorted(p.name for p in (tmp_path / "runs" / "eval").iterdir()) == ["predictions", "predictions-2"]


def test_a_model_scored_on_data_of_other_classes_says_so(trained, tmp_path, capsys):
    """Not 'fix data.classes', and never an AP over zero ground-truth boxes with exit 0."""
    from tests.conftest import write_voc

    voc = write_voc(tmp_path / "voc", {"a": [("dog", 5, 5, 40, 30, 0)], "b": [("cat", 2, 2, 30, 20, 0)]},
                    split="val")
    args = ["--ckpt", str(trained), "data.format=voc", f"data.root={voc}", "data.classes=[]"]
    with pytest.raises(SystemExit) as e:
        eval_cli.main(args)
    msg = str(e.value)
    assert "the model's classes and the data's differ" in msg and "dog (1 boxes)" in msg and "\n" not in msg
    with pytest.raises(SystemExit) as e:
        eval_cli.main(args + ["data.ignore_unknown_classes=true"])
    assert "no ground-truth boxes of the model's classes" in str(e.value) and "not reported" in str(e.value)


def test_a_result_draws_and_saves_itself(trained, tmp_path):
    from detection import Detector

    det = Detector.from_checkpoint(trained)
    path = trained.parent.parent / "data" / "coco" / "val" / "val_00000.jpg"
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    from_file, = det.predict(str(path), score=0.0, max_det=5)
    from_array, = det.predict(image, score=0.0, max_det=5)
    assert from_file.image is None and np.array_equal(from_array.image, image)  # a list holds no file's pixels
    drawn = from_file.plot()  # read again from its path
    assert drawn.shape == image.shape and drawn.dtype == np.uint8 and (drawn != image).any()
    assert np.array_equal(drawn, from_array.plot())
    saved = from_array.save(tmp_path / "out" / "drawn.png")
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(saved)), cv2.COLOR_BGR2RGB), drawn)
    streamed = next(det.predict(str(path), stream=True))
    assert streamed.image is not None
    with pytest.raises(Exception, match="pass the image it was predicted on"):
        from_file.plot(image[:10])


def test_the_thresholds_chosen_on_validation_travel_with_the_model_and_infer_uses_them(trained, tmp_path,
                                                                                      monkeypatch):
    """best.pt and last.pt store the per-class thresholds of their validation; the exports carry
    them; infer without --score keeps what reaches them, and scoring its file gives the
    precision and recall the evaluation reported at them."""
    from detection.checkpoint import load_checkpoint
    from detection.config import CONFIG_DIR
    from detection.inference.loading import open_model

    best, last = (load_checkpoint(trained / "weights" / f"{n}.pt") for n in ("best", "last"))
    stored = best["thresholds"]
    assert stored["rule"] == "f1" and set(stored["per_class"]) == set(best["class_names"])
    assert last["thresholds"] == stored and any(v is not None for v in stored["per_class"].values())
    for model in _four(trained):
        assert open_model(model).predictor.thresholds == stored, model
    monkeypatch.chdir(trained.parent.parent)
    eval_cli.main(["--ckpt", str(trained), "--out", str(tmp_path / "ev")])
    report = json.loads((tmp_path / "ev" / "results.json").read_text())
    at_stored = report["stored_operating_point"]
    assert {r["class"]: r["threshold"] for r in at_stored["per_class"]} == stored["per_class"]
    assert "intervals" in report and report["intervals"]["images"] == 6
    infer_cli.main(["--source", "data/coco/val", "--ckpt", str(trained), "--save-json", "--name", "thr",
                    "--batch", "4"])  # as validation batches: the same float sums, the same scores to the last bit
    preds = json.loads((trained.parent / "predict" / "thr" / "predictions.json").read_text())
    for p in preds:
        threshold = stored["per_class"][p["category_name"]]
        assert p["kept"] == (p["score"] >= (0.25 if threshold is None else threshold))
    eval_cli.main(["--pred", str(trained.parent / "predict" / "thr" / "predictions.json"), "--out",
                   str(tmp_path / "scored"), "--cfg", str(CONFIG_DIR / "demo.yaml"), "data.root=data"] + SMALL)
    as_kept = json.loads((tmp_path / "scored" / "results.json").read_text())["stored_operating_point"]
    for k in ("tp", "fp", "gt"):
        assert as_kept["overall"][k] == at_stored["overall"][k], k
    infer_cli.main(["--source", "data/coco/val", "--ckpt", str(trained), "--save-json", "--name", "given",
                    "--score", "0.9"])  # --score overrides them
    given = json.loads((trained.parent / "predict" / "given" / "predictions.json").read_text())
    assert all(p["kept"] == (p["score"] >= 0.9) for p in given)


def test_thresholds_are_chosen_again_on_another_split_only_when_asked(trained, tmp_path, monkeypatch):
    import shutil

    from detection.checkpoint import load_checkpoint

    monkeypatch.chdir(trained.parent.parent)
    copy = tmp_path / "best.pt"
    shutil.copy(trained / "weights" / "best.pt", copy)
    before = load_checkpoint(copy)["thresholds"]
    args = ["--ckpt", str(copy), "--cfg", str(trained / "config.yaml"), "data.val_split=train"]
    eval_cli.main(args + ["--out", str(tmp_path / "a")])
    assert load_checkpoint(copy)["thresholds"] == before  # evaluated elsewhere: printed, not stored
    chosen = json.loads((tmp_path / "a" / "results.json").read_text())["operating_point"]
    eval_cli.main(args + ["--out", str(tmp_path / "b"), "--store-thresholds"])
    after = load_checkpoint(copy)["thresholds"]
    assert after["per_class"] == {r["class"]: r["threshold"] for r in chosen["per_class"]}
    assert "instances_train.json" in after["split"] and after["per_class"] != before["per_class"]
    with pytest.raises(SystemExit, match="writes into a .pt checkpoint"):
        eval_cli.main(["--ckpt", str(trained / "weights" / "best.torchscript"), "--store-thresholds"])


def test_compare_scores_two_models_on_the_first_ones_split_and_says_so(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained.parent.parent)
    eval_cli.main(["--compare", str(trained), str(trained / "weights" / "best.torchscript"), "--out",
                   str(tmp_path / "cmp")])
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["images"] == 6 and "instances_val.json" in result["split"]
    assert result["AP"]["verdict"] == "no difference" and abs(result["AP"]["diff"]) < 0.02  # the same weights
    assert result["APs"] is None or result["APs"]["verdict"] == "no difference"  # AP_small, paired the same way
    assert [c["class"] for c in result["per_class"]] == ["circle", "square", "triangle", "cross"]
    assert "no difference this split can show" in (tmp_path / "cmp" / "compare.md").read_text()
    eval_cli.main(["--compare", str(trained), str(trained / "weights" / "best.pt"), "--out", str(tmp_path / "tr"),
                   "data.val_split=train"])  # overrides move both to another split
    assert json.loads((tmp_path / "tr" / "compare.json").read_text())["images"] == 8
