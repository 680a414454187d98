"""The shadow challenger (issue 14, point 2): named by the gate or by hand, scored beside the
champion on the same requests off the response path and never answered, its answers in the
inference log; compared with the champion on labelled days; promoted by the (opt-in) rule after
N winning days."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from helpers import next_day_flight

from fti.ground import files
from fti.ground.contract import contract
from fti.ground.settings import Settings
from serving import challenger, features, inference_log
from serving import model as served
from training import gate, registry

TOKEN = "test-admin-token"
GOOD = {"roc_auc": 0.70, "log_loss": 0.5, "calibration_error": 0.02}


# ------------------------------------------------------------------ the gate names it


def test_the_gate_names_a_challenger_only_for_a_candidate_short_of_the_margin_alone():
    champion, baseline = {"roc_auc": 0.70}, {"roc_auc": 0.65}
    short = gate.decide(GOOD, baseline, champion)
    assert not short.promote and short.challenger
    assert "challenger" in short.describe()
    # below a threshold, below the baseline, a champion without numbers: not a challenger
    weak = {**GOOD, "calibration_error": 0.5}
    assert not gate.decide(weak, baseline, champion).challenger
    assert not gate.decide(GOOD, {"roc_auc": 0.8}, champion).challenger
    assert not gate.decide(GOOD, baseline, {"roc_auc": float("nan")}).challenger
    # promoted: the champion, not a challenger
    better = gate.decide({**GOOD, "roc_auc": 0.75}, baseline, champion)
    assert better.promote and not better.challenger


def _register(settings: Settings, model_dir, n: int) -> list[str]:
    results = {"validation": GOOD, "test": GOOD, "samples_per_second": 1.0}
    return [str(registry.register(model_dir, results, {}, settings)[1]) for _ in range(n)]


@pytest.fixture
def registered(served_model, tmp_path):
    """A private registry holding three versions of the served model: v1 the champion."""
    s = Settings(home=tmp_path / "home", data_root=tmp_path / "data")
    versions = _register(s, served_model, 3)
    registry.record_decision(versions[0], gate.Decision(True, ["first"]), {}, s)
    return s, versions


def test_the_registry_keeps_the_challenger_alias(registered):
    s, (v1, v2, v3) = registered
    shadowing = gate.Decision(False, ["short of the margin"], challenger=True)
    registry.record_decision(v2, shadowing, {}, s)
    assert str(registry.challenger(s).version) == v2
    assert str(registry.champion(s).version) == v1
    # by hand: another version; never the champion, never an unknown version
    registry.set_challenger(v3, s)
    assert str(registry.challenger(s).version) == v3
    with pytest.raises(ValueError, match="is the champion"):
        registry.set_challenger(v1, s)
    with pytest.raises(LookupError, match="no version '99'"):
        registry.set_challenger("99", s)
    assert str(registry.challenger(s).version) == v3
    # a new champion ends the shadowing (it was measured against the old champion)
    registry.record_decision(v2, gate.Decision(True, ["better"]), {}, s)
    assert registry.challenger(s) is None and str(registry.champion(s).version) == v2


# ------------------------------------------------------------------ labelled days and the rule


def _day(settings: Settings, day: str, champion: str, shadow: str, challenger_wins: bool):
    """A day of logged requests (300 flights) and the flights' labels: the winner's
    probabilities follow the labels, the other's are noise."""
    c = contract(settings)
    rng = np.random.default_rng(int(day.replace("-", "")))
    n = 300
    y = rng.integers(0, 2, n)
    ids = [f"{day.replace('-', '')}-UA{i}-EWR-0600" for i in range(n)]
    informed = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.1, n), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, n)
    champ, chall = (noise, informed) if challenger_wins else (informed, noise)
    logged = pd.DataFrame(
        {
            "flight_id": ids,
            "model_version": champion,
            "probability": champ,
            "challenger_version": shadow,
            "challenger_probability": chall,
        }
    )
    files.write_frame(logged, inference_log.log_dir(settings) / f"date={day}" / "part-0.parquet")
    labels = pd.DataFrame({"flight_id": ids, c.label: y.astype("int64")})
    files.write_frame(labels, files.day_partition(settings.offline_dir, c.label_view, day))
    # what the day's monitoring report keeps
    files.write_json(
        settings.monitoring_dir / day / "metrics.json",
        {"day": day, "challenger": challenger.compare_day(day, settings)},
    )


def test_champion_and_challenger_are_compared_on_labelled_days_and_the_rule_is_opt_in(registered):
    s, (v1, v2, _) = registered
    registry.set_challenger(v2, s)
    _day(s, "2013-01-05", v1, v2, challenger_wins=True)
    compared = challenger.compare_day("2013-01-05", s)
    (pair,) = compared["pairs"]
    assert (pair["champion_version"], pair["challenger_version"], pair["rows"]) == (v1, v2, 300)
    assert pair["winner"] == "challenger"
    assert pair["challenger"]["roc_auc"] > pair["champion"]["roc_auc"] + 0.2
    # no labels yet for a logged day: said so, nothing compared
    early = pd.read_parquet(inference_log.log_dir(s) / "date=2013-01-05")
    early["flight_id"] = early["flight_id"].str.replace("20130105", "20130109")
    files.write_frame(early, inference_log.log_dir(s) / "date=2013-01-09" / "part-0.parquet")
    assert challenger.compare_day("2013-01-09", s)["labels"] == "labels not landed yet"
    # no challenger on the day: nothing to compare
    assert challenger.compare_day("2013-01-20", s) is None

    # off by default: however many days it wins
    _day(s, "2013-01-06", v1, v2, challenger_wins=True)
    _day(s, "2013-01-07", v1, v2, challenger_wins=True)
    assert challenger.apply_rule(s) is None
    rule = s.model_copy(update={"challenger_promote_after_days": 3})
    # on: a lost day breaks the run of wins
    _day(s, "2013-01-06", v1, v2, challenger_wins=False)
    assert challenger.apply_rule(rule) is None
    assert str(registry.champion(s).version) == v1
    _day(s, "2013-01-06", v1, v2, challenger_wins=True)
    promoted = challenger.apply_rule(rule)
    assert promoted["version"] == v2 and promoted["replaces"] == v1
    assert promoted["days"] == ["2013-01-05", "2013-01-06", "2013-01-07"]
    assert str(registry.champion(s).version) == v2 and registry.challenger(s) is None
    tags = registry.model_version(v2, s).tags
    assert (
        "challenger rule" in tags["promoted_by"] and "2013-01-05..2013-01-07" in tags["promoted_by"]
    )
    assert challenger.apply_rule(rule) is None  # nothing shadows now


def test_a_day_with_too_few_rows_counts_for_neither(registered):
    s, (v1, v2, _) = registered
    few = s.model_copy(update={"challenger_min_rows": 301})
    _day(s, "2013-01-05", v1, v2, challenger_wins=True)
    (pair,) = challenger.compare_day("2013-01-05", few)["pairs"]
    assert pair["winner"] is None and "too few labelled rows" in pair["verdict"]


# ------------------------------------------------------------------ in the running service


def _admin(url: str, body: dict, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(f"{url}/admin/challenger", json=body, headers=headers, timeout=60)
    return r.status_code, r.json()


@pytest.mark.slow
def test_the_challenger_scores_every_request_off_the_response_path_and_is_never_answered(
    data_root, served_model, second_model, nan_model, start_service, real_tables
):
    svc = start_service(
        {
            "FTI_SERVING_MODEL_DIR": str(served_model),
            "FTI_SERVING_ADMIN_TOKEN": TOKEN,
            "FTI_DATA_ROOT": str(data_root),
            "FTI_INFERENCE_LOG_FLUSH_S": "0.5",
        }
    )
    svc.wait_ready()
    flights = [next_day_flight(real_tables, k) for k in range(5)]
    answers: list = []
    stop = threading.Event()

    def client():
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                r = c.post(f"{svc.url}/predict", json=flights)
                answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        # without the token: 401, nothing shadows
        status, _ = _admin(svc.url, {"version": "test-2", "model_dir": str(second_model)}, None)
        assert status == 401
        status, body = _admin(svc.url, {"version": "test-2", "model_dir": str(second_model)})
        assert status == 200, body
        assert (body["live"], body["challenger"], body["previous"]) == ("test-1", "test-2", None)
        time.sleep(2)
        # a challenger that fails the check is refused, and the one shadowing stays
        status, body = _admin(svc.url, {"version": "test-nan", "model_dir": str(nan_model)})
        assert status == 422 and "not finite" in body["error"], body
        assert body["challenger"] == "test-2"
        time.sleep(2)
        status, body = _admin(svc.url, {"version": None})
        assert status == 200 and body["challenger"] is None and body["previous"] == "test-2"
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        svc.stop()  # graceful: the log is written whole

    # every answer came from the champion
    assert len(answers) > 50 and {s for s, _ in answers} == {200}
    assert {p["model_version"] for _, body in answers for p in body} == {"test-1"}
    logged = inference_log.read(Settings(data_root=data_root))
    assert len(logged) == 5 * len(answers)
    assert set(logged["model_version"]) == {"test-1"}
    shadowed = logged[logged["challenger_version"].notna()]
    assert set(shadowed["challenger_version"]) == {"test-2"}
    # shadowing started and stopped: rows before, during and after it
    assert 0 < len(shadowed) < len(logged)
    # the logged features give back each model's logged answer: what was scored is what is kept
    # (to float32's precision: the model computes in float32, and a row scored in another batch
    # can differ in its last bit)
    frame = shadowed.drop(columns=["challenger_version", "challenger_probability"])
    again = served.load(second_model).predict_proba(frame)
    np.testing.assert_allclose(shadowed["challenger_probability"], again, rtol=0, atol=1e-6)
    champion = served.load(served_model).predict_proba(frame)
    np.testing.assert_allclose(shadowed["probability"], champion, rtol=0, atol=1e-6)
    # and the answers the clients got are the champion's
    answered = {p["flight_id"]: p["delay_probability"] for _, body in answers for p in body}
    for flight_id, p in shadowed.groupby("flight_id")["probability"].first().items():
        assert answered[flight_id] == pytest.approx(p, abs=1e-12)
    assert features.AGE_COLUMN in logged  # the features' ages travel with the rows
