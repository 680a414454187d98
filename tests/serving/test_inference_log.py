"""The inference log (issue 14, point 3): every online prediction in the offline store's
``inference_log`` table, written off the response path, and nothing answered lost when the
service is stopped under load and started again."""

from __future__ import annotations

import threading
import time

import httpx
import pandas as pd
import pytest
from helpers import next_day_flight

from fti.ground.settings import Settings
from serving import inference_log

TZ = "America/New_York"


def _load(url: str, flight: dict, answered: list, stop: threading.Event, clients: int = 4):
    def run():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{url}/predict", json=flight)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    answered.append(r.json()[0])

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_every_answer_is_logged_and_a_stop_under_load_loses_none(
    data_root, served_model, start_service, real_tables
):
    env = {
        "FTI_SERVING_MODEL_DIR": str(served_model),
        "FTI_DATA_ROOT": str(data_root),
        "FTI_INFERENCE_LOG_FLUSH_S": "0.5",
    }
    settings = Settings(data_root=data_root)
    flight = next_day_flight(real_tables, 3)
    answered: list = []
    for _ in range(2):  # stopped under load, then started again
        svc = start_service(env)
        svc.wait_ready()
        stop = threading.Event()
        threads = _load(svc.url, flight, answered, stop)
        time.sleep(3)
        # written while it serves, not only at the end
        assert len(inference_log.read(settings)) > 0
        svc.stop()  # SIGTERM while the clients keep calling
        stop.set()
        for t in threads:
            t.join(timeout=30)
    logged = inference_log.read(settings)
    # every answer is a row; a request answered as the stop cut its connection may be logged
    # without the client seeing it (at most one per client and stop)
    assert len(answered) <= len(logged) <= len(answered) + 2 * 4, (len(answered), len(logged))
    assert len(answered) > 100
    assert logged["request_id"].is_unique
    assert set(logged["model_version"]) == {"test-1"}
    assert logged["probability"].between(0, 1).all()
    assert (
        logged["flight_id"].nunique() == 1
        and logged["flight_id"].iloc[0] == answered[0]["flight_id"]
    )
    assert (logged["latency_ms"] > 0).all()
    # the features the model used, with their feature rows' timestamps
    assert {"carrier_flights_7d", "temp_f", "_feature_ts__carrier_delay_history"} <= set(logged)
    assert logged["challenger_version"].isna().all()
    # one day partition: the replay clock's day; readable as one partitioned table
    (day,) = {p.name for p in inference_log.log_dir(settings).iterdir()}
    table = pd.read_parquet(inference_log.log_dir(settings))
    assert len(table) == len(logged) and {str(d) for d in table["date"]} == {day[5:]}


def test_a_failing_store_keeps_the_rows_for_the_next_write_up_to_a_cap(tmp_path):
    """Writes that fail keep the rows (written once the store is back), and hold at most
    KEEP_WRITES writes' worth: a broken store cannot take the service's memory."""
    settings = Settings(
        home=tmp_path / "home",
        data_root=tmp_path / "data",
        inference_log_flush_s=3600,
        inference_log_max_rows=10,
    )
    log_dir = inference_log.log_dir(settings)
    log_dir.parent.mkdir(parents=True)
    log_dir.write_text("a file where the log's folder belongs")  # every write fails
    frame = pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime(["2013-01-03 05:00"] * 4, utc=True),
            "temp_f": [30.0, 31.0, 32.0, 33.0],
        }
    )
    log = inference_log.InferenceLog(settings)
    # this test calls flush itself: the writer thread, which a full buffer wakes, stopped first
    log._stop.set()
    log._wake.set()
    log._thread.join(timeout=10)
    try:
        for i in range(3):
            log.append(inference_log.rows(frame, [f"f{i}"] * 4, [0.1] * 4, "7", f"r{i}", 1.0, TZ))
        with pytest.raises(OSError):
            log.flush()
        assert log.dropped == 0 and log._n == 12  # kept for the next write
        for i in range(3, inference_log.KEEP_WRITES * 10 // 4 + 10):
            log.append(inference_log.rows(frame, [f"f{i}"] * 4, [0.1] * 4, "7", f"r{i}", 1.0, TZ))
        with pytest.raises(OSError):
            log.flush()
        assert log._n <= inference_log.KEEP_WRITES * 10 and log.dropped > 0
        kept = log._n
        log_dir.unlink()  # the store is back
        assert log.flush() == kept
        logged = inference_log.read(settings)
        assert len(logged) == kept
        # the newest rows are the ones kept
        assert logged["request_id"].iloc[-1] == f"r{inference_log.KEEP_WRITES * 10 // 4 + 9}"
        assert logged["answered_at"].dt.tz is not None
    finally:
        log.close()
