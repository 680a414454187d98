"""Batch scoring: every scheduled flight of the next day, features as of its start, the
champion's probabilities validated, one file per day replaced atomically."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import DAYS

from fti.ground import featurestore, files
from fti.ground.contract import contract
from fti.ground.settings import Settings
from fti.ground.validation import ValidationFailed
from serving import batch
from training import dataset, gate

pytestmark = pytest.mark.slow

NEXT_DAY = DAYS[-1] + timedelta(days=1)


@pytest.fixture(scope="module")
def champion(champion_home):
    return champion_home("batch")


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_flights(settings: Settings, day: date) -> pd.DataFrame:
    f = pd.read_csv(settings.source_dir / "flights.csv.zip", na_values=["NA"])
    return f[(f.year == day.year) & (f.month == day.month) & (f.day == day.day)]


def test_every_scheduled_flight_is_scored_with_features_as_of_the_day_start(champion):
    s = champion.settings
    result = batch.score_day(NEXT_DAY, "scheduled__2013-01-03", s)

    df = pd.read_parquet(result["path"])
    scheduled = _source_flights(s, NEXT_DAY)
    assert len(df) == result["rows"] == len(scheduled)  # cancelled ones included
    assert df["flight_id"].is_unique
    assert df["probability"].between(0, 1).all() and df["probability"].notna().all()
    assert (df["predicted_class"] == (df["probability"] >= batch.THRESHOLD)).all()
    assert (df["model_version"] == champion.version).all()

    start = pd.Timestamp(NEXT_DAY.isoformat(), tz=s.timezone).tz_convert("UTC")
    assert (df["prediction_ts"] == start).all()
    assert (df["sched_dep_ts"] >= start).all()
    # the features are those of the last published hour, never of the day being predicted
    carrier_ts = df["_feature_ts__carrier_delay_history"].dropna()
    assert len(carrier_ts) and (carrier_ts == start - pd.Timedelta(hours=1)).all()
    for c in [c for c in df.columns if c.startswith(featurestore.TS_PREFIX)]:
        assert (df[c].dropna() < start).all(), c

    # every input the model reads is in the file, for monitoring
    inputs = pd.read_parquet(next(iter((s.data_dir / "training_sets").glob("*.parquet"))))
    model_inputs = [
        c
        for c in inputs.columns
        if c not in {*dataset.SPINE_COLUMNS, contract().label, "event_timestamp", "split"}
    ]
    assert set(model_inputs) <= set(df.columns)
    report = Path(result["validation_report"])
    assert report.exists() and report.is_relative_to(s.reports_dir / "validation" / "predictions")


def test_ids_and_departures_match_the_feature_pipeline(champion):
    """A day whose outcomes are published: every departed flight in its labels is a scored
    flight with the same id and scheduled departure (the training set's keys)."""
    s = champion.settings
    day = DAYS[-1]
    df = pd.read_parquet(batch.score_day(day, "manual", s)["path"])
    labels = pd.read_parquet(s.offline_dir / "flight_labels" / f"date={day.isoformat()}")

    joined = labels.merge(df, on="flight_id", how="left", suffixes=("_label", ""))
    assert joined["probability"].notna().all()
    for c in ("sched_dep_ts", "carrier", "flight", "origin", "dest"):
        assert (joined[f"{c}_label"] == joined[c]).all(), c
    assert len(df) == len(_source_flights(s, day)) >= len(labels)


def test_rerun_replaces_the_day_with_the_same_content(champion):
    s = champion.settings
    first = batch.score_day(NEXT_DAY, "run_1", s)
    digest = _sha256(batch.predictions_path(s, NEXT_DAY))
    second = batch.score_day(NEXT_DAY, "run_2", s)

    assert first["path"] == second["path"]
    assert _sha256(batch.predictions_path(s, NEXT_DAY)) == digest
    folder = batch.predictions_path(s, NEXT_DAY).parent
    assert [p.name for p in folder.iterdir()] == [files.PART_FILE]


def test_invalid_predictions_fail_naming_the_expectation_and_publish_nothing(champion, monkeypatch):
    s = champion.settings
    batch.score_day(NEXT_DAY, "good", s)
    path = batch.predictions_path(s, NEXT_DAY)
    before = _sha256(path)

    def broken(model_dir, df):
        p = gate.score(model_dir, df)
        p[0], p[1] = np.nan, 1.5
        return p

    monkeypatch.setattr(batch, "predict_proba", broken)
    with pytest.raises(ValidationFailed) as failed:
        batch.score_day(NEXT_DAY, "broken", s)

    message = str(failed.value)
    assert "expect_column_values_to_not_be_null(column='probability'" in message
    assert "expect_column_values_to_be_between(column='probability'" in message
    assert "1.5" in message
    assert _sha256(path) == before
    assert [p.name for p in path.parent.iterdir()] == [files.PART_FILE]
    assert (batch.validation_report_dir(s, NEXT_DAY, "broken") / "report.html").exists()


def test_a_day_without_the_previous_days_features_is_refused(champion):
    later = NEXT_DAY + timedelta(days=1)
    with pytest.raises(FileNotFoundError, match=f"features of {NEXT_DAY.isoformat()}"):
        batch.score_day(later, "manual", champion.settings)
    assert not batch.predictions_path(champion.settings, later).exists()


def test_no_champion_is_a_clear_error(champion, tmp_path):
    s = Settings(
        home=tmp_path / "home",
        data_root=champion.settings.data_dir,
        feast_registry=champion.settings.registry,
    )
    with pytest.raises(LookupError, match="no champion model"):
        batch.score_day(NEXT_DAY, "manual", s)


def test_latest_feature_day_is_the_last_published(champion):
    assert batch.latest_feature_day(champion.settings) == DAYS[-1]


def test_predictions_are_checked_against_their_recent_days(champion, monkeypatch):
    from fti.ground import history

    s = champion.settings
    first = batch.score_day(NEXT_DAY, "h0", s)
    folder = history.root(s, "predictions")
    kept = history.profile_path(folder, "predictions", NEXT_DAY)
    assert kept.is_file() and json.loads(kept.read_text())["rows"] == first["rows"]
    # seven days before it that looked like it: the day is compared, and passes
    earlier = [NEXT_DAY - timedelta(days=k) for k in range(1, 8)]
    try:
        for d in earlier:
            shutil.copy(
                kept, history.profile_path(folder, "predictions", d).parent / f"date={d}.json"
            )
        again = batch.score_day(NEXT_DAY, "h1", s)
        assert again["history"] == [] and again["warned"] == []
        published = _sha256(Path(again["path"]))
        # an origin airport missing from the day's schedule halts, naming it; nothing published
        scheduled = batch.scheduled_flights
        monkeypatch.setattr(
            batch,
            "scheduled_flights",
            lambda day, settings=None: scheduled(day, settings).query("origin != 'LGA'"),
        )
        with pytest.raises(ValidationFailed, match="origin LGA went dark"):
            batch.score_day(NEXT_DAY, "h2", s)
        assert _sha256(Path(again["path"])) == published
    finally:
        for d in earlier:
            history.profile_path(folder, "predictions", d).unlink(missing_ok=True)
