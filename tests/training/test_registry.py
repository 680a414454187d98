"""MLflow registry: tracked runs, registered versions, the champion alias moves only on promotion."""

from __future__ import annotations

import json

import pytest

from fti.ground.settings import Settings
from training import gate, registry, train

pytestmark = pytest.mark.slow


@pytest.fixture
def local_mlflow(tmp_path):
    return Settings(home=tmp_path / "home")


def test_versions_lineage_and_champion_alias(snapshot, tmp_path, local_mlflow):
    s = local_mlflow
    lineage = {
        "training_set.hash": "abc123",
        "feature_service": "flight_delay_v1",
        "data_interval": "2013-01-01..2013-01-02",
        "code_version": "test",
    }
    assert registry.champion(s) is None

    first = train.train(snapshot, tmp_path / "m1", epochs=2, seed=1)
    run_id, v1 = registry.register(tmp_path / "m1", first, lineage, s)
    d1 = gate.Decision(True, ["no champion yet"])
    registry.record_decision(v1, d1, {"candidate": first["test"]}, s)
    champ = registry.champion(s)
    assert champ.version == v1 and champ.run_id == run_id
    assert champ.tags["training_set.hash"] == "abc123"
    assert champ.tags["gate.decision"] == "promoted"

    worse = train.train(snapshot, tmp_path / "m2", epochs=2, seed=1, shuffle_labels=True)
    _, v2 = registry.register(tmp_path / "m2", worse, lineage, s)
    d2 = gate.decide(worse["test"], None, first["test"])
    assert not d2.promote
    registry.record_decision(v2, d2, {"candidate": worse["test"], "champion": first["test"]}, s)

    champ = registry.champion(s)
    assert champ.version == v1  # the champion stays the same
    from mlflow import MlflowClient

    rejected = MlflowClient(s.tracking_uri).get_model_version(s.model_name, v2)
    assert rejected.tags["gate.decision"] == "rejected"
    assert "does not beat the champion" in rejected.tags["gate.reasons"]
    assert (
        json.loads(rejected.tags["gate.numbers"])["champion"]["roc_auc"] == first["test"]["roc_auc"]
    )

    # the registered files are the model: re-scoring them reproduces its metrics
    files = registry.download(champ, tmp_path / "dl", s)
    assert (files / "model.pt").exists() and (files / "roc.png").exists()


def test_training_killed_while_logging_leaves_no_version(
    snapshot, tmp_path, local_mlflow, monkeypatch
):
    import mlflow
    from mlflow import MlflowClient

    s = local_mlflow
    res = train.train(snapshot, tmp_path / "m", epochs=1, seed=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while uploading the model")

    monkeypatch.setattr(mlflow, "log_artifacts", killed)
    with pytest.raises(KeyboardInterrupt):
        registry.register(tmp_path / "m", res, {"code_version": "test"}, s)

    client = MlflowClient(s.tracking_uri)
    assert client.search_model_versions(f"name = '{s.model_name}'") == []
    (run,) = client.search_runs([client.get_experiment_by_name(s.model_name).experiment_id])
    assert run.info.status in ("FAILED", "KILLED")
    assert registry.champion(s) is None


@pytest.mark.parametrize("end", ["airflow ends", "watcher terminated"])
def test_mlflow_ui_shows_the_registry_and_stops_with_airflow(snapshot, tmp_path, local_mlflow, end):
    """`make up` runs `python -m fti mlflow-ui --watch <airflow's pid>`: the UI serves the
    embedded store, and goes away (its whole process group) when the watched process ends, or
    when the watcher itself is terminated (`make up`'s process group killed as a whole)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from helpers import ROOT, free_port

    s = local_mlflow
    res = train.train(snapshot, tmp_path / "m1", epochs=1, seed=1)
    _, v1 = registry.register(tmp_path / "m1", res, {"code_version": "test"}, s)
    registry.record_decision(v1, gate.Decision(True, ["no champion yet"]), {}, s)
    port = free_port()
    watched = subprocess.Popen(["sleep", "600"])
    env = {**os.environ, "FTI_HOME": str(s.home), "FTI_MLFLOW_UI_PORT": str(port)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "fti", "mlflow-ui", "--watch", str(watched.pid)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get?name={s.model_name}"
    try:
        body = None
        for _ in range(120):  # a cold start of the server on a busy 2-core machine
            try:
                body = json.loads(urllib.request.urlopen(url, timeout=5).read())
                break
            except OSError:
                assert ui.poll() is None, ui.stdout.read()
                time.sleep(1)
        assert body is not None, "the MLflow UI never answered"
        model = body["registered_model"]
        assert model["name"] == s.model_name
        assert {"alias": "champion", "version": str(v1)} in model["aliases"]
    finally:
        if end == "watcher terminated":
            ui.send_signal(signal.SIGTERM)
        watched.kill()
        watched.wait()
    ui.wait(timeout=60)  # the watcher stops the server, then exits itself
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)
