"""D-ECE and the temperature (issue 19, part 5): known bins, a known overconfidence recovered,
and a calibrated model that keeps exactly the boxes it kept before."""

from __future__ import annotations

import numpy as np
import pytest

from detection.evaluation.calibration import apply_temperature, calibration, d_ece, fit_temperature


def test_d_ece_is_the_weighted_gap_between_precision_and_score():
    scores = np.array([0.9] * 10 + [0.35] * 10)
    hit = np.array([True] * 9 + [False] + [True] * 7 + [False] * 3)
    ece, bins = d_ece(scores, hit)
    assert ece == pytest.approx(0.5 * abs(0.9 - 0.9) + 0.5 * abs(0.7 - 0.35))
    assert [b["count"] for b in bins if b["count"]] == [10, 10]


def test_a_known_overconfidence_is_recovered_and_the_gap_closes():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 0.99, 4000)
    hit = rng.random(4000) < apply_temperature(scores, 3.0)  # right less often than the scores say
    t = fit_temperature(scores, hit)
    assert t == pytest.approx(3.0, rel=0.15)
    before, _ = d_ece(scores, hit)
    after, _ = d_ece(apply_temperature(scores, t), hit)
    assert after < before / 3
    assert np.array_equal(np.argsort(scores), np.argsort(apply_temperature(scores, t)))  # ranking unchanged


def test_a_calibrated_model_keeps_the_same_boxes_and_shows_calibrated_scores():
    from detection.evaluation.decide import thresholds_to_store
    from detection.inference.predictor import Predictor
    from tests.evaluation.simulate import split

    ev, res = split(60, seed=7)
    stored = thresholds_to_store(res, ev, "f1", calibrate="temperature")
    assert stored["temperature"] and res["calibration"]["d_ece_after"] <= res["calibration"]["d_ece"]
    plain = {**stored, "temperature": None}

    class Backend:
        device = None

        def __call__(self, batch):
            return [(np.array([[1, 1, 9, 9]] * 4, np.float32), np.array([0.95, 0.7, 0.5, 0.2], np.float32),
                     np.array([1, 2, 3, 1])) for _ in batch]

    image = np.zeros((10, 10, 3), np.uint8)
    calibrated = Predictor(Backend(), ev.info.class_names, 10, 10, thresholds=stored).predict([image], score=None)[0]
    raw = Predictor(Backend(), ev.info.class_names, 10, 10, thresholds=plain).predict([image], score=None)[0]
    assert raw.labels.tolist() == calibrated.labels.tolist() == [0, 1, 2]  # the same boxes kept (0.2 is not)
    assert calibrated.scores == pytest.approx(apply_temperature(raw.scores, stored["temperature"]), abs=1e-6)
    m = ev.matches()
    assert calibration(m, fit=False)["d_ece"] == pytest.approx(res["calibration"]["d_ece"])
