"""Expectations on raw partitions, checked before Spark reads them.

Schema, types, value ranges, nulls, unique keys and a non-empty day. The ranges are physical
plausibility, not statistics: they reject impossible values (a negative distance, departure hour
27, 500 F) and let real extremes through.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import great_expectations.expectations as gxe

INT = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64"]
NUM = [*INT, "float32", "float64", "Float32", "Float64"]
STR = ["object", "str", "string", "string[python]", "string[pyarrow]", "large_string"]
TS = None  # checked by _time_hour_on_day: a datetime range rejects any other type

FLIGHT_KEY = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]

FLIGHTS = {
    "year": NUM,
    "month": NUM,
    "day": NUM,
    "dep_time": NUM,
    "sched_dep_time": NUM,
    "dep_delay": NUM,
    "arr_time": NUM,
    "sched_arr_time": NUM,
    "arr_delay": NUM,
    "carrier": STR,
    "flight": NUM,
    "tailnum": STR,
    "origin": STR,
    "dest": STR,
    "air_time": NUM,
    "distance": NUM,
    "hour": NUM,
    "minute": NUM,
    "time_hour": TS,
}
WEATHER = {
    "origin": STR,
    "year": NUM,
    "month": NUM,
    "day": NUM,
    "hour": NUM,
    "temp": NUM,
    "dewp": NUM,
    "humid": NUM,
    "wind_dir": NUM,
    "wind_speed": NUM,
    "wind_gust": NUM,
    "precip": NUM,
    "pressure": NUM,
    "visib": NUM,
    "time_hour": TS,
}
PLANES = {
    "tailnum": STR,
    "year": NUM,
    "type": STR,
    "manufacturer": STR,
    "model": STR,
    "engines": NUM,
    "seats": NUM,
    "speed": NUM,
    "engine": STR,
}


def _schema(columns: dict[str, list[str]]) -> list:
    return [gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=False)] + [
        gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=types)
        for c, types in columns.items()
        if types is not None
    ]


def _time_hour_on_day(day: date, tz: str) -> gxe.Expectation:
    """``time_hour`` (UTC) must fall inside the local day ``day``."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return gxe.ExpectColumnValuesToBeBetween(
        column="time_hour",
        min_value=start.astimezone(UTC),
        max_value=(end - timedelta(microseconds=1)).astimezone(UTC),
    )


def _on_day(day: date) -> list:
    return [
        gxe.ExpectColumnValuesToBeBetween(column="year", min_value=day.year, max_value=day.year),
        gxe.ExpectColumnValuesToBeBetween(column="month", min_value=day.month, max_value=day.month),
        gxe.ExpectColumnValuesToBeBetween(column="day", min_value=day.day, max_value=day.day),
    ]


def flights(day: date, tz: str = "America/New_York") -> list:
    """A day of flights: every row on that local day, one row per flight key."""
    between = gxe.ExpectColumnValuesToBeBetween
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_schema(FLIGHTS),
        *_on_day(day),
        _time_hour_on_day(day, tz),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=c)
            for c in (
                "carrier",
                "flight",
                "origin",
                "dest",
                "sched_dep_time",
                "hour",
                "minute",
                "distance",
                "time_hour",
            )
        ),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=FLIGHT_KEY),
        # hhmm clock times; 2400 is how the source writes midnight
        between(column="dep_time", min_value=1, max_value=2400),
        between(column="sched_dep_time", min_value=1, max_value=2359),
        between(column="arr_time", min_value=1, max_value=2400),
        between(column="hour", min_value=0, max_value=23),
        between(column="minute", min_value=0, max_value=59),
        between(column="dep_delay", min_value=-120, max_value=24 * 60 * 2),
        between(column="air_time", min_value=1, max_value=24 * 60),
        between(column="distance", min_value=1, max_value=10_000),
        gxe.ExpectColumnValueLengthsToBeBetween(column="origin", min_value=3, max_value=3),
        gxe.ExpectColumnValueLengthsToBeBetween(column="dest", min_value=3, max_value=3),
        gxe.ExpectColumnValueLengthsToBeBetween(column="carrier", min_value=2, max_value=2),
    ]


def weather(day: date, tz: str = "America/New_York") -> list:
    """A day of hourly weather at the origin airports."""
    between = gxe.ExpectColumnValuesToBeBetween
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_schema(WEATHER),
        *_on_day(day),
        _time_hour_on_day(day, tz),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("origin", "hour", "time_hour")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["origin", "time_hour"]),
        between(column="hour", min_value=0, max_value=23),
        between(column="temp", min_value=-40, max_value=130),
        between(column="dewp", min_value=-60, max_value=100),
        between(column="humid", min_value=0, max_value=100),
        between(column="wind_dir", min_value=0, max_value=360),
        # the source has one 1,048 mph reading; the feature job drops such glitches, so the
        # raw boundary only stops a day where they are common
        between(column="wind_speed", min_value=0, max_value=200, mostly=0.95),
        between(column="wind_gust", min_value=0, max_value=250),
        between(column="precip", min_value=0, max_value=10),
        between(column="pressure", min_value=900, max_value=1100),
        between(column="visib", min_value=0, max_value=100),
    ]


def planes(day: date, tz: str = "America/New_York") -> list:
    """The plane reference table that arrives with every day."""
    between = gxe.ExpectColumnValuesToBeBetween
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_schema(PLANES),
        gxe.ExpectColumnValuesToNotBeNull(column="tailnum"),
        gxe.ExpectColumnValuesToBeUnique(column="tailnum"),
        between(column="year", min_value=1900, max_value=day.year),
        between(column="engines", min_value=1, max_value=8),
        between(column="seats", min_value=1, max_value=1000),
    ]


SUITES = {"flights": flights, "weather": weather, "planes": planes}
