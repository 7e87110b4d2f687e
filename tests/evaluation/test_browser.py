"""The results browser: eval_det.py writes index.html + data.js + thumbs/ beside its report,
and a real (headless) Chromium opens it from file:// and shows what report.json says."""

import json
import shutil

import pytest

from detection.cli import evaluate as eval_cli
from detection.evaluation.browser import page_thresholds
from detection.evaluation.tide import KINDS


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("browse") / "eval"
    eval_cli.main(["--ckpt", str(tiny_run), "--out", str(out)])
    return out


def _data(folder):
    text = (folder / "data.js").read_text()
    return json.loads(text[text.index("=") + 1:].strip().rstrip(";"))


def test_the_page_data_holds_every_image_and_the_reports_numbers(evaluated):
    data, report = _data(evaluated), json.loads((evaluated / "report.json").read_text())
    numbers = {n["id"]: n["value"] for n in data["numbers"]}
    assert numbers["ap"] == report["coco"]["AP"] and numbers["ap50"] == report["coco"]["AP50"]
    assert len(data["images"]) == numbers["images"] == 6 and data["kind"] == "eval"
    for im in data["images"]:
        assert (evaluated / im["thumb"]).is_file() and (evaluated / im["file"]).resolve().is_file()
        assert all(d[6] in ("tp", *KINDS) and -1 <= d[8] < len(im["gt"]) for d in im["dets"])
    assert "http" not in (evaluated / "index.html").read_text().replace("http://www.w3.org", "")  # no CDN


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    browser, driver = shutil.which("chromium") or shutil.which("google-chrome"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no headless browser here: apt-get install chromium chromium-driver (CI installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.slow
def test_chromium_shows_the_reports_numbers_and_filters_by_class(evaluated):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    data, report = _data(evaluated), json.loads((evaluated / "report.json").read_text())
    chrome = _chrome()
    try:
        chrome.get((evaluated / "index.html").as_uri())
        assert chrome.find_element(By.ID, "ap").text == f"{report['coco']['AP']:.3f}"
        assert chrome.find_element(By.ID, "ap50").text == f"{report['coco']['AP50']:.3f}"
        assert len(chrome.find_elements(By.CSS_SELECTOR, "#grid .card")) == 6
        chrome.execute_script("const s = document.getElementById('score'); s.value = '0.3';"
                              "s.dispatchEvent(new Event('input'));")  # one score for all classes
        assert not chrome.find_element(By.ID, "at-model").is_selected()
        shown = {c: sum(any(g[4] == c for g in im["gt"]) or any(d[4] == c and d[5] >= 0.3 for d in im["dets"])
                        for im in data["images"]) for c in range(1, len(data["classes"]) + 1)}
        k = max(shown, key=lambda c: (0 < shown[c] < 6, -shown[c]))  # a class the filter shows some images of
        expected = shown[k]
        Select(chrome.find_element(By.ID, "class")).select_by_value(str(k))
        assert len(chrome.find_elements(By.CSS_SELECTOR, "#grid .card")) == expected < 6
        assert chrome.find_element(By.ID, "count").text.startswith(f"{expected} of 6")
        chrome.find_elements(By.CSS_SELECTOR, "#grid .card")[0].click()
        assert chrome.find_element(By.ID, "modal").is_displayed()
        assert chrome.find_elements(By.CSS_SELECTOR, "#boxes tr")  # each box's class, score and IoU
        severe = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        chrome.quit()


@pytest.mark.slow
def test_the_data_check_page_shows_every_split_and_filters_by_tag(synthetic_root, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from detection.cli import data_check

    out = tmp_path / "check"
    data_check.main(["--data", str(synthetic_root / "coco"), "--format", "coco", "--out", str(out)])
    data = _data(out)
    assert data["kind"] == "data_check" and len(data["images"]) == 32  # 24 train + 8 val
    chrome = _chrome()
    try:
        chrome.get((out / "index.html").as_uri())
        assert chrome.find_element(By.ID, "n-train").text == "24"
        Select(chrome.find_element(By.ID, "tag")).select_by_value("split val")
        assert chrome.find_element(By.ID, "count").text.startswith("8 of 32")
        assert not [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        chrome.quit()


def test_the_page_starts_at_the_thresholds_the_evaluation_counts_at(evaluated):
    data, report = _data(evaluated), json.loads((evaluated / "results.json").read_text())
    assert "stored_operating_point" in report  # training stored them in the checkpoint
    stored = {r["class"]: r["threshold"] for r in report["stored_operating_point"]["per_class"]}
    assert data["thresholds"] == [round(stored[n] if stored[n] is not None else 0.25, 4) for n in data["classes"]]
    assert data["thresholds_from"] == "the model's stored thresholds"
    del report["stored_operating_point"]  # a model without: the thresholds this evaluation chose
    chosen = {r["class"]: r["threshold"] for r in report["operating_point"]["per_class"]}
    without = page_thresholds(report, data["classes"])
    assert without["thresholds"] == [round(chosen[n] if chosen[n] is not None else 0.25, 4) for n in data["classes"]]
    assert without["thresholds_from"] == "the thresholds chosen here (f1)"
    assert page_thresholds({"coco": report["coco"]}, data["classes"]) == {}  # no matches kept: one slider


@pytest.mark.slow
def test_chromium_opens_at_the_models_thresholds_and_the_slider_leaves_them(evaluated):
    """The score filter starts where the stored or chosen thresholds are, not at a fixed 0.30:
    each class shows the detections at or over its own threshold; moving the slider switches to
    one threshold for all."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    data = _data(evaluated)
    thr = data["thresholds"]

    def errors_at(cut):  # the page's own count: wrong detections over the cut, plus labels no tp finds
        total = 0
        for im in data["images"]:
            over = [d for d in im["dets"] if d[5] >= cut(d)]
            found = {d[8] for d in over if d[6] == "tp"}
            total += sum(d[6] != "tp" for d in over) + sum(not g[5] and i not in found for i, g in enumerate(im["gt"]))
        return total

    def page_errors():
        caps = chrome.find_elements(By.CSS_SELECTOR, "#grid .card .caption span:last-child")
        return sum(int(c.text.split()[0]) for c in caps)

    chrome = _chrome()
    try:
        chrome.get((evaluated / "index.html").as_uri())
        box = chrome.find_element(By.ID, "at-model")
        assert box.is_displayed() and box.is_selected()
        assert chrome.find_element(By.ID, "score-val").text in ("per class", f"{thr[0]:.2f}")
        assert page_errors() == errors_at(lambda d: thr[d[4] - 1])
        slider = chrome.find_element(By.ID, "score")
        ActionChains(chrome).click_and_hold(slider).move_by_offset(-slider.size["width"] // 2, 0).release().perform()
        assert not box.is_selected()
        at = float(slider.get_attribute("value"))
        assert chrome.find_element(By.ID, "score-val").text == f"{at:.2f}"
        assert page_errors() == errors_at(lambda d: at)
        assert not [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        chrome.quit()
