"""tools/review_labels.py end to end: a run reviewed in sample and out of fold, its files readable."""

import csv
import json

import pytest

from detection.cli import review as review_cli
from detection.config import load_config
from detection.data.dataset import read_split


@pytest.mark.slow
def test_review_writes_ranked_issues_and_corrections_that_import(tiny_run, tmp_path):
    review_cli.main(["--ckpt", str(tiny_run), "--split", "train,val", "--folds", "2", "--fold-minutes", "0.2",
                     "--runs", str(tmp_path / "runs"), "--confident", "0.3"])
    out = tmp_path / "runs" / "review" / "r"
    rows = list(csv.DictReader(open(out / "issues.csv")))
    assert rows and [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    for kind in {r["kind"] for r in rows}:  # the kinds in turn, each most likely first
        scores = [float(r["score"]) for r in rows if r["kind"] == kind]
        assert scores == sorted(scores)
    assert {r["split"] for r in rows} <= {"train", "val"} and {r["kind"] for r in rows} <= {
        "missing", "wrong_class", "bad_box", "spurious"}
    assert (out / "folds" / "fold_0" / "weights" / "last.pt").is_file()  # out-of-fold models trained
    for split in {r["split"] for r in rows}:
        d = load_config(None, {"data": {"format": "coco", "root": str(out / split / "cvat_coco")}})["data"]
        records, info = read_split(d, "review", False)
        flagged = {r["image"] for r in rows if r["split"] == split}
        assert {rec.path.split("/")[-1] for rec in records} == {p.split("/")[-1] for p in flagged}
        assert (out / split / "labelimg_voc" / "Annotations").is_dir()
        tasks = json.loads((out / split / "label_studio.json").read_text())
        assert len(tasks) == len(flagged) and {"annotations", "predictions", "data"} <= set(tasks[0])
        box = (tasks[0]["predictions"][0]["result"] or tasks[0]["annotations"][0]["result"])[0]["value"]
        assert 0 <= box["x"] <= 100 and 0 < box["width"] <= 100
        assert "<RectangleLabels" in (out / split / "label_studio_config.xml").read_text()
    page = (out / "data.js").read_text()
    data = json.loads(page[page.index("=") + 1:].strip().rstrip(";"))
    assert data["kind"] == "review" and len(data["images"]) == len({(r["split"], r["image"]) for r in rows})
    assert {t for im in data["images"] for t in im["tags"] if not t.startswith("split")} == {r["kind"] for r in rows}


def test_review_refuses_bad_options_in_one_line(tmp_path):
    for extra, words in [(["--split", "test"], "--split test"), (["--confident", "2"], "--confident")]:
        with pytest.raises(SystemExit) as e:
            review_cli.main(["--ckpt", str(tmp_path / "none"), "--runs", str(tmp_path / "runs"), *extra])
        assert words in str(e.value.code) and "\n" not in str(e.value.code)
