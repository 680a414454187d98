"""FTI_SERVING_RUNTIME=compose without Docker: deploy waits until the service answers with the
champion's version (the serving container follows the registry by itself), and says which
version it found when it gives up."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from fti.ground.settings import Settings


def _published_flight(settings: Settings) -> None:
    folder = settings.offline_dir / "flight_labels" / "date=2013-01-03"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "flight_id": ["20130103-UA1545-EWR-0515"],
            "carrier": ["UA"],
            "flight": [1545],
            "origin": ["EWR"],
            "dest": ["IAH"],
            "tailnum": ["N14228"],
            "sched_dep_ts": [pd.Timestamp("2013-01-03 10:15", tz="UTC")],
        }
    ).to_parquet(folder / "part-0.parquet")


class _Service:
    """A real HTTP server answering /predict with the model version it is told to serve."""

    def __init__(self, version: str):
        self.version, self.requests = version, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                if len(owner.requests) == owner.switch_after:
                    owner.version = owner.next_version
                data = json.dumps(
                    [{"delay_probability": 0.2, "model_version": owner.version}]
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.switch_after, self.next_version = None, None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service():
    s = _Service("1")
    yield s
    s.close()


def test_deploy_waits_until_the_service_serves_the_champion(tmp_path, service):
    from serving import rollout

    # given a service that moves from version 1 to version 2 after its third request
    settings = Settings(
        home=tmp_path,
        serving_runtime="compose",
        serving_url=service.url,
        serving_deploy_timeout_s=60,
    )
    _published_flight(settings)
    service.switch_after, service.next_version = 3, "2"
    # when deploy waits for version 2
    out = rollout.rollout(tmp_path / "unused", "2", settings)
    # then it returned once the service answered a real flight with it, and recorded it as live
    assert out == {"bento": None, "model_version": "2", "url": service.url}
    assert len(service.requests) >= 3
    assert service.requests[0]["tailnum"] == "N14228"
    assert service.requests[0]["sched_dep_ts"] == "2013-01-03T05:15:00"  # local time
    assert rollout.live(settings)["model_version"] == "2"
    # a second deploy of the same version adds no history entry
    rollout.await_served("2", settings)
    assert len(rollout.history(settings)) == 1


def test_deploy_gives_up_naming_the_version_served(tmp_path, service):
    from serving import rollout

    settings = Settings(
        home=tmp_path,
        serving_runtime="compose",
        serving_url=service.url,
        serving_deploy_timeout_s=3,
    )
    _published_flight(settings)
    with pytest.raises(rollout.RolloutFailed, match="serves model version 1"):
        rollout.await_served("2", settings)
    assert rollout.history(settings) == []


def test_rollback_outside_the_local_runtime_says_what_to_do(tmp_path):
    from serving import rollout

    with pytest.raises(rollout.RolloutFailed, match="champion' alias"):
        rollout.rollback(Settings(home=tmp_path, serving_runtime="compose"))
