"""Retraining for a reason (issue 15, point 4): a feature day alone does not train; the weekly
schedule (in data days), a performance alarm, sustained drift and a manual run each do, and the
trigger is recorded on the run's result and the registered version."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from fti.ground.assets import DRIFT, FEATURES, PERFORMANCE
from fti.ground.settings import Settings
from training import gate, registry, triggers

S = Settings()
LAST = date(2013, 1, 10)  # the last day the newest version was trained on


def _events(**by_asset) -> dict:
    assets = {"features": FEATURES, "drift": DRIFT, "performance": PERFORMANCE}
    return {assets[k]: [SimpleNamespace(extra=e) for e in extras] for k, extras in by_asset.items()}


def _feature_day(d: date) -> dict:
    return {"first_day": d.isoformat(), "last_day": d.isoformat()}


def test_a_feature_day_inside_the_week_trains_nothing_and_says_when_it_will():
    t = triggers.decide(_events(features=[_feature_day(date(2013, 1, 12))]), None, S, LAST)
    assert t.reason is None and t.through == date(2013, 1, 12)
    assert "2 of 7 days" in t.why and "2013-01-17" in t.why


def test_the_weekly_tick_trains_through_the_day_it_names():
    t = triggers.decide(_events(features=[_feature_day(date(2013, 1, 17))]), None, S, LAST)
    assert (t.reason, t.through) == ("schedule", date(2013, 1, 17))
    every_day = S.model_copy(update={"training_every_days": 0})
    t = triggers.decide(
        _events(features=[_feature_day(LAST + timedelta(1))]), None, every_day, LAST
    )
    assert t.reason == "schedule"


def test_alarms_train_at_once_inside_the_week():
    perf = {"day": "2013-01-12", "features_through": "2013-01-11", "why": "AUC 0.60 vs 0.66"}
    t = triggers.decide(
        _events(features=[_feature_day(date(2013, 1, 12))], performance=[perf]), None, S, LAST
    )
    assert (t.reason, t.through) == ("performance", date(2013, 1, 12))
    assert "AUC 0.60 vs 0.66" in t.why
    drift = {"day": "2013-01-12", "features_through": "2013-01-11", "why": "temp_f 3 days"}
    t = triggers.decide(_events(drift=[drift]), None, S, LAST)
    assert (t.reason, t.through) == ("drift", date(2013, 1, 11)) and "temp_f" in t.why


def test_a_manual_run_trains_through_its_parameter():
    t = triggers.decide(None, {"through": "2013-01-05"}, S, LAST)
    assert (t.reason, t.through) == ("manual", date(2013, 1, 5))
    assert triggers.decide({}, {}, S, LAST) == triggers.Trigger("manual", None, "started by hand")


def test_a_backfill_of_many_days_is_one_training_through_the_latest():
    # the events a backfill queued while a training ran: consumed by the one queued run
    days = [date(2013, 1, 11) + timedelta(i) for i in range(30)]
    t = triggers.decide(_events(features=[_feature_day(d) for d in days]), None, S, LAST)
    assert (t.reason, t.through) == ("schedule", days[-1])


def test_a_first_training_waits_for_enough_days():
    first = S.first_day
    early = triggers.decide(_events(features=[_feature_day(first + timedelta(3))]), None, S, None)
    assert early.reason is None and "a first training needs 8" in early.why
    t = triggers.decide(_events(features=[_feature_day(first + timedelta(7))]), None, S, None)
    assert t.reason == "schedule" and t.why == "no model trained yet"


def test_the_last_training_is_read_from_the_registry(served_model, tmp_path):
    s = Settings(home=tmp_path / "home", data_root=tmp_path / "data")
    assert triggers.last_trained_through(s) is None
    results = {"validation": {}, "test": {}, "samples_per_second": 1.0}
    for interval in ("2013-01-02..2013-01-09", "2013-01-02..2013-01-16"):
        _, v = registry.register(served_model, results, {"data_interval": interval}, s)
        registry.record_decision(str(v), gate.Decision(False, ["t"]), {}, s)
    assert triggers.last_trained_through(s) == date(2013, 1, 16)
    t = triggers.decide(_events(features=[_feature_day(date(2013, 1, 20))]), None, s)
    assert t.reason is None


@pytest.mark.parametrize("reason", ["schedule", "performance"])
def test_the_trigger_is_kept_on_the_version(reason, served_model, snapshot, tmp_path):
    import json

    import pandas as pd

    from training import dataset, pipeline

    s = Settings(home=tmp_path / "home", data_root=tmp_path / "data")
    path, digest = dataset.write_snapshot(pd.read_parquet(snapshot), s.data_dir / "training_sets")
    built = {
        "snapshot": str(path),
        "hash": digest,
        "feature_service": "flight_delay_v1",
        "data_interval": "2013-01-01..2013-01-02",
        "through": "2013-01-02",
        "trigger": reason,
    }
    metrics = json.loads((served_model / "metrics.json").read_text())
    result = pipeline.evaluate(built, {"model_dir": str(served_model), "metrics": metrics}, s)
    assert result["trigger"] == reason
    tags = registry.model_version(result["version"], s).tags
    assert tags["trigger"] == reason
