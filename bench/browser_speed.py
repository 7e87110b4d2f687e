"""The results browser at scale: 5,000 images of 20 labelled boxes and 30 detections each.

    python bench/browser_speed.py [--images 5000]

Writes such a page (thumbnails are not written: the timing is the page's own work) and opens
it in headless Chromium: the time to the first page of thumbnails, and of each of a class
filter, an error filter and a score change (each filters and sorts every image, then draws a
page), measured in the page with performance.now().
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.evaluation.browser import TEMPLATE  # noqa: E402


def fake_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    kinds = ["tp"] * 6 + ["background", "localization", "classification", "duplicate", "both"]
    images = []
    for i in range(n):
        xy = rng.uniform(0, 600, (50, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (50, 2))], 1).round(1).tolist()
        gt = [[*b, int(rng.integers(1, 4)), 0, 0] for b in boxes[:20]]
        dets = [[*b, int(rng.integers(1, 4)), round(float(rng.uniform(0.05, 1)), 3), kinds[rng.integers(len(kinds))],
                 0.6, int(rng.integers(-1, 20))] for b in boxes[20:]]
        images.append({"file": f"img{i}.jpg", "name": f"img{i}.jpg", "w": 660, "h": 660, "thumb": f"thumbs/{i}.jpg",
                       "gt": gt, "dets": dets, "tags": []})
    return {"kind": "eval", "title": f"{n} images", "classes": ["a", "b", "c"], "images": images, "tables": [],
            "numbers": [{"id": "ap", "label": "AP", "value": 0.5}, {"id": "images", "label": "images", "value": n}]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    args = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = Path(tempfile.mkdtemp())
    (folder / "data.js").write_text("window.BROWSER_DATA = " + json.dumps(fake_data(args.images)) + ";\n")
    shutil.copy(TEMPLATE, folder / "index.html")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    chrome = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        chrome.get((folder / "index.html").as_uri())
        first = chrome.execute_script("return performance.now()")
        steps = {"class filter": "document.getElementById('class').value = '2'; "
                                 "document.getElementById('class').dispatchEvent(new Event('change'));",
                 "error filter": "document.getElementById('kind').value = 'errors'; "
                                 "document.getElementById('kind').dispatchEvent(new Event('change'));",
                 "score slider": "document.getElementById('score').value = '0.6'; "
                                 "document.getElementById('score').dispatchEvent(new Event('input'));"}
        print(f"{args.images} images, data.js {(folder / 'data.js').stat().st_size / 1e6:.1f} MB: first page drawn "
              f"{first:.0f} ms after navigation start")
        for name, js in steps.items():
            ms = chrome.execute_script(f"const t = performance.now(); {js} return performance.now() - t;")
            shown = chrome.find_element("id", "count").text
            print(f"  {name}: {ms:.0f} ms ({shown})")
    finally:
        chrome.quit()
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
