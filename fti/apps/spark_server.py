"""The local Spark Connect server of the embedded default: one warm JVM for every Spark task.

``make up`` runs ``python -m fti spark-connect --watch <airflow's pid>`` beside Airflow (it stops
with Airflow, like the MLflow UI), the demo and the replay start one for their run. Its log is
``HOME/logs/spark-connect.log``. Tasks reach it through ``FTI_SPARK_REMOTE``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fti.apps.processes import alive
from fti.ground.settings import Settings
from fti.ground.spark import connect_server_command, spark_home


def url(settings: Settings, port: int | None = None) -> str:
    """The URL a client of the local server uses."""
    return f"sc://127.0.0.1:{port or settings.spark_connect_port}"


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(
    settings: Settings,
    port: int | None = None,
    timeout: float = 180,
    host: str = "127.0.0.1",
    to_stdout: bool = False,
) -> subprocess.Popen:
    """Start the server on ``host:port`` (default: loopback, ``spark_connect_port``) in a
    process group of its own and wait until it accepts connections; raises naming its log
    when it does not. Its output goes to ``HOME/logs/spark-connect.log``, or to this
    process's own output with ``to_stdout`` (a container's log)."""
    port = port or settings.spark_connect_port
    if _answers(port):
        raise RuntimeError(
            f"port {port} is taken: a Spark Connect server (or something else) "
            f"already listens there; use it with FTI_SPARK_REMOTE={url(settings, port)}"
        )
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "spark-connect.log"
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(logs),
        "SPARK_PID_DIR": str(settings.home / "spark"),
        "SPARK_NO_DAEMONIZE": "1",
    }
    env.pop("FTI_SPARK_REMOTE", None)
    with open(log, "ab") as out:
        target = None if to_stdout else out
        proc = subprocess.Popen(
            connect_server_command(settings, port, host=host),
            env=env,
            stdout=target,
            stderr=subprocess.STDOUT if target else None,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(
                f"the Spark Connect server did not listen on {port} within "
                f"{timeout:.0f} s; see {log}"
            )
        time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop the server (its whole process group: the script and its JVM)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(settings: Settings, port: int | None = None) -> Iterator[str]:
    """A local server for the block (its URL), stopped after it."""
    proc = start(settings, port)
    try:
        yield url(settings, port)
    finally:
        stop(proc)


def serve(
    settings: Settings, watch: int | None = None, host: str = "127.0.0.1", to_stdout: bool = False
) -> int:
    """Run the server until interrupted, or until process ``watch`` ends (``make up``); the
    compose stack's spark-connect service runs it on ``0.0.0.0``."""

    proc = start(settings, host=host, to_stdout=to_stdout)
    print(
        f"\n  Spark Connect: {url(settings)}  (log: {Path(settings.home) / 'logs'})\n", flush=True
    )

    def _stop(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        while proc.poll() is None and (watch is None or alive(watch)):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)
    return 0
