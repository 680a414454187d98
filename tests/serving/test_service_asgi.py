"""The BentoML service in process: its ASGI app with a test client (BentoML's own testing
recipe), on the session's SQLite online store, before any `bentoml serve` test."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DAYS

from fti.ground.settings import get_settings
from serving import features, model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(two_days, served_model):
    import os

    from starlette.testclient import TestClient

    from serving.service import FlightDelayService

    assert all(state == "success" for _, state in two_days)
    saved = os.environ.get("FTI_SERVING_MODEL_DIR")
    os.environ["FTI_SERVING_MODEL_DIR"] = str(served_model)
    get_settings.cache_clear()
    try:
        with TestClient(app=FlightDelayService.to_asgi()) as test_client:
            yield test_client
    finally:
        if saved is None:
            os.environ.pop("FTI_SERVING_MODEL_DIR", None)
        else:
            os.environ["FTI_SERVING_MODEL_DIR"] = saved
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def flights(real_tables):
    f = real_tables[0]
    day = DAYS[-1] + (DAYS[1] - DAYS[0])
    f = f[(f.month == day.month) & (f.day == day.day) & f.tailnum.notna()].head(8)
    return [
        {
            "carrier": r.carrier,
            "flight": int(r.flight),
            "origin": r.origin,
            "dest": r.dest,
            "tailnum": r.tailnum,
            "sched_dep_ts": f"{r.year:04d}-{r.month:02d}-{r.day:02d}T"
            f"{int(r.sched_dep_time) // 100:02d}:{int(r.sched_dep_time) % 100:02d}:00",
        }
        for r in f.itertuples()
    ]


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text


def test_predictions_are_the_models_on_the_online_features(client, flights, served_model):
    r = client.post("/predict", json=flights)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [p["model_version"] for p in got] == ["test-1"] * len(flights)
    settings = get_settings()
    df = features.online_features(flights, settings)
    expected = model.load(served_model).predict_proba(df)
    np.testing.assert_allclose([p["delay_probability"] for p in got], expected, atol=1e-6)
    assert [p["flight_id"] for p in got] == features.flight_id(df, settings.timezone)


def test_bad_input_names_the_field(client, flights):
    bad = {**flights[0], "carrier": "ZZ"}
    r = client.post("/predict", json=bad)
    assert r.status_code == 400
    assert "carrier" in r.json()["error"] and "unknown carrier code 'ZZ'" in r.json()["error"]
    r = client.post("/predict", content=b"carrier=UA", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_the_schema_lists_the_known_codes_read_when_it_is_made(client):
    from serving.service import codes

    schema = client.get("/docs.json").json()
    text = str(schema)
    for carrier in ("UA", "AA", "DL"):
        assert carrier in codes().carriers and f"'{carrier}'" in text
    assert "'EWR'" in text and "'JFK'" in text
