"""The Spark session every Spark job of the platform runs on.

Two shapes, one code path:

- ``FTI_SPARK_REMOTE=sc://host:port``: a thin client of a warm Spark Connect server (``make up``,
  the demo and the replay start a local one; the compose stack runs one on its cluster). A
  session costs a fraction of a second; no JVM runs in the task.
- otherwise a classic session on ``FTI_SPARK_MASTER`` (``local[*]`` inside the process, or a
  cluster master), started by the task itself (seconds: a JVM).

Timestamps are UTC inside Spark (the session time zone is pinned) and written to parquet in
microseconds, the unit every other reader of the stores uses. A Connect server that does not
answer is :class:`SparkUnavailable`, naming the URL: not a data problem, so Airflow retries.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkUnavailable(RuntimeError):
    """The Spark Connect server does not answer (the message names its URL); retrying helps."""


def session_conf(settings: Settings) -> dict[str, str]:
    """The configuration every session of the platform runs with (server or local)."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def build_session(settings: Settings) -> SparkSession:
    """A Spark session for the settings: a Spark Connect client with ``spark_remote``, else a
    classic session on ``spark_master`` (reused when one is already running)."""
    if settings.spark_remote:
        return remote_session(settings)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.spark_master)
    if settings.spark_master.startswith("local"):
        # Python workers (UDFs) must run this interpreter, not whatever python3 is first on PATH
        builder = builder.config("spark.pyspark.python", sys.executable)
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    spark = (
        builder.appName("fti-features")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def remote_session(settings: Settings) -> SparkSession:
    """A Spark Connect session on ``spark_remote``, with the platform's session settings.

    Raises :class:`SparkUnavailable` naming the URL when the server does not answer. A cached
    session whose server went away is replaced by a new one once.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    url = settings.spark_remote
    for attempt in (1, 2):
        spark = SparkSession.builder.remote(url).getOrCreate()
        # the client's default retries wait at least ten minutes for a server that is gone; a
        # task gives up after ~10 s instead and Airflow retries it (the DAG's retry delay)
        spark.client.set_retry_policies(
            [DefaultPolicy(max_retries=4, initial_backoff=250, max_backoff=5000)]
        )
        try:
            # one round trip: the session's settings (the server keeps them per session)
            for key, value in session_conf(settings).items():
                spark.conf.set(key, value)
            return spark
        except Exception as err:
            if not is_unavailable(err):
                raise
            spark.stop()  # a session of a server that restarted is gone: start a new one
            if attempt == 2:
                raise unavailable(url, err) from err
    raise AssertionError("unreachable")


def stop_remote_session() -> bool:
    """Release this process's Spark Connect session, if it has one (before its server stops,
    so that nothing tries to release it against a server that is gone at interpreter exit)."""
    if "pyspark.sql.connect.session" not in sys.modules:
        return False
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    session = RemoteSession.getActiveSession()
    if session is None:
        return False
    session.stop()
    return True


def is_unavailable(err: BaseException) -> bool:
    """Whether ``err`` says the Spark Connect server cannot be reached (or has lost the
    session), rather than that a query is wrong."""
    text = f"{type(err).__name__}: {err}"
    markers = (
        "UNAVAILABLE",
        "Connection refused",
        "failed to connect",
        "Failed to connect",
        "Socket closed",
        "INVALID_HANDLE",
        "SESSION_NOT_FOUND",
        "Channel closed",
        "connection reset",
        "Connection reset",
        "DEADLINE_EXCEEDED",
    )
    return any(m in text for m in markers)


def unavailable(url: str, err: BaseException) -> SparkUnavailable:
    """The error a task fails with when the server at ``url`` does not answer."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return SparkUnavailable(
        f"the Spark Connect server at {url} does not answer ({first[:300]}); Airflow retries "
        "the task. Embedded: `make up` and the demo start it (python -m fti spark-connect); "
        "compose: the spark-connect service. Unset FTI_SPARK_REMOTE to start a local session."
    )


@functools.cache
def spark_home() -> Path:
    """The installed pyspark's own Spark distribution (bin/, sbin/, jars/)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pyspark is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def connect_server_command(
    settings: Settings, port: int, master: str | None = None, host: str = "127.0.0.1"
) -> list[str]:
    """The command that runs a Spark Connect server in the foreground on ``host:port`` over
    ``master`` (default ``spark_master``), with the platform's session settings. The pyspark
    wheel ships the server (``sbin/start-connect-server.sh``, ``jars/spark-connect_*.jar``).
    The embedded default listens on the loopback interface only."""
    master = master or settings.spark_master
    conf = {
        **session_conf(settings),
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Python workers (UDFs) must run this interpreter
        "spark.pyspark.python": sys.executable,
    }
    cmd = [str(spark_home() / "sbin" / "start-connect-server.sh"), "--wait", "--master", master]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd
