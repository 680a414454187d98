"""What the stack tests share: the stack script (docker/stack.py), the .env writer
(docker/stack_env.py), Airflow's REST API, the engine check."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from helpers import ROOT


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stackctl = _load("fti_stackctl", ROOT / "docker" / "stack.py")
stack_env = _load("fti_stack_env", ROOT / "docker" / "stack_env.py")

#: the days the stack's feature pipeline runs (training: 1 train, 1 validation, 1 test day)
DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]
RUN_TIMEOUT = 1200


def require_engine() -> None:
    problem = stackctl.engine_problem()
    if problem is None:
        return
    if os.environ.get("FTI_REQUIRE_STACK") == "1":
        pytest.fail(f"FTI_REQUIRE_STACK=1 but {problem}")
    pytest.skip(
        f"{problem} (the stack tests need Docker and docker-compose; "
        "FTI_REQUIRE_STACK=1 makes this a failure)"
    )


class Airflow(stackctl.AirflowAPI):
    """The REST client of docker/stack.py; a run that does not succeed fails the test."""

    def wait_run(self, dag_id, run_id, stack=None, timeout: float = RUN_TIMEOUT) -> str:
        try:
            return super().wait_run(dag_id, run_id, stack, timeout)
        except stackctl.StackError as err:
            pytest.fail(str(err))
