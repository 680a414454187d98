"""Quarantine and re-delivery (issue 13, point 6): a day that halts leaves ``raw/`` for
``quarantine/<table>/date=<day>/<run>/`` with its reports, the days after it wait, and once
the corrected day is re-delivered the stores hold exactly what a clean run leaves."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import ROOT, run, write_source

from feature_repo.jobs import pipeline, quarantine
from fti.ground import files
from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings
from fti.ground.source import DAILY_TABLES
from fti.ground.validation import BadInput, ValidationFailed

ZONE = ZoneInfo("America/New_York")
D3, D4 = date(2013, 1, 3), date(2013, 1, 4)


def interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=ZONE)
    return start, start + timedelta(days=1)


def recoded(real_tables) -> tuple:
    """2013-01-03 with United's flights under a code the airlines table does not know."""
    flights, weather, planes = (t.copy() for t in real_tables)
    flights.loc[(flights.day == 3) & (flights.carrier == "UA"), "carrier"] = "U2"
    return flights, weather, planes


@pytest.fixture(scope="module")
def bad_source(real_tables, tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("recoded"), *recoded(real_tables))


def home(tmp_path: Path, src: Path) -> Settings:
    return Settings(home=tmp_path / "home", source_dir=src)


def test_a_halted_day_is_quarantined_and_the_next_day_waits(tmp_path, good_source, bad_source):
    bad = home(tmp_path, bad_source)
    pipeline.land_interval(*interval(D3), settings=bad)
    landed = {t: files.day_partition(bad.raw_dir, t, D3).read_bytes() for t in DAILY_TABLES}
    with pytest.raises(ValidationFailed, match="raw.flights.carrier_in_airlines"):
        pipeline.validate_raw(*interval(D3), run_id="scheduled__2013-01-03", settings=bad)
    # the day's raw partitions left raw/ (no later day reads them) for its quarantine folder
    for table, data in landed.items():
        assert not files.day_partition(bad.raw_dir, table, D3).exists(), table
        folder = quarantine.root(bad) / table / "date=2013-01-03" / "scheduled__2013-01-03"
        assert (folder / "part-0.parquet").read_bytes() == data, table
        record = json.loads((folder / quarantine.RECORD).read_text())
        assert record["day"] == "2013-01-03" and record["boundary"] == "raw"
        assert any("raw.flights.carrier_in_airlines" in f for f in record["failures"])
        assert record["redeliver"] == "python -m fti redeliver --day 2013-01-03"
        # with the report of the check that halted
        assert "reports/raw-flights" in record["reports"]
        assert (folder / "reports" / "raw-flights" / "report.html").is_file()
    assert list(quarantine.open_days(bad)) == [D3]
    # the next day waits, naming the day, the check and the command; nothing of it is landed
    with pytest.raises(quarantine.DayWaits) as waits:
        pipeline.land_interval(*interval(D4), settings=bad)
    message = str(waits.value)
    assert "feature day 2013-01-04 waits: 2013-01-03" in message
    assert (
        "carrier_in_airlines" in message and "python -m fti redeliver --day 2013-01-03" in message
    )
    assert not files.day_partition(bad.raw_dir, "flights", D4).exists()
    # a corrected delivery of the day passes and releases it; the next day then lands
    fixed = bad.model_copy(update={"source_dir": good_source})
    pipeline.land_interval(*interval(D3), settings=fixed)
    pipeline.validate_raw(*interval(D3), run_id="redeliver", settings=fixed)
    assert quarantine.open_days(fixed) == {}
    (entry,) = quarantine.entries(fixed)
    assert entry.released and entry.run_id == "scheduled__2013-01-03"
    assert json.loads((entry.folders[0] / quarantine.RELEASED).read_text())["by_run"] == "redeliver"
    pipeline.land_interval(*interval(D4), settings=fixed)
    assert files.day_partition(fixed.raw_dir, "flights", D4).is_file()


def test_an_unreadable_partition_is_quarantined(tmp_path, good_source):
    settings = home(tmp_path, good_source)
    pipeline.land_interval(*interval(D3), settings=settings)
    part = files.day_partition(settings.raw_dir, "weather", D3)
    part.write_bytes(part.read_bytes()[:200])  # a truncated delivery
    with pytest.raises(BadInput, match="weather"):
        pipeline.validate_raw(*interval(D3), run_id="r1", settings=settings)
    (entry,) = quarantine.open_days(settings).values()
    assert entry.day == D3 and "weather" in entry.reason
    assert not part.exists()
    moved = quarantine.root(settings) / "weather" / "date=2013-01-03" / "r1" / "part-0.parquet"
    assert moved.stat().st_size == 200


def test_the_land_task_is_rescheduled_while_an_earlier_day_is_quarantined(two_days):
    from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

    from fti.apps.demo import load_dag

    settings = get_settings()
    land = load_dag(settings, "feature_pipeline").task_dict["land"].python_callable
    quarantine.quarantine(settings, date(2012, 12, 31), "test-run", "raw", ["a check"], [])

    class Run:
        def __init__(self, conf):
            self.conf = conf

    start, end = interval(date(2013, 1, 10))
    try:
        t0 = datetime.now(ZONE)
        with pytest.raises(AirflowRescheduleException) as resched:
            land(data_interval_start=start, data_interval_end=end, run_id="r", dag_run=Run({}))
        wait = resched.value.reschedule_date - t0
        assert timedelta(seconds=settings.quarantine_poll_s - 5) < wait
        assert wait < timedelta(seconds=settings.quarantine_poll_s + 30)
        # the in-process runner cannot wait for itself: the day fails, saying why
        with pytest.raises(AirflowFailException, match="waits: 2012-12-31"):
            land(
                data_interval_start=start,
                data_interval_end=end,
                run_id="r",
                dag_run=Run({"wait": False}),
            )
        assert not files.day_partition(settings.raw_dir, "flights", date(2013, 1, 10)).exists()
    finally:
        shutil.rmtree(quarantine.root(settings))


# --- a re-delivered day against a clean run, byte for byte ------------------------------------


def _child(*args: str) -> dict:
    proc = run(
        [sys.executable, str(ROOT / "tests" / "flows" / "redelivery.py"), *args], timeout=900
    )
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("RESULT "))
    return {"result": json.loads(line[len("RESULT ") :]), "log": proc.stdout + proc.stderr}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _parquet_identity(path: Path) -> tuple[bytes, str]:
    """A Spark-written parquet file as two parts that must be equal: every byte before the
    footer (the data pages), and the footer's metadata with each column's encodings sorted.

    parquet-mr lists a column chunk's encodings from a Java ``HashSet`` of enum values, whose
    order follows identity hash codes and so changes from one JVM to the next: two clean runs
    of the same day differ in exactly those footer bytes (seen here), never in the data.
    """
    import pyarrow.parquet as pq

    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    meta = pq.ParquetFile(path).metadata.to_dict()
    for group in meta["row_groups"]:
        for col in group["columns"]:
            col["encodings"] = sorted(col["encodings"])
    return data[: len(data) - 8 - footer], json.dumps(meta, sort_keys=True, default=str)


def _online_rows(settings: Settings) -> dict[str, list]:
    """Every online row but the wall-clock time it was written (``created_ts``)."""
    out = {}
    with contextlib.closing(sqlite3.connect(settings.sqlite_online_path)) as con:
        for view in contract(settings).online_views:
            out[view] = con.execute(
                "SELECT entity_key, feature_name, value, event_ts FROM "
                f'"{settings.feast_project}_{view}" ORDER BY entity_key, feature_name'
            ).fetchall()
    return out


@pytest.mark.slow
def test_a_redelivered_day_leaves_the_stores_a_clean_run_leaves(tmp_path, good_source, bad_source):
    last = "2013-01-05"
    clean = _child("clean", str(tmp_path / "clean"), str(good_source), last)
    assert clean["result"]["days"] == [[f"2013-01-0{i}", "success"] for i in range(1, 6)]
    got = _child("redelivered", str(tmp_path / "ours"), str(good_source), str(bad_source), last)
    result, log = got["result"], got["log"]
    assert result["halted"] == [["2013-01-03", "failed"]]
    # the next day waited, saying for which day and how to re-deliver it
    assert result["waits"] == [["2013-01-04", "failed"]]
    assert "feature day 2013-01-04 waits: 2013-01-03" in log
    assert result["redeliver_before_fix"] == 2  # 2013-01-04 is not quarantined
    assert result["redeliver"] == 0
    assert result["after"] == [["2013-01-04", "success"], ["2013-01-05", "success"]]
    assert result["redeliver_again"] == 2  # released: nothing left to re-deliver
    a = Settings(home=tmp_path / "clean", source_dir=good_source)
    b = Settings(home=tmp_path / "ours", source_dir=good_source)
    (entry,) = quarantine.entries(b)
    assert entry.day == D3 and entry.released and "carrier_in_airlines" in entry.reason
    # raw partitions and the history profiles: the same bytes
    expected, actual = _digests(a.data_dir / "raw"), _digests(b.data_dir / "raw")
    assert expected and actual == expected
    # the offline store: the same files, the same data pages byte for byte, the same footers
    theirs, ours = _digests(a.offline_dir), _digests(b.offline_dir)
    assert sorted(ours) == sorted(theirs) and len(theirs) == 5 * len(contract(a).view_names)
    for name in theirs:
        assert _parquet_identity(b.offline_dir / name) == _parquet_identity(a.offline_dir / name)
    assert _online_rows(b) == _online_rows(a)
