"""What a run works on comes from its triggering asset events (fti.ground.runs)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from fti.ground import runs
from fti.ground.assets import DRIFT, FEATURES, MODEL


def _events(mapping):
    """A stand-in for Airflow's triggering-events accessor: assets -> events with extras."""
    return {asset: [SimpleNamespace(extra=e) for e in extras] for asset, extras in mapping.items()}


def test_the_features_event_names_the_days_it_published():
    start = datetime(2013, 3, 9, 5, tzinfo=UTC)  # local midnight, the day before DST
    end = datetime(2013, 3, 11, 4, tzinfo=UTC)
    extra = runs.published(start, end, "America/New_York")
    assert extra == {
        "first_day": "2013-03-09",
        "last_day": "2013-03-10",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def test_a_run_works_on_the_latest_day_its_events_name():
    events = _events(
        {
            FEATURES: [{"last_day": "2013-01-05"}, {"last_day": "2013-01-07"}],
            DRIFT: [{"features_through": "2013-01-06"}],
        }
    )
    assert runs.latest_day(events, {FEATURES: "last_day"}) == date(2013, 1, 7)
    assert runs.latest_day(events, {DRIFT: "features_through"}) == date(2013, 1, 6)
    # an event that does not name the field, or no event at all: nothing decided
    assert runs.latest_day(_events({MODEL: [{}]}), {MODEL: "trained_through"}) is None
    assert runs.latest_day(None, {FEATURES: "last_day"}) is None


def test_a_manual_run_names_its_day_in_its_parameters():
    assert runs.requested_day({"day": "2013-02-03"}, "day") == date(2013, 2, 3)
    assert runs.requested_day({"day": None}, "day") is None
    assert runs.requested_day(None, "day") is None


def test_fail_fast_turns_a_failed_check_into_a_task_failure_without_retries():
    from airflow.sdk.exceptions import AirflowFailException

    from fti.ground.contract import ContractError
    from fti.ground.validation import ValidationFailed, ValidationReport

    def bad_data():
        raise ValidationFailed(ValidationReport("raw/flights 2013-01-01", False, 3, 10))

    with pytest.raises(AirflowFailException, match="raw/flights 2013-01-01"):
        runs.fail_fast(bad_data)()
    with pytest.raises(AirflowFailException, match="no transform"):
        runs.fail_fast(lambda: (_ for _ in ()).throw(ContractError("view 'x' has no transform")))()
    with pytest.raises(KeyError):  # anything else keeps its type: Airflow retries it
        runs.fail_fast(lambda: {}["x"])()
    assert runs.fail_fast(lambda a, b=1: a + b)(1, b=2) == 3
