"""Airflow's local-settings hook (``airflow_local_settings``, imported by every Airflow component
when it starts; the plugins folder is on its path).

With the LocalExecutor, a task runs in a process forked from one of the scheduler's workers,
which are forked from the scheduler itself: whatever the scheduler has imported, every task
has for free. The platform's tasks import Feast (~11 s on the 2-core machine: it pulls in
torch, pandas, pyarrow and gRPC), Great Expectations (~7 s) and MLflow (~4 s) before their first
line of work, so the scheduler imports them once, at its start, and a task pays nothing for
them (bench/scheduler.py measures both ways; ``FTI_PRELOAD=false`` turns it off).

Only third-party libraries are preloaded, never the platform's own modules: a task must read
the feature declarations and the settings as they are when it runs, not as they were when the
scheduler started. Other components (API server, DAG processor, triggerer) and other
executors skip it.
"""

from __future__ import annotations

import os
import sys

#: what the platform's task processes import before their work
PRELOAD = (
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "duckdb",
    "great_expectations",
    "great_expectations.expectations",
    "feast",
    "mlflow",
    "sklearn.ensemble",
    "pyspark.sql.connect.session",
)


def _is_local_scheduler() -> bool:
    if sys.argv[1:2] != ["scheduler"] or os.environ.get("FTI_PRELOAD", "true").lower() == "false":
        return False
    from airflow.configuration import conf

    return "LocalExecutor" in conf.get("core", "executor", fallback="")


def preload() -> list[str]:
    """Import :data:`PRELOAD` (what cannot be imported is skipped); returns what was."""
    import importlib

    done = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            done.append(name)
        except ImportError:
            pass
    return done


if _is_local_scheduler():
    preload()
