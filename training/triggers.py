"""Why the training pipeline trains: a schedule, an alarm, or a person; never a feature day alone.

The training DAG is scheduled on three assets: every published feature interval
(``fti_features``), sustained drift (``fti_drift``) and a performance alarm
(``fti_performance``), both emitted by the inference pipeline. :func:`decide` turns the events
a run consumed into a reason, or into a skip:

- ``performance``: the live model's realised ROC AUC fell below its promise (serving.monitoring);
- ``drift``: inputs drifted for ``FTI_DRIFT_PERSIST_DAYS`` scored days in a row;
- ``schedule``: the features reached ``FTI_TRAINING_EVERY_DAYS`` days (7) past the last training's
  data (data days, not wall-clock ones: a replay trains weekly in replayed time), or no model
  was trained yet; ``FTI_TRAINING_EVERY_DAYS=0`` trains on every feature day;
- ``manual``: a run started by hand (no events), through its ``through`` parameter.

A feature event alone, inside the week, trains nothing: the run is skipped saying when the next
scheduled training is due. Events that arrive while a training runs wait for one queued run
(``max_active_runs=1``: Airflow queues one run per DAG, and that run consumes every event
queued since the last), so a backfill of many days queues at most one training, which trains
through the latest day they name. The reason travels with the run and is kept on the model
version (tag ``trigger``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from fti.ground import runs
from fti.ground.assets import DRIFT, FEATURES, PERFORMANCE
from fti.ground.dates import as_day
from fti.ground.settings import Settings, get_settings

SCHEDULE, DRIFT_ALARM, PERFORMANCE_ALARM, MANUAL = "schedule", "drift", "performance", "manual"


@dataclass(frozen=True)
class Trigger:
    """Why a run trains (``reason`` None: it does not), through which day, in words."""

    reason: str | None
    through: date | None
    why: str

    def as_dict(self) -> dict:
        """For XCom and the logs."""
        return {
            "reason": self.reason,
            "through": self.through.isoformat() if self.through else None,
            "why": self.why,
        }


def last_trained_through(settings: Settings) -> date | None:
    """The last day of the newest registered version's training data (its ``data_interval``
    tag), None before the first."""
    from training import registry

    days = []
    for mv in registry.versions(settings):
        interval = (mv.tags or {}).get("data_interval", "")
        if ".." in interval:
            days.append(as_day(interval.split("..")[1]))
    return max(days) if days else None


def decide(
    events: Mapping | None,
    params: Mapping | None = None,
    settings: Settings | None = None,
    last_trained: date | None | str = "registry",
) -> Trigger:
    """The reason the run with triggering ``events`` trains (see the module docstring);
    ``last_trained``: the last day trained on so far (default: read from the registry)."""
    settings = settings or get_settings()
    alarms = runs.event_extras(events, PERFORMANCE)
    drifts = runs.event_extras(events, DRIFT)
    features = runs.event_extras(events, FEATURES)
    if not (alarms or drifts or features):
        through = runs.requested_day(params, "through")
        return Trigger(MANUAL, through, "started by hand")
    through = runs.latest_day(
        events, {FEATURES: "last_day", DRIFT: "features_through", PERFORMANCE: "features_through"}
    )
    if alarms:
        a = alarms[-1]
        return Trigger(
            PERFORMANCE_ALARM,
            through,
            f"performance alarm: {a.get('why') or 'realised ROC AUC below the promise'}",
        )
    if drifts:
        d = drifts[-1]
        return Trigger(DRIFT_ALARM, through, f"sustained drift: {d.get('why') or d.get('day')}")
    if last_trained == "registry":
        last_trained = last_trained_through(settings)
    every = settings.training_every_days
    if last_trained is None:
        # a first training needs train, validation and test days (and, at the day's start as
        # prediction time, the data set's first day only feeds the second)
        need = settings.training_test_days + settings.training_validation_days + 2
        have = (through - settings.first_day).days + 1
        if have < need:
            return Trigger(None, through, f"features of {have} days: a first training needs {need}")
        return Trigger(SCHEDULE, through, "no model trained yet")
    behind = (through - last_trained).days
    if every == 0 or behind >= every:
        return Trigger(
            SCHEDULE,
            through,
            f"scheduled: features through {through}, {behind} days past the last training's "
            f"data ({last_trained}; every {every} days)",
        )
    return Trigger(
        None,
        through,
        f"features through {through}: {behind} of {every} days past the last training's data "
        f"({last_trained}); the next scheduled training is due with the features of "
        f"{last_trained.fromordinal(last_trained.toordinal() + every)}",
    )
