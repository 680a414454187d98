"""Fixtures of the platform page's tests: a platform that ran (the session's feature pipeline
runs, a registered champion and a rejected candidate, the inference pipeline through Airflow
with the service live, a monitored day with labels), a feature view left stale and a raw
validation failed on purpose; and the page's app with Airflow's real authentication."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import free_port

from fti.ground.settings import get_settings

#: the online view left behind on purpose (the others get two more days materialized)
STALE_VIEW = "plane_attributes"


def _materialize_ahead(settings, days: int) -> tuple[datetime, datetime]:
    """Materialize the ``days`` after the latest materialized interval into every online view
    but ``STALE_VIEW``, which is left that far behind."""
    from fti.ground import featurestore

    store = featurestore.feature_store(settings)
    end = max(e for v in store.list_feature_views() for _, e in v.materialization_intervals)
    start, stop = end, end + timedelta(days=days)
    views = [v for v in featurestore.online_views() if v != STALE_VIEW]
    store.materialize(start_date=start, end_date=stop, feature_views=views)
    return start.astimezone(UTC), stop.astimezone(UTC)


def _fail_raw_validation(base, settings) -> dict:
    """A raw flights partition with impossible distances, validated like the pipeline does
    (report kept, nothing raised): the latest raw validation of flights is then a failure."""
    import pandas as pd

    from feature_repo.suites import raw
    from fti.ground import files
    from fti.ground.validation import validate_frame

    days = sorted(p.name.removeprefix("date=") for p in (base.raw_dir / "flights").glob("date=*"))
    day = datetime.strptime(days[-1], "%Y-%m-%d").date()
    df = pd.read_parquet(files.day_partition(base.raw_dir, "flights", day))
    df.loc[df.index[:3], "distance"] = -100
    folder = (
        settings.reports_dir / "validation" / "raw" / "flights" / day.isoformat() / "on_purpose"
    )
    report = validate_frame(
        df,
        boundary=f"raw/flights {day}",
        expectations=raw.flights(day),
        report_dir=folder,
        raise_on_failure=False,
    )
    assert not report.success
    return {"day": day.isoformat(), "failed": [f.describe() for f in report.failed]}


@pytest.fixture(scope="session")
def platform(two_days, snapshot, tmp_path_factory):
    """A private home over the session's data: copies of the Feast registry, online store and
    the feature pipeline's validation reports (so the stale view and the failed validation made
    here stay here), its own MLflow, predictions, monitoring and service; Airflow's metadata DB
    is the session's, so the runs made here sit beside the feature pipeline's."""
    from fti.apps.demo import run_inference
    from serving import batch, rollout
    from training import gate, registry, train

    base = get_settings()
    root = tmp_path_factory.mktemp("platform")
    home, data = root / "home", root / "data"
    (data / "training_sets").mkdir(parents=True)
    (data / "offline").symlink_to(base.offline_dir, target_is_directory=True)
    shutil.copytree(base.feast_dir, home / "feast", ignore=shutil.ignore_patterns("*.yaml"))
    for boundary in ("raw", "features"):
        shutil.copytree(
            base.reports_dir / "validation" / boundary, home / "reports" / "validation" / boundary
        )
    shutil.copy(snapshot, data / "training_sets" / snapshot.name)

    # its own port too: the service started here serves until the session ends, beside the
    # services the other tests start on the session's port
    env = {
        "FTI_HOME": str(home),
        "FTI_DATA_ROOT": str(data),
        "FTI_AIRFLOW_HOME": str(base.airflow_dir),
        "FTI_SERVING_PORT": str(free_port()),
    }
    # the variables hold while the platform is built and, through platform_env, inside the
    # tests that use it; never for the rest of the session's tests
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    get_settings.cache_clear()
    s = get_settings()
    try:
        model_dir = root / "model"
        results = train.train(snapshot, model_dir, epochs=2)
        lineage = {"training_set.hash": snapshot.stem, "data_interval": "2013-01-01..2013-01-02"}
        _, champion = registry.register(model_dir, results, lineage, s)
        registry.record_decision(
            str(champion),
            gate.Decision(True, ["first model"]),
            {"candidate": results["test"], "baseline": None, "champion": None},
            s,
        )
        _, rejected = registry.register(model_dir, results, lineage, s)
        registry.record_decision(
            str(rejected),
            gate.Decision(False, ["does not beat the champion by 0.002"]),
            {
                "candidate": results["test"],
                "baseline": results["validation"],
                "champion": results["test"],
                "champion_version": str(champion),
            },
            s,
        )

        # the latest day with labels scored first: the inference run then monitors it with its
        # realised accuracy, beside the next day's drift
        labelled = batch.latest_feature_day(s)
        batch.score_day(labelled, "platform_test", s)
        i = run_inference(s)
        assert i["state"] == "success" and i["failed"] == [], i
        assert rollout.live(s)["model_version"] == str(champion)

        stale = _materialize_ahead(s, days=2)
        failed = _fail_raw_validation(base, s)
        built = SimpleNamespace(
            settings=s,
            env=env,
            stale_view=STALE_VIEW,
            home=home,
            champion=str(champion),
            rejected=str(rejected),
            inference=i,
            stale=stale,
            failed=failed,
            labelled=labelled.isoformat(),
            results=results,
        )
    except BaseException:
        rollout.stop_local(s)
        raise
    finally:
        mp.undo()
        get_settings.cache_clear()
    try:
        yield built
    finally:
        rollout.stop_local(s)


@pytest.fixture(autouse=True)
def platform_env(request, monkeypatch):
    """Inside a test that uses ``platform``: its variables (the page reads the settings on
    every request); other tests keep the session's."""
    if "platform" in request.fixturenames:
        for k, v in request.getfixturevalue("platform").env.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def auth_manager(airflow_db):
    """Airflow's configured auth manager (the simple one), initialised as the API server does."""
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="session")
def token(auth_manager) -> str:
    """A real JWT for the admin user, signed by Airflow's auth manager."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture
def client(auth_manager):
    """The page's app as the API server mounts it (under /fti), in process."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fti.apps.status import sections
    from fti.apps.status.app import create_app

    sections.warm_up()  # as the plugin does when the API server starts
    root = FastAPI()
    root.mount("/fti", create_app())
    with TestClient(root) as c:
        yield c


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def env_without(*keys: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys}
