"""MLflow: every training run tracked, every model registered, the champion an alias.

Tracking is SQLite with local artifacts under ``HOME/mlflow`` by default, a tracking server by
``FTI_MLFLOW_TRACKING_URI``. A model version is created only after the run's artifacts are all
logged (one call), so a crashed or killed training leaves a failed run and no version.
"""

from __future__ import annotations

import json
from pathlib import Path

from fti.ground.settings import Settings, get_settings

CHAMPION = "champion"
#: a version that passed the gate's thresholds but not the champion margin (or one named by
#: hand): the service scores it beside the champion, off the response path (serving.challenger)
CHALLENGER = "challenger"


def _client(settings: Settings):
    import mlflow
    from mlflow import MlflowClient

    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow, MlflowClient(tracking_uri=settings.tracking_uri)


def _experiment(mlflow, client, settings: Settings) -> str:
    exp = client.get_experiment_by_name(settings.model_name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if settings.mlflow_tracking_uri is None:
        location = (settings.mlflow_dir / "artifacts").as_uri()
    return client.create_experiment(settings.model_name, artifact_location=location)


def register(
    model_dir: Path,
    results: dict,
    lineage: dict[str, str],
    settings: Settings | None = None,
) -> tuple[str, str]:
    """Track a finished training (params, metrics, plots, lineage tags) and register its model.

    ``lineage`` travels with the model: training-set hash, feature service, data interval, code
    version. Returns (run id, model version).
    """
    settings = settings or get_settings()
    mlflow, client = _client(settings)
    experiment_id = _experiment(mlflow, client, settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(
            {
                k: results[k]
                for k in (
                    "seed",
                    "epochs",
                    "device",
                    "train_rows",
                    "lr",
                    "batch_size",
                    "hidden",
                    "dropout",
                    "weight_decay",
                )
                if k in results
            }
        )
        for split in ("validation", "test"):
            mlflow.log_metrics({f"{split}_{k}": float(v) for k, v in results[split].items()})
        mlflow.log_metric("samples_per_second", float(results["samples_per_second"]))
        mlflow.set_tags(lineage)
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
    if not client.search_registered_models(filter_string=f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=source, run_id=run.info.run_id, tags=lineage
    )
    return run.info.run_id, version.version


def champion(settings: Settings | None = None):
    """The champion's model version, or None when there is none yet."""
    return aliased(CHAMPION, settings)


def challenger(settings: Settings | None = None):
    """The challenger's model version, or None when there is none."""
    return aliased(CHALLENGER, settings)


def aliased(alias: str, settings: Settings | None = None):
    """The model version ``alias`` names, or None when it names none."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    _, client = _client(settings)
    try:
        return client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException:
        return None


def set_challenger(version: str | None, settings: Settings | None = None) -> None:
    """Name registered ``version`` the challenger (None: no challenger); ``LookupError`` for a
    version that is not registered, ``ValueError`` for the champion itself."""
    settings = settings or get_settings()
    _, client = _client(settings)
    name = settings.model_name
    if version is None:
        if aliased(CHALLENGER, settings) is not None:
            client.delete_registered_model_alias(name, CHALLENGER)
        return
    model_version(version, settings)
    current = champion(settings)
    if current is not None and str(current.version) == str(version):
        raise ValueError(f"version {version} is the champion: a challenger must be another one")
    client.set_registered_model_alias(name, CHALLENGER, str(version))


def promote(version: str, tags: dict[str, str], settings: Settings | None = None) -> None:
    """Move the champion alias to ``version`` (its tags say why); a challenger it was is no
    longer one."""
    settings = settings or get_settings()
    _, client = _client(settings)
    name = settings.model_name
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, v)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    shadow = challenger(settings)
    if shadow is not None and str(shadow.version) == str(version):
        client.delete_registered_model_alias(name, CHALLENGER)


def versions(settings: Settings | None = None) -> list:
    """Every registered version of the model (none before the first)."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    _, client = _client(settings)
    try:
        return list(client.search_model_versions(f"name = '{settings.model_name}'"))
    except MlflowException:
        return []


def model_version(version: str, settings: Settings | None = None):
    """Registered version ``version`` of the model; ``LookupError`` naming the versions there
    are when it does not exist."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    _, client = _client(settings)
    try:
        return client.get_model_version(settings.model_name, str(version))
    except MlflowException as err:
        known = sorted(
            (str(v.version) for v in client.search_model_versions(f"name='{settings.model_name}'")),
            key=int,
        )
        raise LookupError(
            f"model {settings.model_name!r} has no version {version!r} (registered: "
            f"{', '.join(known) or 'none'})"
        ) from err


def download(version, dest: Path, settings: Settings | None = None) -> Path:
    """The model files of a registered version, in ``dest``."""
    import mlflow

    settings = settings or get_settings()
    _client(settings)
    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dest))
    )


def record_decision(
    version: str, decision, numbers: dict, settings: Settings | None = None
) -> None:
    """Write the gate's decision and its numbers on the version; promote it if the gate said so
    (a new champion ends the challenger's shadowing: it was measured against the old one), or
    make it the challenger when it passed every threshold but the champion margin."""
    settings = settings or get_settings()
    _, client = _client(settings)
    name = settings.model_name
    client.set_model_version_tag(
        name, version, "gate.decision", "promoted" if decision.promote else "rejected"
    )
    client.set_model_version_tag(name, version, "gate.reasons", "; ".join(decision.reasons))
    client.set_model_version_tag(name, version, "gate.numbers", json.dumps(numbers, sort_keys=True))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
        set_challenger(None, settings)
    elif getattr(decision, "challenger", False):
        client.set_registered_model_alias(name, CHALLENGER, version)
