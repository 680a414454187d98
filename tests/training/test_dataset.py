"""The training set's point-in-time join against Feast's own, on the feature pipeline's real
output for 2013-01-01..02 (the shared `two_days` fixture)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from fti.ground import featurestore
from fti.ground.settings import get_settings
from fti.ground.validation import ValidationFailed
from training import dataset

pytestmark = pytest.mark.slow
NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def spine(two_days):
    assert [s for _, s in two_days] == ["success", "success"]
    return dataset.load_spine(get_settings(), first=date(2013, 1, 1), last=date(2013, 1, 2))


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    both_null = a.isna() & b.isna()
    return both_null | (a == b)


def test_spine_is_every_departed_flight_at_its_prediction_time(spine):
    labels = pd.read_parquet(get_settings().offline_dir / "flight_labels")
    labels = labels[labels["date"].astype(str) <= "2013-01-02"]
    assert len(spine) == len(labels)
    # the default (FTI_TRAINING_AS_OF=horizon): the horizon before departure
    assert (spine["sched_dep_ts"] - spine["event_timestamp"] == timedelta(hours=2)).all()
    # day_start: one microsecond before the start of the flight's local day
    s = get_settings().model_copy(update={"training_as_of": "day_start"})
    other = dataset.load_spine(s, first=date(2013, 1, 1), last=date(2013, 1, 2))
    local = other["sched_dep_ts"].dt.tz_convert("America/New_York")
    midnight = local.dt.normalize()
    assert (midnight.dt.hour == 0).all() and (midnight.dt.date == local.dt.date).all()
    assert (other["event_timestamp"] == midnight - timedelta(microseconds=1)).all()


@pytest.fixture(scope="module")
def horizon_spine(two_days):
    """The spine stamped 2 h before departure: distinct instants, which Feast's file store needs
    to return a row per spine row (at the day's start most rows share keys and timestamp)."""
    s = get_settings().model_copy(update={"training_as_of": "horizon"})
    return dataset.load_spine(s, first=date(2013, 1, 1), last=date(2013, 1, 2))


def test_join_gives_feasts_cells_for_every_row(horizon_spine):
    # a sample, plus rows a month later (after any day the tests publish): past every TTL
    sample = horizon_spine.sample(250, random_state=7)
    late = sample.head(5).assign(
        event_timestamp=lambda d: d["event_timestamp"] + timedelta(days=30),
        flight_id=lambda d: d["flight_id"] + "-late",
    )
    entity_df = pd.concat([sample, late], ignore_index=True)

    ours = dataset.point_in_time_join(entity_df, get_settings())
    store = featurestore.feature_store(get_settings())
    theirs = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(featurestore.feature_service_name())
    ).to_df()

    # every spine row keeps its own row, in the spine's order
    assert ours["flight_id"].tolist() == entity_df["flight_id"].tolist()
    features = [c for c in theirs.columns if c not in entity_df.columns]
    service = store.get_feature_service(featurestore.feature_service_name())
    assert len(features) == sum(len(p.features) for p in service.feature_view_projections) == 28
    # Feast's file store drops spine rows that share keys and timestamp (feast#6787) and, here,
    # rows with no feature row inside any TTL; every row it does return must match ours cell
    # for cell
    merged = ours.merge(theirs, on="flight_id", suffixes=("", "_feast"), validate="one_to_one")
    assert len(merged) > len(entity_df) / 2
    shares_keys = pd.Series(False, index=entity_df.index)
    for keys in (["origin"], ["carrier"], ["origin", "dest"], ["tailnum"]):
        shares_keys |= entity_df.duplicated([*keys, "event_timestamp"], keep=False)
    dropped = set(entity_df["flight_id"]) - set(theirs["flight_id"])
    assert dropped <= set(entity_df.loc[shares_keys, "flight_id"]) | set(late["flight_id"])
    for col in features:
        same = _same(merged[col], merged[f"{col}_feast"])
        assert same.all(), (col, merged.loc[~same, [col, f"{col}_feast"]].head())
    late_rows = ours[ours["flight_id"].str.endswith("-late")]
    assert late_rows["temp_f"].isna().all() and late_rows["carrier_flights_7d"].isna().all()
    assert late_rows["plane_seats"].isna().all()
    assert late_rows["dep_hour_local"].notna().all()  # on-demand features need no stored row


def test_spark_path_gives_the_same_cells_as_duckdb(spine):
    # the whole spine, a month-later copy (past every TTL) and twins sharing keys and timestamp
    late = spine.head(20).assign(
        event_timestamp=lambda d: d["event_timestamp"] + timedelta(days=30),
        flight_id=lambda d: d["flight_id"] + "-late",
    )
    twin = spine.iloc[[50]].assign(flight_id="twin")
    entity_df = pd.concat([spine, late, twin], ignore_index=True)
    duck = dataset.point_in_time_join(entity_df, get_settings())
    spark = dataset.point_in_time_join_spark(entity_df, get_settings())
    assert spark.columns.tolist() == duck.columns.tolist()
    assert spark["flight_id"].tolist() == entity_df["flight_id"].tolist()
    for col in duck.columns:
        same = _same(spark[col], duck[col])
        assert same.all(), (col, pd.concat([spark[col], duck[col]], axis=1)[~same].head())
    assert (
        duck[[c for c in duck.columns if c.startswith(featurestore.TS_PREFIX)]].notna().any().all()
    )


def test_rows_sharing_keys_and_timestamp_each_keep_their_row(spine):
    row = spine.iloc[[100]]
    twins = pd.concat(
        [row, row.assign(flight_id="twin-a"), row.assign(flight_id="twin-b")], ignore_index=True
    )
    out = dataset.point_in_time_join(twins, get_settings())
    assert out["flight_id"].tolist() == [row["flight_id"].iloc[0], "twin-a", "twin-b"]
    features = [c for c in out.columns if c not in twins.columns]
    assert (out[features].iloc[0].fillna(-1) == out[features].iloc[1].fillna(-1)).all()


def test_no_feature_comes_from_after_its_row(spine):
    out = dataset.point_in_time_join(spine, get_settings())
    ts_cols = [c for c in out.columns if c.startswith(featurestore.TS_PREFIX)]
    assert len(ts_cols) == 4
    for c in ts_cols:
        present = out[c].notna()
        assert (out.loc[present, c] <= out.loc[present, "event_timestamp"]).all()
    report = dataset.validate(out, datetime(2013, 1, 3, tzinfo=NY), None)
    assert report.success


@pytest.mark.parametrize(
    "break_it, names",
    [
        (
            lambda d: d.assign(
                **{
                    f"{featurestore.TS_PREFIX}carrier_delay_history": d["event_timestamp"]
                    + timedelta(minutes=30)
                }
            ),
            "_feature_ts__carrier_delay_history",
        ),
        (lambda d: d.assign(dep_delayed_15=1), "expect_column_mean_to_be_between"),
        (lambda d: d.assign(route_flights_7d=None), "route_flights_7d"),
        (lambda d: d.assign(sched_dep_ts=d["sched_dep_ts"] + timedelta(days=5)), "sched_dep_ts"),
    ],
    ids=[
        "future-dated feature",
        "label share out of bounds",
        "null-riddled column",
        "row after cut-off",
    ],
)
def test_bad_training_set_stops_with_a_message_naming_it(spine, break_it, names):
    good = dataset.point_in_time_join(spine, get_settings())
    with pytest.raises(ValidationFailed, match=names):
        dataset.validate(break_it(good), datetime(2013, 1, 3, tzinfo=NY), None)


def test_split_is_by_time_and_snapshot_hash_is_content(spine, tmp_path):
    out = dataset.point_in_time_join(spine, get_settings())
    split = dataset.time_split(out, cutoff_day=date(2013, 1, 2), test_days=1, validation_days=0)
    assert set(split) == {"train", "test"}
    assert (
        out.loc[split == "train", "sched_dep_ts"].max()
        < out.loc[split == "test", "sched_dep_ts"].min()
    )
    path, digest = dataset.write_snapshot(out, tmp_path)
    again, digest2 = dataset.write_snapshot(pd.read_parquet(path), tmp_path / "b")
    assert digest == digest2 and path.name == again.name
    changed = out.copy()
    changed.loc[0, "temp_f"] = 99.0
    assert dataset.content_hash(changed) != digest
