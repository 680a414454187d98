"""The Spark session every Spark job of the platform runs on (``FTI_SPARK_MASTER``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from fti.ground.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def build_session(settings: Settings) -> SparkSession:
    """A Spark session for the configured master; reused when one is already running.

    Timestamps are UTC inside Spark (the session time zone is pinned) and written to parquet
    in microseconds, the unit every other reader of the stores uses.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.spark_master)
    if settings.spark_master.startswith("local"):
        # Python workers (UDFs) must run this interpreter, not whatever python3 is first on PATH
        builder = builder.config("spark.pyspark.python", sys.executable)
    spark = (
        builder.appName("fti-features")
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
