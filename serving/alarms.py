"""The inference pipeline's two alarms, each a reason to retrain (training.triggers).

- **Performance**: the live model's realised ROC AUC over the last ``FTI_PERFORMANCE_WINDOW_DAYS``
  labelled days (7; its batch predictions of those days pooled with their labels) against the
  ROC AUC its gate promised (the candidate's test-window ROC AUC, kept on the version as
  ``gate.numbers``): an alarm when it falls more than ``FTI_PERFORMANCE_ALARM_MARGIN`` (0.03)
  below, over at least ``FTI_PERFORMANCE_MIN_ROWS`` labelled flights. The promise and the
  delivery are comparable because both are measured with the features as of each day's start
  (docs/architecture.md, "One prediction time"), which is why the alarm needs
  ``FTI_TRAINING_AS_OF=day_start``: with the ``horizon`` rule the promise is higher than any
  serving path can deliver, and the alarm says so instead of firing every day.
- **Drift**: a feature drifted (the daily report's ``drifted``) on each of the last
  ``FTI_DRIFT_PERSIST_DAYS`` scored days (3), so that one storm day does not retrain the model.

Every alarm raised is appended to ``monitoring_dir/alarms.jsonl`` (the platform page's alarm
history); :func:`check` returns both verdicts for the day.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

from fti.ground.dates import as_day
from fti.ground.settings import Settings, get_settings

log = logging.getLogger(__name__)

ALARMS_FILE = "alarms.jsonl"


def _report(settings: Settings, day: date) -> dict | None:
    path = settings.monitoring_dir / day.isoformat() / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def promised_roc_auc(version: str, settings: Settings) -> float | None:
    """The test-window ROC AUC the gate measured for registered ``version`` (None when the
    version or its numbers are not in the registry)."""
    from training import registry

    try:
        mv = registry.model_version(version, settings)
    except LookupError:
        return None
    try:
        numbers = json.loads((mv.tags or {}).get("gate.numbers") or "{}")
    except ValueError:
        return None
    value = (numbers.get("candidate") or {}).get("roc_auc")
    return float(value) if isinstance(value, (int, float)) else None


def rolling_performance(day: date | str, settings: Settings) -> dict[str, Any] | None:
    """The live model's realised metrics over the labelled days up to ``day`` (the last
    ``performance_window_days`` days whose labels landed and whose predictions it made): pooled
    predictions and labels. None when no such day is there."""
    import pandas as pd

    from serving.batch import predictions_path
    from serving.monitoring import labels_path
    from training.train import metrics

    day = as_day(day)
    report = _report(settings, day)
    if report is None or not report.get("performance"):
        return None
    version = str(report["model_version"])
    label = _label(settings)
    frames, days = [], []
    d = day
    while len(days) < settings.performance_window_days and (day - d).days < 4 * 7:
        r = _report(settings, d)
        if (
            r is not None
            and str(r.get("model_version")) == version
            and r.get("performance")
            and predictions_path(settings, d).exists()
            and labels_path(settings, d).exists()
        ):
            p = pd.read_parquet(predictions_path(settings, d), columns=["flight_id", "probability"])
            y = pd.read_parquet(labels_path(settings, d), columns=["flight_id", label])
            frames.append(p.merge(y, on="flight_id", how="inner"))
            days.append(d.isoformat())
        d -= timedelta(days=1)
    joined = pd.concat(frames, ignore_index=True)
    joined = joined[joined[label].notna()]
    out = metrics(joined[label].to_numpy().astype(int), joined["probability"].to_numpy())
    return {"model_version": version, "days": sorted(days), "labelled": len(joined), **out}


def _label(settings: Settings) -> str:
    from fti.ground.contract import contract

    return contract(settings).label


def performance_alarm(day: date | str, settings: Settings) -> dict[str, Any]:
    """The performance verdict for ``day`` (the latest labelled day): ``alarm`` True when the
    rolling ROC AUC is below the promise by more than the margin over enough flights."""
    if settings.training_as_of != "day_start":
        return {
            "alarm": False,
            "why": "the gate's promise is not what serving can deliver with "
            f"FTI_TRAINING_AS_OF={settings.training_as_of} (training rows stamped before the "
            "serving paths' prediction time): no performance alarm; day_start makes them equal",
        }
    rolling = rolling_performance(day, settings)
    if rolling is None:
        return {"alarm": False, "why": "no labelled day of the live model yet"}
    promise = promised_roc_auc(rolling["model_version"], settings)
    out = {"rolling": rolling, "promised_roc_auc": promise}
    margin = settings.performance_alarm_margin
    if promise is None:
        return {**out, "alarm": False, "why": "the live model's promise is not in the registry"}
    if rolling["labelled"] < settings.performance_min_rows:
        return {
            **out,
            "alarm": False,
            "why": f"{rolling['labelled']} labelled flights (< {settings.performance_min_rows})",
        }
    gap = promise - rolling["roc_auc"]
    alarm = gap > margin
    why = (
        f"rolling ROC AUC {rolling['roc_auc']:.4f} of v{rolling['model_version']} over "
        f"{len(rolling['days'])} labelled days ({rolling['labelled']} flights) vs its promise "
        f"{promise:.4f}: {gap:+.4f} below (margin {margin})"
    )
    return {**out, "alarm": alarm, "why": why}


def drift_alarm(day: date | str, settings: Settings) -> dict[str, Any]:
    """The drift verdict for scored ``day``: the features drifted on each of the last
    ``drift_persist_days`` scored days (consecutive), ``alarm`` True when there is one."""
    day = as_day(day)
    k = settings.drift_persist_days
    persistent: set[str] | None = None
    for i in range(k):
        r = _report(settings, day - timedelta(days=i))
        drifted = set((r or {}).get("drifted") or [])
        persistent = drifted if persistent is None else persistent & drifted
        if r is None or not persistent:
            return {"alarm": False, "features": [], "why": f"no feature drifted {k} days in a row"}
    features = sorted(persistent)
    return {
        "alarm": True,
        "features": features,
        "why": f"{', '.join(features)} drifted on each of the {k} scored days to {day}",
    }


def check(scored_day: date | str, labelled_day: date | str, settings: Settings | None = None):
    """Both verdicts: drift for the scored day, performance through the latest labelled day;
    each alarm raised is appended to the alarm history."""
    settings = settings or get_settings()
    out = {
        "drift": drift_alarm(scored_day, settings),
        "performance": performance_alarm(labelled_day, settings),
    }
    for kind, verdict in out.items():
        if verdict["alarm"]:
            log.warning("%s alarm on %s: %s", kind, scored_day, verdict["why"])
            record(settings, as_day(scored_day), kind, verdict["why"])
    return out


def record(settings: Settings, day: date, kind: str, why: str) -> None:
    """Append one alarm to the history."""
    from datetime import UTC, datetime

    path = settings.monitoring_dir / ALARMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"day": day.isoformat(), "kind": kind, "why": why, "at": datetime.now(UTC).isoformat()}
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")


def history(settings: Settings) -> list[dict[str, Any]]:
    """Every alarm raised, oldest first."""
    path = settings.monitoring_dir / ALARMS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
