"""The BentoML service over HTTP (a real `bentoml serve` process on the session's SQLite online
store): predictions, health, metrics, the OpenAPI schema, and bad input answered with a 4xx
that names the field, never a 5xx."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DAYS, http, post_json

from fti.ground.settings import get_settings
from serving import features, model

pytestmark = pytest.mark.slow

MAX_BATCH = get_settings().serving_max_batch


@pytest.fixture(scope="module")
def service(two_days, served_model, start_service):
    assert all(state == "success" for _, state in two_days)
    svc = start_service({"FTI_SERVING_MODEL_DIR": str(served_model)})
    svc.wait_ready()
    return svc


@pytest.fixture(scope="module")
def flights(real_tables):
    """Real flights of the day after the materialized two days, as /predict takes them."""
    f = real_tables[0]
    day = DAYS[-1] + (DAYS[1] - DAYS[0])
    f = f[(f.month == day.month) & (f.day == day.day) & f.tailnum.notna()].head(40)
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


def test_one_flight_gets_one_prediction(service, flights):
    status, body = post_json(f"{service.url}/predict", flights[0])
    assert status == 200, body
    (p,) = body
    assert 0 <= p["delay_probability"] <= 1
    assert p["predicted_class"] == int(p["delay_probability"] >= 0.5)
    assert p["model_version"] == "test-1"
    assert p["oldest_feature_age_s"] >= 0
    assert p["flight_id"].startswith("20130103-" + flights[0]["carrier"])
    assert p["features_as_of"] == "2013-01-03T04:59:59.999999Z"  # replay: end of 2013-01-02, local


def test_a_batch_is_scored_as_the_model_scores_the_online_features(service, flights, served_model):
    # when a list of flights is posted
    status, body = post_json(f"{service.url}/predict", flights)
    assert status == 200, body
    # then each prediction is the model's probability for that flight's online features
    df = features.online_features(flights, get_settings())
    expected = model.load(served_model).predict_proba(df)
    assert [p["flight_id"] for p in body] == list(features.flight_id(df))
    np.testing.assert_allclose([p["delay_probability"] for p in body], expected, rtol=0, atol=1e-6)
    ages = [p["oldest_feature_age_s"] for p in body]
    assert ages == [None if np.isnan(a) else a for a in df[features.AGE_COLUMN]]


def _with(base: dict, **changes) -> dict:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not ...}


BAD = {
    "malformed JSON": (lambda f: '{"carrier": "UA", "flight": 15', 400, ["body", "Invalid JSON"]),
    "missing field": (
        lambda f: _with(f, sched_dep_ts=...),
        400,
        ["sched_dep_ts", "Field required"],
    ),
    "extra field": (lambda f: _with(f, gate="C1"), 400, ["gate", "Extra inputs"]),
    "wrong type, number": (lambda f: _with(f, flight="1545"), 400, ["flight", "integer"]),
    "wrong type, string": (lambda f: _with(f, carrier=42), 400, ["carrier", "string"]),
    "wrong type, time": (lambda f: _with(f, sched_dep_ts="tomorrow"), 400, ["sched_dep_ts"]),
    "unknown carrier": (
        lambda f: _with(f, carrier="ZZ"),
        400,
        ["carrier", "unknown carrier code 'ZZ'"],
    ),
    "not a NYC origin": (lambda f: _with(f, origin="BOS"), 400, ["origin", "unknown origin 'BOS'"]),
    "unknown airport": (
        lambda f: _with(f, dest="XXX"),
        400,
        ["dest", "unknown airport code 'XXX'"],
    ),
    "before the data set": (
        lambda f: _with(f, sched_dep_ts="2012-12-31T23:59:00"),
        400,
        ["sched_dep_ts", "outside the supported range"],
    ),
    "after the data set": (
        lambda f: _with(f, sched_dep_ts="2014-01-01T00:00:00-05:00"),
        400,
        ["sched_dep_ts", "outside the supported range"],
    ),
    "empty list": (lambda f: [], 400, ["flights", "at least 1 item"]),
    "batch over the maximum": (
        lambda f: [f] * (MAX_BATCH + 1),
        400,
        ["flights", f"at most {MAX_BATCH} items"],
    ),
    "one bad flight in a list": (
        lambda f: [f, f, f, _with(f, dest="XXX")],
        400,
        ["flights[3].dest"],
    ),
    "neither a flight nor a list": (
        lambda f: 42,
        400,
        ["body", "a flight (JSON object) or a list"],
    ),
    "not JSON at all": (
        lambda f: ("carrier=UA", "application/x-www-form-urlencoded"),
        415,
        ["Content-Type", "application/json"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_4xx_naming_the_field_and_the_service_stays_up(service, flights, case):
    make, want_status, want_text = BAD[case]
    payload = make(flights[0])
    content_type = "application/json"
    if isinstance(payload, tuple):
        payload, content_type = payload
    body = payload if isinstance(payload, str) else json.dumps(payload)
    status, answer = http("POST", f"{service.url}/predict", body, content_type=content_type)
    assert status == want_status, answer
    message = json.loads(answer)["error"]
    for text in want_text:
        assert text in message, message
    # the service is still up and still answers a good request
    assert http("GET", f"{service.url}/healthz")[0] == 200
    assert post_json(f"{service.url}/predict", flights[1])[0] == 200


def test_health_readiness_metrics_and_openapi(service, flights):
    assert http("GET", f"{service.url}/healthz")[0] == 200
    assert http("GET", f"{service.url}/readyz")[0] == 200
    post_json(f"{service.url}/predict", flights[:3])
    post_json(f"{service.url}/predict", [])

    status, text = http("GET", f"{service.url}/metrics")
    assert status == 200
    metrics = text.decode()
    for line in [
        'fti_predict_requests_total{status="200"}',
        'fti_predict_requests_total{status="400"}',
        "fti_predict_latency_seconds_bucket",
        "fti_prediction_probability_bucket",
        "fti_oldest_feature_age_seconds_bucket",
        "fti_predict_flights_total",
    ]:
        assert line in metrics, line
    scored = [
        ln for ln in metrics.splitlines() if ln.startswith("fti_prediction_probability_count")
    ]
    assert float(scored[0].split()[-1]) >= 3

    status, text = http("GET", f"{service.url}/docs.json")
    assert status == 200
    spec = json.loads(text)
    request = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert {"$ref": "#/components/schemas/Flight"} in request["oneOf"]
    flight = spec["components"]["schemas"]["Flight"]
    assert set(flight["required"]) == {
        "carrier",
        "flight",
        "origin",
        "dest",
        "tailnum",
        "sched_dep_ts",
    }
    for name, prop in flight["properties"].items():
        assert prop.get("description") and prop.get("examples"), name
    assert flight["additionalProperties"] is False
    prediction = spec["components"]["schemas"]["Prediction"]["properties"]
    assert {"delay_probability", "predicted_class", "model_version", "oldest_feature_age_s"} <= set(
        prediction
    )


def test_example_in_the_schema_is_a_real_flight_the_service_scores(service):
    spec = json.loads(http("GET", f"{service.url}/docs.json")[1])
    example = spec["components"]["schemas"]["Flight"]["example"]
    assert example == {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "tailnum": "N14228",
        "sched_dep_ts": "2013-01-01T05:15:00",
    }
    status, body = post_json(f"{service.url}/predict", example)
    assert status == 200, body
    assert body[0]["flight_id"] == "20130101-UA1545-EWR-0515"


def test_property_based_requests_from_the_openapi_schema_find_no_5xx(service):
    """Schemathesis generates requests from the served schema, valid and invalid ones."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings, strategies
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{service.url}/docs.json")
    operation = schema["/predict"]["POST"]
    cases = strategies.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    answers: list[int] = []

    @seed(20130101)
    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def request(case):
        response = case.call(base_url=service.url, timeout=10)
        answers.append(response.status_code)
        assert response.status_code < 500, (case.body, response.status_code, response.text)

    request()
    assert len(answers) >= 500
    assert any(400 <= a < 500 for a in answers)
    assert http("GET", f"{service.url}/healthz")[0] == 200


def test_any_valid_flight_is_scored(service):
    """Flights drawn from the data set's codes and any minute of 2013 (DST changes included)
    all get a prediction."""
    from datetime import datetime

    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    from serving.service import codes

    known = codes()
    flight = st.fixed_dictionaries(
        {
            "carrier": st.sampled_from(sorted(known.carriers)),
            "flight": st.integers(1, 9999),
            "origin": st.sampled_from(sorted(known.origins)),
            "dest": st.sampled_from(sorted(known.airports)),
            "tailnum": st.from_regex(r"\A[A-Z0-9]{2,8}\Z"),
            "sched_dep_ts": st.datetimes(datetime(2013, 1, 1), datetime(2013, 12, 31, 23, 59)).map(
                lambda t: t.replace(second=0, microsecond=0).isoformat()
            ),
        }
    )
    answered: list[int] = []

    @seed(2013)
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(payload=st.one_of(flight, st.lists(flight, min_size=1, max_size=5)))
    def request(payload):
        status, body = post_json(f"{service.url}/predict", payload)
        answered.append(status)
        assert status == 200, (payload, body)
        assert len(body) == (len(payload) if isinstance(payload, list) else 1)
        for p in body:
            assert 0 <= p["delay_probability"] <= 1
            assert p["predicted_class"] == int(p["delay_probability"] >= 0.5)

    request()
    assert len(answered) == 100


def test_without_a_model_the_service_is_alive_but_not_ready(two_days, start_service, tmp_path):
    (tmp_path / "no-model").mkdir()
    svc = start_service({"FTI_SERVING_MODEL_DIR": str(tmp_path / "no-model")})
    assert http("GET", f"{svc.url}/healthz")[0] == 200
    status, text = http("GET", f"{svc.url}/readyz")
    assert status == 503 and b"no model loaded" in text and b"model.pt" in text, text
    status, body = post_json(
        f"{svc.url}/predict",
        {
            "carrier": "UA",
            "flight": 1545,
            "origin": "EWR",
            "dest": "IAH",
            "tailnum": "N14228",
            "sched_dep_ts": "2013-01-03T05:15:00",
        },
    )
    assert status == 503 and "no model loaded" in body["error"], body
    svc.stop()
