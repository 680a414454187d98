"""Test session setup: every test runs against a throwaway FTI_HOME (never the user's .fti/).

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(tempfile.mkdtemp(prefix="fti-test-"))

for key in [k for k in os.environ if k.startswith(("FTI_", "AIRFLOW"))]:
    del os.environ[key]
os.environ["FTI_HOME"] = str(HOME)
os.environ["FTI_SPARK_MASTER"] = "local[2]"

from fti.airflow_env import airflow_env  # noqa: E402
from fti.settings import get_settings  # noqa: E402

os.environ.update(airflow_env(get_settings()))


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 600, check: bool = True):
    """Run a command with the venv's bin first on PATH; return the CompletedProcess."""
    full = {**os.environ, **(env or {})}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    proc = subprocess.run(cmd, env=full, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


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
    shutil.rmtree(HOME, ignore_errors=True)
