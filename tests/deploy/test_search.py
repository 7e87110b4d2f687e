"""tools/benchmark.py --search: the input size and test-time candidates chosen on validation,
kept as a file with its setting inside, tabled, and picked by infer.py --backend auto."""

import csv
import shutil

import pytest

from detection.deploy.search import grid


def test_the_grid_is_smaller_settings_of_the_models_own():
    assert grid(480, 300) == [(s, c) for s in (480, 384, 320) for c in (300, 150, 75)]
    assert grid(160, 60) == [(s, c) for s in (160, 128) for c in (60, 30, 25)]  # floors: 128 px, 25 candidates
    assert grid(480, 300, [400], [100, 50]) == [(400, 100), (400, 50)]  # what the user gives


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v2_fpn", "retinanet_mobilenet_v2_fpn"])
def test_test_time_candidates_are_the_rpns_proposals_or_the_top_anchors(tiny_model_cfg, arch):
    from detection.inference.export import set_test_candidates, test_candidates
    from detection.models.builders import build_model

    model = build_model({**tiny_model_cfg, "arch": arch}, ["a", "b"], verbose=False)
    before = test_candidates(model)
    set_test_candidates(model, 20)
    assert test_candidates(model) == 20 != before
    if arch.startswith("fasterrcnn"):  # 100 before NMS per level for 50 after: 40 for 20
        assert model.rpn._pre_nms_top_n["testing"] == 40 and model.rpn._post_nms_top_n["testing"] == 20
    else:
        assert model.topk_candidates == 20


def _cost_model_timing(path, images, batches):
    """images/s from what a file computes (input pixels times candidates), not from the clock:
    at 96 px the tiny model's time is Python overhead and a loaded machine's noise decides which
    setting is faster; the search's choice, not this machine's speed, is what is tested."""
    from detection.inference.export import test_candidates
    from detection.inference.loading import open_model
    from detection.inference.metadata import read_metadata

    p = open_model(path, "cpu").predictor
    n = test_candidates(p.model) if path.suffix == ".pt" else read_metadata(path, "openvino")["candidates"]
    ips = 1e6 / (p.min_size ** 2 * (n + 100))
    return {"load_s": 0.1, "p50_ms": 1000 / ips, "p95_ms": 1000 / ips, "ips_1": ips, "ips_best": ips, "best_batch": 1}


@pytest.mark.slow
def test_search_keeps_the_fastest_setting_within_the_budget_and_auto_picks_it(tiny_run, tmp_path, capsys,
                                                                             monkeypatch):
    pytest.importorskip("openvino")
    from detection.cli import benchmark as bench_cli
    from detection.cli import export as export_cli
    from detection.cli import infer as infer_cli
    from detection.inference.loading import open_model
    from detection.inference.metadata import read_metadata

    run = tmp_path / "r"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("*.onnx", "*.xml", "*.bin", "*.torchscript",
                                                                 "*.eval.json", "benchmark.*"))
    export_cli.main(["--ckpt", str(run), "--format", "openvino", "--no-validate"])
    monkeypatch.setattr(bench_cli, "time_file", _cost_model_timing)
    # the tiny model scores about 0 everywhere, so every setting is within the budget: the
    # fastest, the smallest input with the fewest candidates, must be kept
    bench_cli.main(["--ckpt", str(run), "--search", "--sizes", "96,64", "--candidates", "300,25", "--images", "4",
                    "--batches", "1"])
    kept = run / "weights" / "best.s64c25.xml"
    assert kept.is_file() and kept.with_suffix(".bin").is_file() and (run / "weights" / "best.s64c25.xml.eval.json")
    assert not (run / "search").exists()  # the other files are removed
    meta = read_metadata(kept, "openvino")
    assert (meta["setting"]["size"], meta["setting"]["candidates"], meta["min_size"], meta["candidates"]) == \
        (64, 25, 64, 25)
    assert open_model(kept, "cpu").predictor.min_size == 64
    points = list(csv.DictReader(open(run / "search.csv")))
    assert {(p["size"], p["candidates"]) for p in points} == {("96", "300"), ("96", "25"), ("64", "300"),
                                                               ("64", "25")}
    assert [p["own"] for p in points if p["size"] == "96" and p["candidates"] == "300"] == ["1"]
    assert (run / "search.png").stat().st_size > 1000 and "| openvino | 64 | 25 |" in (run / "search.md").read_text()
    rows = {r["file"]: r for r in csv.DictReader(open(run / "benchmark.csv"))}
    assert rows["best.s64c25.xml"]["setting"] == "64 px, 25 candidates" and "CPU" in (run / "benchmark.md").read_text()
    ref = float(rows["best.pt"]["AP"])
    want = max((r for r in rows.values() if float(r["AP"]) >= ref - 0.01), key=lambda r: float(r["ips_1"]))["file"]
    capsys.readouterr()
    infer_cli.main(["--ckpt", str(run), "--backend", "auto", "--source", str(next(
        (tiny_run.parent.parent / "data" / "coco" / "val").glob("*.jpg"))), "--no-save", "--out", str(tmp_path / "o")])
    assert f"--backend auto: {want}" in capsys.readouterr().err  # the kept file is one of the run's choices


def test_search_without_an_exported_file_is_one_line(tiny_run, tmp_path):
    from detection.cli import benchmark as bench_cli

    run = tmp_path / "r"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("*.onnx", "*.xml", "*.bin", "*.torchscript",
                                                                 "*.eval.json", "benchmark.*"))
    with pytest.raises(SystemExit) as e:
        bench_cli.main(["--ckpt", str(run), "--search"])
    assert "has no exported file to search from" in str(e.value.code) and "\n" not in str(e.value.code)
    with pytest.raises(SystemExit):
        bench_cli.main(["--ckpt", str(run), "--search", "--no-ap"])


@pytest.mark.parametrize("bad, says", [(["--sizes", "0"], "--sizes: whole numbers from 32 to 4096, got '0'"),
                                       (["--sizes", "16,320"], "from 32 to 4096, got '16,320'"),
                                       (["--sizes", "99999"], "from 32 to 4096"),
                                       (["--sizes", "3x"], "a comma-separated list of whole numbers, got '3x'"),
                                       (["--candidates", "0"], "--candidates: whole numbers from 1 to 10000")])
def test_a_size_or_candidate_count_out_of_bounds_is_refused_before_anything_runs(tiny_run, capsys, bad, says):
    from detection.cli import benchmark as bench_cli

    with pytest.raises(SystemExit) as e:
        bench_cli.main(["--ckpt", str(tiny_run), "--search", *bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and says in err[-1] and not (tiny_run / "search").exists()
