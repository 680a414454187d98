"""The platform's materialization (only the interval's day partitions read) leaves the online
store holding exactly what Feast's own ``materialize`` leaves there, day after day."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from helpers import DAYS

from fti.ground import featurestore
from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings

pytestmark = pytest.mark.slow


def _home(tmp_path, name: str) -> Settings:
    """A home of its own (registry, online store) over the session's offline store."""
    base = get_settings()
    root = tmp_path / name
    (root / "data").mkdir(parents=True)
    (root / "data" / "offline").symlink_to(base.offline_dir, target_is_directory=True)
    settings = Settings(home=root / "home", data_root=root / "data")
    featurestore.apply(settings)
    return settings


def _rows(settings: Settings) -> dict[str, set]:
    """Every row of every online view's SQLite table, but the time it was written."""
    out = {}
    with contextlib.closing(sqlite3.connect(settings.sqlite_online_path)) as con:
        for view in contract(settings).online_views:
            table = f"{settings.feast_project}_{view}"
            out[view] = set(
                con.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{table}"')
            )
    return out


def test_the_online_store_holds_what_feast_materialize_leaves(two_days, tmp_path):
    feast_home, ours = _home(tmp_path, "feast"), _home(tmp_path, "ours")
    zone = ZoneInfo(get_settings().timezone)
    for day in DAYS:
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        end = start + timedelta(days=1)
        featurestore.materialize_with_feast(start, end, feast_home)
        written = featurestore.materialize(start, end, ours)
        assert set(written) == set(contract(ours).online_views)
        assert all(n > 0 for n in written.values()), written
        # after each day, the same rows, values and feature timestamps as Feast's
        expected, got = _rows(feast_home), _rows(ours)
        for view in expected:
            assert expected[view], view
            assert got[view] == expected[view], view
    # and the registry records the same materialized intervals (what the service's clock reads)
    f_store, o_store = featurestore.feature_store(feast_home), featurestore.feature_store(ours)
    for view in contract(ours).online_views:
        assert (
            f_store.get_feature_view(view).materialization_intervals
            == o_store.get_feature_view(view).materialization_intervals
        )


def test_an_interval_reads_only_its_own_days(two_days, tmp_path, monkeypatch):
    """Materializing the first day opens that day's partition files and, since Feast's bounds
    include the interval's end (the next local midnight), the next day's; no other."""
    import pyarrow.dataset

    opened = []
    real = pyarrow.dataset.dataset

    def recording(source, *args, **kwargs):
        opened.extend(str(p) for p in source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pyarrow.dataset, "dataset", recording)
    settings = _home(tmp_path, "one-day")
    zone = ZoneInfo(settings.timezone)
    start = datetime(DAYS[0].year, DAYS[0].month, DAYS[0].day, tzinfo=zone)
    written = featurestore.materialize(start, start + timedelta(days=1), settings)
    assert all(n > 0 for n in written.values()), written
    views = contract(settings).online_views
    days = {p.split("/date=")[1].split("/")[0] for p in opened}
    assert days == {DAYS[0].isoformat(), DAYS[1].isoformat()}, opened
    assert len(opened) == 2 * len(views)
