"""The training_pipeline DAG: the GPU pod it would submit (validated against the Kubernetes
schema), and the local runtime end to end on the feature pipeline's real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest
from helpers import ROOT

from fti.ground.settings import Settings, get_settings

pytestmark = pytest.mark.slow


def _pod(settings: Settings):
    from kubernetes.client import ApiClient

    from training.pipeline import training_pod_operator

    op = training_pod_operator("train", settings)
    return op, ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))


def test_gpu_pod_is_valid_kubernetes_and_asks_for_a_gpu(tmp_path):
    import kubernetes_validate

    settings = Settings(
        home=tmp_path, training_runtime="kubernetes", training_image="reg/fti-training:1"
    )
    op, pod = _pod(settings)
    kubernetes_validate.validate(pod, "1.30", strict=True)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    assert container["image"] == "reg/fti-training:1"
    assert container["command"] == ["python", "-m", "training"]
    args = container["args"]
    assert (
        args[0] == "train"
        and "--snapshot" in args
        and args[-2:] == ["--xcom", "/airflow/xcom/return.json"]
    )
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    # secrets reach the pod by reference only: no literal env values at all
    assert container["envFrom"] == [{"secretRef": {"name": "fti-training-env"}}]
    assert container.get("env", []) == []
    assert {"name": "fti-data", "mountPath": str(settings.data_dir)} in container["volumeMounts"]
    assert args[args.index("--out") + 1].startswith(f"{settings.data_dir}/models/")
    assert op.schedule_timeout_seconds == 900 and op.startup_timeout_seconds == 600
    assert op.on_finish_action.value == "delete_succeeded_pod" and op.get_logs and op.do_xcom_push


def test_kubernetes_runtime_wires_the_pod_into_the_dag(tmp_path):
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags' / 'training_pipeline.py')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "t = bag.dags['training_pipeline'].task_dict['train']\n"
        "print(type(t).__name__, sorted(t.upstream_task_ids), sorted(t.downstream_task_ids))\n"
    )
    env = {**os.environ, "FTI_TRAINING_RUNTIME": "kubernetes", "FTI_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "KubernetesPodOperator ['build_training_set'] ['evaluate']" in out.stdout


def test_local_runtime_end_to_end(two_days, good_source, monkeypatch, capsys):
    from helpers import use_source

    from fti.apps.demo import print_training_summary, run_days, run_training
    from training import registry

    use_source(good_source)
    assert [s for _, s in run_days(date(2013, 1, 3), date(2013, 1, 5), get_settings())] == [
        "success"
    ] * 3
    for key, value in {
        "FTI_TRAINING_TEST_DAYS": "1",
        "FTI_TRAINING_VALIDATION_DAYS": "1",
        "FTI_TRAINING_EPOCHS": "2",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()

    # the path `make demo` takes: one run through Airflow, then its summary
    t = run_training(settings)
    assert t["state"] == "success" and t["failed"] == []
    result, built = t["evaluate"], t["build_training_set"]
    champion = registry.champion(settings)
    if result["promote"]:
        assert champion is not None and champion.version == result["version"]
    else:
        assert champion is None
        assert "not promoted" in result["decision"]
    capsys.readouterr()
    print_training_summary(t)
    shown = capsys.readouterr().out
    assert built["hash"] in shown and result["decision"] in shown and "baseline" in shown
    # the snapshot's hash travels with the model version
    from mlflow import MlflowClient

    mv = MlflowClient(settings.tracking_uri).get_model_version(
        settings.model_name, result["version"]
    )
    assert mv.tags["training_set.hash"] == built["hash"]
    assert mv.tags["data_interval"] == "2013-01-01..2013-01-05"
    assert json.loads(mv.tags["gate.numbers"])["candidate"]["rows"] == built["splits"]["test"]
    assert mv.tags["trigger"] == "manual" and t["trigger"]["reason"] == "manual"

    # a feature day alone, inside the week after that training's data: the DAG runs, its
    # trigger says why not, and nothing is trained or registered
    from helpers import asset_events, triggered_by

    from fti.ground.assets import FEATURES

    jan5 = next(
        i for i, e in reversed(asset_events(FEATURES.name)) if e["last_day"] == "2013-01-05"
    )
    before = len(registry.versions(settings))
    with triggered_by([jan5]):
        skipped = run_training(settings)
    assert skipped["state"] == "success" and skipped["build_training_set"] is None
    assert skipped["trigger"] is None  # skipped: no XCom
    assert len(registry.versions(settings)) == before
