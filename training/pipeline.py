"""The training pipeline's steps, one function per DAG task (the DAG file only wires them).

build_training_set -> train (a local process, or a GPU pod) -> evaluate (baseline, champion,
gate, registry). Only a promoted model emits the model asset.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fti.ground import files
from fti.ground.contract import contract
from fti.ground.runs import step
from fti.ground.settings import Settings, get_settings

log = logging.getLogger(__name__)


def latest_label_day(settings: Settings) -> date:
    """The latest day whose labels are published."""
    view = contract(settings).label_view
    days = files.partition_days(settings.offline_dir / view)
    if not days:
        raise FileNotFoundError(
            f"no {view} partitions under {settings.offline_dir}: run the feature pipeline first"
        )
    return date.fromisoformat(days[-1])


@step
def build_training_set(
    run_id: str = "manual",
    settings: Settings | None = None,
    through: date | None = None,
    trigger: str = "manual",
) -> dict:
    """Spine + point-in-time join of the days up to ``through`` (the day the triggering event
    published; the latest published day when None), validated, split, saved."""
    from training import dataset

    settings = settings or get_settings()
    latest = latest_label_day(settings)
    if through is None:
        log.info("no day given: training through the latest published day, %s", latest)
        cutoff = latest
    elif through > latest:
        raise FileNotFoundError(
            f"cannot train through {through}: the labels are published through {latest} only"
        )
    else:
        cutoff = through
    first = settings.first_day
    if settings.training_as_of == "day_start":
        # the data set's first day is predicted as of its start, when nothing is published yet:
        # no path ever scores it, so it is no training row either
        first += timedelta(days=1)
    spine = dataset.load_spine(settings, first=first, last=cutoff)
    df = dataset.join_features(spine, settings)
    nxt = cutoff + timedelta(days=1)
    cutoff_end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=ZoneInfo(settings.timezone))
    report_dir = (
        settings.reports_dir
        / "validation"
        / "training_set"
        / "flight_delay_v1"
        / cutoff.isoformat()
        / files.safe_name(run_id)
    )
    dataset.validate(df, cutoff_end, report_dir)
    against = _against_previous(df, cutoff, report_dir, settings)
    df["split"] = dataset.time_split(
        df,
        cutoff,
        settings.training_test_days,
        settings.training_validation_days,
        settings.timezone,
    )
    # under DATA_ROOT: the storage a training pod mounts too
    path, digest = dataset.write_snapshot(df, settings.data_dir / "training_sets")
    counts = df["split"].value_counts().to_dict()
    log.info("training set %s: %s rows %s, hash %s", path, len(df), counts, digest)
    return {
        "snapshot": str(path),
        "hash": digest,
        "rows": len(df),
        "splits": counts,
        "data_interval": f"{first.isoformat()}..{cutoff.isoformat()}",
        "through": cutoff.isoformat(),
        "feature_service": contract(settings).feature_service,
        "against_previous": against,
        "trigger": trigger,
    }


def _against_previous(df, cutoff: date, report_dir, settings: Settings) -> dict:
    """The training set against the previous training set's profile (null shares, the mean
    of every feature and of the label, rows per day); raises ``ValidationFailed`` on a check
    that halts, logs the warnings; keeps this set's profile once it passes."""
    from fti.ground import history

    name = contract(settings).feature_service
    profile = history.profile(df)
    days = max(int(df["sched_dep_ts"].dt.tz_convert(settings.timezone).dt.date.nunique()), 1)
    # a training set holds every day so far: its volume is compared per day
    profile["rows"] = round(len(df) / days)
    report, notes = history.validate_day(
        settings,
        "training_set",
        cutoff,
        {name: profile},
        report_dir.with_name(f"{report_dir.name}-history"),
        min_days=1,
        latest_only=True,
    )
    for note in notes:
        log.info("%s (no previous training set)", note)
    warned = history.settle(report, f"training set {cutoff}", settings)
    history.keep(settings, "training_set", cutoff, {name: profile})
    return {"warned": warned, "history": notes}


def model_dir(settings: Settings, run_id: str) -> Path:
    """Where the training of run ``run_id`` writes its model."""
    return settings.data_dir / "models" / files.safe_name(run_id)


@step
def train_local(snapshot: str, run_id: str = "manual", settings: Settings | None = None) -> dict:
    """The training entry point as a local process (the embedded runtime)."""
    settings = settings or get_settings()
    out = model_dir(settings, run_id)
    xcom = out / "return.json"
    cmd = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--snapshot",
        snapshot,
        "--out",
        str(out),
        "--epochs",
        str(settings.training_epochs),
        "--xcom",
        str(xcom),
    ]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.info("%s", proc.stdout[-4000:])
    if proc.returncode != 0:
        raise RuntimeError(f"training exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(xcom.read_text())


def training_pod_operator(task_id: str, settings: Settings, **kwargs):
    """The KubernetesPodOperator that runs the training image on a GPU node."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    data = str(settings.data_dir)
    key, _, value = settings.k8s_gpu_node_selector.partition("=")
    return KubernetesPodOperator(
        task_id=task_id,
        name="fti-training",
        namespace=settings.k8s_namespace,
        image=settings.training_image,
        cmds=["python", "-m", "training"],
        arguments=[
            "train",
            "--snapshot",
            "{{ ti.xcom_pull(task_ids='build_training_set')['snapshot'] }}",
            "--out",
            f"{settings.data_dir}/models/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}",
            "--epochs",
            str(settings.training_epochs),
            "--xcom",
            "/airflow/xcom/return.json",
        ],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "2", "memory": "8Gi"},
            limits={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
        ),
        node_selector={key: value},
        tolerations=[
            k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        ],
        # credentials come from a Secret, never as plain env values in the pod spec
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.k8s_secret))],
        volumes=[
            k8s.V1Volume(
                name="fti-data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.k8s_data_pvc
                ),
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name="fti-data", mount_path=data)],
        schedule_timeout_seconds=900,
        startup_timeout_seconds=600,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # a failed pod stays for inspection
        do_xcom_push=True,
        **kwargs,
    )


@step
def evaluate(built: dict, trained: dict, settings: Settings | None = None) -> dict:
    """Baseline, champion re-scored on the same test window, the gate, and the registry."""
    import tempfile

    import pandas as pd

    from training import gate, registry, train

    settings = settings or get_settings()
    snapshot = pd.read_parquet(built["snapshot"])
    test = snapshot[snapshot["split"] == "test"]
    candidate = trained["metrics"]["test"]
    baseline = gate.baseline_metrics(snapshot)
    champion_version = registry.champion(settings)
    champion = None
    if champion_version is not None:
        with tempfile.TemporaryDirectory() as tmp:
            downloaded = registry.download(champion_version, Path(tmp), settings)
            label = contract(settings).label
            champion = train.metrics(test[label].to_numpy(), gate.score(downloaded, test))
    decision = gate.decide(candidate, baseline, champion, gate.GateConfig.from_settings(settings))
    lineage = {
        "training_set.hash": built["hash"],
        "feature_service": built["feature_service"],
        "data_interval": built["data_interval"],
        "code_version": _code_version(),
        # why this run trained (training.triggers): schedule, drift, performance or manual
        "trigger": built.get("trigger", "manual"),
    }
    _, version = registry.register(
        Path(trained["model_dir"]), trained["metrics"], lineage, settings
    )
    numbers = {
        "candidate": candidate,
        "baseline": baseline,
        "champion": champion,
        "champion_version": champion_version.version if champion_version else None,
    }
    registry.record_decision(version, decision, numbers, settings)
    log.info("model version %s: %s", version, decision.describe())
    return {
        "version": version,
        "promote": decision.promote,
        "challenger": decision.challenger,
        "decision": decision.describe(),
        "trigger": lineage["trigger"],
        "through": built.get("through"),
        **numbers,
    }


def _code_version() -> str:
    from importlib.metadata import version

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"fti-platform {version('fti-platform')}" + (f" ({sha})" if sha else "")
