"""Expectations on staged feature partitions, checked before they are published.

One suite per batch feature view: a function named like the view, registered with
:func:`view_suite`, that takes the interval ``[start, end)`` and returns ``gxe.*``
expectations. The pipeline finds it by the view's name; a view without one is never published.
Keys present and unique per timestamp, every event timestamp inside the run's data interval
(:func:`common`), ranges, and null rates: a partition that fails never reaches the offline or
online store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import great_expectations.expectations as gxe

between = gxe.ExpectColumnValuesToBeBetween

#: the suite of each batch feature view, by the view's name (filled by ``view_suite``)
SUITES: dict[str, Callable[[datetime, datetime], list]] = {}


def view_suite(fn: Callable[[datetime, datetime], list]) -> Callable[[datetime, datetime], list]:
    """Register ``fn`` as the suite of the batch feature view named like the function."""
    SUITES[fn.__name__] = fn
    return fn


def common(keys: list[str], start: datetime, end: datetime, min_rows: int = 1) -> list:
    """What every view's partition must hold: ``min_rows`` rows, keys and event timestamps
    present and unique together, every event timestamp inside ``[start, end)``."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
        *(gxe.ExpectColumnValuesToNotBeNull(column=k) for k in [*keys, "event_timestamp"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[*keys, "event_timestamp"]),
        # inclusive bounds: the interval is [start, end)
        between(
            column="event_timestamp", min_value=start, max_value=end - timedelta(microseconds=1)
        ),
    ]


def history(prefix: str) -> list:
    """A delay-history view's counts, shares and means in range (``<prefix>_..._7d/28d``)."""
    out = []
    for w in (7, 28):
        out += [
            gxe.ExpectColumnValuesToNotBeNull(column=f"{prefix}_flights_{w}d"),
            between(column=f"{prefix}_flights_{w}d", min_value=0, max_value=100_000),
            between(column=f"{prefix}_delayed_share_{w}d", min_value=0, max_value=1),
            between(column=f"{prefix}_dep_delay_mean_{w}d", min_value=-120, max_value=24 * 60 * 2),
        ]
    return out


@view_suite
def origin_weather_hourly(start: datetime, end: datetime) -> list:
    """The partitions of origin_weather_hourly."""
    return [
        *common(["origin"], start, end),
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=["EWR", "JFK", "LGA"]),
        between(column="temp_f", min_value=-40, max_value=130),
        between(column="dewp_f", min_value=-60, max_value=100),
        between(column="humid_pct", min_value=0, max_value=100),
        between(column="wind_speed_mph", min_value=0, max_value=200),
        between(column="wind_gust_mph", min_value=0, max_value=250),
        between(column="precip_in", min_value=0, max_value=10),
        between(column="precip_3h_in", min_value=0, max_value=30),
        between(column="pressure_mb", min_value=900, max_value=1100),
        between(column="visib_mi", min_value=0, max_value=100),
        gxe.ExpectColumnValuesToNotBeNull(column="temp_f", mostly=0.9),
        gxe.ExpectColumnValuesToNotBeNull(column="precip_3h_in"),
    ]


@view_suite
def carrier_delay_history(start: datetime, end: datetime) -> list:
    """The partitions of carrier_delay_history."""
    return [*common(["carrier"], start, end), *history("carrier")]


@view_suite
def route_delay_history(start: datetime, end: datetime) -> list:
    """The partitions of route_delay_history."""
    return [*common(["origin", "dest"], start, end), *history("route")]


@view_suite
def plane_attributes(start: datetime, end: datetime) -> list:
    """The partitions of plane_attributes."""
    return [
        *common(["tailnum"], start, end),
        between(column="plane_year", min_value=1900, max_value=end.year),
        between(column="plane_seats", min_value=1, max_value=1000),
        between(column="plane_engines", min_value=1, max_value=8),
        gxe.ExpectColumnValuesToNotBeNull(column="plane_seats"),
        gxe.ExpectColumnValuesToNotBeNull(column="plane_year", mostly=0.8),
    ]


@view_suite
def flight_labels(start: datetime, end: datetime) -> list:
    """The partitions of flight_labels."""
    return [
        *common(["flight_id"], start, end),
        gxe.ExpectColumnValuesToBeUnique(column="flight_id"),
        *(
            gxe.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("carrier", "origin", "dest", "dep_delay_min", "dep_delayed_15")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="dep_delayed_15", value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(column="dep_delayed_15", min_value=0.0, max_value=0.9),
    ]
