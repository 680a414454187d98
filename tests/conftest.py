"""Test session setup: every test runs against a throwaway FTI_HOME (never the user's .fti/).

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

HOME = Path(tempfile.mkdtemp(prefix="fti-test-"))

for key in [k for k in os.environ if k.startswith(("FTI_", "AIRFLOW"))]:
    del os.environ[key]
os.environ["FTI_HOME"] = str(HOME)
os.environ["FTI_SPARK_MASTER"] = "local[2]"
from helpers import DAYS, free_port, read_real_tables, run, use_source, write_source  # noqa: E402

# never the user's port 3000: a service a test rolls out listens on a port of its own
os.environ["FTI_SERVING_PORT"] = str(free_port())

from fti.ground.airflow_env import airflow_env  # noqa: E402
from fti.ground.settings import get_settings  # noqa: E402

os.environ.update(airflow_env(get_settings()))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata DB of the test session, migrated once."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "airflow", "db", "migrate"])
    return home


@pytest.fixture
def settings():
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def pytest_sessionfinish(session, exitstatus):
    import shutil

    # stop Spark while pytest's streams are open (py4j logs its shutdown)
    if "pyspark" in sys.modules:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    # py4j logs from __del__ at interpreter exit, after pytest closed the captured streams
    import logging

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    shutil.rmtree(HOME, ignore_errors=True)


# --- the feature pipeline's real output, shared by the end-to-end and training tests --------


@pytest.fixture(scope="session")
def real_tables():
    return read_real_tables(days=5)


@pytest.fixture(scope="session")
def good_source(real_tables, tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("source"), *real_tables)


@pytest.fixture(scope="session")
def two_days(airflow_db, good_source):
    """feature_pipeline run through Airflow for 2013-01-01 and 2013-01-02."""
    from fti.apps.demo import run_days

    use_source(good_source)
    return run_days(DAYS[0], DAYS[-1], get_settings())


@pytest.fixture(scope="session")
def snapshot(two_days, tmp_path_factory):
    """A real training set built from the feature pipeline's output for 2013-01-01..02 (the
    training and serving tests share it)."""
    import numpy as np

    from training import dataset

    spine = dataset.load_spine(get_settings(), first=DAYS[0], last=DAYS[-1])
    df = dataset.point_in_time_join(spine, get_settings())
    local = df["sched_dep_ts"].dt.tz_convert("America/New_York")
    # by time, never shuffled: day 1 trains, day 2's morning validates, its afternoon tests
    df["split"] = np.where(
        local.dt.day == 1, "train", np.where(local.dt.hour < 14, "validation", "test")
    )
    path, _ = dataset.write_snapshot(df, tmp_path_factory.mktemp("snap"))
    return path


@pytest.fixture(scope="session")
def served_model(snapshot, tmp_path_factory) -> Path:
    """A model trained on the session's snapshot, with its version recorded beside it."""
    from serving import model
    from training import train

    out = tmp_path_factory.mktemp("served-model")
    train.train(snapshot, out, epochs=2)
    model.write_version(out, "test-1")
    return out
