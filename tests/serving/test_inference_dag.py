"""The inference_pipeline DAG end to end on the embedded runtime, through Airflow (`dag.test`, as
`make demo` runs it): the champion goes live, the next day is scored, the day is monitored."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from helpers import post_json

from fti.ground.settings import get_settings
from training import gate, registry

pytestmark = pytest.mark.slow


@pytest.fixture
def private_home(two_days, tmp_path, monkeypatch):
    """Own MLflow, predictions, reports and service; the session's feature stores (symlinked)."""
    base = get_settings()
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    (home / "feast").symlink_to(base.feast_dir, target_is_directory=True)
    (data / "offline").symlink_to(base.offline_dir, target_is_directory=True)
    monkeypatch.setenv("FTI_HOME", str(home))
    monkeypatch.setenv("FTI_DATA_ROOT", str(data))
    get_settings.cache_clear()
    yield get_settings()
    from serving import rollout

    rollout.stop_local(get_settings())
    get_settings.cache_clear()


def test_inference_dag_deploys_scores_and_monitors(private_home, snapshot, served_model):
    from fti.apps.demo import curl_example, run_inference
    from serving import rollout

    s = private_home
    # the champion, with its training set where the training pipeline keeps them
    (s.data_dir / "training_sets").mkdir(parents=True)
    shutil.copy(snapshot, s.data_dir / "training_sets" / snapshot.name)
    results = json.loads((served_model / "metrics.json").read_text())
    _, version = registry.register(served_model, results, {"training_set.hash": snapshot.stem}, s)
    registry.record_decision(str(version), gate.Decision(True, ["test"]), {}, s)

    i = run_inference(s)
    assert i["state"] == "success" and i["failed"] == [], i
    assert i["deploy"]["model_version"] == str(version)
    assert rollout.live(s)["model_version"] == str(version)
    scored, monitored = i["score_next_day"], i["monitor"]
    assert scored["day"] == "2013-01-03" and scored["model_version"] == str(version)
    preds = pd.read_parquet(scored["path"])
    assert len(preds) == scored["rows"] > 800 and preds["probability"].between(0, 1).all()
    assert monitored["day"] == "2013-01-03"
    assert (s.monitoring_dir / "2013-01-03" / "index.html").exists()

    # the curl the demo prints calls the live service for a real flight
    cmd = curl_example(s)
    body = json.loads(cmd.split(" -d '", 1)[1].rstrip("'"))
    status, answer = post_json(f"{s.service_url}/predict", body, timeout=30)
    assert status == 200 and answer[0]["model_version"] == str(version), answer

    # a second run finds the champion live already: no new rollout, the same day scored again
    again = run_inference(s)
    assert again["state"] == "success" and again["deploy"]["changed"] is False
    assert len(rollout.history(s)) == 1


def test_demo_serves_until_interrupted_then_stops_the_service(private_home, snapshot, served_model):
    """The end of `make demo`: the live version is served until Ctrl-C (here SIGINT, then the
    same with SIGTERM), and the service is stopped with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT, http

    from fti.ground.settings import settings_env
    from serving import rollout

    s = private_home
    results = json.loads((served_model / "metrics.json").read_text())
    _, version = registry.register(served_model, results, {"training_set.hash": snapshot.stem}, s)
    registry.record_decision(str(version), gate.Decision(True, ["test"]), {}, s)
    from serving import pipeline

    pipeline.deploy(s)
    rollout.stop_local(s)  # the demo's own process starts it again (ensure_running)
    code = (
        "from fti.ground.settings import get_settings; from fti.apps.demo import _serve_until_interrupted; "
        "from serving import rollout; s = get_settings(); rollout.ensure_running(s); "
        "raise SystemExit(_serve_until_interrupted(s))"
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            text=True,
            env={**os.environ, **settings_env(s)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        lines = []
        for line in proc.stdout:  # until the demo says it keeps serving
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        assert any("curl -s -X POST" in line for line in lines), "".join(lines)
        assert http("GET", f"{s.service_url}/readyz", timeout=10)[0] == 200
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0 and "service stopped" in rest, rest
        time.sleep(0.5)
        with pytest.raises(OSError):
            http("GET", f"{s.service_url}/healthz", timeout=3)


def test_inference_dag_shape_and_the_drift_loop():
    from airflow.dag_processing.dagbag import DagBag
    from helpers import ROOT

    from fti.ground.assets import DRIFT, FEATURES, MODEL, PERFORMANCE

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    dag = bag.dags["inference_pipeline"]
    order = ["deploy", "score_next_day", "monitor", "drifted", "drift"]
    for up, down in zip(order, order[1:], strict=False):
        assert down in dag.task_dict[up].downstream_task_ids
    assert "underperformed" in dag.task_dict["monitor"].downstream_task_ids
    assert "performance" in dag.task_dict["underperformed"].downstream_task_ids
    assert [o.name for o in dag.task_dict["drift"].outlets] == [DRIFT.name]
    assert [o.name for o in dag.task_dict["performance"].outlets] == [PERFORMANCE.name]
    # either event runs it: a promoted model, or a newly published day
    assert type(dag.timetable.asset_condition).__name__ == "AssetAny"
    assert {a.name for a in dag.timetable.asset_condition.objects} == {MODEL.name, FEATURES.name}
    # and the loops close: both alarms schedule the training pipeline (as new features do)
    training = bag.dags["training_pipeline"]
    assert type(training.timetable.asset_condition).__name__ == "AssetAny"
    assert {a.name for a in training.timetable.asset_condition.objects} == {
        FEATURES.name,
        DRIFT.name,
        PERFORMANCE.name,
    }


def test_a_rerun_redoes_the_day_its_triggering_event_names(private_home, snapshot, served_model):
    """An inference run started by the features event of 2013-01-01 scores 2013-01-02; run
    again from the same event once later days are published, it scores 2013-01-02 again (the
    same predictions file), never "the day after the latest one in storage"."""
    import hashlib

    from helpers import asset_events, triggered_by

    from fti.apps.demo import run_inference
    from fti.ground.assets import FEATURES
    from serving import batch

    s = private_home
    (s.data_dir / "training_sets").mkdir(parents=True, exist_ok=True)
    shutil.copy(snapshot, s.data_dir / "training_sets" / snapshot.name)
    results = json.loads((served_model / "metrics.json").read_text())
    _, version = registry.register(served_model, results, {"training_set.hash": snapshot.stem}, s)
    registry.record_decision(str(version), gate.Decision(True, ["test"]), {}, s)

    # the feature pipeline's runs (the session's two days) left one event per published day
    events = asset_events(FEATURES.name)
    days = {extra.get("last_day") for _, extra in events}
    assert {"2013-01-01", "2013-01-02"} <= days, events
    first_day = next(i for i, extra in events if extra.get("last_day") == "2013-01-01")
    assert batch.latest_feature_day(s).isoformat() == "2013-01-02"  # a later day exists

    with triggered_by([first_day]):
        first = run_inference(s)
    assert first["state"] == "success", first
    assert first["score_next_day"]["day"] == "2013-01-02"
    path = batch.predictions_path(s, "2013-01-02")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    with triggered_by([first_day]):
        again = run_inference(s)
    assert again["state"] == "success", again
    assert again["score_next_day"]["day"] == "2013-01-02"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not batch.predictions_path(s, "2013-01-03").exists()
