"""docs/adding-a-feature.md, done in a temporary copy of the repository: the new view's
declaration, transform and suite (the document's own code blocks, and no other edit), two days
of the feature pipeline, a training set, and the service; the new features reach the training
set and the online lookup."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow

DOC = ROOT / "docs" / "adding-a-feature.md"
VIEW, FEATURE = "origin_departures_hourly", "origin_sched_departures_1h"


def doc_blocks() -> dict[str, str]:
    """The document's code blocks by the file their info string names (```python <file>)."""
    blocks = re.findall(r"```python (\S+)\n(.*?)```", DOC.read_text(), flags=re.S)
    return {path: code for path, code in blocks}


def follow_the_document(repo: Path) -> None:
    """What docs/adding-a-feature.md tells a data engineer to write, in ``repo``."""
    blocks = doc_blocks()
    assert set(blocks) == {
        "feature_repo/data_sources.py",
        "feature_repo/feature_views.py",
        "feature_repo/jobs/features.py",
        "feature_repo/suites/features.py",
    }
    for name in (
        "feature_repo/data_sources.py",
        "feature_repo/feature_views.py",
        "feature_repo/suites/features.py",
    ):
        path = repo / name
        path.write_text(path.read_text() + "\n\n" + blocks[name])
    # the transform goes in the views section, before the job's own code
    jobs = repo / "feature_repo" / "jobs" / "features.py"
    marker = "# --------------------------------------------------------------------------- the job"
    text = jobs.read_text()
    assert text.count(marker) == 1
    jobs.write_text(text.replace(marker, blocks["feature_repo/jobs/features.py"] + "\n\n" + marker))
    # the service's list of features gains the view (the document says so in words)
    services = repo / "feature_repo" / "feature_services.py"
    text = services.read_text()
    assert "features=[\n" in text
    text = text.replace(
        "from feature_views import (\n", f"from feature_views import (\n    {VIEW},\n"
    )
    services.write_text(text.replace("features=[\n", f"features=[\n        {VIEW},\n", 1))


SCRIPT = r"""
import json, sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from feature_repo.jobs import pipeline
from fti.ground.contract import contract
from fti.ground.settings import get_settings

VIEW, FEATURE = sys.argv[1], sys.argv[2]
settings = get_settings()
assert str(settings.feature_repo).startswith(sys.argv[3]), settings.feature_repo  # the copy's
pipeline.check_contract(settings)
key = contract(settings)
out = {"online_views": key.online_views, "service_views": list(key.service_views)}

zone = ZoneInfo(settings.timezone)
for day in (date(2013, 1, 1), date(2013, 1, 2)):
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    pipeline.land_interval(start, end, settings)
    pipeline.validate_raw(start, end, "test", settings)
    staged = pipeline.compute(start, end, settings)
    pipeline.validate_features(start, end, staged["staging"], "test", settings)
    pipeline.publish(start, end, staged["staging"], settings)
    pipeline.apply_registry(settings)
    pipeline.materialize(start, end, settings)
    out.setdefault("staged_rows", []).append(staged["rows"][VIEW])

# the training set
import pandas as pd
from training import pipeline as training, train
built = training.build_training_set("test", settings, through=date(2013, 1, 2))
snap = pd.read_parquet(built["snapshot"])
out["training_set_columns"] = list(snap.columns)
out["training_present_share"] = float(snap[FEATURE].notna().mean())
out["training_values"] = sorted(set(int(v) for v in snap[FEATURE].dropna()))[:5]

# a model on it (day 1 trains, day 2's morning validates, its afternoon tests)
from training import dataset
local = snap["sched_dep_ts"].dt.tz_convert(settings.timezone)
snap["split"] = np.where(local.dt.day == 1, "train", np.where(local.dt.hour < 14, "validation", "test"))
path, _ = dataset.write_snapshot(snap, settings.data_dir / "training_sets")
model_dir = settings.data_dir / "model"
train.train(path, model_dir, epochs=1)
from serving import model as served
served.write_version(model_dir, "added-view")
out["model_inputs"] = served.load(model_dir).preprocessor.numeric

# the online lookup, and the service in process (its ASGI app)
flights = pd.read_parquet(settings.offline_dir / key.label_view / "date=2013-01-02")
row = flights[flights["tailnum"].notna()].sort_values("flight_id").iloc[-1]
flight = {"carrier": row["carrier"], "flight": int(row["flight"]), "origin": row["origin"],
          "dest": row["dest"], "tailnum": row["tailnum"],
          "sched_dep_ts": (row["sched_dep_ts"].tz_convert(settings.timezone) + pd.Timedelta(hours=24))
          .strftime("%Y-%m-%dT%H:%M:%S")}
from serving import features
online = features.online_features([flight], settings)
out["online_value"] = None if pd.isna(online[FEATURE].iloc[0]) else int(online[FEATURE].iloc[0])
out["online_origin"] = flight["origin"]

import os
os.environ["FTI_SERVING_MODEL_DIR"] = str(model_dir)
get_settings.cache_clear()
from starlette.testclient import TestClient
from serving.service import FlightDelayService
with TestClient(app=FlightDelayService.to_asgi()) as client:
    r = client.post("/predict", json=flight)
    out["predict_status"] = r.status_code
    out["predict"] = r.json()
# what the offline store holds for the view at the instant the service is as of
last = pd.read_parquet(settings.offline_dir / VIEW / "date=2013-01-02")
last = last[last["origin"] == flight["origin"]].sort_values("event_timestamp").iloc[-1]
out["offline_last_value"] = int(last[FEATURE])
print(json.dumps(out, default=str))
"""


def test_a_view_added_as_the_document_says_reaches_training_and_serving(tmp_path, good_source):
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        repo,
        ignore=shutil.ignore_patterns(
            ".venv", ".fti", ".git", "__pycache__", "docker", "bench", "tests", ".*_cache"
        ),
    )
    follow_the_document(repo)
    env = {
        "PYTHONPATH": str(repo),
        "FTI_HOME": str(tmp_path / "home"),
        "FTI_SOURCE_DIR": str(good_source),
        "FTI_SPARK_MASTER": "local[2]",
    }
    # run from the copy: its packages, settings and feature repo are the ones imported
    full = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, VIEW, FEATURE, str(repo)],
        env=full,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    # the contract found the view from its declaration alone: online, and in the service
    assert VIEW in out["online_views"] and VIEW in out["service_views"]
    # the feature pipeline computed, validated and published it: 3 airports x 24 hours a day
    assert out["staged_rows"] == [72, 72]
    # it reached the training set, with values, and the model reads it
    assert FEATURE in out["training_set_columns"]
    assert f"_feature_ts__{VIEW}" in out["training_set_columns"]
    assert out["training_present_share"] > 0.95
    assert out["training_values"] and max(out["training_values"]) > 0
    assert FEATURE in out["model_inputs"]
    # and the online lookup: the value the offline store holds for the last materialized hour
    assert out["online_value"] == out["offline_last_value"]
    assert out["predict_status"] == 200, out["predict"]
    assert out["predict"][0]["model_version"] == "added-view"
    assert 0 <= out["predict"][0]["delay_probability"] <= 1
