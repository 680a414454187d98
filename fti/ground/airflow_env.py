"""Airflow's own configuration, derived from the platform settings.

Airflow reads ``AIRFLOW__*`` variables itself; this module is the one place that decides them,
so the Makefile and the tests start Airflow with ``eval "$(python -m fti env)"``.
"""

from __future__ import annotations

from fti.ground.settings import Settings


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment variables that configure Airflow for this project."""
    home = settings.airflow_dir
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # the data set's local time: `airflow dags test feature_pipeline 2013-01-05` and
        # `airflow backfill create --from-date ... --to-date ...` then name local days
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": settings.timezone,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # 2-core laptops: the default parallelism starts 32 idle workers
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        # where task processes reach the API server (Airflow assumes port 8080 otherwise)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
            f"http://127.0.0.1:{settings.airflow_port}/execution/"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    }
    if settings.airflow_database_url is not None:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
            settings.airflow_database_url.get_secret_value()
        )
    else:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    return env
