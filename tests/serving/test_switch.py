"""The model switched inside the running service (issue 14, point 1): under a steady client,
a switch, a refused switch and a switch back answer every request, each wholly by the model
live when it started; admin calls without the token change nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from helpers import http, next_day_flight

from fti.ground.settings import get_settings
from serving import inference_log, model

pytestmark = pytest.mark.slow

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def service(two_days, served_model, start_service):
    svc = start_service(
        {"FTI_SERVING_MODEL_DIR": str(served_model), "FTI_SERVING_ADMIN_TOKEN": TOKEN}
    )
    svc.wait_ready()
    return svc


@pytest.fixture(scope="module")
def flight(real_tables):
    return next_day_flight(real_tables)


def answers_flight_id(flight: dict) -> str:
    """The flight key the service answers for ``flight`` (its local date and time)."""
    day, clock = flight["sched_dep_ts"].split("T")
    return (
        f"{day.replace('-', '')}-{flight['carrier']}{flight['flight']}-{flight['origin']}-"
        f"{clock[:2]}{clock[3:5]}"
    )


class Load:
    """Clients calling /predict as fast as they are answered, each answer recorded as
    (sent, answered, status, model version)."""

    def __init__(self, url: str, flight: dict, clients: int = 4):
        self.url, self.flight, self.answers = url, flight, []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self):
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                sent = time.time()
                try:
                    r = client.post(f"{self.url}/predict", json=self.flight)
                    version = r.json()[0]["model_version"] if r.status_code == 200 else None
                    self.answers.append((sent, time.time(), r.status_code, version))
                except Exception as err:  # a dropped connection is a failed request too
                    self.answers.append((sent, time.time(), repr(err), None))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _admin(url: str, method: str = "GET", body: dict | None = None, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.request(method, f"{url}/admin/model", json=body, headers=headers, timeout=60)
    return r.status_code, r.json()


def test_switches_under_load_drop_no_request(
    service, served_model, second_model, nan_model, flight
):
    url = service.url
    assert _admin(url)[1]["live"] == "test-1"
    events = []
    with Load(url, flight) as load:
        time.sleep(2)
        for target, expect in (
            (second_model, 200),  # a rollout
            (nan_model, 422),  # a rollout of a model that fails its check
            (served_model, 200),  # a rollback: the same swap, to the previous version
        ):
            t0 = time.time()
            status, body = _admin(
                url, "POST", {"version": model.read_version(target), "model_dir": str(target)}
            )
            events.append((t0, time.time(), status, body))
            assert status == expect, body
            time.sleep(2)
    answers = load.answers
    failed = [a for a in answers if a[2] != 200]
    assert failed == [], failed[:5]
    span = answers[-1][1] - answers[0][0]
    assert len(answers) / span >= 50, f"{len(answers)} requests in {span:.1f} s"
    # the refused model was never served, and said why
    assert "not finite numbers in [0, 1]" in events[1][3]["error"]
    assert events[1][3]["live"]["live"] == "test-2"
    assert events[0][3] == {**events[0][3], "live": "test-2", "previous": "test-1"}
    assert events[2][3] == {**events[2][3], "live": "test-1", "previous": "test-2"}

    # every answer came from the model live over its whole request
    def live_over(sent: float, answered: float) -> set[str]:
        live, out = "test-1", set()
        for t0, t1, status, body in events:
            if status != 200:
                continue
            if answered < t0:
                break
            if sent > t1:
                live = body["live"]
            else:  # the request overlapped the switch: either model
                out |= {live, body["live"]}
                live = body["live"]
        return out or {live}

    wrong = [a for a in answers if a[3] not in live_over(a[0], a[1])]
    assert wrong == [], wrong[:5]
    assert {a[3] for a in answers} == {"test-1", "test-2"}

    # the inference log says the same: each row's version is the one live over its request
    # (answered_at - latency_ms .. answered_at), one row per answer of this test's window
    time.sleep(3)  # the log's next write (FTI_INFERENCE_LOG_FLUSH_S=2)
    logged = inference_log.read(get_settings())
    epoch = pd.Timestamp(0, tz="UTC")
    at = (logged["answered_at"] - epoch).dt.total_seconds()
    mine = logged[(at >= answers[0][0]) & (at <= answers[-1][1] + 0.5)]
    mine = mine[mine["flight_id"] == answers_flight_id(flight)]
    assert len(mine) == len(answers), (len(mine), len(answers))
    ends = (mine["answered_at"] - epoch).dt.total_seconds()
    starts = ends - mine["latency_ms"] / 1000
    wrong = [
        (s, e, v)
        for s, e, v in zip(starts, ends, mine["model_version"], strict=True)
        if v not in live_over(s, e)
    ]
    assert wrong == [], wrong[:5]


def test_admin_calls_without_the_token_change_nothing(service, second_model):
    before = _admin(service.url)[1]["live"]
    body = {"version": "test-2", "model_dir": str(second_model)}
    for token in (None, "wrong"):
        assert _admin(service.url, "POST", body, token=token)[0] == 401
        assert _admin(service.url, token=token)[0] == 401
    assert _admin(service.url)[1]["live"] == before
    status, _ = http("GET", f"{service.url}/readyz")
    assert status == 200


def test_the_compose_supervisor_switches_its_server_in_process(
    two_days, served_model, second_model, tmp_path
):
    """The serving container's supervisor follows the champion alias by switching the running
    server (same process), not by restarting it."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import psutil
    from helpers import ROOT, free_port, post_json

    from fti.ground.settings import Settings, get_settings, settings_env
    from training import gate, registry

    base = get_settings()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "feast").symlink_to(base.feast_dir, target_is_directory=True)
    s = Settings(
        home=tmp_path / "home",
        data_root=base.data_dir,
        source_dir=base.source_dir,
        serving_port=free_port(),
        serving_poll_s=1.0,
        serving_runtime="compose",
    )

    def promote(model_dir: Path) -> str:
        results = json.loads((model_dir / "metrics.json").read_text())
        _, version = registry.register(model_dir, results, {"code_version": "t"}, s)
        registry.record_decision(str(version), gate.Decision(True, ["t"]), {}, s)
        return str(version)

    v1 = promote(served_model)
    env = {**os.environ, **settings_env(s), "BENTOML_DO_NOT_TRACK": "True"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = open(tmp_path / "supervise.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.rollout", "supervise"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    flight = {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "tailnum": "N14228",
        "sched_dep_ts": "2013-01-03T05:15:00",
    }

    def served(timeout: float = 180) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, body = post_json(f"{s.service_url}/predict", flight, timeout=5)
                if status == 200:
                    return body[0]["model_version"]
            except OSError:
                pass
            time.sleep(0.5)
        return None

    def server_pids() -> set[int]:
        return {c.pid for c in psutil.Process(proc.pid).children()}

    try:
        assert served() == v1, (tmp_path / "supervise.log").read_text()[-3000:]
        before = server_pids()
        v2 = promote(second_model)
        deadline = time.monotonic() + 120
        while served() != v2 and time.monotonic() < deadline:
            time.sleep(1)
        assert served() == v2, (tmp_path / "supervise.log").read_text()[-3000:]
        assert server_pids() == before  # the same server process
        assert "now serving version" in (tmp_path / "supervise.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
