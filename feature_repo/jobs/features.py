"""Spark feature job: raw partitions of a data interval -> staged feature partitions.

``main(argv)`` parses the interval and builds the session (``local[*]`` by default, a cluster
master by ``FTI_SPARK_MASTER``). Each batch feature view declared in ``feature_repo/`` has one
function here with the view's own name, registered with :func:`view_transform`: it takes the
interval's :class:`Inputs` and returns the view's rows. The job finds them by name, so a view
without a transform (or a transform without a declared view) stops the job naming it. The
``transform_*`` functions they call are pure DataFrame -> DataFrame and are what the tests call
on tiny frames. Outputs go to a staging folder per interval; the pipeline validates them there
and only then publishes them (``feature_repo.jobs.pipeline``).

Timestamps are UTC throughout (the session time zone is pinned); "local" means the data set's
time zone (``FTI_TIMEZONE``, America/New_York), which decides what a day is.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fti.ground import files
from fti.ground.contract import Contract, ContractError, contract
from fti.ground.dates import iter_days, local_days, local_hours
from fti.ground.settings import Settings, get_settings
from fti.ground.spark import build_session, is_unavailable, unavailable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

#: look-back windows of the delay-history features, in days
WINDOWS = (7, 28)
#: a departure this many minutes late or more counts as delayed (the label's definition too)
DELAY_THRESHOLD_MIN = 15
#: wind speeds above this are sensor glitches (the data set has one of 1,048 mph)
MAX_WIND_MPH = 200.0


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
        .select(
            "carrier", "origin", "dest", "tailnum", "sched_dep_ts", "dep_ts", "dep_delay", "delayed"
        )
    )


def hourly_grid(spark: SparkSession, days: Sequence[date], tz: str) -> DataFrame:
    """One row per local hour of ``days``, as UTC instants (23 or 25 on DST days)."""
    from pyspark.sql.types import StructField, StructType, TimestampType

    schema = StructType([StructField("event_timestamp", TimestampType(), False)])
    return spark.createDataFrame([(ts,) for ts in local_hours(days, tz)], schema)


def transform_delay_history(
    deps: DataFrame,
    grid: DataFrame,
    keys: Sequence[str],
    prefix: str,
    entities: DataFrame | None = None,
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
    return joined.groupBy(
        *[F.col(f"g.{k}").alias(k) for k in keys], F.col("g.event_timestamp")
    ).agg(*aggs)


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


def flight_key(key: Contract | None = None) -> Column:
    """The flight key column (``flight_id``) of raw flights, in the format the flight entity
    declares (``fti.ground.contract``). Its fields are columns of the raw flights table: the
    scheduled departure's local ``year``, ``month``, ``day``, ``hour`` and ``minute``, and the
    flight's ``carrier``, ``flight`` and ``origin``."""
    import re

    from pyspark.sql import functions as F

    key = key or contract()
    # Java's formatter reads the same %-format as Python's, but its %d takes integers only
    kinds = re.findall(r"%[-#0 +]*\d*(?:\.\d+)?([a-zA-Z])", key.flight_key_format)
    parts = [
        F.col(f).cast("int") if kind == "d" else F.col(f)
        for f, kind in zip(key.flight_key_fields, kinds, strict=True)
    ]
    return F.format_string(key.flight_key_format, *parts)


def transform_labels(flights: DataFrame, key: Contract | None = None) -> DataFrame:
    """One row per departed flight: entity keys, scheduled departure and the label.

    ``dep_delayed_15`` is 1 when the departure delay is 15 minutes or more. Cancelled flights
    (no departure delay) have no label and are left out.
    """
    from pyspark.sql import functions as F

    keyed = flights.where(F.col("dep_delay").isNotNull())
    sched = _sched_dep_ts()
    return keyed.select(
        flight_key(key).alias("flight_id"),
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


# --------------------------------------------------------------------------- inputs


def staging_root(settings: Settings, days: Sequence[date]) -> Path:
    """The staging folder of the interval ``days`` (one subfolder per attempt)."""
    return settings.staging_dir / f"{days[0].isoformat()}_{days[-1].isoformat()}"


def _required(settings: Settings, table: str, first: date, last: date) -> list[str]:
    first = max(first, settings.first_day)
    paths, missing = [], []
    for d in iter_days(first, last):
        p = files.day_partition(settings.raw_dir, table, d)
        (paths if p.exists() else missing).append(p if p.exists() else d.isoformat())
    if missing:
        raise FileNotFoundError(
            f"raw/{table} partitions missing for {', '.join(missing)}: the features of "
            f"{last} need them. Land those days first (run the feature pipeline for them; "
            "a backfill runs days in date order)."
        )
    return [str(p) for p in paths]


class Inputs:
    """What a view's transform may read for one interval, each read once and only when asked
    for: raw partitions as Spark DataFrames (never through the worker's memory)."""

    def __init__(self, spark: SparkSession, settings: Settings, days: Sequence[date]):
        self.spark, self.settings, self.days = spark, settings, list(days)
        self.tz = settings.timezone

    def raw(self, table: str, days_before: int = 0) -> DataFrame:
        """Raw partitions of ``table`` for the interval and the ``days_before`` days before it
        (never before the data set's first day)."""
        first = self.days[0] - timedelta(days=days_before)
        return self.spark.read.parquet(*_required(self.settings, table, first, self.days[-1]))

    @functools.cached_property
    def flights_history(self) -> DataFrame:
        """The interval's flights and those of the days the longest window reaches back to."""
        # one day more than the longest window: a window reaching back 28 x 24 h from a local
        # midnight can start the evening before (DST), and late departures of that day count too
        return self.raw("flights", days_before=max(WINDOWS) + 1)

    @functools.cached_property
    def flights(self) -> DataFrame:
        """The flights scheduled on the interval's local days."""
        from pyspark.sql import functions as F

        interval = [d.isoformat() for d in self.days]
        day = F.format_string("%04d-%02d-%02d", "year", "month", "day")
        return self.flights_history.where(day.isin(*interval))

    @functools.cached_property
    def departures(self) -> DataFrame:
        """The departed flights of :attr:`flights_history` (``departures``)."""
        return departures(self.flights_history)

    @functools.cached_property
    def weather(self) -> DataFrame:
        """The interval's weather and the day before's (rolling sums reach back)."""
        return self.raw("weather", days_before=1)

    @functools.cached_property
    def planes(self) -> DataFrame:
        """The plane reference table as delivered with the interval's days."""
        return self.raw("planes")

    @functools.cached_property
    def hours(self) -> DataFrame:
        """One row per local hour of the interval (``event_timestamp``, UTC)."""
        return hourly_grid(self.spark, self.days, self.tz)


#: the transform of each batch feature view, by the view's name (filled by ``view_transform``)
TRANSFORMS: dict[str, Callable[[Inputs], DataFrame]] = {}


def view_transform(fn: Callable[[Inputs], DataFrame]) -> Callable[[Inputs], DataFrame]:
    """Register ``fn`` as the transform of the batch feature view named like the function."""
    TRANSFORMS[fn.__name__] = fn
    return fn


# --------------------------------------------------------------------------- the views


@view_transform
def origin_weather_hourly(src: Inputs) -> DataFrame:
    """Hourly weather per origin airport (``transform_weather``)."""
    return transform_weather(src.weather)


@view_transform
def carrier_delay_history(src: Inputs) -> DataFrame:
    """Delay history per carrier at every hour (``transform_delay_history``)."""
    return transform_delay_history(
        src.departures, src.hours, ["carrier"], "carrier", entities=src.flights_history
    )


@view_transform
def route_delay_history(src: Inputs) -> DataFrame:
    """Delay history per route (origin, dest) at every hour (``transform_delay_history``)."""
    return transform_delay_history(
        src.departures, src.hours, ["origin", "dest"], "route", entities=src.flights_history
    )


@view_transform
def plane_attributes(src: Inputs) -> DataFrame:
    """Attributes of each plane flying on a day (``transform_planes``)."""
    return transform_planes(src.planes, src.flights, src.tz)


@view_transform
def flight_labels(src: Inputs) -> DataFrame:
    """The label of every departed flight (``transform_labels``)."""
    return transform_labels(src.flights)


# --------------------------------------------------------------------------- the job


def transform_problems(key: Contract) -> list[str]:
    """Where the transforms and the declared batch views disagree (empty when they agree)."""
    declared = set(key.view_names)
    problems = [
        f"feature view {v!r} has no transform: add a function named {v!r} decorated with "
        f"@view_transform to {__name__}"
        for v in key.view_names
        if v not in TRANSFORMS
    ]
    problems += [
        f"transform {name!r} produces a view Feast does not declare: declare a FeatureView "
        f"named {name!r} in {key.repo}, or remove the transform"
        for name in TRANSFORMS
        if name not in declared
    ]
    return problems


def _stage(spark, key: Contract, src: Inputs, root: Path, interval: list[str], tz: str) -> dict:
    """Compute and write every declared view's partitions; rows written per view."""
    from pyspark.sql import functions as F

    rows = {}
    for view in key.views:
        try:
            df = TRANSFORMS[view.name](src)
            out = df.withColumn("date", _local_date(F.col("event_timestamp"), tz)).where(
                F.col("date").isin(*interval)
            )
            # one file per day: a day's partition is small, and one file makes publishing atomic
            out.repartition(1).write.mode("overwrite").partitionBy("date").parquet(
                str(root / view.name)
            )
        except Exception as err:
            if not type(err).__module__.startswith(("pyspark", "py4j")) or is_unavailable(err):
                raise
            # never only a Py4J or gRPC trace: which view, which days, which inputs, what Spark said
            first_line = next((ln for ln in str(err).splitlines() if ln.strip()), "")
            raise FeatureJobFailed(
                f"the Spark job of feature view {view.name!r} failed for {interval[0]}.."
                f"{interval[-1]} (inputs: raw partitions under {src.settings.raw_dir}): "
                f"{type(err).__name__}: {first_line[:500]}"
            ) from err
        empty = [
            d for d in interval if not _rows_written(root / view.name / f"date={d}", "*.parquet")
        ]
        if empty:
            raise FeatureJobFailed(
                f"feature view {view.name!r} has no rows for {', '.join(empty)} after the job's "
                "filters, although the day's raw partitions passed validation: look at the "
                f"transform {view.name}() and the rows it keeps"
            )
        # the declared columns are checked on the files written, from their footers: asking
        # Spark for the schema is a round trip to the server for every view
        columns = _columns_written(root / view.name)
        declared = [*view.keys, "event_timestamp", *view.feature_names]
        missing = [c for c in declared if columns is not None and c not in columns]
        if missing:
            raise ContractError(
                f"the transform of feature view {view.name!r} does not produce the declared "
                f"column(s) {', '.join(missing)}"
            )
        rows[view.name] = _rows_written(root / view.name)
    return rows


class FeatureJobFailed(RuntimeError):
    """The feature job failed on a view; the message names the view, the days and the cause."""


def _columns_written(folder: Path) -> set[str] | None:
    """The columns of the parquet files under ``folder`` (None when nothing was written)."""
    import pyarrow.parquet as pq

    first = next(iter(folder.glob("date=*/*.parquet")), None)
    return None if first is None else set(pq.read_schema(first).names)


def _rows_written(folder: Path, pattern: str = "date=*/*.parquet") -> int:
    """Rows of the parquet files under ``folder``, from their footers (no Spark job)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob(pattern))


def run(start: datetime, end: datetime, settings: Settings | None = None, spark=None) -> dict:
    """Compute every declared batch feature view for the interval into its staging folder.

    Returns ``{"staging": path, "rows": {view: rows}, "seconds": {...}}``. Raises
    ``fti.ground.contract.ContractError`` naming each view without a transform (or transform
    without a view) before any work, and each view whose output lacks a declared column.
    """
    settings = settings or get_settings()
    key = contract(settings)
    problems = transform_problems(key)
    if problems:
        raise ContractError("; ".join(problems))
    tz = settings.timezone
    days = local_days(start, end, tz)
    first, last = days[0], days[-1]
    t0 = time.perf_counter()
    spark = spark or build_session(settings)
    # a day of flights is ~1,000 rows: one shuffle partition per week of interval (at most the
    # setting), so a day's joins and windows run as single tasks instead of idle ones
    spark.conf.set(
        "spark.sql.shuffle.partitions",
        str(max(1, min(settings.spark_shuffle_partitions, -(-len(days) // 7)))),
    )
    t_session = time.perf_counter() - t0

    t1 = time.perf_counter()
    interval = [d.isoformat() for d in days]
    # each attempt writes a folder of its own: a retry never writes where an attempt it
    # replaces (killed with its task, its job perhaps still running on a Spark Connect server)
    # might still write; earlier attempts of the interval are removed first
    folder = staging_root(settings, days)
    # best effort: an attempt killed with its task may have left a Spark job running on the
    # server that still writes into its own folder, so removing it can race; never fatal
    for old in folder.glob("*") if folder.exists() else ():
        shutil.rmtree(old, ignore_errors=True)
    root = folder / uuid.uuid4().hex[:12]
    try:
        rows = _stage(spark, key, Inputs(spark, settings, days), root, interval, tz)
    except Exception as err:
        if settings.spark_remote and is_unavailable(err):
            raise unavailable(settings.spark_remote, err) from err
        raise
    t_compute = time.perf_counter() - t1
    log.info("staged features for %s..%s at %s: %s", first, last, root, rows)
    return {
        "staging": str(root),
        "days": interval,
        "rows": rows,
        "seconds": {"spark_session": round(t_session, 3), "compute_and_write": round(t_compute, 3)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m feature_repo.jobs.features --start S --end E``: stage one interval."""
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
