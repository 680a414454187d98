"""Land the raw records of a data interval as date partitions.

The NYC flights 2013 tables (``fti.ground.source``) are replayed day by day:
``raw/<table>/date=YYYY-MM-DD/part-0.parquet`` holds exactly the records whose local date is
that day.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pyarrow as pa

from fti.ground import files, source
from fti.ground.dates import local_days
from fti.ground.settings import Settings, get_settings

log = logging.getLogger(__name__)


def land(start: datetime, end: datetime, settings: Settings | None = None) -> dict[str, list[str]]:
    """Land every daily table's records for the local days of ``[start, end)``.

    Returns the written partition paths per table. Rerunning overwrites the same files.
    """
    settings = settings or get_settings()
    days = local_days(start, end, settings.timezone)
    written: dict[str, list[str]] = {}
    for table in source.DAILY_TABLES:
        df = source.read_table(settings, table)
        for day in days:
            if table == "planes":
                # reference data: the current snapshot arrives with every day
                part = df
            else:
                part = df[
                    (df["year"] == day.year) & (df["month"] == day.month) & (df["day"] == day.day)
                ]
            path = files.day_partition(settings.raw_dir, table, day)
            table_ = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
            files.write_table(table_, path)
            written.setdefault(table, []).append(str(path))
            log.info("landed %s rows of %s for %s at %s", len(part), table, day, path)
    return written
