"""DAG integrity: every file in dags/ imports cleanly, is tagged, retries, and keeps heavy
libraries out of module level (they would be imported at every parse)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = (
    "pyspark",
    "feast",
    "great_expectations",
    "torch",
    "bentoml",
    "mlflow",
    "pandas",
    "sklearn",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {Path(f).stem for f in dagbag.dag_ids} or dagbag.dags
    # file name = dag_id
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


def test_dags_have_tags_retries_and_docs(dagbag):
    assert "feature_pipeline" in dagbag.dags
    for dag in dagbag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.doc_md, dag.dag_id
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retries"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_import_at_module_level(path):
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"print(json.dumps([h for h in {HEAVY!r} if h in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_feature_pipeline_shape(dagbag):
    from fti.ground.assets import FEATURES

    dag = dagbag.dags["feature_pipeline"]
    # a boundary where it buys something: the raw day checked, the Spark job (its retry point)
    # with the check of what it staged, and the publication (offline, online, event) together
    order = ["land", "compute_features", "publish"]
    assert sorted(dag.task_dict) == sorted(order)
    for up, down in zip(order, order[1:], strict=False):
        assert dag.task_dict[up].downstream_task_ids == {down}
    assert dag.max_active_runs == 1
    assert [o.name for o in dag.task_dict["publish"].outlets] == [FEATURES.name]


def test_schedule_covers_local_days():
    from fti.ground.timetables import DailyReplayTimetable

    tt = DailyReplayTimetable("0 0 * * *", timezone="America/New_York")
    ny = "America/New_York"
    # a bare date (`airflow dags test feature_pipeline 2013-01-05`, parsed in the default time
    # zone the project sets) is that local day, not the day before as Airflow's default has it
    iv = tt.infer_manual_data_interval(run_after=pendulum.datetime(2013, 1, 5, tz=ny))
    assert (iv.start, iv.end) == (
        pendulum.datetime(2013, 1, 5, tz=ny),
        pendulum.datetime(2013, 1, 6, tz=ny),
    )
    # any other instant: the local day that contains it
    iv = tt.infer_manual_data_interval(run_after=pendulum.datetime(2013, 3, 10, 15, tz=ny))
    assert (iv.start, iv.end) == (
        pendulum.datetime(2013, 3, 10, tz=ny),
        pendulum.datetime(2013, 3, 11, tz=ny),
    )
    assert (iv.end - iv.start).in_hours() == 23  # the DST day is 23 hours long
