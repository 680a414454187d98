"""The online path's input handling, without a store: departure times in any form to UTC (a
naive time is New York time, DST gaps and repeats by Python's fold=0 rule), flight keys, typed
feature columns, and the on-demand calendar features against pandas' own accessors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from fti.ground.settings import get_settings
from serving import features


@pytest.fixture(scope="module")
def departure_time_features():
    """The on-demand view's function as the feature repo defines it (Feast imports the repo's
    files as top-level modules, so they import each other that way)."""
    import importlib
    import sys

    repo = str(get_settings().feature_repo)
    sys.path.insert(0, repo)
    try:
        module = importlib.import_module("on_demand_features")
    finally:
        sys.path.remove(repo)
    return module.departure_time_features.feature_transformation.udf


NY = ZoneInfo("America/New_York")


def _flights_frame(flights, settings) -> pd.DataFrame:
    """The flights as the online path holds them, as a frame: their columns, sched_dep_ts in UTC."""
    cols, micros = features._flights_columns(flights, settings)
    cols["sched_dep_ts"] = features._utc_index(micros)
    return pd.DataFrame(cols)


def _utc(values) -> list[pd.Timestamp]:
    frame = _flights_frame(
        [
            {"carrier": "UA", "origin": "EWR", "dest": "IAH", "tailnum": "N1", "sched_dep_ts": v}
            for v in values
        ],
        get_settings(),
    )
    assert str(frame["sched_dep_ts"].dtype) == "datetime64[us, UTC]"
    return list(frame["sched_dep_ts"])


@pytest.mark.parametrize(
    ("given", "utc"),
    [
        ("2013-01-03 05:15", "2013-01-03T10:15:00Z"),  # naive text: New York time (EST)
        ("2013-07-03T05:15:00", "2013-07-03T09:15:00Z"),  # summer: EDT
        (datetime(2013, 7, 3, 5, 15), "2013-07-03T09:15:00Z"),  # naive datetime
        (pd.Timestamp("2013-01-03T10:15:00Z"), "2013-01-03T10:15:00Z"),  # aware: kept
        (datetime(2013, 1, 3, 12, 15, tzinfo=timezone(timedelta(hours=2))), "2013-01-03T10:15:00Z"),
        ("2013-01-03T05:15:00.123456-05:00", "2013-01-03T10:15:00.123456Z"),  # microseconds kept
        (np.datetime64("2013-01-03T05:15"), "2013-01-03T10:15:00Z"),
        # the hour DST skips and the hour it repeats: Python's fold=0 rule, never an error
        ("2013-03-10 02:30", "2013-03-10T07:30:00Z"),
        ("2013-11-03 01:30", "2013-11-03T05:30:00Z"),
    ],
)
def test_departure_times_in_any_form_become_utc(given, utc):
    assert _utc([given]) == [pd.Timestamp(utc)]


def test_naive_times_follow_pythons_zoneinfo_rule():
    # the reference: datetime.replace(tzinfo=...) then UTC, for every hour around both DST changes
    naive = [datetime(2013, 3, 10) + timedelta(minutes=30 * i) for i in range(12)]
    naive += [datetime(2013, 11, 3) + timedelta(minutes=30 * i) for i in range(12)]
    expected = [pd.Timestamp(d.replace(tzinfo=NY)).tz_convert("UTC") for d in naive]
    assert _utc(naive) == expected


def test_frames_keep_their_columns_and_order():
    frame = pd.DataFrame(
        {
            "flight_id": ["a", "b"],
            "carrier": ["UA", "AA"],
            "origin": ["EWR", "JFK"],
            "dest": ["IAH", "MIA"],
            "tailnum": ["N1", None],
            "sched_dep_ts": pd.to_datetime(["2013-01-03T10:15:00Z", "2013-01-03T11:00:00Z"]),
        }
    )
    out = _flights_frame(frame, get_settings())
    assert list(out.columns) == list(frame.columns)
    assert out["flight_id"].tolist() == ["a", "b"] and out["tailnum"].tolist() == ["N1", None]
    assert (out["sched_dep_ts"] == frame["sched_dep_ts"]).all()
    # a naive datetime64 column is New York time, like naive values
    naive = frame.assign(sched_dep_ts=pd.to_datetime(["2013-01-03 05:15", "2013-01-03 06:00"]))
    assert (_flights_frame(naive, get_settings())["sched_dep_ts"] == frame["sched_dep_ts"]).all()


def test_bad_flights_are_named():
    with pytest.raises(ValueError, match="lack column.*sched_dep_ts"):
        _flights_frame(
            [{"carrier": "UA", "origin": "EWR", "dest": "IAH", "tailnum": "N1"}], get_settings()
        )
    with pytest.raises(ValueError, match="sched_dep_ts: not a time: 42"):
        _utc([42])


def test_flight_ids_are_the_feature_jobs_keys_in_local_time():
    frame = pd.DataFrame(
        {
            "carrier": ["UA", "B6"],
            "flight": [1545, 27],
            "origin": ["EWR", "JFK"],
            "sched_dep_ts": pd.to_datetime(["2013-01-01T10:15:00Z", "2013-07-01T04:05:00Z"]),
        }
    )
    assert features.flight_id(frame) == ["20130101-UA1545-EWR-0515", "20130701-B627-JFK-0005"]


def test_typed_features_are_null_where_missing_or_stale():
    fresh = np.array([True, True, False])
    ints = features._typed([3, None, 5], fresh, "Int64")
    assert str(ints.dtype) == "Int64" and ints.tolist() == [3, pd.NA, pd.NA]
    assert str(features._typed([3, None, 5], fresh, "Int32").dtype) == "Int32"
    floats = features._typed([1.5, None, 2.5], fresh, "float64")
    assert floats.dtype == np.float64 and floats[0] == 1.5 and np.isnan(floats[1:]).all()
    flags = features._typed([True, None, False], fresh, "boolean")
    assert flags.tolist() == [True, pd.NA, pd.NA]
    text = features._typed(["x", None, "z"], fresh, "object")
    assert text.tolist() == ["x", None, None]


def test_on_demand_calendar_features_equal_pandas_accessors(departure_time_features):
    # every hour of 2013 in New York, both DST changes included, as UTC and as another offset
    ts = pd.date_range("2013-01-01", "2014-01-01", freq="h", tz="UTC", inclusive="left")
    for given in (ts, ts.tz_convert("Asia/Tokyo")):
        got = departure_time_features(
            pd.DataFrame({"sched_dep_ts": given}, index=range(5, 5 + len(ts)))
        )
        local = pd.Series(ts).dt.tz_convert("America/New_York")
        assert list(got.index) == list(range(5, 5 + len(ts)))
        assert got["dep_hour_local"].tolist() == local.dt.hour.tolist()
        assert got["dep_dow_local"].tolist() == local.dt.dayofweek.tolist()
        assert got["dep_month_local"].tolist() == local.dt.month.tolist()
        assert set(got.dtypes.astype(str)) == {"int64"}
