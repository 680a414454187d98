"""The feature partitions, the predictions and the training set against their own history
(issue 13, point 4), and the report's findings: each failed or warned check's observed value
next to its band and the reference days it came from (point 8)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from feature_repo.jobs import pipeline, quarantine
from fti.ground import files, history
from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings
from fti.ground.validation import ValidationFailed

pytestmark = pytest.mark.slow

DAY = date(2013, 1, 2)
ZONE = ZoneInfo("America/New_York")
START = datetime(2013, 1, 2, tzinfo=ZONE)
END = START + timedelta(days=1)


def _staged(tmp_path: Path, change=None) -> Path:
    """The session's published partitions of 2013-01-02 as a staging folder, one view changed."""
    staging = tmp_path / "staging"
    for view in contract().view_names:
        df = pd.read_parquet(files.day_partition(get_settings().offline_dir, view, DAY))
        if change:
            df = change(view, df)
        out = staging / view / f"date={DAY}" / "part-00000.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(out, index=False)
    return staging


def _with_history(settings: Settings, days: int = 8) -> None:
    """``days`` days before 2013-01-02 that looked like it."""
    views = {
        v: history.profile(pd.read_parquet(files.day_partition(get_settings().offline_dir, v, DAY)))
        for v in contract().view_names
    }
    for k in range(1, days + 1):
        history.keep(settings, "features", DAY - timedelta(days=k), views)


def _in_hours(view: str, df: pd.DataFrame) -> pd.DataFrame:
    """A transform that started writing the route's mean delay in hours."""
    if view == "route_delay_history":
        df = df.assign(route_dep_delay_mean_28d=df["route_dep_delay_mean_28d"] / 60)
    return df


def test_feature_partitions_are_checked_against_their_recent_days(two_days, tmp_path):
    settings = Settings(home=tmp_path / "home")
    # without enough history: the static suites only, and said
    result = pipeline.validate_features(START, END, str(_staged(tmp_path)), "r0", settings)
    assert result["warned"] == []
    assert any("features/route_delay_history 2013-01-02: 0 days" in n for n in result["history"])
    shutil.rmtree(settings.data_dir / "profiles")

    _with_history(settings)
    result = pipeline.validate_features(START, END, str(_staged(tmp_path)), "r1", settings)
    assert result["warned"] == [] and result["history"] == []
    # the day became history
    kept = history.profile_path(history.root(settings, "features"), "route_delay_history", DAY)
    assert json.loads(kept.read_text())["rows"] == len(
        pd.read_parquet(files.day_partition(get_settings().offline_dir, "route_delay_history", DAY))
    )

    # a unit change passes every static range and is caught against the history: it warns
    result = pipeline.validate_features(
        START, END, str(_staged(tmp_path, _in_hours)), "r2", settings
    )
    (line,) = [w for w in result["warned"] if "route_dep_delay_mean_28d" in w]
    assert "features.history.within_band" in line
    assert "route_delay_history: mean of route_dep_delay_mean_28d" in line
    assert "over 8 days 2012-12-25..2013-01-01" in line
    # the report shows the observed value next to the band and the days it came from
    folder = pipeline.report_dir(settings, "features", "history", "2013-01-02", "r2")
    found = json.loads((folder / "result.json").read_text())["findings"]
    (mean,) = [f for f in found if "route_dep_delay_mean_28d" in f["metric"]]
    assert mean["check"] == "features.history.within_band" and mean["severity"] == "warn"
    low, high = (float(x) for x in mean["expected"].split(".."))
    assert not low <= float(mean["observed"]) <= high
    assert mean["reference"] == "8 days 2012-12-25..2013-01-01"
    page = (folder / "report.html").read_text()
    assert 'id="fti-findings"' in page and "8 days 2012-12-25..2013-01-01" in page
    assert mean["observed"] in page and mean["expected"] in page

    # configured to halt, the same check stops the day and quarantines it
    strict = settings.model_copy(update={"validation_halt": "features.history.*"})
    with pytest.raises(ValidationFailed, match="route_dep_delay_mean_28d"):
        pipeline.validate_features(START, END, str(_staged(tmp_path, _in_hours)), "r3", strict)
    assert list(quarantine.open_days(strict)) == [DAY]


def test_the_training_set_is_checked_against_the_previous_one(snapshot, tmp_path):
    from training.pipeline import _against_previous

    settings = Settings(home=tmp_path / "home")
    df = pd.read_parquet(snapshot)
    reports = tmp_path / "reports" / "t1"
    first = _against_previous(df, date(2013, 1, 2), reports, settings)
    assert first["warned"] == [] and "static checks only" in first["history"][0]
    same = _against_previous(df, date(2013, 1, 3), tmp_path / "reports" / "t2", settings)
    assert same == {"warned": [], "history": []}
    # a join that lost the weather: every weather feature null in the new set
    broken = df.copy()
    broken["temp_f"] = float("nan")
    got = _against_previous(broken, date(2013, 1, 4), tmp_path / "reports" / "t3", settings)
    (line,) = [w for w in got["warned"] if "temp_f" in w]
    assert "training_set.history.within_band" in line and "null share of temp_f = 1" in line
    assert "over 2013-01-03" in line  # the previous training set
    # configured to halt, the same set (built again through 2013-01-04) stops training
    strict = settings.model_copy(update={"validation_halt": "training_set.history.*"})
    with pytest.raises(ValidationFailed, match="temp_f"):
        _against_previous(broken, date(2013, 1, 4), tmp_path / "reports" / "t4", strict)
