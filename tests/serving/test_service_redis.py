"""The service on a Redis online store that goes away: /readyz and /predict answer 503 with a
clear message at once, and the service recovers by itself when Redis is back.

The test runs its own throwaway ``redis-server`` on a free port (never the shared one), with
the session's two days materialized into it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from helpers import DAYS, free_port, http, post_json

from fti.ground import featurestore
from fti.ground.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

#: a client timeout that only catches a hang; the service answers well within it
HANG = 5


class ThrowawayRedis:
    """``redis-server`` on a port of its own, without persistence except on a stop with save."""

    def __init__(self, folder):
        self.port, self.folder, self.proc = free_port(), folder, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not self._pings():
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        """SHUTDOWN SAVE: the data comes back with the next start, as a restarted Redis's would."""
        import redis

        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            redis.Redis(port=self.port, socket_timeout=5).shutdown(save=True)
        except redis.ConnectionError:  # the connection closes as it shuts down
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _pings(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.ConnectionError:
            return False


@pytest.fixture
def redis_server(tmp_path):
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_service(two_days, served_model, start_service, redis_server):
    assert all(state == "success" for _, state in two_days)
    conn = f"127.0.0.1:{redis_server.port}"
    settings = Settings(online_store="redis", redis_connection_string=conn)
    zone = ZoneInfo(settings.timezone)
    start = datetime(DAYS[0].year, DAYS[0].month, DAYS[0].day, tzinfo=zone)
    end = start + timedelta(days=len(DAYS))
    featurestore.materialize(start, end, settings)
    assert featurestore.online_entity_counts(settings)["origin_weather_hourly"] == 3
    svc = start_service(
        {
            "FTI_SERVING_MODEL_DIR": str(served_model),
            "FTI_ONLINE_STORE": "redis",
            "FTI_REDIS_CONNECTION_STRING": conn,
        }
    )
    svc.wait_ready()
    yield svc
    svc.stop()


FLIGHTS = [
    {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "tailnum": "N14228",
        "sched_dep_ts": "2013-01-03T05:15:00",
    },
    {
        "carrier": "AA",
        "flight": 1141,
        "origin": "JFK",
        "dest": "MIA",
        "tailnum": "N619AA",
        "sched_dep_ts": "2013-01-03T05:40:00",
    },
]


def test_redis_down_is_a_503_at_once_and_the_service_recovers_by_itself(
    redis_service, redis_server
):
    url = redis_service.url
    status, before = post_json(f"{url}/predict", FLIGHTS, timeout=HANG)
    assert status == 200, before
    assert all(p["oldest_feature_age_s"] is not None for p in before)  # features came from Redis

    # when Redis stops
    redis_server.stop()
    # then readiness and predictions say so plainly, without hanging, and the process lives on
    status, text = http("GET", f"{url}/readyz", timeout=HANG)
    assert status == 503, text
    assert b"Redis online store unreachable" in text and str(redis_server.port).encode() in text
    status, body = post_json(f"{url}/predict", FLIGHTS, timeout=HANG)
    assert status == 503, body
    assert (
        "online store (redis) unreadable" in body["error"] and "Connection refused" in body["error"]
    )
    assert http("GET", f"{url}/healthz", timeout=HANG)[0] == 200

    # when Redis is back (same data), the same process is ready again and answers as before
    redis_server.start()
    redis_service.wait_ready(timeout=30)
    status, after = post_json(f"{url}/predict", FLIGHTS, timeout=HANG)
    assert status == 200, after
    assert after == before
