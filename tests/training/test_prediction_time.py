"""One prediction time for training and serving (issue 15, point 1): a training-set row holds
exactly the features batch scoring gives the same flight as of the start of its day (and the
online service gives what batch scoring gives: tests/serving/test_parity.py), so the gate's test
metrics are what the serving paths deliver."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from fti.ground.settings import get_settings
from serving import batch
from training import dataset

DAY = date(2013, 1, 2)  # the second day the session's feature pipeline published


def test_training_rows_hold_the_features_batch_scoring_gives_the_same_flights(two_days):
    settings = get_settings().model_copy(update={"training_as_of": "day_start"})
    spine = dataset.load_spine(settings, first=DAY, last=DAY)
    training = dataset.join_features(spine, settings).set_index("flight_id")
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=ZoneInfo(settings.timezone))
    scored = batch.features_as_of(batch.scheduled_flights(DAY, settings), start, settings)
    scored = scored.set_index("flight_id")
    sample = training.sample(300, random_state=11).index
    assert sample.isin(scored.index).all()
    features = [
        c
        for c in training.columns
        if c in scored.columns and c not in ("event_timestamp", "sched_dep_ts", settings_label())
    ]
    assert len(features) >= 28  # every feature of the service and its feature rows' timestamps
    a, b = training.loc[sample, features], scored.loc[sample, features]
    for c in features:
        x, y = a[c], b[c]
        same = (x.isna() & y.isna()) | (x == y)
        if pd.api.types.is_float_dtype(x):
            same |= np.isclose(x.astype(float), y.astype(float), rtol=0, atol=0)
        assert same.all(), (c, x[~same].head(3).tolist(), y[~same].head(3).tolist())
    # and not because both are empty: most rows have their delay history and weather
    assert a.notna().mean().mean() > 0.8


def settings_label() -> str:
    from fti.ground.contract import contract

    return contract().label
