"""The pure Spark transforms of the feature job, on tiny hand-made frames.

Every frame is built with an explicit schema mirroring the landed parquet (pandas int64 ->
long, float64 -> double, tz-aware ``time_hour`` -> timestamp). Timestamps are compared as
``yyyy-MM-dd HH:mm`` strings rendered by Spark in the session time zone (UTC), so the result
never depends on the machine's local time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feature_repo.jobs.features import (
    DELAY_THRESHOLD_MIN,
    MAX_WIND_MPH,
    WINDOWS,
    departures,
    hourly_grid,
    transform_delay_history,
    transform_labels,
    transform_planes,
    transform_weather,
)

NY = ZoneInfo("America/New_York")
TZ = "America/New_York"
#: a grid timestamp: 2013-01-10 10:00 local (EST)
T = datetime(2013, 1, 10, 15, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _types():
    from pyspark.sql import types as T_

    return T_


def flight_schema():
    t = _types()
    long, double, string = t.LongType(), t.DoubleType(), t.StringType()
    cols = [
        ("year", long),
        ("month", long),
        ("day", long),
        ("dep_time", double),
        ("sched_dep_time", long),
        ("dep_delay", double),
        ("arr_time", double),
        ("sched_arr_time", long),
        ("arr_delay", double),
        ("carrier", string),
        ("flight", long),
        ("tailnum", string),
        ("origin", string),
        ("dest", string),
        ("air_time", double),
        ("distance", long),
        ("hour", long),
        ("minute", long),
        ("time_hour", t.TimestampType()),
    ]
    return t.StructType([t.StructField(n, typ, True) for n, typ in cols])


def weather_schema():
    t = _types()
    long, double = t.LongType(), t.DoubleType()
    cols = [
        ("origin", t.StringType()),
        ("year", long),
        ("month", long),
        ("day", long),
        ("hour", long),
        ("temp", double),
        ("dewp", double),
        ("humid", double),
        ("wind_dir", double),
        ("wind_speed", double),
        ("wind_gust", double),
        ("precip", double),
        ("pressure", double),
        ("visib", double),
        ("time_hour", t.TimestampType()),
    ]
    return t.StructType([t.StructField(n, typ, True) for n, typ in cols])


def planes_schema():
    t = _types()
    string = t.StringType()
    cols = [
        ("tailnum", string),
        ("year", t.DoubleType()),
        ("type", string),
        ("manufacturer", string),
        ("model", string),
        ("engines", t.LongType()),
        ("seats", t.LongType()),
        ("speed", t.DoubleType()),
        ("engine", string),
    ]
    return t.StructType([t.StructField(n, typ, True) for n, typ in cols])


def flight(
    carrier: str = "AA",
    number: int = 1,
    origin: str = "JFK",
    dest: str = "LAX",
    tailnum: str | None = "N1",
    *,
    sched: datetime,
    dep_delay: float | None,
    distance: int = 2475,
) -> tuple:
    """A raw flight row scheduled at ``sched`` (UTC); ``dep_delay=None`` is a cancellation."""
    local = sched.astimezone(NY)
    hhmm = local.hour * 100 + local.minute
    dep_time = None
    if dep_delay is not None:
        dep = (sched + timedelta(minutes=dep_delay)).astimezone(NY)
        dep_time = float(dep.hour * 100 + dep.minute)
    return (
        local.year,
        local.month,
        local.day,
        dep_time,
        hhmm,
        None if dep_delay is None else float(dep_delay),
        None,
        2359,
        None,
        carrier,
        number,
        tailnum,
        origin,
        dest,
        None,
        distance,
        local.hour,
        local.minute,
        sched.replace(minute=0, second=0, microsecond=0),
    )


def departing_at(carrier: str, dep: datetime, delay: float, **kw) -> tuple:
    """A flight whose actual departure (scheduled + ``delay`` minutes) is ``dep``."""
    return flight(carrier, sched=dep - timedelta(minutes=delay), dep_delay=delay, **kw)


def flights_df(spark, rows):
    return spark.createDataFrame(rows, flight_schema())


def grid_df(spark, *stamps: datetime):
    t = _types()
    schema = t.StructType([t.StructField("event_timestamp", t.TimestampType(), False)])
    return spark.createDataFrame([(s,) for s in stamps], schema)


def hm(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def by_key(df, *keys: str, ts: str = "event_timestamp") -> dict:
    """Rows keyed by ``(*keys, timestamp as 'yyyy-MM-dd HH:mm' UTC)``; keys must be unique."""
    from pyspark.sql import functions as F

    rows = df.withColumn(ts, F.date_format(ts, "yyyy-MM-dd HH:mm")).collect()
    out = {(*(r[k] for k in keys), r[ts]): r.asDict() for r in rows}
    assert len(out) == len(rows), f"duplicate keys in {rows}"
    return out


def history(row: dict, prefix: str, w: int) -> tuple:
    """(count, mean delay, delayed share) of window ``w`` in a delay-history row."""
    return (
        row[f"{prefix}_flights_{w}d"],
        row[f"{prefix}_dep_delay_mean_{w}d"],
        row[f"{prefix}_delayed_share_{w}d"],
    )


def test_constants_match_the_documented_definitions():
    assert WINDOWS == (7, 28)
    assert DELAY_THRESHOLD_MIN == 15
    assert MAX_WIND_MPH == 200.0


# --------------------------------------------------------------------------- departures


def test_departures_compute_scheduled_and_actual_instants(spark):
    sched = datetime(2013, 1, 5, 14, 45, tzinfo=UTC)
    f = flights_df(
        spark,
        [
            flight("AA", 1, sched=sched, dep_delay=15),
            flight("AA", 2, sched=sched, dep_delay=-5),
            flight("AA", 3, sched=sched, dep_delay=14),
            # a long delay crosses the UTC day
            flight("AA", 4, sched=sched, dep_delay=600),
            flight("AA", 5, sched=sched, dep_delay=None),
        ],
    )
    out = {
        r["dep_delay"]: r
        for r in departures(f)
        .selectExpr(
            "dep_delay",
            "delayed",
            "date_format(sched_dep_ts, 'yyyy-MM-dd HH:mm') AS sched",
            "date_format(dep_ts, 'yyyy-MM-dd HH:mm') AS dep",
        )
        .collect()
    }
    assert set(out) == {15.0, -5.0, 14.0, 600.0}
    assert {r["sched"] for r in out.values()} == {"2013-01-05 14:45"}
    assert out[15.0]["dep"] == "2013-01-05 15:00"
    assert out[-5.0]["dep"] == "2013-01-05 14:40"
    assert out[14.0]["dep"] == "2013-01-05 14:59"
    assert out[600.0]["dep"] == "2013-01-06 00:45"
    assert {k: r["delayed"] for k, r in out.items()} == {15.0: 1, -5.0: 0, 14.0: 0, 600.0: 1}


# --------------------------------------------------------------------------- delay history


def test_departure_at_grid_time_is_counted_only_from_the_next_hour(spark):
    f = flights_df(
        spark,
        [
            departing_at("AA", T, delay=15, number=1),  # time_hour T-1h, minute 45, +15 min = T
            departing_at("AA", T - MIN, delay=10, number=2),
        ],
    )
    out = by_key(
        transform_delay_history(
            departures(f), grid_df(spark, T - HOUR, T, T + HOUR), ["carrier"], "carrier"
        ),
        "carrier",
    )
    for w in WINDOWS:
        assert history(out[("AA", hm(T - HOUR))], "carrier", w) == (0, None, None)
        # only the departure one minute before t; the one exactly at t is not known yet
        assert history(out[("AA", hm(T))], "carrier", w) == (1, 10.0, 0.0)
        assert history(out[("AA", hm(T + HOUR))], "carrier", w) == (2, 12.5, 0.5)


def test_seven_and_twenty_eight_day_windows(spark):
    f = flights_df(
        spark,
        [
            departing_at("UA", T - 10 * DAY, delay=30, number=1),
            departing_at("UA", T - 7 * DAY, delay=0, number=2),
            departing_at("UA", T - 28 * DAY, delay=60, number=3),
            departing_at("UA", T - 28 * DAY - MIN, delay=100, number=4),
        ],
    )
    (row,) = by_key(
        transform_delay_history(departures(f), grid_df(spark, T), ["carrier"], "carrier"), "carrier"
    ).values()
    # t-7d <= dep < t: the departure exactly 7 days back is in, the one 10 days back is not
    assert history(row, "carrier", 7) == (1, 0.0, 0.0)
    # t-28d <= dep < t: 10, 7 and exactly 28 days back; 28 days and a minute back is out
    count, mean, share = history(row, "carrier", 28)
    assert (count, mean) == (3, 30.0)
    assert share == pytest.approx(2 / 3)


def test_mean_delay_delayed_share_and_entities_without_departures(spark):
    f = flights_df(
        spark,
        [
            departing_at("B6", T - 1 * HOUR, delay=0, number=1),
            departing_at("B6", T - 2 * HOUR, delay=15, number=2),
            departing_at("B6", T - 3 * HOUR, delay=30, number=3),
            departing_at("9E", T - 20 * DAY, delay=45, number=4),
        ],
    )
    entities = spark.createDataFrame([("B6",), ("9E",), ("EV",)], "carrier string")
    out = by_key(
        transform_delay_history(departures(f), grid_df(spark, T), ["carrier"], "carrier", entities),
        "carrier",
    )
    assert set(out) == {("B6", hm(T)), ("9E", hm(T)), ("EV", hm(T))}
    for w in WINDOWS:
        count, mean, share = history(out[("B6", hm(T))], "carrier", w)
        # 15 minutes late counts as delayed: 15 and 30 of 0, 15, 30
        assert (count, mean) == (3, 15.0)
        assert share == pytest.approx(2 / 3)
        assert history(out[("EV", hm(T))], "carrier", w) == (0, None, None)
    assert history(out[("9E", hm(T))], "carrier", 7) == (0, None, None)
    assert history(out[("9E", hm(T))], "carrier", 28) == (1, 45.0, 1.0)

    # without explicit entities only the carriers that departed get rows
    default = by_key(
        transform_delay_history(departures(f), grid_df(spark, T), ["carrier"], "carrier"), "carrier"
    )
    assert {k[0] for k in default} == {"B6", "9E"}


def test_route_history_is_kept_per_origin_and_destination(spark):
    f = flights_df(
        spark,
        [
            departing_at("AA", T - HOUR, delay=20, origin="JFK", dest="LAX", number=1),
            departing_at("AA", T - HOUR, delay=0, origin="JFK", dest="SFO", number=2),
            departing_at("AA", T - HOUR, delay=40, origin="EWR", dest="LAX", number=3),
            departing_at("AA", T - 2 * HOUR, delay=60, origin="EWR", dest="LAX", number=4),
        ],
    )
    out = by_key(
        transform_delay_history(departures(f), grid_df(spark, T), ["origin", "dest"], "route"),
        "origin",
        "dest",
    )
    assert len(out) == 3
    assert history(out[("JFK", "LAX", hm(T))], "route", 7) == (1, 20.0, 1.0)
    assert history(out[("JFK", "SFO", hm(T))], "route", 7) == (1, 0.0, 0.0)
    assert history(out[("EWR", "LAX", hm(T))], "route", 28) == (2, 50.0, 1.0)


def test_cancelled_flights_are_never_counted_nor_labelled(spark):
    f = flights_df(
        spark,
        [
            departing_at("AA", T - HOUR, delay=5, number=1),
            flight("AA", 2, sched=T - 2 * HOUR, dep_delay=None),
            flight("WN", 3, sched=T - 2 * HOUR, dep_delay=None),
        ],
    )
    deps = departures(f)
    assert [(r["carrier"], r["dep_delay"]) for r in deps.collect()] == [("AA", 5.0)]

    out = by_key(
        transform_delay_history(deps, grid_df(spark, T), ["carrier"], "carrier"), "carrier"
    )
    assert list(out) == [("AA", hm(T))]
    for w in WINDOWS:
        assert history(out[("AA", hm(T))], "carrier", w) == (1, 5.0, 0.0)

    # a carrier whose only flight was cancelled still gets a row when listed, with nothing counted
    listed = by_key(
        transform_delay_history(deps, grid_df(spark, T), ["carrier"], "carrier", entities=f),
        "carrier",
    )
    assert history(listed[("WN", hm(T))], "carrier", 28) == (0, None, None)
    assert history(listed[("AA", hm(T))], "carrier", 28) == (1, 5.0, 0.0)

    labels = transform_labels(f).collect()
    assert [(r["carrier"], r["flight"]) for r in labels] == [("AA", 1)]


# --------------------------------------------------------------------------- labels


def test_labels_threshold_flight_id_and_timestamp(spark):
    f = flights_df(
        spark,
        [
            # 2013-01-05 05:15 local
            flight(
                "UA",
                1545,
                "EWR",
                "IAH",
                sched=datetime(2013, 1, 5, 10, 15, tzinfo=UTC),
                dep_delay=15,
                distance=1400,
            ),
            # 2013-01-05 23:59 local is already 2013-01-06 in UTC
            flight(
                "AA",
                7,
                "LGA",
                "MIA",
                sched=datetime(2013, 1, 6, 4, 59, tzinfo=UTC),
                dep_delay=14,
                distance=1096,
            ),
            # 2013-01-05 00:05 local: sched_dep_time 5 is padded to 0005
            flight(
                "B6",
                3,
                "JFK",
                "BOS",
                sched=datetime(2013, 1, 5, 5, 5, tzinfo=UTC),
                dep_delay=-5,
                distance=187,
            ),
            flight(
                "WN", 9, "LGA", "MDW", sched=datetime(2013, 1, 5, 15, 0, tzinfo=UTC), dep_delay=None
            ),
        ],
    )
    out = transform_labels(f)
    assert out.columns == [
        "flight_id",
        "carrier",
        "flight",
        "origin",
        "dest",
        "tailnum",
        "distance_mi",
        "sched_dep_ts",
        "event_timestamp",
        "dep_delay_min",
        "dep_delayed_15",
    ]
    rows = by_key(out.withColumn("sched_dep_ts", out["sched_dep_ts"].cast("string")), "flight_id")
    assert {k[0]: k[1] for k in rows} == {
        "20130105-UA1545-EWR-0515": "2013-01-05 10:15",
        "20130105-AA7-LGA-2359": "2013-01-06 04:59",
        "20130105-B63-JFK-0005": "2013-01-05 05:05",
    }
    got = {k[0]: (r["dep_delay_min"], r["dep_delayed_15"]) for k, r in rows.items()}
    assert got == {
        "20130105-UA1545-EWR-0515": (15.0, 1),
        "20130105-AA7-LGA-2359": (14.0, 0),
        "20130105-B63-JFK-0005": (-5.0, 0),
    }
    ua = rows[("20130105-UA1545-EWR-0515", "2013-01-05 10:15")]
    assert ua["sched_dep_ts"].startswith("2013-01-05 10:15")  # same instant as the event
    assert (ua["carrier"], ua["flight"], ua["origin"], ua["dest"], ua["distance_mi"]) == (
        "UA",
        1545,
        "EWR",
        "IAH",
        1400.0,
    )


# --------------------------------------------------------------------------- weather


def obs(origin: str, ts: datetime, precip: float, wind: float | None = 10.0, temp: float = 40.0):
    local = ts.astimezone(NY)
    return (
        origin,
        local.year,
        local.month,
        local.day,
        local.hour,
        temp,
        20.0,
        50.0,
        270.0,
        wind,
        None,
        precip,
        1012.0,
        10.0,
        ts,
    )


def test_weather_rolling_precip_wind_glitches_and_duplicates(spark):
    h = datetime(2013, 1, 5, 10, tzinfo=UTC)
    w = spark.createDataFrame(
        [
            obs("EWR", h, 0.1, wind=200.0),
            obs("EWR", h + HOUR, 0.2, wind=1048.0),
            obs("EWR", h + 2 * HOUR, 0.3, wind=None),
            obs("EWR", h + 3 * HOUR, 0.4, wind=199.9),
            obs("EWR", h + 3 * HOUR, 0.4, wind=199.9),  # delivered twice
            obs("JFK", h + 2 * HOUR, 1.0, temp=-3.5),
            obs("JFK", h + 3 * HOUR, 0.0),
            obs("JFK", h + 5 * HOUR, 0.5),  # 14:00 missing: 15:00 sums 13:00..15:00, not 12:00
        ],
        weather_schema(),
    )
    out = by_key(transform_weather(w), "origin")
    assert set(out) == {
        ("EWR", hm(h)),
        ("EWR", hm(h + HOUR)),
        ("EWR", hm(h + 2 * HOUR)),
        ("EWR", hm(h + 3 * HOUR)),
        ("JFK", hm(h + 2 * HOUR)),
        ("JFK", hm(h + 3 * HOUR)),
        ("JFK", hm(h + 5 * HOUR)),
    }
    precip3 = {k: r["precip_3h_in"] for k, r in out.items()}
    expected = {
        ("EWR", hm(h)): 0.1,
        ("EWR", hm(h + HOUR)): 0.3,
        ("EWR", hm(h + 2 * HOUR)): 0.6,
        # t-2h..t only (0.2 + 0.3 + 0.4), the duplicate not added twice, no JFK rain
        ("EWR", hm(h + 3 * HOUR)): 0.9,
        ("JFK", hm(h + 2 * HOUR)): 1.0,
        ("JFK", hm(h + 3 * HOUR)): 1.0,
        ("JFK", hm(h + 5 * HOUR)): 0.5,
    }
    assert precip3 == pytest.approx(expected)
    assert {k: r["precip_in"] for k, r in out.items() if k[0] == "EWR"} == pytest.approx(
        {("EWR", hm(h + i * HOUR)): p for i, p in enumerate([0.1, 0.2, 0.3, 0.4])}
    )
    winds = [out[("EWR", hm(h + i * HOUR))]["wind_speed_mph"] for i in range(4)]
    assert winds == [200.0, None, None, 199.9]
    jfk = out[("JFK", hm(h + 2 * HOUR))]
    assert (
        jfk["temp_f"],
        jfk["dewp_f"],
        jfk["humid_pct"],
        jfk["pressure_mb"],
        jfk["visib_mi"],
    ) == (-3.5, 20.0, 50.0, 1012.0, 10.0)
    assert jfk["wind_gust_mph"] is None


# --------------------------------------------------------------------------- planes


def test_planes_only_flying_tails_stamped_at_local_midnight(spark):
    planes = spark.createDataFrame(
        [
            (
                "N10156",
                2004.0,
                "Fixed wing multi engine",
                "EMBRAER",
                "EMB-145XR",
                2,
                55,
                None,
                "Turbo-fan",
            ),
            (
                "N102UW",
                1998.0,
                "Fixed wing multi engine",
                "AIRBUS",
                "A320-214",
                2,
                182,
                None,
                "Turbo-fan",
            ),
            (
                "N200XX",
                None,
                "Fixed wing single engine",
                "CESSNA",
                "172",
                1,
                4,
                120.0,
                "Reciprocating",
            ),
            (
                "N999ZZ",
                2010.0,
                "Fixed wing multi engine",
                "BOEING",
                "737-824",
                2,
                149,
                None,
                "Turbo-fan",
            ),
        ],
        planes_schema(),
    )
    at = lambda y, m, d, hh, mm=0: datetime(y, m, d, hh, mm, tzinfo=NY).astimezone(UTC)  # noqa: E731
    f = flights_df(
        spark,
        [
            flight(tailnum="N10156", number=1, sched=at(2013, 1, 5, 8), dep_delay=0),
            flight(tailnum="N10156", number=2, sched=at(2013, 1, 5, 17), dep_delay=3),
            # 21:30 local on 01-05 is 02:30 UTC on 01-06: still the local day 01-05
            flight(tailnum="N102UW", number=3, sched=at(2013, 1, 5, 21, 30), dep_delay=0),
            # summer time: local midnight is 04:00 UTC
            flight(tailnum="N10156", number=4, sched=at(2013, 7, 1, 9), dep_delay=0),
            # the spring-forward day still starts at 00:00 EST
            flight(tailnum="N200XX", number=5, sched=at(2013, 3, 10, 12), dep_delay=0),
            flight(
                tailnum="N77777", number=6, sched=at(2013, 1, 5, 9), dep_delay=0
            ),  # not in planes
            flight(tailnum=None, number=7, sched=at(2013, 1, 5, 10), dep_delay=0),
        ],
    )
    out = by_key(transform_planes(planes, f, TZ), "tailnum")
    assert set(out) == {
        ("N10156", "2013-01-05 05:00"),
        ("N102UW", "2013-01-05 05:00"),
        ("N10156", "2013-07-01 04:00"),
        ("N200XX", "2013-03-10 05:00"),
    }

    def attrs(r):
        return (r["plane_year"], r["plane_seats"], r["plane_engines"], r["plane_engine_type"])

    assert attrs(out[("N10156", "2013-01-05 05:00")]) == (2004, 55, 2, "Turbo-fan")
    assert attrs(out[("N102UW", "2013-01-05 05:00")]) == (1998, 182, 2, "Turbo-fan")
    assert attrs(out[("N200XX", "2013-03-10 05:00")]) == (None, 4, 1, "Reciprocating")


# --------------------------------------------------------------------------- hourly grid


@pytest.mark.parametrize(
    ("day", "hours", "first", "last"),
    [
        (date(2013, 1, 5), 24, "2013-01-05 05:00", "2013-01-06 04:00"),
        (date(2013, 3, 10), 23, "2013-03-10 05:00", "2013-03-11 03:00"),
        (date(2013, 11, 3), 25, "2013-11-03 04:00", "2013-11-04 04:00"),
    ],
    ids=["normal", "spring-forward", "fall-back"],
)
def test_hourly_grid_covers_each_local_hour(spark, day, hours, first, last):
    grid = hourly_grid(spark, [day], TZ)
    stamps = sorted(r[0] for r in grid.selectExpr("unix_seconds(event_timestamp)").collect())
    assert len(stamps) == hours
    assert [b - a for a, b in zip(stamps, stamps[1:], strict=False)] == [3600] * (hours - 1)
    assert hm(datetime.fromtimestamp(stamps[0], UTC)) == first
    assert hm(datetime.fromtimestamp(stamps[-1], UTC)) == last


def test_hourly_grid_concatenates_days(spark):
    grid = hourly_grid(spark, [date(2013, 3, 9), date(2013, 3, 10)], TZ)
    assert grid.count() == 24 + 23
    assert grid.distinct().count() == 47
