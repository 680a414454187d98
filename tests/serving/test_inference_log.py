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

from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings
from serving import inference_log

pytestmark = pytest.mark.slow


@pytest.fixture
def data_root(two_days, tmp_path):
    """A data root of its own whose offline store shows the session's views (so the log this
    test counts is its own)."""
    base = get_settings()
    offline = tmp_path / "data" / "offline"
    offline.mkdir(parents=True)
    for view in contract().view_names:
        (offline / view).symlink_to(base.offline_dir / view, target_is_directory=True)
    return tmp_path / "data"


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
