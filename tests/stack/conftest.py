"""The compose stack, built and started once per test session (tests/stack).

Skipped, saying what to install, on a machine without a container engine, unless
FTI_REQUIRE_STACK=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers import ROOT, free_port
from stackkit import Airflow, require_engine, stack_env, stackctl


@pytest.fixture(scope="session")
def engine():
    require_engine()
    return stackctl


@pytest.fixture(scope="session")
def images(engine):
    """Base images (pulled, or stand-ins without a registry) and the project's images; Docker's
    build cache makes a second session's build take seconds."""
    if not stackctl.wheelhouse_ready():
        # the lock's wheels as pip picks them here (torch's CPU build among them)
        for args in (
            ["-c", "constraints.txt", "-d", "docker/wheels", "."],
            ["--no-deps", "-d", "docker/wheels", "async-timeout>=4.0.3"],
        ):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", *args],
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=1800,
            )
    bases = stackctl.ensure_bases()
    times = stackctl.build()
    return {"bases": bases, "build_s": times}


@pytest.fixture(scope="session")
def stack(images, tmp_path_factory):
    """The stack up and healthy, with every secret a fresh random value; down -v after."""
    folder = tmp_path_factory.mktemp("stack")
    secret_values = stack_env.generate()
    ports = {k: free_port() for k in stack_env.PORTS}
    env_file = folder / ".env"
    stack_env.write(env_file, secret_values, ports)
    with env_file.open("a") as f:
        # lean on purpose: 3 days, 2 epochs, a gate that promotes the first model
        f.write(
            "FTI_TRAINING_EPOCHS=2\nFTI_TRAINING_TEST_DAYS=1\nFTI_TRAINING_VALIDATION_DAYS=1\n"
            "FTI_GATE_MIN_ROC_AUC=0\nFTI_GATE_MAX_LOG_LOSS=100\nFTI_GATE_MAX_CALIBRATION_ERROR=1\n"
            "FTI_GATE_BASELINE_TOLERANCE=1\nFTI_SERVING_POLL_S=3\nAIRFLOW_TASK_HEARTBEAT_TIMEOUT=60\nAIRFLOW_ORPHANED_TASKS_CHECK_INTERVAL=30\n"
            "AIRFLOW_PARALLELISM=3\n"
        )
    s = stackctl.Stack(project=f"ftitest{os.getpid()}", env_file=env_file)
    s.secrets = secret_values
    s.ports = ports
    s.url = {
        name: f"http://127.0.0.1:{ports[f'STACK_{name.upper()}_PORT']}"
        for name in ("airflow", "mlflow", "serving", "spark_ui")
    }
    started = time.monotonic()
    try:
        s.up()
        s.healthy_s = s.wait_healthy(timeout=900)
    except stackctl.StackError as err:
        s.down()
        pytest.fail(f"the stack did not come up: {err}")
    s.up_s = time.monotonic() - started
    s.airflow = Airflow(s.url["airflow"], secret_values["AIRFLOW_ADMIN_PASSWORD"])
    try:
        yield s
    finally:
        s.down()
