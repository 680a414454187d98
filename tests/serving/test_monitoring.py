"""Monitoring: the population stability index, drift flagged when inputs shift, and the day's
report with realised performance once the labels have landed."""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from helpers import DAYS

from fti.ground import featurestore
from fti.ground.contract import contract
from fti.ground.settings import Settings
from serving import batch, monitoring
from training import gate, train

NEXT_DAY = DAYS[-1] + timedelta(days=1)
THRESHOLD = Settings().drift_psi_threshold


# ------------------------------------------------------------------ the index itself


def test_psi_of_identical_distributions_is_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(10, 2, 5000)
    assert monitoring.psi(x, x) == 0.0
    # two samples of one distribution: sampling noise only
    assert monitoring.psi(x, rng.normal(10, 2, 5000)) < 0.02
    cats = pd.Series(rng.choice(["AA", "UA", "B6"], 3000))
    assert monitoring.psi(cats, cats.sample(frac=1, random_state=1), categorical=True) == 0.0


def test_psi_of_a_shifted_distribution_is_above_the_threshold():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, 5000)
    assert monitoring.psi(x, x + 2) > THRESHOLD  # one standard deviation
    assert monitoring.psi(x, x + 0.1) < THRESHOLD
    ref = pd.Series(["AA"] * 500 + ["UA"] * 500)
    assert monitoring.psi(ref, pd.Series(["AA"] * 900 + ["UA"] * 100), categorical=True) > THRESHOLD
    assert monitoring.psi(ref, pd.Series(["B6"] * 1000), categorical=True) > THRESHOLD


def test_psi_formula_with_an_epsilon_for_empty_bins():
    e, a = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    by_hand = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert monitoring.psi_from_shares(e, a) == pytest.approx(by_hand)
    eps = monitoring.EPSILON
    empty = (1 - 0.5) * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert monitoring.psi_from_shares(e, np.array([1.0, 0.0])) == pytest.approx(empty)


def test_numeric_bins_are_the_reference_deciles_plus_missing():
    ref = np.arange(1000, dtype=float)
    edges = monitoring.quantile_edges(ref)
    assert len(edges) == monitoring.BINS - 1
    shares = monitoring.bin_shares(ref, edges)
    assert shares[:-1] == pytest.approx(np.full(monitoring.BINS, 0.1))
    assert shares[-1] == 0
    # a feature that is mostly one value gets fewer bins, and values beyond it still count
    zeros = np.r_[np.zeros(950), np.arange(1, 51)]
    assert monitoring.psi(zeros, np.full(1000, 5.0)) > THRESHOLD


def test_a_change_in_the_null_rate_is_drift():
    rng = np.random.default_rng(2)
    ref = pd.Series(rng.normal(size=2000))
    cur = ref.copy()
    cur[::2] = np.nan
    assert monitoring.psi(ref, cur) > THRESHOLD


# ------------------------------------------------------------------ monitor_day on real data


@pytest.fixture(scope="module")
def champion(champion_home):
    return champion_home("monitoring")


def _model_inputs(model_dir) -> set[str]:
    import torch

    from training.model import Preprocessor

    pre = Preprocessor.from_json(
        torch.load(model_dir / "model.pt", weights_only=False)["preprocessor"]
    )
    return {*pre.categorical, *pre.numeric}


@pytest.mark.slow
def test_report_of_a_day_whose_labels_have_not_landed(champion):
    s = champion.settings
    batch.score_day(NEXT_DAY, "manual", s)
    result = monitoring.monitor_day(NEXT_DAY, "scheduled__<b>&", s)

    assert result["labels"] == monitoring.LABELS_NOT_LANDED and result["performance"] is None
    assert result["model_version"] == champion.version
    assert result["training_set"] == str(champion.snapshot)
    assert set(result["feature_psi"]) == _model_inputs(champion.model_dir)
    assert all(v >= 0 for v in result["feature_psi"].values())
    assert set(result["ignored"]) == {"dep_dow_local", "dep_month_local"}
    assert result["drifted"] == sorted(
        (
            c
            for c, v in result["feature_psi"].items()
            if v > s.drift_psi_threshold and c not in result["ignored"]
        ),
        key=lambda c: -result["feature_psi"][c],
    )

    folder = s.monitoring_dir / NEXT_DAY.isoformat()
    for png in ("feature_psi.png", "predictions.png", "top_features.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG", png
    assert not (folder / "calibration.png").exists()
    assert json.loads((folder / "metrics.json").read_text()) == json.loads(json.dumps(result))
    page = (folder / "index.html").read_text()
    assert monitoring.LABELS_NOT_LANDED in page
    assert "scheduled__&lt;b&gt;&amp;" in page and "<b>&" not in page

    again = monitoring.monitor_day(NEXT_DAY, "rerun", s)
    assert again["feature_psi"] == result["feature_psi"]
    assert [p.name for p in s.monitoring_dir.iterdir()] == [NEXT_DAY.isoformat()]


@pytest.mark.slow
def test_realised_performance_once_the_labels_have_landed(champion):
    s = champion.settings
    day = DAYS[-1]
    batch.score_day(day, "manual", s)
    result = monitoring.monitor_day(day, "manual", s)

    labels = pd.read_parquet(s.offline_dir / "flight_labels" / f"date={day.isoformat()}")
    scored = pd.read_parquet(batch.predictions_path(s, day)).merge(labels, on="flight_id")
    expected = train.metrics(scored[contract().label].to_numpy(), scored["probability"].to_numpy())
    perf = result["performance"]
    assert result["labels"] == "landed"
    assert perf["labelled"] == len(labels) and perf["scored"] == result["rows"]
    for k in ("roc_auc", "log_loss", "calibration_error"):
        assert perf[k] == pytest.approx(expected[k], abs=1e-6), k
    assert 0 <= perf["roc_auc"] <= 1 and perf["log_loss"] > 0
    assert (s.monitoring_dir / day.isoformat() / "calibration.png").exists()
    assert "roc_auc" in (s.monitoring_dir / day.isoformat() / "index.html").read_text()


@pytest.mark.slow
def test_shifted_inputs_are_flagged_and_logged(champion, caplog):
    """The day's inputs are the training rows themselves (no drift), then two features moved."""
    s = champion.settings
    snap = pd.read_parquet(champion.snapshot)
    train_rows = snap[snap["split"] == "train"].reset_index(drop=True)
    reference = monitoring.reference_as_scored(train_rows, champion.snapshot, s)
    # the reference is the training flights as a day's scoring sees them: as of their midnight
    assert reference["flight_id"].tolist() == train_rows["flight_id"].tolist()
    for c in [c for c in reference.columns if c.startswith(featurestore.TS_PREFIX)]:
        local_day = reference["sched_dep_ts"].dt.tz_convert("America/New_York").dt.date
        seen = reference[c].notna()
        assert (
            reference.loc[seen, c].dt.tz_convert("America/New_York").dt.date < local_day[seen]
        ).all()
    control = reference.assign(
        probability=gate.score(champion.model_dir, reference), model_version=champion.version
    )
    day = NEXT_DAY + timedelta(days=1)  # a day no other test scores
    path = batch.predictions_path(s, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    control.to_parquet(path, index=False)

    calm = monitoring.monitor_day(day, "control", s)
    assert calm["drifted"] == []
    assert max(calm["feature_psi"].values()) == pytest.approx(0, abs=1e-9)
    assert calm["prediction_psi"] == pytest.approx(0, abs=1e-9)

    # (the reference is the data set's first day as of its midnight: no weather or history
    # existed yet, so numeric features are null there and a categorical shift is the test)
    # the weekday moves too: reported, but by configuration never drift (a day has one weekday)
    control.assign(
        dest="SJU", origin="JFK", dep_dow_local=(control["dep_dow_local"] + 3) % 7
    ).to_parquet(path, index=False)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="serving.monitoring"):
        drift = monitoring.monitor_day(day, "shifted", s)

    assert set(drift["drifted"]) == {"dest", "origin"}
    assert drift["feature_psi"]["dep_dow_local"] > s.drift_psi_threshold
    assert "dep_dow_local" in drift["ignored"]
    assert min(drift["feature_psi"][c] for c in drift["drifted"]) > s.drift_psi_threshold
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("feature drift")
    ]
    assert len(lines) == 1, lines
    assert "dest PSI" in lines[0] and "origin PSI" in lines[0]
    assert f"threshold {s.drift_psi_threshold}" in lines[0]
