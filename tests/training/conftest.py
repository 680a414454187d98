"""Fixtures of the training tests: a real training set built from the feature pipeline's
output for 2013-01-01..02 (the session's `two_days` fixture)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from fti.settings import get_settings
from training import dataset


@pytest.fixture(scope="session")
def snapshot(two_days, tmp_path_factory):
    spine = dataset.load_spine(get_settings(), first=date(2013, 1, 1), last=date(2013, 1, 2))
    df = dataset.point_in_time_join(spine, get_settings())
    local = df["sched_dep_ts"].dt.tz_convert("America/New_York")
    # by time, never shuffled: day 1 trains, day 2's morning validates, its afternoon tests
    df["split"] = np.where(local.dt.day == 1, "train",
                           np.where(local.dt.hour < 14, "validation", "test"))
    path, _ = dataset.write_snapshot(df, tmp_path_factory.mktemp("snap"))
    return path
