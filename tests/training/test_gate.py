"""The evaluation gate never promotes a worse model."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from training import gate, train

GOOD = {"roc_auc": 0.70, "log_loss": 0.40, "calibration_error": 0.03}


def test_first_good_candidate_is_promoted():
    d = gate.decide(GOOD, baseline={"roc_auc": 0.65}, champion=None)
    assert d.promote and "no champion yet" in d.describe()


def test_candidate_must_beat_the_champion_by_the_margin():
    cfg = gate.GateConfig(champion_margin=0.01)
    assert not gate.decide(GOOD, None, {"roc_auc": 0.695}, cfg).promote
    assert gate.decide(GOOD, None, {"roc_auc": 0.68}, cfg).promote


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"roc_auc": math.nan}, "roc_auc"),
        ({"log_loss": None}, "log_loss"),
        ({"calibration_error": float("inf")}, "calibration_error"),
    ],
)
def test_missing_or_nan_metric_never_promotes(bad, named):
    d = gate.decide({**GOOD, **bad}, None, None)
    assert not d.promote and named in d.describe()


def test_every_failed_threshold_is_named():
    d = gate.decide(
        {"roc_auc": 0.52, "log_loss": 0.9, "calibration_error": 0.2},
        {"roc_auc": 0.6},
        {"roc_auc": 0.6},
    )
    text = d.describe()
    assert not d.promote
    for part in (
        "ROC AUC 0.5200 < minimum",
        "log loss 0.9000 > maximum",
        "calibration error",
        "below the baseline",
        "does not beat the champion",
    ):
        assert part in text


def test_champion_with_nan_metric_is_kept():
    assert not gate.decide(GOOD, None, {"roc_auc": math.nan}).promote


@pytest.mark.slow
def test_champion_rescored_on_the_window_matches_its_training_metrics(snapshot, tmp_path):
    res = train.train(snapshot, tmp_path, epochs=2, seed=5)
    df = pd.read_parquet(snapshot)
    test = df[df["split"] == "test"]
    again = train.metrics(test["dep_delayed_15"].to_numpy(), gate.score(tmp_path, test))
    assert again["roc_auc"] == pytest.approx(res["test"]["roc_auc"], abs=1e-9)
    assert again["log_loss"] == pytest.approx(res["test"]["log_loss"], abs=1e-6)


#: deliberately worse models: trained on shuffled labels, or a crippled network (one hidden
#: unit, a learning rate too small to move it off its random start)
WORSE = {
    "shuffled labels": {"shuffle_labels": True},
    "crippled network": {"hidden": (1,), "lr": 1e-6},
}


@pytest.mark.slow
@pytest.mark.parametrize("how", WORSE)
def test_worse_model_is_never_promoted_over_a_champion(snapshot, tmp_path, how):
    champion = json.loads(
        json.dumps(train.train(snapshot, tmp_path / "c", epochs=3, seed=1)["test"])
    )
    worse = train.train(snapshot, tmp_path / "w", epochs=3, seed=1, **WORSE[how])["test"]
    baseline = gate.baseline_metrics(pd.read_parquet(snapshot))
    assert 0 <= baseline["roc_auc"] <= 1
    # loose absolute thresholds: the champion comparison alone has to stop it
    loose = gate.GateConfig(
        min_roc_auc=0.0, max_log_loss=10, max_calibration_error=1, baseline_tolerance=1.0
    )
    decision = gate.decide(worse, baseline, champion, loose)
    assert worse["roc_auc"] < champion["roc_auc"], (worse, champion)
    assert not decision.promote and "does not beat the champion" in decision.describe()
    # and with the configured thresholds it is not promoted even with no champion at all
    assert not gate.decide(worse, baseline, None).promote, worse


def test_gate_thresholds_come_from_settings():
    from fti.ground.settings import Settings

    cfg = gate.GateConfig.from_settings(Settings(gate_min_roc_auc=0.8, gate_champion_margin=0.05))
    assert cfg.min_roc_auc == 0.8 and cfg.champion_margin == 0.05
    assert not gate.decide(GOOD, None, None, cfg).promote
    assert not gate.decide(
        GOOD, None, {"roc_auc": 0.66}, gate.GateConfig(champion_margin=0.05)
    ).promote
