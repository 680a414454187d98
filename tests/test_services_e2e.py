"""The scaled-out configuration of the two engines this machine runs for real: Airflow's metadata
in Postgres and Feast's online store in Redis, with a real scheduler (`airflow standalone`)
executing an `airflow backfill` over two days.

Needs the Postgres (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) of the development
and CI machines; it uses a database and a Redis db index of its own and removes both after.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT, read_real_tables, run, write_source

pytestmark = [pytest.mark.slow, pytest.mark.services]

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
REDIS_DB = 13


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_db():
    import psycopg2

    name = f"fti_test_{os.getpid()}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    yield PG.format(db=name)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture(scope="module")
def redis_db():
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    yield f"127.0.0.1:6379,db={REDIS_DB}"
    client.flushdb()


@pytest.fixture(scope="module")
def scaled_env(tmp_path_factory, postgres_db, redis_db):
    flights, weather, planes = read_real_tables(days=3)
    home = tmp_path_factory.mktemp("scaled")
    env = {
        "FTI_HOME": str(home),
        "FTI_SOURCE_DIR": str(write_source(home / "source", flights, weather, planes)),
        "FTI_AIRFLOW_DATABASE_URL": postgres_db,
        "FTI_ONLINE_STORE": "redis",
        "FTI_REDIS_CONNECTION_STRING": redis_db,
        "FTI_AIRFLOW_PORT": str(_free_port()),
        "FTI_AIRFLOW_PARALLELISM": "2",
        # only the backfill may create runs
        "FTI_FEATURE_CATCHUP": "false",
    }
    exports = run([sys.executable, "-m", "fti", "env"], env=env).stdout
    for line in exports.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    return env


def _runs(env) -> list[dict]:
    out = run(
        [sys.executable, "-m", "airflow", "dags", "list-runs", "feature_pipeline", "-o", "json"],
        env=env,
    ).stdout
    # warnings are logged to stdout too: the runs are the one line that is a JSON list
    for line in reversed(out.splitlines()):
        if line.startswith("[{") or line.strip() == "[]":
            return json.loads(line)
    raise AssertionError(f"no JSON in: {out[-2000:]}")


def test_backfill_with_postgres_metadata_and_redis_online_store(scaled_env):
    env = scaled_env
    assert "postgresql" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    run([sys.executable, "-m", "airflow", "db", "migrate"], env=env)
    run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=env)

    log = open(Path(env["FTI_HOME"]) / "standalone.log", "w")
    full = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "standalone"],
        env=full,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}/api/v2/monitor/health"
        deadline = time.monotonic() + 180
        while True:
            try:
                health = json.load(urllib.request.urlopen(url, timeout=5))
                if health["scheduler"]["status"] == "healthy":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, Path(log.name).read_text()[-3000:]
            time.sleep(2)

        run([sys.executable, "-m", "airflow", "dags", "unpause", "feature_pipeline"], env=env)
        run(
            [
                sys.executable,
                "-m",
                "airflow",
                "backfill",
                "create",
                "--dag-id",
                "feature_pipeline",
                "--from-date",
                "2013-01-01",
                "--to-date",
                "2013-01-02",
                "--max-active-runs",
                "1",
            ],
            env=env,
        )
        deadline = time.monotonic() + 900
        while True:
            runs = _runs(env)
            states = sorted((r["logical_date"][:10], r["state"]) for r in runs)
            if len(runs) == 2 and all(s in ("success", "failed") for _, s in states):
                break
            assert time.monotonic() < deadline, (states, Path(log.name).read_text()[-3000:])
            time.sleep(5)
        assert states == [("2013-01-01", "success"), ("2013-01-02", "success")], Path(
            log.name
        ).read_text()[-5000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()

    # the backfill landed exactly the days of its range
    raw = Path(env["FTI_HOME"]) / "data" / "raw" / "flights"
    assert sorted(p.name for p in raw.iterdir()) == ["date=2013-01-01", "date=2013-01-02"]
    offline = Path(env["FTI_HOME"]) / "data" / "offline" / "carrier_delay_history"
    assert sorted(p.name for p in offline.iterdir()) == ["date=2013-01-01", "date=2013-01-02"]

    # Feast's online store is the Redis one, and holds the materialized entities
    code = (
        "from fti.ground import featurestore; import json; "
        "print(json.dumps(featurestore.online_entity_counts()))"
    )
    counts = json.loads(run([sys.executable, "-c", code], env=env).stdout.strip().splitlines()[-1])
    assert counts["origin_weather_hourly"] == 3
    assert counts["carrier_delay_history"] >= 10
    assert counts["route_delay_history"] > 100
    assert not (Path(env["FTI_HOME"]) / "feast" / "online.db").exists()
