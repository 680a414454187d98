"""Online features: one batched lookup, Feast's TTL rule applied as the offline join applies it,
so the online features of a flight equal its offline ASOF features as of the same instant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import DAYS, free_port

from fti.ground import featurestore
from fti.ground.settings import Settings, get_settings
from serving import features
from training import dataset

pytestmark = pytest.mark.slow

LOCAL = "America/New_York"


@pytest.fixture(scope="module")
def store(two_days):
    assert all(state == "success" for _, state in two_days)
    return featurestore.feature_store(get_settings())


@pytest.fixture(scope="module")
def spine(store):
    """Every departed flight of the two materialized days, keys and departure only."""
    s = dataset.load_spine(get_settings(), first=DAYS[0], last=DAYS[-1])
    return s[dataset.SPINE_COLUMNS].reset_index(drop=True)


def _offline(spine: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    stamped = spine.copy()
    stamped["event_timestamp"] = pd.Series(now, index=stamped.index).astype("datetime64[us, UTC]")
    return dataset.point_in_time_join(stamped, get_settings())


def _cells(col: pd.Series) -> list:
    return col.astype(object).where(col.notna(), None).tolist()


def test_replay_clock_is_the_end_of_the_latest_materialized_interval(store):
    # the two days end at local midnight of the third; the last instant they cover is 1 us before
    end = pd.Timestamp(DAYS[-1] + pd.Timedelta(days=1), tz=LOCAL).tz_convert("UTC")
    assert features.as_of(get_settings(), store) == end - pd.Timedelta(microseconds=1)


def test_wall_clock_is_now(store):
    wall = Settings(serving_clock="wall")
    assert abs(features.as_of(wall, store) - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(minutes=1)


@pytest.mark.parametrize(
    "later", [pd.Timedelta(0), pd.Timedelta(hours=4), pd.Timedelta(days=2), pd.Timedelta(days=8)]
)
def test_online_features_equal_offline_asof_features_at_the_same_instant(store, spine, later):
    # given every flight of the two days and an instant at or after the materialized end
    now = features.as_of(get_settings(), store) + later
    # when their features are read online (one batched lookup) and joined offline as of it
    online = features.online_features(spine, get_settings(), store, now=now)
    offline = _offline(spine, now)
    # then every feature and every feature timestamp is the same cell, nulls included
    spec = features.service_spec(store)
    ts_cols = [c for c in offline.columns if c.startswith(featurestore.TS_PREFIX)]
    assert set(spec.feature_columns) | set(ts_cols) <= set(online.columns)
    for col in [*spec.feature_columns, *ts_cols]:
        assert _cells(online[col]) == _cells(offline[col]), col
    assert len(online) == len(spine)
    assert (online["flight_id"] == spine["flight_id"]).all()  # same rows, same order


def test_ttl_turns_old_rows_into_nulls_and_ages_are_from_the_rows_used(store, spine):
    now = features.as_of(get_settings(), store)
    fresh = features.online_features(spine, get_settings(), store, now=now)
    # hourly weather (TTL 3 h) is at most an hour old at the end of the interval
    weather_age = (now - fresh["_feature_ts__origin_weather_hourly"]).dt.total_seconds()
    assert weather_age.max() <= 3600
    assert fresh["temp_f"].notna().all()
    oldest = pd.concat(
        [
            (now - fresh[c]).dt.total_seconds()
            for c in fresh.columns
            if c.startswith(featurestore.TS_PREFIX)
        ],
        axis=1,
    ).max(axis=1)
    assert np.allclose(fresh[features.AGE_COLUMN], oldest.round(3), equal_nan=True)

    # four hours on, the weather is past its TTL: null, while the 1-day history still counts
    later = features.online_features(spine, get_settings(), store, now=now + pd.Timedelta(hours=4))
    assert later["temp_f"].isna().all() and later["_feature_ts__origin_weather_hourly"].isna().all()
    assert later["carrier_flights_28d"].notna().any()
    # eight days on nothing is fresh: every batch-view feature is null, and so is the age
    stale = features.online_features(spine, get_settings(), store, now=now + pd.Timedelta(days=8))
    spec = features.service_spec(store)
    batch_features = [f for v in spec.views for f in v.features]
    assert stale[batch_features].isna().all().all()
    assert stale[features.AGE_COLUMN].isna().all()
    # the on-demand calendar features come from the request, never from the store
    assert (stale["dep_hour_local"] == fresh["dep_hour_local"]).all()


def test_unknown_entities_get_null_features_and_a_naive_time_is_local(store):
    flights = [
        {
            "carrier": "UA",
            "flight": 1545,
            "origin": "EWR",
            "dest": "IAH",
            "tailnum": "N14228",
            "sched_dep_ts": "2013-01-03 05:15",
        },
        {
            "carrier": "ZZ",
            "flight": 1,
            "origin": "JFK",
            "dest": "XXX",
            "tailnum": "N00000",
            "sched_dep_ts": pd.Timestamp("2013-01-03T10:15:00Z"),
        },
    ]
    out = features.online_features(flights, get_settings(), store)
    assert (out["sched_dep_ts"] == pd.Timestamp("2013-01-03T10:15:00Z")).all()
    assert out.loc[0, "carrier_flights_28d"] > 0 and out.loc[0, "temp_f"] == out.loc[0, "temp_f"]
    unknown = out.loc[1]
    for col in [
        "carrier_flights_28d",
        "route_flights_28d",
        "plane_seats",
        "_feature_ts__carrier_delay_history",
        "_feature_ts__plane_attributes",
    ]:
        assert pd.isna(unknown[col]), col
    assert unknown["temp_f"] == unknown["temp_f"]  # JFK's weather is known
    assert out.loc[1, "dep_hour_local"] == 5
    assert list(features.flight_id(out)) == ["20130103-UA1545-EWR-0515", "20130103-ZZ1-JFK-0515"]


def test_no_flights_no_lookup(store):
    out = features.online_features([], get_settings(), store)
    assert out.empty
    assert set(features.service_spec(store).feature_columns) <= set(out.columns)


def test_a_missing_or_unreachable_online_store_is_reported_plainly(tmp_path, store):
    base = get_settings()
    missing = Settings(home=tmp_path / "home", feast_registry=base.registry)
    with pytest.raises(features.OnlineStoreUnavailable, match="SQLite online store missing"):
        features.check_online_store(missing)

    port = free_port()  # nothing listens there
    down = Settings(
        home=tmp_path / "home",
        feast_registry=base.registry,
        online_store="redis",
        redis_connection_string=f"127.0.0.1:{port}",
    )
    redis_store = featurestore.feature_store(down)
    with pytest.raises(
        features.OnlineStoreUnavailable, match=f"Redis online store unreachable .*{port}"
    ):
        features.check_online_store(down, redis_store)
    with pytest.raises(
        features.OnlineStoreUnavailable, match="online store \\(redis\\) unreadable"
    ):
        features.online_features(
            [
                {
                    "carrier": "UA",
                    "origin": "EWR",
                    "dest": "IAH",
                    "tailnum": "N14228",
                    "sched_dep_ts": "2013-01-03 05:15",
                }
            ],
            down,
            redis_store,
        )
    features.check_online_store(base, store)  # the session's store is fine
