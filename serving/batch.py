"""Batch scoring: the flights scheduled for a day, scored before the day starts.

``score_day`` is one DAG task's work. The day's schedule (carrier, flight number, origin,
destination, tail number, scheduled departure; never the outcome) comes from the source data,
with the same ``flight_id`` and ``sched_dep_ts`` the feature job gives the training set's rows.
Every flight gets the features of ``flight_delay_v1`` as of the prediction instant, the start
of the day in local time (the end of the last published interval), from the offline store
through the training set's own point-in-time join, so a batch row holds what the online store
serves at that instant. The champion model scores them, Great Expectations checks the
predictions, and only then is ``predictions/date=<day>/part-0.parquet`` replaced (write, then
rename): a rerun replaces the day's file, a failed validation leaves the earlier one in place.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fti.ground import files, source
from fti.ground.contract import contract
from fti.ground.dates import as_day, day_start
from fti.ground.featurestore import TS_PREFIX, online_views
from fti.ground.settings import Settings, get_settings
from serving.model import THRESHOLD, UNREGISTERED  # the service's: batch and online agree

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
#: the schedule's columns, as the feature job names them
SCHEDULE_COLUMNS = ["flight_id", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_ts"]
#: columns of a predictions file that are not features
PREDICTION_COLUMNS = [
    *SCHEDULE_COLUMNS,
    "prediction_ts",
    "probability",
    "predicted_class",
    "model_version",
]


def predictions_path(settings: Settings, day: date | str) -> Path:
    """The predictions file of ``day``."""
    return settings.predictions_dir / f"date={as_day(day).isoformat()}" / files.PART_FILE


def validation_report_dir(settings: Settings, day: date | str, run_id: str) -> Path:
    """Where the validation of ``day``'s predictions in run ``run_id`` keeps its report."""
    return (
        settings.reports_dir
        / "validation"
        / "predictions"
        / settings.model_name
        / as_day(day).isoformat()
        / files.safe_name(run_id)
    )


def latest_feature_day(settings: Settings | None = None) -> date:
    """The latest local day published for every online feature view (the DAG scores the next)."""
    settings = settings or get_settings()
    latest = []
    for view in online_views(settings):
        days = files.partition_days(settings.offline_dir / view)
        if not days:
            raise FileNotFoundError(
                f"no {view} partitions under {settings.offline_dir}: run the feature pipeline first"
            )
        latest.append(days[-1])
    return date.fromisoformat(min(latest))


def scheduled_flights(day: date | str, settings: Settings | None = None) -> pd.DataFrame:
    """The flights scheduled for local ``day``, from the source data: schedule columns only.

    ``flight_id`` and ``sched_dep_ts`` are built exactly as the feature job builds them for the
    label view: the flight key in the format the flight entity declares (``fti.ground.contract``)
    from the raw table's own fields, and ``time_hour`` (the scheduled hour, UTC) plus
    ``minute``. Flights cancelled later are scheduled too, so they are here.
    """
    import pandas as pd

    settings = settings or get_settings()
    day = as_day(day)
    key = contract(settings)
    src = source.read_table(settings, "flights")
    f = src[(src["year"] == day.year) & (src["month"] == day.month) & (src["day"] == day.day)]
    fields = [f[c].tolist() for c in key.flight_key_fields]
    ids = [
        key.flight_key_format % tuple(int(v) if isinstance(v, float) else v for v in parts)
        for parts in zip(*fields, strict=True)
    ]
    sched = (
        pd.to_datetime(f["time_hour"], utc=True)
        + pd.to_timedelta(f["minute"].astype("int64"), unit="min")
    ).astype("datetime64[us, UTC]")
    out = pd.DataFrame(
        {
            "flight_id": pd.Series(ids, index=f.index, dtype=object),
            "carrier": f["carrier"],
            "flight": f["flight"].astype("int32"),
            "origin": f["origin"],
            "dest": f["dest"],
            "tailnum": f["tailnum"],
            "sched_dep_ts": sched,
        }
    )
    return out.sort_values(["sched_dep_ts", "flight_id"], ignore_index=True)


def features_as_of(flights: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """``flights`` with every feature of ``flight_delay_v1`` as of the instant ``as_of``.

    The join looks one microsecond before ``as_of``: feature rows stamped exactly at a local
    midnight belong to the interval that starts there, which is not published yet when the day
    is scored, so a rerun after that day is published still gives the same features.
    """
    import pandas as pd

    from training.dataset import as_of_stamp, point_in_time_join

    spine = flights.copy()
    # the training rows' rule too (training.dataset.load_spine): the same features by construction
    spine["event_timestamp"] = as_of_stamp(pd.Series(pd.Timestamp(as_of), index=spine.index))
    out = point_in_time_join(spine, settings)
    out["prediction_ts"] = pd.Timestamp(as_of).tz_convert("UTC")
    out["prediction_ts"] = out["prediction_ts"].astype("datetime64[us, UTC]")
    return out.drop(columns="event_timestamp")


def predict_proba(model_dir: Path, df: pd.DataFrame) -> np.ndarray:
    """Delay probabilities of the model in ``model_dir`` (the scorer the tests replace): the
    service's own loading and scoring, so batch and online answers agree."""
    from serving import model

    return model.load(model_dir).predict_proba(df)


def expectations(n_flights: int, start: datetime, end: datetime, ts_columns: list[str]) -> list:
    """The predictions' contract: one row per scheduled flight, a probability in [0, 1] and a
    class for each, no nulls where a prediction is, no feature from after the prediction."""
    import great_expectations.expectations as gxe

    out = [
        gxe.ExpectTableRowCountToEqual(value=n_flights),
        gxe.ExpectColumnValuesToBeUnique(column="flight_id"),
        gxe.ExpectColumnValuesToBeBetween(column="probability", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="predicted_class", value_set=[0, 1]),
        gxe.ExpectColumnValuesToBeBetween(
            column="sched_dep_ts", min_value=start, max_value=end, strict_max=True
        ),
    ]
    for c in (
        "flight_id",
        "carrier",
        "flight",
        "origin",
        "dest",
        "sched_dep_ts",
        "prediction_ts",
        "probability",
        "predicted_class",
        "model_version",
    ):
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=c))
    for c in ts_columns:
        out.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="prediction_ts",
                column_B=c,
                ignore_row_if="either_value_is_missing",
            )
        )
    return out


def score_day(
    day: date | str,
    run_id: str = "manual",
    settings: Settings | None = None,
    model_dir: Path | None = None,
    model_version: str | None = None,
) -> dict:
    """Score the flights scheduled for ``day`` and publish them as the day's predictions.

    Without ``model_dir`` the registry's champion is downloaded and its version recorded;
    with it, ``model_version`` (default ``unregistered``) is recorded. Raises
    ``fti.ground.validation.ValidationFailed`` (nothing published) when the predictions break their
    contract. Returns the file, its row count, the model version, the prediction instant, the
    mean probability, the predicted-delay share and the validation report's location.
    """
    from fti.ground import history
    from fti.ground.validation import validate_frame

    settings = settings or get_settings()
    day = as_day(day)
    start = day_start(day, settings.timezone)
    end = day_start(day + timedelta(days=1), settings.timezone)
    before = (day - timedelta(days=1)).isoformat()
    missing = [
        v
        for v in online_views(settings)
        if not files.day_partition(settings.offline_dir, v, before).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"cannot score {day}: the features of {before} are not published for "
            f"{', '.join(missing)}; run the feature pipeline for {before} first"
        )

    flights = scheduled_flights(day, settings)
    if flights.empty:
        raise ValueError(f"no flights scheduled for {day} in the source data")
    df = features_as_of(flights, start, settings)

    with tempfile.TemporaryDirectory(prefix="fti-model-") as tmp:
        if model_dir is None:
            from training import registry

            champion = registry.champion(settings)
            if champion is None:
                raise LookupError(
                    f"no champion model for {settings.model_name!r} in the registry: "
                    "run the training pipeline until a model is promoted"
                )
            model_version = str(champion.version)
            model_dir = registry.download(champion, Path(tmp), settings)
        probability = predict_proba(Path(model_dir), df)

    df["probability"] = probability.astype("float64")
    df["predicted_class"] = (df["probability"] >= THRESHOLD).astype("int64")
    df["model_version"] = model_version or UNREGISTERED
    features = [c for c in df.columns if c not in PREDICTION_COLUMNS]
    df = df[[*PREDICTION_COLUMNS, *features]]

    ts_columns = [c for c in df.columns if c.startswith(TS_PREFIX)]
    report = validate_frame(
        df,
        boundary=f"predictions {day}",
        expectations=expectations(len(flights), start, end, ts_columns),
        report_dir=validation_report_dir(settings, day, run_id),
    )
    # the day's predictions against the recent days' (volume per origin, null shares, the
    # mean probability and inputs): a dark origin halts, the rest warns (fti.ground.history)
    profile = {"predictions": history.profile(df, slices=("origin",))}
    against, notes = history.validate_day(
        settings,
        "predictions",
        day,
        profile,
        validation_report_dir(settings, day, run_id).parent / f"{files.safe_name(run_id)}-history",
    )
    for note in notes:
        log.info("%s", note)
    warned = history.settle(against, f"predictions {day}", settings)
    path = predictions_path(settings, day)
    # replaced by a rename: readers see the old file or the new one, never half
    files.write_frame(df, path)
    history.keep(settings, "predictions", day, profile)
    result = {
        "day": day.isoformat(),
        "path": str(path),
        "rows": len(df),
        "model_version": df["model_version"].iloc[0],
        "prediction_ts": start.isoformat(),
        "mean_probability": round(float(df["probability"].mean()), 6),
        "predicted_delayed_share": round(float(df["predicted_class"].mean()), 6),
        "validation_report": str(report.report_page) if report.report_page else None,
        "warned": warned,
        "history": notes,
    }
    log.info(
        "scored %s flights of %s with model %s: %s", len(df), day, result["model_version"], path
    )
    return result
