"""The feature job on a warm Spark Connect server (the one `make up` starts): the same features
as a local session for two real days, a clear error naming the URL when the server is down,
and a feature run whose server stops mid-run succeeds on Airflow's retry once it is back.

Each client runs in a subprocess of its own (the test process holds a classic local session)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import DAYS, ROOT, free_port

from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings

pytestmark = pytest.mark.slow

#: the feature pipeline's first task (the server stops while it runs)
FIRST_TASK = "land"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local Spark Connect server on a free port: ``server.url``, ``stop()``, ``start()``."""
    from fti.apps import spark_server

    settings = Settings(home=tmp_path_factory.mktemp("connect-home"), spark_master="local[2]")
    port = free_port()

    class Server:
        url = spark_server.url(settings, port)
        proc = None

        def start(self):
            self.proc = spark_server.start(settings, port)

        def stop(self):
            spark_server.stop(self.proc)

    s = Server()
    s.start()
    yield s
    s.stop()


def _client(code: str, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


STAGE = r"""
import json, sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from feature_repo.jobs import features, pipeline
from fti.ground.settings import get_settings
settings = get_settings()
zone = ZoneInfo(settings.timezone)
days = json.loads(sys.argv[1])
out = {}
start = datetime.fromisoformat(days[0]).replace(tzinfo=zone)
end = datetime.fromisoformat(days[-1]).replace(tzinfo=zone) + timedelta(days=1)
pipeline.land_interval(start, end, settings)
for day in days:
    s = datetime.fromisoformat(day).replace(tzinfo=zone)
    staged = features.run(s, s + timedelta(days=1), settings)
    out[day] = staged
from pyspark.sql.utils import is_remote
print(json.dumps({"staged": out, "remote": is_remote()}))
"""


def test_the_connect_server_gives_the_local_sessions_features(
    two_days, server, good_source, tmp_path
):
    env = {
        "FTI_HOME": str(tmp_path / "home"),
        "FTI_SOURCE_DIR": str(good_source),
        "FTI_SPARK_REMOTE": server.url,
    }
    proc = _client(STAGE, env, json.dumps([d.isoformat() for d in DAYS]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["remote"] is True
    base = get_settings()
    for day in DAYS:
        staged = Path(got["staged"][day.isoformat()]["staging"])
        for view in contract(base).views:
            ours = pd.read_parquet(next((staged / view.name / f"date={day}").glob("*.parquet")))
            local = pd.read_parquet(base.offline_dir / view.name / f"date={day}" / "part-0.parquet")
            order = [*view.keys, "event_timestamp"]
            ours = ours.sort_values(order, ignore_index=True)[local.columns]
            local = local.sort_values(order, ignore_index=True)
            pd.testing.assert_frame_equal(ours, local, obj=f"{view.name} {day}")


def test_a_server_that_is_down_is_a_clear_error_naming_it(good_source, tmp_path):
    url = f"sc://127.0.0.1:{free_port()}"
    code = (
        "from datetime import datetime, timedelta; from zoneinfo import ZoneInfo\n"
        "from feature_repo.jobs import pipeline\n"
        "from fti.ground.spark import SparkUnavailable\n"
        "s = datetime(2013, 1, 1, tzinfo=ZoneInfo('America/New_York')); e = s + timedelta(days=1)\n"
        "pipeline.land_interval(s, e)\n"
        "try:\n    pipeline.compute(s, e)\n"
        "except SparkUnavailable as err:\n    print('UNAVAILABLE', err)\n"
    )
    env = {
        "FTI_HOME": str(tmp_path / "home"),
        "FTI_SOURCE_DIR": str(good_source),
        "FTI_SPARK_REMOTE": url,
    }
    proc = _client(code, env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("UNAVAILABLE"))
    assert f"the Spark Connect server at {url} does not answer" in line
    assert "Py4J" not in line


def _states(db: Path, dag_id: str, logical_day: str) -> dict[str, tuple]:
    """(state, try number) per task of the latest run of ``dag_id`` for ``logical_day``."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT ti.task_id, ti.state, ti.try_number FROM task_instance ti JOIN dag_run r "
            "ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id WHERE r.dag_id = ? "
            "AND r.logical_date LIKE ? AND r.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ? "
            "AND logical_date LIKE ?)",
            (dag_id, f"{logical_day}%", dag_id, f"{logical_day}%"),
        )
        return {task: (state, tries) for task, state, tries in rows}


def test_a_feature_run_retries_until_the_server_is_back(airflow_db, server, good_source, tmp_path):
    """The server stops while the run is under way: compute_features fails naming it, Airflow
    retries it (after the DAG's retry delay), and with the server back the run succeeds."""
    settings = get_settings()
    db = Path(settings.airflow_dir) / "airflow.db"
    day = "2013-01-05"  # a day no other test runs through Airflow (a run per logical date)
    code = (
        "import pendulum; from fti.apps.demo import load_dag\n"
        "from fti.ground.settings import get_settings\n"
        "dag = load_dag(get_settings(), 'feature_pipeline')\n"
        f"dr = dag.test(logical_date=pendulum.datetime({day[:4]}, 1, 5, tz='America/New_York'))\n"
        "print('STATE', dr.state)\n"
    )
    env = {
        "FTI_HOME": str(tmp_path / "home"),
        "FTI_SOURCE_DIR": str(good_source),
        "FTI_SPARK_REMOTE": server.url,
        "AIRFLOW_HOME": str(settings.airflow_dir),
        "FTI_AIRFLOW_HOME": str(settings.airflow_dir),
    }
    # the run's history (the four days before) is landed first, as a backfill in date order would
    land = (
        "from datetime import datetime; from zoneinfo import ZoneInfo\n"
        "from feature_repo.jobs import pipeline\n"
        "z = ZoneInfo('America/New_York')\n"
        "pipeline.land_interval(datetime(2013, 1, 1, tzinfo=z), datetime(2013, 1, 5, tzinfo=z))\n"
    )
    assert _client(land, env).returncode == 0
    full = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    log = tmp_path / "run.log"
    with open(log, "w") as out_file:  # a file, not a pipe: the run logs more than a pipe holds
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=full,
            text=True,
            stdout=out_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # once the run is under way (the raw data is being checked), the server goes away
        deadline = time.monotonic() + 300
        while _states(db, "feature_pipeline", day).get(FIRST_TASK, (None,))[0] != "running":
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        server.stop()
        while (
            _states(db, "feature_pipeline", day).get("compute_features", (None,))[0]
            != "up_for_retry"
        ):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        server.start()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server.proc.poll() is not None:
            server.start()
    out = log.read_text()
    assert "STATE success" in out, out[-5000:]
    assert f"the Spark Connect server at {server.url} does not answer" in out
    states = _states(db, "feature_pipeline", day)
    assert states["compute_features"] == ("success", 2), states


def test_the_spark_training_set_path_works_through_connect(two_days, server):
    """The Spark point-in-time join on the Connect server gives the DuckDB path's cells."""
    code = r"""
import json
from fti.ground.settings import get_settings
from training import dataset
settings = get_settings()
spine = dataset.load_spine(settings).head(400)
duck = dataset.point_in_time_join(spine, settings)
spark = dataset.point_in_time_join_spark(spine, settings)
same = {c: bool(((spark[c] == duck[c]) | (spark[c].isna() & duck[c].isna())).all()) for c in duck.columns}
from pyspark.sql.utils import is_remote
print(json.dumps({"remote": is_remote(), "columns": spark.columns.tolist() == duck.columns.tolist(), "same": same}))
"""
    proc = _client(code, {"FTI_SPARK_REMOTE": server.url})
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["remote"] is True and got["columns"] is True
    assert all(got["same"].values()), [c for c, ok in got["same"].items() if not ok]
