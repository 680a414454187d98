"""Reference tables, domain rules, severity and readability at the raw boundary (issue 13).

Real days of 2013 pass every rule (the blizzard of 8-9 February and a summer storm day among
them); a rule broken on a real day is named with the rows that break it; a check configured to
warn lets the day through and is reported; a partition the job could not read is stopped with a
message naming table, column, day and what was found.
"""

from __future__ import annotations

import json
import statistics
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.jobs import pipeline
from feature_repo.suites import raw
from fti.ground import files, source
from fti.ground.settings import Settings
from fti.ground.validation import ValidationFailed, validate_frame, with_severity

TZ = ZoneInfo("America/New_York")


def _interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=TZ)
    return start, start + timedelta(days=1)


def _settings(tmp_path, **fields) -> Settings:
    # explicit settings, never the environment: the process-wide settings (and the Feast
    # declarations imported with them) stay the test session's
    return Settings(home=tmp_path / "home", source_dir=None, **fields)


@pytest.fixture
def home(tmp_path):
    """A state directory of its own, with the real source."""
    return _settings(tmp_path)


@pytest.mark.parametrize(
    "day",
    [date(2013, 2, 8), date(2013, 2, 9), date(2013, 3, 10), date(2013, 7, 23), date(2013, 11, 3)],
    ids=["blizzard", "blizzard-after", "dst-start", "summer-storm", "dst-end"],
)
def test_real_extreme_days_pass_every_rule(home, day):
    start, end = _interval(day)
    pipeline.land_interval(start, end, home)
    result = pipeline.validate_raw(start, end, "t", home)
    names = {e.meta["check"] for e in raw.flight_rules(_refs(home)) + raw.weather_rules()}
    # the rules ran (each a check of its own) and none halted
    assert len(names) >= 14
    assert result["expectations"] > 100


def _refs(settings, planes=None):
    return raw.references(
        source.reference_table(settings, "airlines.csv"),
        source.reference_table(settings, "airports.csv"),
        planes,
    )


def _day_frames(settings, day):
    start, end = _interval(day)
    pipeline.land_interval(start, end, settings)
    return {
        t: pq.read_table(files.day_partition(settings.raw_dir, t, day)).to_pandas()
        for t in source.DAILY_TABLES
    }


def test_a_broken_rule_names_the_rows_that_break_it(home):
    day = date(2013, 1, 5)
    frames = _day_frames(home, day)
    f = frames["flights"].copy()
    f.loc[f.dep_time.notna(), "dep_delay"] = 0.0  # a default-filled column
    refs = _refs(home, frames["planes"])
    with pytest.raises(ValidationFailed) as err:
        validate_frame(
            raw.derive("flights", f, refs),
            boundary=f"raw/flights {day}",
            expectations=raw.checks("flights", day, "America/New_York", refs),
            report_dir=None,
        )
    text = str(err.value)
    assert "raw.flights.departure_is_schedule_plus_delay" in text
    assert "a departure is its schedule plus its delay" in text
    # the examples are the rows: carrier and flight, schedule, delay, departure
    bad = f[f.dep_time.notna() & (f.dep_time != f.sched_dep_time)].iloc[0]
    assert f"{bad.carrier}{bad.flight} scheduled {bad.sched_dep_time}" in text


def test_severity_is_configuration(home, tmp_path):
    day = date(2013, 1, 5)
    frames = _day_frames(home, day)
    w = frames["weather"].copy()
    w["humid"] = 50.0  # humidity no longer follows temperature and dew point
    refs = _refs(home, frames["planes"])
    derived = raw.derive("weather", w, refs)
    checks = raw.checks("weather", day, "America/New_York", refs)

    # the suite's default: this rule warns; the day passes, the warning is reported
    report = validate_frame(derived, boundary="raw/weather", expectations=checks, report_dir=None)
    assert report.success
    assert [f.check for f in report.warned] == [
        "raw.weather.humidity_follows_temperature_and_dew_point"
    ]
    assert "warned" in report.describe() and "[warn]" in report.describe()

    # configured to halt, the same day fails naming it
    halting = with_severity(checks, halt=["raw.weather.humidity_*"])
    with pytest.raises(ValidationFailed, match=r"\[halt\] raw.weather.humidity_follows"):
        validate_frame(derived, boundary="raw/weather", expectations=halting, report_dir=None)

    # and a halting check configured to warn lets a broken day through, reported
    w2 = frames["weather"].copy()
    w2.loc[w2.origin == "JFK", "dewp"] = w2.loc[w2.origin == "JFK", "temp"] + 5
    warned = with_severity(checks, warn=["raw.weather.dew_point_*"])
    report = validate_frame(
        raw.derive("weather", w2, refs),
        boundary="raw/weather",
        expectations=warned,
        report_dir=None,
    )
    assert report.success and "raw.weather.dew_point_not_above_temperature" in {
        f.check for f in report.warned
    }

    # through the pipeline: FTI_VALIDATION_WARN, and the result lists the warning
    settings = _settings(tmp_path, validation_warn="raw.weather.dew_point_*")
    path = files.day_partition(settings.raw_dir, "weather", day)
    files.write_table(pa.Table.from_pandas(w2, preserve_index=False), path)
    start, end = _interval(day)
    result = pipeline.validate_raw(start, end, "t", settings)
    assert any("dew_point_not_above_temperature" in line for line in result["warned"])
    with pytest.raises(ValidationFailed, match="dew_point_not_above_temperature"):
        pipeline.validate_raw(start, end, "t", home)


def test_a_truncated_file_is_named_before_anything_reads_it(home):
    day = date(2013, 1, 5)
    _day_frames(home, day)
    path = files.day_partition(home.raw_dir, "flights", day)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    start, end = _interval(day)
    with pytest.raises(raw.UnreadableInput) as err:
        pipeline.validate_raw(start, end, "t", home)
    text = str(err.value)
    assert "raw/flights 2013-01-05" in text and str(path) in text and "truncated" in text


@pytest.mark.parametrize(
    ("table", "column", "array", "found"),
    [
        ("weather", "precip", lambda n: pa.nulls(n), "arrived without a type"),
        ("flights", "dep_delay", lambda n: pa.nulls(n, pa.float64()), "arrived all null"),
        ("flights", "distance", lambda n: pa.array(["1,400"] * n), "cannot be cast to a number"),
        ("flights", "time_hour", lambda n: pa.array(["yesterday"] * n), "expected a UTC timestamp"),
    ],
)
def test_a_column_the_job_cannot_read_is_named(home, table, column, array, found):
    day = date(2013, 1, 5)
    _day_frames(home, day)
    path = files.day_partition(home.raw_dir, table, day)
    t = pq.read_table(path)
    i = t.schema.get_field_index(column)
    pq.write_table(t.set_column(i, column, array(len(t))), path)
    start, end = _interval(day)
    with pytest.raises(raw.UnreadableInput) as err:
        pipeline.validate_raw(start, end, "t", home)
    text = str(err.value)
    assert f"raw/{table} 2013-01-05" in text and f"column {column!r}" in text and found in text


# ------------------------------------------------------------------ inside the Spark job


def _landed(settings, first: date, last: date):
    start, _ = _interval(first)
    _, end = _interval(last)
    pipeline.land_interval(start, end, settings)
    return start, end


def test_an_empty_day_after_the_jobs_filters_is_named(home, spark):
    from feature_repo.jobs import features

    start, end = _landed(home, date(2013, 1, 1), date(2013, 1, 2))
    # the day's flights arrive stamped with another day (nothing validated them: the job
    # run by hand, as `python -m feature_repo.jobs.features` does)
    path = files.day_partition(home.raw_dir, "flights", date(2013, 1, 2))
    t = pq.read_table(path)
    i = t.schema.get_field_index("day")
    pq.write_table(t.set_column(i, "day", pa.array([9] * len(t), t["day"].type)), path)
    day2 = _interval(date(2013, 1, 2))
    with pytest.raises(features.FeatureJobFailed) as err:
        features.run(*day2, home, spark=spark)
    text = str(err.value)
    assert "has no rows for 2013-01-02 after the job's filters" in text and "feature view" in text


def test_a_spark_error_names_the_view_and_the_days(home, spark):
    from feature_repo.jobs import features

    _landed(home, date(2013, 1, 1), date(2013, 1, 2))
    # one day of the history the job reads has a column of another type than the others
    path = files.day_partition(home.raw_dir, "flights", date(2013, 1, 1))
    t = pq.read_table(path)
    i = t.schema.get_field_index("dep_delay")
    pq.write_table(t.set_column(i, "dep_delay", pc_text(t["dep_delay"])), path)
    with pytest.raises(features.FeatureJobFailed) as err:
        features.run(*_interval(date(2013, 1, 2)), home, spark=spark)
    text = str(err.value)
    assert "the Spark job of feature view" in text and "2013-01-02..2013-01-02" in text
    assert "Py4J" not in text.split(":", 1)[0]


def pc_text(col):
    import pyarrow.compute as pc

    return pc.cast(col, pa.string())


# ------------------------------------------------------------------ each day against its history


def _validated_days(settings, first: date, last: date) -> list[dict]:
    start, end = _landed(settings, first, last)
    out, day = [], first
    while day <= last:
        out.append(pipeline.validate_raw(*_interval(day), "t", settings))
        day += timedelta(days=1)
    return out


def test_days_without_enough_history_say_so_then_get_bands(home):
    from fti.ground import history

    results = _validated_days(home, date(2013, 1, 1), date(2013, 1, 9))
    # the first seven days: static checks only, and said
    assert "0 days of history (fewer than 7): static checks only" in results[0]["history"][0]
    assert all(r["history"] for r in results[:7])
    # from the eighth on, every table of the day is compared with its window
    assert results[7]["history"] == [] and results[8]["history"] == []
    for table in source.DAILY_TABLES:
        assert history.profile_path(home.raw_dir, table, date(2013, 1, 9)).is_file()
    today = json.loads(history.profile_path(home.raw_dir, "flights", date(2013, 1, 9)).read_text())
    window = history.reference(home.raw_dir, "flights", date(2013, 1, 9), 28)
    assert [d for d, _ in window] == [date(2013, 1, k) for k in range(1, 9)]
    rows = history.comparisons("flights", date(2013, 1, 9), today, window)
    by_metric = {r["metric"]: r for r in rows}
    # a band is the window's own: its median, widened by its spread (volumes: the same weekday
    # when the window holds three; it holds one Wednesday here, so all eight days)
    past = [p["rows"] for _, p in window]
    assert by_metric["rows"]["median"] == statistics.median(past)
    assert by_metric["rows"]["low"] < today["rows"] < by_metric["rows"]["high"]
    assert {"carrier=UA rows", "origin=JFK rows", "null share of dep_time"} <= set(by_metric)


def test_a_carrier_going_dark_halts_and_a_thin_day_warns(home):
    _validated_days(home, date(2013, 1, 1), date(2013, 1, 8))
    day = date(2013, 1, 9)
    start, end = _landed(home, day, day)
    path = files.day_partition(home.raw_dir, "flights", day)
    f = pq.read_table(path).to_pandas()

    # one carrier's slice goes dark upstream: halts, naming it, with its usual volume
    files.write_table(pa.Table.from_pandas(f[f.carrier != "EV"], preserve_index=False), path)
    with pytest.raises(ValidationFailed) as err:
        pipeline.validate_raw(start, end, "t", home)
    text = str(err.value)
    assert "raw.flights.history.slice_went_dark" in text and "carrier EV went dark" in text
    assert "median" in text and "over 8 days 2013-01-01..2013-01-08" in text
    # a halted day does not become history
    from fti.ground import history

    assert not history.profile_path(home.raw_dir, "flights", day).exists()

    # and is quarantined: its partitions left raw/ until a corrected delivery lands again
    from feature_repo.jobs import quarantine

    assert list(quarantine.open_days(home)) == [day] and not path.exists()
    _landed(home, day, day)

    # a thin day (every carrier and hour still there, a third of the volume): warns, proceeds
    groups = f.groupby(["carrier", "origin", "hour"])
    thin = f[groups.cumcount() < (groups["flight"].transform("size") // 3).clip(lower=1)]
    files.write_table(pa.Table.from_pandas(thin, preserve_index=False), path)
    result = pipeline.validate_raw(start, end, "t", home)
    warned = "\n".join(result["warned"])
    assert "raw.flights.history.within_band" in warned and "rows = " in warned
    assert history.profile_path(home.raw_dir, "flights", day).exists()
    assert quarantine.open_days(home) == {}  # the passing delivery released the day


def test_volumes_are_compared_with_the_same_weekday():
    from fti.ground import history

    def prof(rows):
        return {"rows": rows, "slices": {}, "null_share": {}, "mean": {}}

    # four weeks: weekdays ~1000 flights, Saturdays ~700
    first = date(2013, 3, 4)  # a Monday
    window = [
        (
            first + timedelta(days=i),
            prof(700 + i if (first + timedelta(days=i)).weekday() == 5 else 1000 + i),
        )
        for i in range(28)
    ]
    saturday = first + timedelta(days=33)
    assert saturday.weekday() == 5
    rows = history.comparisons("flights", saturday, prof(705), window)
    (volume,) = [r for r in rows if r["metric"] == "rows"]
    assert volume["out"] is None and volume["median"] < 800  # the Saturdays' median
    # the same volume on a Thursday is a thin day
    thursday = first + timedelta(days=31)
    rows = history.comparisons("flights", thursday, prof(705), window)
    (volume,) = [r for r in rows if r["metric"] == "rows"]
    assert volume["out"] and "4 Thursdays" in volume["out"]


def test_severity_patterns_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FTI_VALIDATION_WARN", "raw.weather.*, raw.flights.tailnum_in_planes")
    monkeypatch.setenv("FTI_VALIDATION_HALT", "raw.weather.humidity_*")
    assert Settings().validation_patterns == (
        ("raw.weather.*", "raw.flights.tailnum_in_planes"),
        ("raw.weather.humidity_*",),
    )


# ------------------------------------------------------------------ alerting


@pytest.fixture
def webhook():
    """A local HTTP server that records the JSON posted to it (the first answer a 500 when
    asked, to see the retry)."""
    import http.server
    import threading

    got: list[dict] = []
    state = {"fail_first": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.pop("fail_first", False):
                self.send_response(500)
                self.end_headers()
                return
            got.append({"path": self.path, "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-s3cret"
    yield url, got, state
    server.shutdown()


def test_a_halted_and_a_warned_day_call_the_webhook_and_never_log_its_url(
    tmp_path, webhook, caplog
):
    url, got, state = webhook
    settings = _settings(tmp_path, alert_webhook_url=url)
    day = date(2013, 1, 5)
    frames = _day_frames(settings, day)
    start, end = _interval(day)
    path = files.day_partition(settings.raw_dir, "weather", day)
    w = frames["weather"].copy()
    w.loc[w.origin == "JFK", "dewp"] = w.loc[w.origin == "JFK", "temp"] + 5
    files.write_table(pa.Table.from_pandas(w, preserve_index=False), path)

    state["fail_first"] = True  # the webhook's first answer is a 500: retried
    with caplog.at_level("WARNING"), pytest.raises(ValidationFailed):
        pipeline.validate_raw(start, end, "t", settings)
    (halted,) = got
    assert halted["path"] == "/hooks/T0KEN-s3cret"
    assert halted["json"]["event"] == "halted"
    assert "raw/weather 2013-01-05" in halted["json"]["summary"]
    assert any("dew_point_not_above_temperature" in h for h in halted["json"]["details"]["halted"])

    # configured to warn, the same delivery (landed again: the halt quarantined it) proceeds
    # and the webhook hears a warning
    _day_frames(settings, day)
    files.write_table(pa.Table.from_pandas(w, preserve_index=False), path)
    warn = _settings(tmp_path, alert_webhook_url=url, validation_warn="raw.weather.dew_point_*")
    with caplog.at_level("WARNING"):
        pipeline.validate_raw(start, end, "t", warn)
    assert [g["json"]["event"] for g in got] == ["halted", "warned"]
    assert "fti alert (warned)" in caplog.text and "fti alert (halted)" in caplog.text
    assert "T0KEN-s3cret" not in caplog.text


def test_a_webhook_that_does_not_answer_never_fails_the_task(tmp_path, caplog):
    from fti.ground.notify import notify

    with socket_port() as port:
        settings = _settings(tmp_path, alert_webhook_url=f"http://127.0.0.1:{port}/x-s3cret")
    with caplog.at_level("WARNING"):
        assert notify("warned", "raw: 1 warning", {}, settings) is False
    assert "the webhook did not take it (ConnectError)" in caplog.text
    assert "s3cret" not in caplog.text


def socket_port():
    """A port nothing listens on (bound, then released)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def free():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield port

    return free()
