"""Expectations on raw partitions, checked before Spark reads them.

Three layers, each check named (``meta["check"]``, what the log, the report and the
``FTI_VALIDATION_WARN`` / ``FTI_VALIDATION_HALT`` patterns use):

- **readable** (:func:`read_partition`): the file opens, every declared column has a type the
  job can read, no column the data always fills arrives all null; else :class:`UnreadableInput`
  naming table, column, day and what was found, before GX or Spark see it;
- **static**: schema, types, value ranges, nulls, unique keys and a non-empty day. The ranges
  are physical plausibility, not statistics: they reject impossible values (a negative
  distance, departure hour 27, 500 F) and let real extremes through;
- **reference tables and domain rules** (:class:`References`, :func:`derive`): codes against
  the data set's airlines, airports and the day's delivered planes, with the share of genuinely
  unknown codes the real data has; rules a data engineer writes for flights and weather (a
  departure is its schedule plus its delay, one plane does not depart twice at the same minute,
  a cancelled flight has no times, ``time_hour`` is the local hour, the distance is the
  airports' great-circle distance, every origin and every hour of the day is delivered, dew
  point does not exceed temperature, ...). A rule is a derived column (``rule_<name>``) that
  holds a description of each violating row and is null elsewhere, so the error message shows
  the rows that break it.

Every rule holds on every day of the real 2013 data (``bench/validation.py`` counts halts and
warnings over the year); the shares allowed are the real data's own, stated where they are set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

from fti.ground import history
from fti.ground.validation import BadInput

if TYPE_CHECKING:
    import pandas as pd

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


# ------------------------------------------------------------------ readable before anything


class UnreadableInput(BadInput):
    """A raw partition the job cannot read; the message names table, column, day and what was
    found."""


#: columns the real data leaves entirely null on some days (wind gusts: 50 days of 2013)
MAY_BE_ALL_NULL = {"weather": {"wind_gust"}}
DECLARED = {"flights": FLIGHTS, "weather": WEATHER, "planes": PLANES}


def read_partition(path: Path, table: str, day: date) -> pd.DataFrame:
    """Read one raw partition for validation, or raise :class:`UnreadableInput` saying what
    the job could not read: an unreadable or truncated file, a column without a type (all
    null, so nothing says what it is), a column the job cannot cast to its declared kind, a
    column the data always fills arriving all null."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    where = f"raw/{table} {day}"
    try:
        t = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise UnreadableInput(
            f"{where}: the file {path} cannot be read ({type(err).__name__}: {err}); a "
            "truncated or partial delivery: land the day again from a complete source"
        ) from err
    if t.num_rows == 0:
        return t.to_pandas()  # an empty day: the row-count expectation names it
    problems = []
    for column, types in DECLARED[table].items():
        if column not in t.column_names:
            continue  # the schema expectation names missing columns
        col = t[column]
        kind = "number" if types is NUM else "text" if types is STR else "timestamp"
        if pa.types.is_null(col.type):
            problems.append(
                f"column {column!r} arrived without a type (all {len(col)} values null; "
                f"expected {kind}s)"
            )
            continue
        if len(col) and col.null_count == len(col) and column not in MAY_BE_ALL_NULL.get(table, ()):
            problems.append(
                f"column {column!r} arrived all null ({len(col)} rows; the data always fills it)"
            )
            continue
        if kind == "number" and not (
            pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
        ):
            try:
                pc.cast(col, pa.float64())
                problems.append(
                    f"column {column!r} arrived as {col.type}, expected a number (its values "
                    "read as numbers: fix the type at the source)"
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                sample = next((v for v in col.to_pylist() if v is not None), None)
                problems.append(
                    f"column {column!r} arrived as {col.type}, which cannot be cast to a number "
                    f"(e.g. {sample!r})"
                )
        elif kind == "timestamp" and not pa.types.is_timestamp(col.type):
            sample = next((v for v in col.to_pylist() if v is not None), None)
            problems.append(
                f"column {column!r} arrived as {col.type}, expected a UTC timestamp (e.g. "
                f"{sample!r})"
            )
    if problems:
        raise UnreadableInput(f"{where} ({path}): " + "; ".join(problems))
    return t.to_pandas()


# ------------------------------------------------------------------ reference tables, rules

#: the origin airports of the data set (New York's three, each with a weather station)
ORIGINS = ("EWR", "JFK", "LGA")
#: scheduled departure hours every real day of 2013 has flights in (5 h to 22 h local)
SCHEDULED_HOURS = tuple(range(5, 23))
#: shares of codes genuinely missing from the reference tables in the real data, per day (the
#: year's maximum, with headroom): airports.csv lacks 4 Caribbean airports (at most 3.9% of a
#: day's flights); planes.csv lacks 12.7-17.7% of a day's tail numbers
UNKNOWN_DEST_SHARE = 0.06
UNKNOWN_TAILNUM_SHARE = 0.25
#: a route's distance next to the airports' great-circle distance (real: within 0.3%/+2.6%)
DISTANCE_TOLERANCE = 0.05
#: hours of weather per station and day (real minimum: 19)
MIN_STATION_HOURS = 18
#: relative humidity from temperature and dew point (Magnus formula) next to the reported one,
#: in percentage points; real: 99.9% of readings within 9.4
HUMIDITY_TOLERANCE = 10.0


@dataclass(frozen=True)
class References:
    """The data set's reference tables, as a day's checks see them."""

    carriers: frozenset[str]
    #: FAA code -> (latitude, longitude)
    airports: Mapping[str, tuple[float, float]]
    #: the tail numbers of the planes table delivered with the day (None: not checked)
    tailnums: frozenset[str] | None = None


def references(airlines: pd.DataFrame, airports: pd.DataFrame, planes=None) -> References:
    """:class:`References` from the airlines, airports and (the day's) planes tables."""
    return References(
        carriers=frozenset(airlines["carrier"].astype(str)),
        airports={
            str(r.faa): (float(r.lat), float(r.lon))
            for r in airports[["faa", "lat", "lon"]].itertuples(index=False)
        },
        tailnums=None if planes is None else frozenset(planes["tailnum"].dropna().astype(str)),
    )


def _named(e: Any, check: str, description: str, severity: str = "halt") -> Any:
    return e.copy(
        update={
            "meta": {"check": check},
            "description": description,
            "severity": FailureSeverity.CRITICAL if severity == "halt" else FailureSeverity.WARNING,
        }
    )


def _rule(table: str, name: str, description: str, mostly: float = 1.0, severity="halt"):
    return _named(
        gxe.ExpectColumnValuesToBeNull(column=f"rule_{name}", mostly=mostly),
        f"raw.{table}.{name}",
        description,
        severity,
    )


def _minutes(hhmm):
    return (hhmm // 100) * 60 + hhmm % 100


def _describe(mask, *parts: Iterable) -> list:
    """Per row: the violation's description where ``mask``, else None."""
    import numpy as np

    text = np.full(len(mask), None, dtype=object)
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    # a str part is a constant word, anything else a column of values
    cols = [p if isinstance(p, str) else list(p) for p in parts]
    for i in idx:
        text[i] = " ".join(c if isinstance(c, str) else str(c[i]) for c in cols)
    return list(text)


def _local_hour_utc(df: pd.DataFrame, tz: str):
    import pandas as pd

    local = pd.to_datetime(
        dict(year=df["year"], month=df["month"], day=df["day"], hour=df["hour"]), errors="coerce"
    )
    return local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def derive(
    table: str, df: pd.DataFrame, refs: References | None, tz: str = "America/New_York"
) -> pd.DataFrame:
    """``df`` with the domain rules' columns added (``rule_<name>``: a description of each
    violating row, null elsewhere; ``station_hours`` for weather)."""
    import numpy as np
    import pandas as pd

    out = df.copy()
    if df.empty or not set(DECLARED[table]) <= set(df.columns):
        # a missing column is named by the schema expectation; the rules need them all
        return out
    if table == "flights":
        key = df["carrier"].astype(str) + df["flight"].astype(str)
        dep, sched, delay = df["dep_time"], df["sched_dep_time"], df["dep_delay"]
        both = dep.notna() & delay.notna()
        expected = (_minutes(sched) + delay) % 1440
        bad = both & (expected != _minutes(dep) % 1440)
        out["rule_departure_is_schedule_plus_delay"] = _describe(
            bad, key, "scheduled", sched, "+", delay, "min, departed", dep
        )
        arr, sarr, adelay = df["arr_time"], df["sched_arr_time"], df["arr_delay"]
        bad = (
            arr.notna()
            & adelay.notna()
            & ((_minutes(sarr) + adelay) % 1440 != _minutes(arr) % 1440)
        )
        out["rule_arrival_is_schedule_plus_delay"] = _describe(
            bad, key, "scheduled", sarr, "+", adelay, "min, arrived", arr
        )
        cancelled = dep.isna()
        bad = cancelled & (delay.notna() | arr.notna() | df["air_time"].notna())
        out["rule_cancelled_flight_has_no_times"] = _describe(
            bad, key, "no departure but delay", delay, "arrival", arr
        )
        bad = dep.notna() & delay.isna()
        out["rule_departed_flight_has_a_delay"] = _describe(bad, key, "departed", dep)
        departed = dep.notna() & df["tailnum"].notna()
        dup = departed & df[["tailnum", "dep_time"]].where(departed).duplicated(keep=False)
        out["rule_plane_departs_once_a_minute"] = _describe(
            dup, df["tailnum"], "departed at", dep, "as", key
        )
        bad = (df["hour"] != sched // 100) | (df["minute"] != sched % 100)
        out["rule_hour_and_minute_are_the_schedule"] = _describe(
            bad, key, "scheduled", sched, "hour", df["hour"], "minute", df["minute"]
        )
        if refs is not None:
            a = pd.DataFrame.from_dict(refs.airports, orient="index", columns=["lat", "lon"])
            o = a.reindex(df["origin"]).to_numpy()
            d = a.reindex(df["dest"]).to_numpy()
            la1, lo1, la2, lo2 = (np.radians(x) for x in (o[:, 0], o[:, 1], d[:, 0], d[:, 1]))
            gc = (
                2
                * 3958.8
                * np.arcsin(
                    np.sqrt(
                        np.sin((la2 - la1) / 2) ** 2
                        + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
                    )
                )
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = df["distance"].to_numpy(dtype=float) / gc
            bad = ~np.isnan(ratio) & (np.abs(ratio - 1) > DISTANCE_TOLERANCE)
            out["rule_distance_is_great_circle"] = _describe(
                bad,
                df["origin"] + "-" + df["dest"],
                "distance",
                df["distance"],
                "great circle",
                np.round(gc),
            )
    if table in ("flights", "weather") and "time_hour" in df:
        th = pd.to_datetime(df["time_hour"], utc=True, errors="coerce")
        expected = _local_hour_utc(df, tz)
        bad = expected.notna() & (th != expected)
        out["rule_time_hour_is_the_local_hour"] = _describe(
            bad, "time_hour", th, "for local hour", df["hour"], "is", expected
        )
    if table == "weather":
        temp, dewp = df["temp"], df["dewp"]
        bad = temp.notna() & dewp.notna() & (dewp > temp + 0.1)
        out["rule_dew_point_not_above_temperature"] = _describe(
            bad, df["origin"], df["time_hour"], "dew point", dewp, "temperature", temp
        )
        tc, dc = (temp - 32) * 5 / 9, (dewp - 32) * 5 / 9
        rh = 100 * np.exp(17.625 * dc / (243.04 + dc)) / np.exp(17.625 * tc / (243.04 + tc))
        bad = rh.notna() & df["humid"].notna() & ((rh - df["humid"]).abs() > HUMIDITY_TOLERANCE)
        out["rule_humidity_follows_temperature_and_dew_point"] = _describe(
            bad,
            df["origin"],
            df["time_hour"],
            "humidity",
            df["humid"],
            "from temp/dewp",
            rh.round(1),
        )
        out["station_hours"] = df.groupby("origin")["origin"].transform("size")
    return out


def flight_rules(refs: References | None) -> list:
    """The flights' reference and domain checks (on :func:`derive`'s columns)."""
    t = "flights"
    checks = [
        _rule(t, "departure_is_schedule_plus_delay", "a departure is its schedule plus its delay"),
        _rule(t, "arrival_is_schedule_plus_delay", "an arrival is its schedule plus its delay"),
        _rule(
            t,
            "cancelled_flight_has_no_times",
            "a cancelled flight has no departure time, delay, arrival or air time",
        ),
        _rule(t, "departed_flight_has_a_delay", "a departed flight has a departure delay"),
        _rule(
            t, "plane_departs_once_a_minute", "one plane does not depart twice at the same minute"
        ),
        _rule(
            t, "hour_and_minute_are_the_schedule", "hour and minute are the scheduled departure's"
        ),
        _rule(t, "time_hour_is_the_local_hour", "time_hour is the local date and hour in UTC"),
        _named(
            gxe.ExpectColumnDistinctValuesToContainSet(column="origin", value_set=list(ORIGINS)),
            "raw.flights.every_origin_delivered",
            f"every origin airport ({', '.join(ORIGINS)}) has flights",
        ),
        _named(
            gxe.ExpectColumnDistinctValuesToContainSet(
                column="hour", value_set=list(SCHEDULED_HOURS)
            ),
            "raw.flights.every_hour_delivered",
            "departures are scheduled in every hour from 5 to 22 h (a partial delivery stops here)",
        ),
    ]
    if refs is not None:
        checks += [
            _rule(
                t,
                "distance_is_great_circle",
                f"a route's distance is its airports' great-circle distance (within {DISTANCE_TOLERANCE:.0%})",
            ),
            _named(
                gxe.ExpectColumnValuesToBeInSet(column="carrier", value_set=sorted(refs.carriers)),
                "raw.flights.carrier_in_airlines",
                "every carrier code is in the airlines table",
            ),
            _named(
                gxe.ExpectColumnValuesToBeInSet(
                    column="dest", value_set=sorted(refs.airports), mostly=1 - UNKNOWN_DEST_SHARE
                ),
                "raw.flights.dest_in_airports",
                f"destinations are in the airports table (at most {UNKNOWN_DEST_SHARE:.0%} unknown)",
            ),
        ]
        if refs.tailnums is not None:
            checks.append(
                _named(
                    gxe.ExpectColumnValuesToBeInSet(
                        column="tailnum",
                        value_set=sorted(refs.tailnums),
                        mostly=1 - UNKNOWN_TAILNUM_SHARE,
                    ),
                    "raw.flights.tailnum_in_planes",
                    "tail numbers are in the day's planes table (at most "
                    f"{UNKNOWN_TAILNUM_SHARE:.0%} unknown)",
                )
            )
    return checks


def weather_rules() -> list:
    """The weather's domain checks (on :func:`derive`'s columns)."""
    t = "weather"
    return [
        _rule(t, "time_hour_is_the_local_hour", "time_hour is the local date and hour in UTC"),
        _rule(
            t, "dew_point_not_above_temperature", "the dew point does not exceed the temperature"
        ),
        _rule(
            t,
            "humidity_follows_temperature_and_dew_point",
            f"relative humidity follows from temperature and dew point (within {HUMIDITY_TOLERANCE:.0f} points)",
            mostly=0.98,
            severity="warn",
        ),
        _named(
            gxe.ExpectColumnDistinctValuesToContainSet(column="origin", value_set=list(ORIGINS)),
            "raw.weather.every_station_delivered",
            f"every station ({', '.join(ORIGINS)}) has weather",
        ),
        _named(
            gxe.ExpectColumnMinToBeBetween(column="station_hours", min_value=MIN_STATION_HOURS),
            "raw.weather.hours_per_station",
            f"every station has at least {MIN_STATION_HOURS} hours of weather",
        ),
    ]


def checks(table: str, day: date, tz: str, refs: References | None) -> list:
    """Every check of a raw table's day: the static suite and its rules."""
    static = SUITES[table](day, tz)
    if table == "flights":
        return static + flight_rules(refs)
    if table == "weather":
        return static + weather_rules()
    return static


def applicable(expectations: list, df: pd.DataFrame) -> list:
    """``expectations`` without the rules :func:`derive` could not compute for ``df`` (a
    missing column is already named by the schema check)."""
    derived = ("rule_", "station_hours")
    return [
        e
        for e in expectations
        if not str(getattr(e, "column", "") or "").startswith(derived) or e.column in df.columns
    ]


# --- each raw day against its history (fti.ground.history) ------------------------------------
#: the slices whose coverage a raw day's profile keeps, per table
HISTORY_SLICES = {"flights": ("carrier", "origin"), "weather": ("origin",)}
#: numeric columns whose mean a raw day's profile keeps (not keys or calendar fields)
HISTORY_MEANS = {
    "flights": ("dep_delay", "arr_delay", "air_time", "distance"),
    "weather": ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"),
}


def profile(table: str, df: pd.DataFrame) -> dict[str, Any]:
    """The raw day's profile of ``table``: rows, carrier/origin/station coverage, null shares,
    the means of :data:`HISTORY_MEANS`."""
    return history.profile(
        df,
        HISTORY_SLICES.get(table, ()),
        HISTORY_MEANS.get(table, ()),
        skip_prefixes=("rule_", "station_hours"),
    )
