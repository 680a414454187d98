"""Spark feature job: raw partitions of a data interval -> staged feature partitions.

``main(argv)`` parses the interval and builds the session (``local[*]`` by default, a cluster
master by ``FTI_SPARK_MASTER``); the ``transform_*`` functions are pure DataFrame -> DataFrame
and are what the tests call on tiny frames. Outputs go to a staging folder per interval; the
pipeline validates them there and only then publishes them (see ``feature_repo.jobs.publish``).

Timestamps are UTC throughout (the session time zone is pinned); "local" means the data set's
time zone (``FTI_TIMEZONE``, America/New_York), which decides what a day is.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from feature_repo.jobs.land import iter_days, local_days, partition_path
from fti.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

#: look-back windows of the delay-history features, in days
WINDOWS = (7, 28)
#: a departure this many minutes late or more counts as delayed (the label's definition too)
DELAY_THRESHOLD_MIN = 15
#: wind speeds above this are sensor glitches (the data set has one of 1,048 mph)
MAX_WIND_MPH = 200.0

VIEWS = (
    "origin_weather_hourly",
    "carrier_delay_history",
    "route_delay_history",
    "plane_attributes",
    "flight_labels",
)


# --------------------------------------------------------------------------- session


def build_session(settings: Settings) -> SparkSession:
    """A Spark session for the configured master; reused when one is already running."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.spark_master)
    if settings.spark_master.startswith("local"):
        # Python workers (UDFs) must run this interpreter, not whatever python3 is first on PATH
        builder = builder.config("spark.pyspark.python", sys.executable)
    spark = (
        builder
        .appName("fti-features")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------- transforms


def _local_date(ts: Column, tz: str) -> Column:
    from pyspark.sql import functions as F

    return F.date_format(F.from_utc_timestamp(ts, tz), "yyyy-MM-dd")


def _sched_dep_ts() -> Column:
    """Scheduled departure instant: ``time_hour`` (the scheduled hour, UTC) plus ``minute``."""
    from pyspark.sql import functions as F

    return F.col("time_hour") + F.make_interval(mins=F.col("minute").cast("int"))


def departures(flights: DataFrame) -> DataFrame:
    """Flights that departed, with scheduled and actual departure instants (UTC).

    ``time_hour`` is the scheduled hour in UTC; the actual departure is the scheduled one plus
    ``dep_delay`` minutes. Cancelled flights (no ``dep_delay``) never departed.
    """
    from pyspark.sql import functions as F

    sched = _sched_dep_ts()
    return (
        flights.where(F.col("dep_delay").isNotNull())
        .withColumn("sched_dep_ts", sched)
        .withColumn(
            "dep_ts", F.col("sched_dep_ts") + F.make_interval(mins=F.col("dep_delay").cast("int"))
        )
        .withColumn("delayed", (F.col("dep_delay") >= DELAY_THRESHOLD_MIN).cast("int"))
        .select("carrier", "origin", "dest", "tailnum", "sched_dep_ts", "dep_ts", "dep_delay", "delayed")
    )


def hourly_grid(spark: SparkSession, days: Sequence[date], tz: str) -> DataFrame:
    """One row per local hour of ``days``, as UTC instants (23 or 25 on DST days)."""
    from pyspark.sql.types import StructField, StructType, TimestampType

    zone, utc = ZoneInfo(tz), ZoneInfo("UTC")
    rows = []
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(utc)
        nxt = day + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(utc)
        ts = start
        while ts < end:
            rows.append((ts,))
            ts += timedelta(hours=1)
    schema = StructType([StructField("event_timestamp", TimestampType(), False)])
    return spark.createDataFrame(rows, schema)


def transform_delay_history(
    deps: DataFrame, grid: DataFrame, keys: Sequence[str], prefix: str, entities: DataFrame | None = None
) -> DataFrame:
    """Delay history per entity (``keys``) at every grid timestamp.

    For a row at time ``t`` and window ``w`` days, the features aggregate the departures with
    ``t - w days <= dep_ts < t``: strictly before ``t``, so a flight departing at ``t`` itself
    (or later) is not counted and no label leaks into a feature. ``entities`` (default: the keys
    seen in ``deps``) decides which entities get rows; one with no departure in a window gets a
    count of 0 and null mean and share.
    """
    from pyspark.sql import functions as F

    longest = max(WINDOWS)
    ents = (entities if entities is not None else deps).select(*keys).distinct()
    g = ents.crossJoin(grid).alias("g")
    d = deps.select(*keys, "dep_ts", "dep_delay", "delayed").alias("d")
    cond = [F.col(f"g.{k}") == F.col(f"d.{k}") for k in keys] + [
        F.col("d.dep_ts") < F.col("g.event_timestamp"),
        F.col("d.dep_ts") >= F.col("g.event_timestamp") - F.make_interval(days=F.lit(longest)),
    ]
    joined = g.join(d, on=cond, how="left")
    aggs = []
    for w in WINDOWS:
        inside = F.col("d.dep_ts") >= F.col("g.event_timestamp") - F.make_interval(days=F.lit(w))
        aggs += [
            F.avg(F.when(inside, F.col("d.dep_delay"))).alias(f"{prefix}_dep_delay_mean_{w}d"),
            F.avg(F.when(inside, F.col("d.delayed").cast("double"))).alias(
                f"{prefix}_delayed_share_{w}d"
            ),
            F.count(F.when(inside, F.lit(1))).cast("int").alias(f"{prefix}_flights_{w}d"),
        ]
    return joined.groupBy(*[F.col(f"g.{k}").alias(k) for k in keys], F.col("g.event_timestamp")).agg(
        *aggs
    )


def transform_weather(weather: DataFrame) -> DataFrame:
    """Hourly weather per origin airport, with a rolling 3-hour precipitation sum.

    ``precip_3h_in`` sums the observations at ``t-2h``, ``t-1h`` and ``t`` (the hour ending at
    each of them), so the input must include the two hours before the first output row.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    secs = F.col("event_timestamp").cast("long")
    w3 = Window.partitionBy("origin").orderBy(secs).rangeBetween(-2 * 3600, 0)
    wind = F.col("wind_speed").cast("double")
    return (
        weather.withColumn("event_timestamp", F.col("time_hour"))
        .dropDuplicates(["origin", "event_timestamp"])
        .select(
            "origin",
            "event_timestamp",
            F.col("temp").cast("double").alias("temp_f"),
            F.col("dewp").cast("double").alias("dewp_f"),
            F.col("humid").cast("double").alias("humid_pct"),
            F.when(wind <= MAX_WIND_MPH, wind).alias("wind_speed_mph"),
            F.col("wind_gust").cast("double").alias("wind_gust_mph"),
            F.col("precip").cast("double").alias("precip_in"),
            F.col("pressure").cast("double").alias("pressure_mb"),
            F.col("visib").cast("double").alias("visib_mi"),
        )
        .withColumn("precip_3h_in", F.sum("precip_in").over(w3))
    )


def transform_planes(planes: DataFrame, flights: DataFrame, tz: str) -> DataFrame:
    """Attributes of the planes that fly each local day, stamped at that day's local midnight."""
    from pyspark.sql import functions as F

    midnight = F.to_utc_timestamp(
        F.make_timestamp(
            F.col("year").cast("int"),
            F.col("month").cast("int"),
            F.col("day").cast("int"),
            F.lit(0),
            F.lit(0),
            F.lit(0).cast("decimal(8,6)"),
        ),
        tz,
    )
    tails = (
        flights.where(F.col("tailnum").isNotNull())
        .select("tailnum", midnight.alias("event_timestamp"))
        .distinct()
    )
    attrs = planes.select(
        "tailnum",
        F.col("year").cast("int").alias("plane_year"),
        F.col("seats").cast("int").alias("plane_seats"),
        F.col("engines").cast("int").alias("plane_engines"),
        F.col("engine").alias("plane_engine_type"),
    ).dropDuplicates(["tailnum"])
    return tails.join(attrs, on="tailnum", how="inner")


def transform_labels(flights: DataFrame) -> DataFrame:
    """One row per departed flight: entity keys, scheduled departure and the label.

    ``dep_delayed_15`` is 1 when the departure delay is 15 minutes or more. Cancelled flights
    (no departure delay) have no label and are left out.
    """
    from pyspark.sql import functions as F

    keyed = flights.where(F.col("dep_delay").isNotNull()).select(
        "carrier", "flight", "origin", "dest", "tailnum", "distance", "time_hour", "minute",
        "year", "month", "day", "sched_dep_time", "dep_delay",
    )
    sched = _sched_dep_ts()
    flight_id = F.concat_ws(
        "-",
        F.format_string("%04d%02d%02d", "year", "month", "day"),
        F.concat(F.col("carrier"), F.col("flight").cast("string")),
        F.col("origin"),
        F.lpad(F.col("sched_dep_time").cast("string"), 4, "0"),
    )
    return keyed.select(
        flight_id.alias("flight_id"),
        "carrier",
        F.col("flight").cast("int").alias("flight"),
        "origin",
        "dest",
        "tailnum",
        F.col("distance").cast("double").alias("distance_mi"),
        sched.alias("sched_dep_ts"),
        sched.alias("event_timestamp"),
        F.col("dep_delay").cast("double").alias("dep_delay_min"),
        (F.col("dep_delay") >= DELAY_THRESHOLD_MIN).cast("int").alias("dep_delayed_15"),
    )


# --------------------------------------------------------------------------- the job


def staging_root(settings: Settings, days: Sequence[date]) -> Path:
    return settings.staging_dir / f"{days[0].isoformat()}_{days[-1].isoformat()}"


def _required(settings: Settings, table: str, first: date, last: date) -> list[str]:
    first = max(first, settings.first_day)
    paths, missing = [], []
    for d in iter_days(first, last):
        p = partition_path(settings.raw_dir, table, d)
        (paths if p.exists() else missing).append(p if p.exists() else d.isoformat())
    if missing:
        raise FileNotFoundError(
            f"raw/{table} partitions missing for {', '.join(missing)}: the features of "
            f"{last} need them. Land those days first (run the feature pipeline for them; "
            "a backfill runs days in date order)."
        )
    return [str(p) for p in paths]


def run(start: datetime, end: datetime, settings: Settings | None = None, spark=None) -> dict:
    """Compute every feature view for the interval into its staging folder.

    Returns ``{"staging": path, "rows": {view: rows}, "seconds": {...}}``.
    """
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    tz = settings.timezone
    days = local_days(start, end, tz)
    first, last = days[0], days[-1]
    t0 = time.perf_counter()
    spark = spark or build_session(settings)
    t_session = time.perf_counter() - t0

    t1 = time.perf_counter()
    interval = {d.isoformat() for d in days}
    # one day more than the longest window: a window reaching back 28 x 24 h from a local
    # midnight can start the evening before (DST), and late departures of that day count too
    flights_hist = spark.read.parquet(
        *_required(settings, "flights", first - timedelta(days=max(WINDOWS) + 1), last)
    )
    weather = spark.read.parquet(*_required(settings, "weather", first - timedelta(days=1), last))
    planes = spark.read.parquet(*_required(settings, "planes", first, last))

    in_interval = F.format_string("%04d-%02d-%02d", "year", "month", "day").isin(*interval)
    flights_day = flights_hist.where(in_interval)
    deps = departures(flights_hist)
    grid = hourly_grid(spark, days, tz)

    outputs = {
        "origin_weather_hourly": transform_weather(weather),
        "carrier_delay_history": transform_delay_history(
            deps, grid, ["carrier"], "carrier", entities=flights_hist
        ),
        "route_delay_history": transform_delay_history(
            deps, grid, ["origin", "dest"], "route", entities=flights_hist
        ),
        "plane_attributes": transform_planes(planes, flights_day, tz),
        "flight_labels": transform_labels(flights_day),
    }
    root = staging_root(settings, days)
    if root.exists():
        shutil.rmtree(root)
    rows = {}
    for view, df in outputs.items():
        out = df.withColumn("date", _local_date(F.col("event_timestamp"), tz)).where(
            F.col("date").isin(*interval)
        )
        # one file per day: a day's partition is small, and one file makes publishing atomic
        out.repartition(1).write.mode("overwrite").partitionBy("date").parquet(str(root / view))
        rows[view] = spark.read.parquet(str(root / view)).count() if (root / view).exists() else 0
    t_compute = time.perf_counter() - t1
    log.info("staged features for %s..%s at %s: %s", first, last, root, rows)
    return {
        "staging": str(root),
        "days": [d.isoformat() for d in days],
        "rows": rows,
        "seconds": {"spark_session": round(t_session, 3), "compute_and_write": round(t_compute, 3)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feature_repo.jobs.features")
    parser.add_argument("--start", required=True, help="ISO date or datetime (local if naive)")
    parser.add_argument("--end", required=True, help="ISO date or datetime, exclusive")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    zone = ZoneInfo(settings.timezone)

    def parse(text: str) -> datetime:
        ts = datetime.fromisoformat(text)
        return ts if ts.tzinfo else ts.replace(tzinfo=zone)

    print(run(parse(args.start), parse(args.end), settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
