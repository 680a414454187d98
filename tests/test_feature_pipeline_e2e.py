"""End to end: the feature_pipeline DAG through Airflow on the embedded default.

Real data (two days, then a third) runs through land -> validate -> Spark -> validate ->
publish -> feast apply -> materialize; then reruns prove idempotency, and bad raw days prove
that a failed validation stops the run with nothing published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import DAYS, run, use_source, write_source

from feature_repo.jobs import quarantine
from fti.ground import featurestore
from fti.ground.contract import contract
from fti.ground.files import day_partition
from fti.ground.settings import get_settings
from fti.ground.source import DAILY_TABLES

pytestmark = pytest.mark.slow


def offline_files(settings, days=DAYS) -> dict[str, list[Path]]:
    out = {}
    for view in contract().view_names:
        for d in days:
            folder = settings.offline_dir / view / f"date={d.isoformat()}"
            out[f"{view}/{d}"] = sorted(p for p in folder.iterdir()) if folder.exists() else []
    return out


def digest(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_two_consecutive_days_publish_and_materialize(two_days):
    settings = get_settings()
    assert two_days == [(d, "success") for d in DAYS]
    for key, files in offline_files(settings).items():
        assert [f.name for f in files] == ["part-0.parquet"], key
    labels = pd.read_parquet(settings.offline_dir / "flight_labels")
    assert set(labels["date"].astype(str)) == {"2013-01-01", "2013-01-02"}
    # every departed flight of those days has exactly one label row
    raw = [pd.read_parquet(day_partition(settings.raw_dir, "flights", d)) for d in DAYS]
    departed = sum(int(df["dep_delay"].notna().sum()) for df in raw)
    assert len(labels) == departed
    assert labels["flight_id"].is_unique
    counts = featurestore.online_entity_counts(settings)
    # every view declared online=True was materialized (nothing else lists them)
    assert set(counts) == set(contract().online_views)
    assert all(n > 0 for n in counts.values()), counts
    assert counts["origin_weather_hourly"] == 3
    assert counts["carrier_delay_history"] >= 10
    assert counts["route_delay_history"] > 100
    assert counts["plane_attributes"] > 500
    # each day's features event names the day it published: what training and inference read
    from helpers import asset_events

    from fti.ground.assets import FEATURES

    named = [extra for _, extra in asset_events(FEATURES.name)]
    for d in DAYS:
        assert {"first_day": d.isoformat(), "last_day": d.isoformat()}.items() <= next(
            e for e in named if e.get("last_day") == d.isoformat()
        ).items()
    # every raw table and feature view of the day left a result naming its own HTML page
    results = list((settings.reports_dir / "validation").glob("*/*/2013-01-02/*/result.json"))
    assert {p.parts[-5] for p in results} == {"raw", "features"}
    from fti.ground.source import DAILY_TABLES

    assert len(results) == len(DAILY_TABLES) + len(contract().view_names)
    for r in results:
        page = Path(json.loads(r.read_text())["report"])
        assert page.is_file() and page.suffix == ".html"
        assert page == r.parent / "report.html"
        assert "Validation Results" in page.read_text() or "Expectation" in page.read_text()


def test_online_store_serves_latest_values(two_days):
    settings = get_settings()
    store = featurestore.feature_store(settings)
    svc = store.get_feature_service(featurestore.feature_service_name())
    row = {
        "carrier": "UA",
        "origin": "EWR",
        "dest": "IAH",
        "tailnum": "N14228",
        "sched_dep_ts": pd.Timestamp("2013-01-03 10:00", tz="America/New_York"),
    }
    got = store.get_online_features(features=svc, entity_rows=[row]).to_dict()
    hist = pd.read_parquet(settings.offline_dir / "carrier_delay_history")
    last = hist[hist.carrier == "UA"].sort_values("event_timestamp").iloc[-1]
    assert got["carrier_flights_7d"] == [last["carrier_flights_7d"]]
    assert got["dep_hour_local"] == [10]
    assert got["dep_dow_local"] == [3]  # a Thursday


def test_rerun_and_killed_publish_leave_one_copy(two_days):
    from fti.apps.demo import run_days

    settings = get_settings()
    before = {k: pd.read_parquet(v[0]) for k, v in offline_files(settings).items()}
    # what a publish killed mid-way and a Spark write killed mid-way leave behind
    part = settings.offline_dir / "route_delay_history" / "date=2013-01-02"
    (part / ".part-0.parquet.deadbeef.tmp").write_bytes(b"half a file")
    stale = (
        settings.staging_dir / "2013-01-02_2013-01-02" / "route_delay_history" / "date=2013-01-02"
    )
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "part-00000-half.snappy.parquet").write_bytes(b"PAR1 garbage")

    t0 = datetime.now(UTC)
    assert run_days(DAYS[1], DAYS[1], settings) == [(DAYS[1], "success")]
    from airflow.models.dagrun import DagRun

    (rerun,) = [
        r for r in DagRun.find(dag_id="feature_pipeline") if r.end_date and r.end_date >= t0
    ]
    # the UI shows when the run really ran, not a 13-year run starting at its logical date
    assert t0 <= rerun.start_date <= rerun.end_date

    after = offline_files(settings)
    for key, files in after.items():
        assert [f.name for f in files] == ["part-0.parquet"], key
        cols = list(before[key].columns)
        pd.testing.assert_frame_equal(
            pd.read_parquet(files[0]).sort_values(cols, ignore_index=True),
            before[key].sort_values(cols, ignore_index=True),
        )


def test_airflow_dags_test_cli_runs_one_local_day(two_days):
    """`airflow dags test feature_pipeline 2013-01-03` lands and publishes exactly that day."""
    settings = get_settings()
    proc = run(
        [sys.executable, "-m", "airflow", "dags", "test", "feature_pipeline", "2013-01-03"],
        env={"FTI_SOURCE_DIR": os.environ["FTI_SOURCE_DIR"]},
        check=False,
    )
    assert "state=success" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    days = sorted(p.name for p in (settings.raw_dir / "flights").iterdir())
    assert days == ["date=2013-01-01", "date=2013-01-02", "date=2013-01-03"]
    labels = pd.read_parquet(settings.offline_dir / "flight_labels" / "date=2013-01-03")
    assert labels["flight_id"].str.startswith("20130103-").all()


def _shift_hours(text: pd.Series, hours: int) -> pd.Series:
    shifted = pd.to_datetime(text, utc=True) + pd.Timedelta(hours=hours)
    return shifted.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _corrupt(kind: str, flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame):
    """Realistic upstream breakage of the real 2013-01-03 (flights, weather, planes)."""
    f, w, p = flights.copy(), weather.copy(), planes.copy()
    day3 = f.day == 3
    wday3 = w.day == 3
    idx = f[day3].index[:3]
    departed = day3 & f.dep_time.notna()
    if kind == "missing column":
        f = f.drop(columns=["distance"])
    elif kind == "wrong type":
        f["distance"] = f["distance"].astype(str) + " miles"
    elif kind == "negative distance":
        f.loc[idx, "distance"] = -100
    elif kind == "departure hour 27":
        f.loc[idx, "hour"] = 27
        f.loc[idx, "sched_dep_time"] = 2705
    elif kind == "temperature 500 F":
        w.loc[w[w.day == 3].index[:2], "temp"] = 500.0
    elif kind == "duplicated flight keys":
        f = pd.concat([f, f[day3].head(5)], ignore_index=True)
    elif kind == "no rows":
        f = f[~day3]
    # breakage real upstream systems deliver, none of it a schema or range error (issue 13)
    elif kind == "partial delivery":
        f = f[~day3 | (f.sched_dep_time < 1200)]
    elif kind == "distance in km":
        f.loc[day3, "distance"] = (f.loc[day3, "distance"] * 1.609).round()
    elif kind == "temperature in Celsius":
        w.loc[wday3, "temp"] = ((w.loc[wday3, "temp"] - 32) * 5 / 9).round(2)
    elif kind == "delay filled with 0":
        f.loc[departed, "dep_delay"] = 0.0
    elif kind == "station missing":
        w = w[~(wday3 & (w.origin == "JFK"))]
    elif kind == "airport missing":
        f = f[~(day3 & (f.origin == "LGA"))]
    elif kind == "carrier recoded":
        f.loc[day3 & (f.carrier == "UA"), "carrier"] = "U2"
    elif kind == "re-delivered under new keys":
        again = f[departed].head(40).copy()
        again["flight"] = again["flight"] + 5000
        f = pd.concat([f, again], ignore_index=True)
    elif kind == "shrunken planes table":
        p = p.sample(frac=0.4, random_state=7)
    elif kind == "time_hour an hour off":
        w.loc[wday3, "time_hour"] = _shift_hours(w.loc[wday3, "time_hour"], 1)
    elif kind == "departures an hour late":
        late = departed & (f.dep_time < 2300)
        f.loc[late, "dep_time"] = f.loc[late, "dep_time"] + 100
    elif kind == "cancelled flights given departure times":
        cancelled = day3 & f.dep_time.isna()
        f.loc[cancelled, "dep_time"] = f.loc[cancelled, "sched_dep_time"]
    elif kind == "delay all null":
        f.loc[day3, "dep_delay"] = float("nan")
    return f, w, p


#: each corruption and what must name it in the log (the check, or the column it found)
BAD = {
    "missing column": "distance",
    "wrong type": "'distance' arrived as string, which cannot be cast to a number",
    "negative distance": "distance",
    "departure hour 27": "hour",
    "temperature 500 F": "temp",
    "duplicated flight keys": "expect_compound_columns_to_be_unique",
    "no rows": "expect_table_row_count_to_be_between",
    "partial delivery": "raw.flights.every_hour_delivered",
    "distance in km": "raw.flights.distance_is_great_circle",
    "temperature in Celsius": "raw.weather.dew_point_not_above_temperature",
    "delay filled with 0": "raw.flights.departure_is_schedule_plus_delay",
    "station missing": "raw.weather.every_station_delivered",
    "airport missing": "raw.flights.every_origin_delivered",
    "carrier recoded": "raw.flights.carrier_in_airlines",
    "re-delivered under new keys": "raw.flights.plane_departs_once_a_minute",
    "shrunken planes table": "raw.flights.tailnum_in_planes",
    "time_hour an hour off": "raw.weather.time_hour_is_the_local_hour",
    "departures an hour late": "raw.flights.departure_is_schedule_plus_delay",
    "cancelled flights given departure times": "raw.flights.departed_flight_has_a_delay",
    "delay all null": "column 'dep_delay' arrived all null",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_raw_day_stops_at_raw_boundary(
    kind, two_days, good_source, real_tables, tmp_path, capfd
):
    from fti.apps.demo import load_dag, run_days

    settings = get_settings()
    published = [p for files in offline_files(settings).values() for p in files]
    offline_before = digest(published)
    online_before = digest([settings.sqlite_online_path])
    flights, weather, planes = real_tables
    use_source(write_source(tmp_path / "bad", *_corrupt(kind, flights, weather, planes)))
    try:
        capfd.readouterr()
        states = run_days(date(2013, 1, 3), date(2013, 1, 3), get_settings())
        out = capfd.readouterr()
    finally:
        use_source(good_source)
    assert states == [(date(2013, 1, 3), "failed")]
    log = out.out + out.err
    # the table and the day are named, with the check and what it found
    assert BAD[kind] in log and "raw/" in log and "2013-01-03" in log, log[-3000:]
    # nothing downstream of the raw boundary ran
    dag = load_dag(settings, "feature_pipeline")
    assert dag.task_dict["land"] is not None
    from airflow.models.dagrun import DagRun

    runs = DagRun.find(dag_id="feature_pipeline")
    last = max(runs, key=lambda r: r.start_date)
    tis = {ti.task_id: ti.state for ti in last.get_task_instances()}
    assert tis["land"] == "failed"
    assert all(tis[t] == "upstream_failed" for t in ("compute_features", "publish"))
    assert digest(published) == offline_before
    assert digest([settings.sqlite_online_path]) == online_before
    # the day is quarantined: its raw partitions left raw/ for quarantine/, with its reports
    held = quarantine.open_days(settings)
    assert list(held) == [date(2013, 1, 3)] and BAD[kind] in held[date(2013, 1, 3)].reason
    for table in DAILY_TABLES:
        assert not day_partition(settings.raw_dir, table, date(2013, 1, 3)).exists()
        assert list(held[date(2013, 1, 3)].folders[0].parent.glob("*/part-0.parquet"))
    # the next case lands the day afresh (what a re-delivery does; tests/test_quarantine.py)
    shutil.rmtree(quarantine.root(settings))
