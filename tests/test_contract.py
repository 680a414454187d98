"""The feature contract is derived from the Feast declarations in feature_repo/, and a view that
lacks its transform or its suite (or a transform or suite without a declared view) is named
before any run starts.

Declarations are imported as top-level modules (as `feast apply` does), so each altered copy of
the repository is read in a subprocess of its own."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import ROOT, run

from fti.ground.contract import contract
from fti.ground.settings import get_settings

NEW_VIEW = """

hourly_gate_load = FeatureView(
    name="hourly_gate_load",
    entities=[origin],
    ttl=timedelta(hours=2),
    schema=[Field(name="gate_load", dtype=Int32, description="A feature declared without its transform or suite.")],
    source=batch_source("hourly_gate_load"),
    online=True,
    description="A view added for the test.",
    owner=OWNER,
    tags=TAGS,
)
"""


def _copy(tmp_path: Path) -> Path:
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def _in_repo(repo: Path, tmp_path: Path, code: str) -> dict:
    env = {"FTI_FEATURE_REPO": str(repo), "FTI_HOME": str(tmp_path / "home")}
    out = run([sys.executable, "-c", code], env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBLEMS = (
    "import json; from feature_repo.jobs import pipeline; from fti.ground import featurestore; "
    "print(json.dumps({'problems': pipeline.contract_problems(), "
    "'online': featurestore.online_views()}))"
)


def test_the_contract_is_what_the_declarations_say():
    key = contract(get_settings())
    assert key.feature_service == "flight_delay_v1"
    assert key.label_view == "flight_labels" and key.label == "dep_delayed_15"
    assert key.flight_key == "flight_id"
    # online views: exactly the batch views declared online=True, labels never among them
    assert sorted(key.online_views) == sorted(v.name for v in key.views if v.online)
    assert key.label_view not in key.online_views
    # the service reads every online view, and each feature's null rule comes from its tags
    assert set(key.service_views) == set(key.online_views)
    assert key.features["wind_gust_mph"].present_share == 0.0
    assert key.features["temp_f"].present_share == 0.9
    assert (
        key.format_flight_key(
            year=2013, month=1, day=1, carrier="UA", flight=1545, origin="EWR", hour=5, minute=15
        )
        == "20130101-UA1545-EWR-0515"
    )


def test_the_real_repository_keeps_its_contract():
    from feature_repo.jobs import pipeline

    assert pipeline.contract_problems(get_settings()) == []


def test_a_view_without_transform_or_suite_is_named(tmp_path):
    repo = _copy(tmp_path)
    source = repo / "feature_views.py"
    text = source.read_text().replace(
        "from data_sources import (", "from data_sources import (\n    batch_source,"
    )
    source.write_text(text + NEW_VIEW)
    got = _in_repo(repo, tmp_path, PROBLEMS)
    problems = " | ".join(got["problems"])
    assert "feature view 'hourly_gate_load' has no transform" in problems
    assert "feature view 'hourly_gate_load' has no suite" in problems
    # declared online, so it is materialized: nothing else lists the online views
    assert "hourly_gate_load" in got["online"]


def test_a_transform_or_suite_without_a_declared_view_is_named(tmp_path):
    repo = _copy(tmp_path)
    text = (repo / "feature_views.py").read_text()
    start = text.index("plane_attributes = FeatureView(")
    end = text.index("flight_labels = FeatureView(")
    (repo / "feature_views.py").write_text(text[:start] + text[end:])
    services = (repo / "feature_services.py").read_text()
    (repo / "feature_services.py").write_text(
        services.replace("    plane_attributes,\n", "").replace("        plane_attributes,\n", "")
    )
    got = _in_repo(repo, tmp_path, PROBLEMS)
    problems = " | ".join(got["problems"])
    assert "transform 'plane_attributes' produces a view Feast does not declare" in problems
    assert "suite 'plane_attributes' checks a view Feast does not declare" in problems
    assert "plane_attributes" not in got["online"]


def test_a_broken_contract_stops_the_feature_job_before_spark(tmp_path):
    repo = _copy(tmp_path)
    source = repo / "feature_views.py"
    text = source.read_text().replace(
        "from data_sources import (", "from data_sources import (\n    batch_source,"
    )
    source.write_text(text + NEW_VIEW)
    code = (
        "import json, datetime as d; from feature_repo.jobs import features\n"
        "try:\n features.run(d.datetime(2013,1,1,5,tzinfo=d.UTC), d.datetime(2013,1,2,5,tzinfo=d.UTC))\n"
        "except Exception as e:\n print(json.dumps({'error': type(e).__name__, 'message': str(e)}))\n"
        "from pyspark.sql import SparkSession\n"
        "print(json.dumps({'session': SparkSession.getActiveSession() is not None}))"
    )
    env = {"FTI_FEATURE_REPO": str(repo), "FTI_HOME": str(tmp_path / "home")}
    lines = run([sys.executable, "-c", code], env=env).stdout.strip().splitlines()
    error, spark = json.loads(lines[-2]), json.loads(lines[-1])
    assert error["error"] == "ContractError"
    assert "'hourly_gate_load' has no transform" in error["message"]
    assert spark == {"session": False}  # stopped before any Spark session was started


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ('"label": "dep_delayed_15"', '"label": "no_such_feature"'),
            "has no feature 'no_such_feature'",
        ),
        (
            ('tags={**TAGS, "kind": "label", "label": "dep_delayed_15"}', "tags=TAGS"),
            "exactly one feature view tagged kind=label",
        ),
    ],
)
def test_a_contract_that_cannot_be_read_says_what_to_change(tmp_path, change, message):
    repo = _copy(tmp_path)
    path = repo / "feature_views.py"
    assert change[0] in path.read_text()
    path.write_text(path.read_text().replace(*change))
    code = (
        "import json; from fti.ground import contract\n"
        "try:\n contract.contract()\nexcept contract.ContractError as e:\n"
        " print(json.dumps({'message': str(e)}))"
    )
    assert message in _in_repo(repo, tmp_path, code)["message"]
