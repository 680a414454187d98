"""Training/serving parity: for a sample of flights, the features the online service uses equal
the offline features batch scoring used for the same entities and instant, and the service's
probability equals the batch probability to 1e-6."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from helpers import post_json

from fti.ground import featurestore
from fti.ground.settings import get_settings
from serving import batch, features

pytestmark = pytest.mark.slow
DAY = date(2013, 1, 3)  # the day after the two the session's feature pipeline published


def test_online_service_matches_batch_scoring(two_days, served_model, start_service, tmp_path):
    base = get_settings()
    # predictions and reports in a private home; the offline and online stores are the session's
    (tmp_path / "home").mkdir()
    s = base.model_copy(update={"home": tmp_path / "home", "data_root": tmp_path / "data"})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "offline").symlink_to(base.offline_dir, target_is_directory=True)
    (tmp_path / "home" / "feast").symlink_to(base.feast_dir, target_is_directory=True)
    scored = batch.score_day(DAY, "parity", s, model_dir=served_model, model_version="test-1")
    preds = pd.read_parquet(scored["path"])
    sample = preds[preds["tailnum"].notna()].sample(60, random_state=3).reset_index(drop=True)
    flights = [
        {
            "carrier": r.carrier,
            "flight": int(r.flight),
            "origin": r.origin,
            "dest": r.dest,
            "tailnum": r.tailnum,
            "sched_dep_ts": r.sched_dep_ts.tz_convert(s.timezone).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for r in sample.itertuples()
    ]

    # the features: the online store's rows, as of the service's clock, equal the offline join's
    online = features.online_features(flights, s)
    assert online["event_timestamp"].iloc[0] == sample["prediction_ts"].iloc[0] - pd.Timedelta(
        microseconds=1
    )
    cols = features.service_spec(featurestore.feature_store(s)).feature_columns
    assert len(cols) >= 20
    for c in cols:
        a, b = online[c].reset_index(drop=True), sample[c].reset_index(drop=True)
        same = (a.isna() & b.isna()) | (a == b)
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            same |= np.isclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9)
        assert same.all(), (c, pd.concat([a, b], axis=1)[~same].head())

    # the probabilities: the running service against the batch file
    service = start_service(
        {"FTI_SERVING_MODEL_DIR": str(served_model), "FTI_HOME": str(base.home)}
    )
    service.wait_ready()
    status, body = post_json(f"{service.url}/predict", flights, timeout=60)
    assert status == 200, body
    assert [p["flight_id"] for p in body] == sample["flight_id"].tolist()
    assert {p["model_version"] for p in body} == {"test-1"}
    online_p = np.array([p["delay_probability"] for p in body])
    np.testing.assert_allclose(online_p, sample["probability"].to_numpy(), rtol=0, atol=1e-6)
