"""Rollout of the champion as the local service: started health-gated, then switched inside the
running process (a model that fails its check refused, the live one kept), with a history and
a rollback command; and the Kubernetes manifests of the other runtime."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from helpers import free_port, http, post_json, run

from fti.ground.settings import Settings, get_settings, settings_env
from serving import admin, pipeline, rollout
from training import gate, registry, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(two_days, tmp_path_factory):
    """A private home (own MLflow, Bentos, live history, port) over the session's feature store."""
    base = get_settings()
    root = tmp_path_factory.mktemp("rollout")
    (root / "home").mkdir()
    (root / "home" / "feast").symlink_to(base.feast_dir, target_is_directory=True)
    s = Settings(
        home=root / "home",
        data_root=base.data_dir,
        serving_port=free_port(),
        source_dir=base.source_dir,
    )
    yield s
    rollout.stop_local(s)


def _promote(s: Settings, model_dir, tag: str) -> str:
    results = json.loads((model_dir / "metrics.json").read_text())
    _, version = registry.register(model_dir, results, {"code_version": tag}, s)
    registry.record_decision(str(version), gate.Decision(True, [tag]), {}, s)
    return str(version)


def _served_version(s: Settings) -> str:
    status, body = post_json(f"{s.service_url}/predict", rollout.smoke_flight(s), timeout=30)
    assert status == 200, body
    return body[0]["model_version"]


def test_rollout_gates_rolls_back_and_restores(home, snapshot, tmp_path):
    s = home
    good = tmp_path / "good"
    train.train(snapshot, good, epochs=2, seed=1)
    v1 = _promote(s, good, "first")

    first = pipeline.deploy(s)
    assert first["model_version"] == v1 and first["changed"]
    assert http("GET", f"{s.service_url}/readyz")[0] == 200
    assert _served_version(s) == v1
    # the same champion again: nothing changes, the service stays
    assert pipeline.deploy(s)["changed"] is False

    # a champion whose model cannot load (its weights are garbage): the running service
    # refuses to switch to it, names why, and keeps serving; no process was restarted
    pid = (s.serving_dir / "service.pid").read_text()
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    (broken / "model.pt").write_bytes(b"not a model")
    v2 = _promote(s, broken, "broken")
    with pytest.raises(rollout.RolloutFailed, match=f"does not load.*model version {v1} stays"):
        pipeline.deploy(s)
    assert _served_version(s) == v1
    assert [e["model_version"] for e in rollout.history(s)] == [v1]

    # a champion that loads and reports ready but answers nonsense: the smoke prediction of a
    # real flight catches it, and the previous version keeps serving
    import torch

    nan = tmp_path / "nan"
    shutil.copytree(good, nan)
    saved = torch.load(nan / "model.pt", weights_only=False)
    saved["state_dict"] = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in saved["state_dict"].items()
    }
    torch.save(saved, nan / "model.pt")
    v2b = _promote(s, nan, "nan")
    with pytest.raises(rollout.RolloutFailed, match="not finite numbers in .0, 1.*stays live"):
        pipeline.deploy(s)
    assert _served_version(s) == v1

    better = tmp_path / "better"
    train.train(snapshot, better, epochs=2, seed=2)
    v3 = _promote(s, better, "third")
    assert pipeline.deploy(s)["model_version"] == v3
    assert _served_version(s) == v3
    # switched inside the same process
    assert (s.serving_dir / "service.pid").read_text() == pid

    # python -m fti challenger VERSION: the running service shadows it at once; deploy keeps
    # the service's challenger in step with the registry's alias
    env = {**os.environ, **settings_env(s)}
    out = run([sys.executable, "-m", "fti", "challenger", v1], env=env, timeout=300)
    assert f"challenger: v{v1}, shadowing" in out.stdout
    assert admin.live_models(s.service_url, s) == {
        "live": v3,
        "directory": admin.live_models(s.service_url, s)["directory"],
        "challenger": v1,
    }
    registry.set_challenger(None, s)
    assert pipeline.deploy(s)["challenger"] == {"challenger": None, "changed": True, "error": None}
    assert admin.live_models(s.service_url, s)["challenger"] is None
    assert run([sys.executable, "-m", "fti", "challenger", v1], env=env).returncode == 0
    bad = run([sys.executable, "-m", "fti", "challenger", v3], env=env, check=False)
    assert bad.returncode == 1 and "is the champion" in bad.stderr

    # make rollback = python -m fti rollback: the version live before the current one
    out = run([sys.executable, "-m", "fti", "rollback"], env=env, timeout=300)
    assert f"model version {v1}" in out.stdout
    assert _served_version(s) == v1
    # the challenger became the champion: it shadows no more
    assert admin.live_models(s.service_url, s)["challenger"] is None
    assert (s.serving_dir / "service.pid").read_text() == pid
    entries = rollout.history(s)
    assert [e["model_version"] for e in entries] == [v1, v3, v1]
    assert all(e["until"] for e in entries[:-1]) and entries[-1]["until"] is None
    assert entries[-1]["rollback_of"] == v3
    assert not {v2, v2b} & {e["model_version"] for e in entries}
    live = run([sys.executable, "-m", "fti", "live"], env=env).stdout
    assert live.count("\n") == 3 and "now" in live.splitlines()[-1]

    # python -m fti deploy VERSION: any registered version, switched in the same process
    out = run([sys.executable, "-m", "fti", "deploy", v3], env=env, timeout=300)
    assert f"model version {v3}" in out.stdout and _served_version(s) == v3
    assert (s.serving_dir / "service.pid").read_text() == pid
    missing = run([sys.executable, "-m", "fti", "deploy", "999"], env=env, check=False)
    assert missing.returncode == 1 and "no version '999'" in missing.stderr
    assert _served_version(s) == v3

    # python -m fti stop; then deploy starts the service with the version asked for
    assert "stopped" in run([sys.executable, "-m", "fti", "stop"], env=env).stdout
    with pytest.raises(OSError):
        http("GET", f"{s.service_url}/healthz", timeout=3)
    run([sys.executable, "-m", "fti", "deploy", v1], env=env, timeout=300)
    assert _served_version(s) == v1
    assert rollout.stop_local(s)
    with pytest.raises(OSError):
        http("GET", f"{s.service_url}/healthz", timeout=3)


def test_rollback_without_history_says_so(tmp_path):
    s = Settings(home=tmp_path)
    with pytest.raises(LookupError, match="no earlier model version"):
        rollout.rollback(s)


def test_kubernetes_manifests_are_valid_and_hold_no_secret():
    import yaml

    sentinel = "s3cr3t-sentinel-6c1f"
    s = Settings(
        serving_runtime="kubernetes",
        serving_image="registry.example/fti-serving:v4",
        redis_connection_string=f"redis:6379,password={sentinel}",
        online_store="redis",
    )
    docs = rollout.render_manifests("flight_delay_service:v4", "4", s)
    rollout.validate_manifests(docs)
    text = yaml.safe_dump_all(docs)
    assert sentinel not in text
    deployment, service = docs
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/fti-serving:v4"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["envFrom"] == [{"secretRef": {"name": s.k8s_secret}}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["metadata"]["annotations"]["fti/model-version"] == "4"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]

    import kubernetes_validate

    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas"):
        rollout.validate_manifests(docs)
