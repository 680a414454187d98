"""Each day of a table against its own recent history, at every data boundary.

A **profile** per table and day (:func:`profile`): row volume, per-slice coverage (for raw
flights each carrier's and each origin's flights, for weather each station's hours), each
column's null share and each numeric column's mean. It is kept under a boundary's profile
folder (raw days: ``raw/_profiles/<table>/date=D.json``; feature views and predictions:
``DATA_ROOT/profiles/<boundary>/_profiles/<view>/date=D.json``) once the day passes, so a halted
day never becomes history. The training set is compared with the previous training set's
profile the same way (a window of one).

A new day is compared with the **reference window**: the profiles of the ``history_days``
(default 28) days before it; row volumes (the table's and each slice's) with the same weekday
of the window (they follow the week), when it holds at least three. Every band comes from the
window's own variability: the median plus or minus ``history_k`` (default 6) robust standard
deviations (1.4826 x the median absolute deviation), widened to at least ``history_min_band``
(default 25%) of the median for counts and means and 0.05 for null shares, and never narrower
than the window's own range widened by a quarter, so a metric alarms on a value beyond anything
of the last weeks, not on its first honest wobble. With fewer than ``history_min_days`` (default 7) reference days the table falls back to
the static checks and says so.

Severity: a slice that goes dark (a carrier, origin or station with a median of at least
``history_dark_min`` (20) rows a day in the window and none today) halts; every other deviation
warns (the real year has storm days whose cancellations move null shares and means far from
the window, and holidays whose volume drops), each with the observed value, the band and the
reference days in the message and the report.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity

if TYPE_CHECKING:
    import pandas as pd

    from fti.ground.settings import Settings
    from fti.ground.validation import ValidationReport


def numeric_columns(df: pd.DataFrame, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The numeric (not boolean) columns of ``df`` outside ``skip``: what a profile averages
    when its caller names no columns (feature views, predictions)."""
    import pandas as pd

    return tuple(
        str(c)
        for c in df.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(df[c])
        and not pd.api.types.is_bool_dtype(df[c])
    )


def profile(
    df: pd.DataFrame,
    slices: tuple[str, ...] = (),
    means: tuple[str, ...] | None = None,
    skip_prefixes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The day's profile of a table: rows, the row count of each value of the ``slices``
    columns, every column's null share, and the mean of ``means`` (default: every numeric
    column)."""
    out: dict[str, Any] = {"rows": int(len(df)), "slices": {}, "null_share": {}, "mean": {}}
    for column in slices:
        if column in df:
            counts = df[column].astype(str).value_counts()
            out["slices"][column] = {str(k): int(v) for k, v in counts.items()}
    for column in df.columns:
        if not skip_prefixes or not str(column).startswith(skip_prefixes):
            out["null_share"][str(column)] = float(df[column].isna().mean()) if len(df) else 0.0
    for column in numeric_columns(df) if means is None else means:
        if column in df and len(df):
            value = float(df[column].astype("float64").mean())
            out["mean"][column] = None if math.isnan(value) else value
    return out


def profile_path(root: Path, table: str, day: date) -> Path:
    """Where the profile of ``table`` on ``day`` is kept under a boundary's folder ``root``."""
    return root / "_profiles" / table / f"date={day.isoformat()}.json"


def reference(root: Path, table: str, day: date, days: int) -> list[tuple[date, dict]]:
    """The profiles of the ``days`` days before ``day`` that have one (oldest first)."""
    out = []
    for k in range(days, 0, -1):
        d = day - timedelta(days=k)
        path = profile_path(root, table, d)
        if path.is_file():
            out.append((d, json.loads(path.read_text())))
    return out


def _band(values: list[float], k: float, floor: float) -> tuple[float, float, float]:
    """(median, low, high): the median plus or minus ``k`` robust standard deviations, at least
    ``floor``, and never narrower than what the window itself has seen (its range widened by a
    quarter): a metric with bursts (pressure readings missing for hours, foggy days) alarms
    only beyond anything of the last weeks."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    half = max(k * 1.4826 * mad, floor)
    lo, hi = min(values), max(values)
    margin = 0.25 * (hi - lo)
    return median, min(median - half, lo - margin), max(median + half, hi + margin)


def comparisons(
    table: str,
    day: date | None,
    today: dict,
    window: list[tuple[date, dict]],
    *,
    k: float = 6.0,
    min_band: float = 0.25,
    dark_min: int = 20,
    prefix: str | None = None,
) -> list[dict[str, Any]]:
    """One row per compared metric: ``table``, ``metric``, ``observed``, ``low``, ``high``,
    ``median``, ``reference`` (the days the band came from), ``severity`` and ``out`` (a
    description when outside the band, else None; with ``prefix``, it starts with
    ``<prefix><table>: ``, for frames that hold several tables)."""
    first, last = window[0][0].isoformat(), window[-1][0].isoformat()
    days = f"{len(window)} days {first}..{last}" if len(window) > 1 else first
    # volumes follow the week (a Saturday has a third fewer flights than a Thursday): they are
    # compared with the same weekday of the window when it holds at least three of them
    weekday = [(d, p) for d, p in window if day is not None and d.weekday() == day.weekday()]
    volume_window = weekday if len(weekday) >= 3 else window
    volume_days = (
        f"{len(weekday)} {day.strftime('%A')}s {weekday[0][0]}..{weekday[-1][0]}"
        if volume_window is weekday
        else days
    )
    rows: list[dict[str, Any]] = []
    label = f"{prefix}{table}: " if prefix is not None else ""

    def compare(metric: str, observed, past: list[float], floor: float, ref: str = days):
        if observed is None or not past:
            return
        median, low, high = _band(past, k, floor)
        outside = not (low <= observed <= high)
        rows.append(
            {
                "table": table,
                "metric": metric,
                "observed": observed,
                "median": median,
                "low": low,
                "high": high,
                "reference": ref,
                "severity": "warn",
                "out": (
                    f"{label}{metric} = {observed:.4g}, expected {max(low, 0):.4g}..{high:.4g} "
                    f"(median {median:.4g} over {ref})"
                )
                if outside
                else None,
            }
        )

    past_rows = [p["rows"] for _, p in volume_window]
    compare("rows", today["rows"], past_rows, min_band * statistics.median(past_rows), volume_days)
    for column, counts in today["slices"].items():
        names = {n for _, p in window for n in p["slices"].get(column, {})}
        for name in sorted(names):
            past = [p["slices"].get(column, {}).get(name, 0) for _, p in volume_window]
            median = statistics.median(past)
            now = counts.get(name, 0)
            if median >= dark_min and now == 0:
                rows.append(
                    {
                        "table": table,
                        "metric": f"{column}={name} rows",
                        "observed": 0,
                        "median": median,
                        "low": 1,
                        "high": None,
                        "reference": volume_days,
                        "severity": "halt",
                        "out": f"{label}{column} {name} went dark: 0 rows, median {median:g} "
                        f"over {volume_days}",
                    }
                )
            elif median >= dark_min:
                compare(f"{column}={name} rows", now, past, min_band * median, volume_days)
    for column, share in today["null_share"].items():
        past = [p["null_share"][column] for _, p in window if column in p["null_share"]]
        compare(f"null share of {column}", share, past, 0.05)
    for column, mean in today["mean"].items():
        past = [p["mean"][column] for _, p in window if p["mean"].get(column) is not None]
        if past:
            compare(
                f"mean of {column}", mean, past, min_band * max(abs(statistics.median(past)), 1)
            )
    return rows


def expectations(table: str, boundary: str = "raw") -> list:
    """The history checks on a :func:`comparisons` frame, named
    ``<boundary>.<table>.history.<check>`` (``<boundary>.history.<check>`` without a table):
    dark slices halt, the rest warn."""
    name = ".".join(p for p in (boundary, table, "history") if p)
    return [
        gxe.ExpectColumnValuesToBeNull(
            column="out_halt",
            meta={"check": f"{name}.slice_went_dark"},
            description="a slice that always has rows (carrier, origin, station) has none",
            severity=FailureSeverity.CRITICAL,
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="out_warn",
            meta={"check": f"{name}.within_band"},
            description="volume, slices, null shares and means within the reference window's band",
            severity=FailureSeverity.WARNING,
        ),
    ]


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The comparisons as the frame :func:`expectations` check (an ``out_<severity>`` column
    per severity)."""
    import pandas as pd

    df = pd.DataFrame(rows or [{"metric": None, "out": None, "severity": "warn"}])
    for severity in ("halt", "warn"):
        df[f"out_{severity}"] = df["out"].where(df["severity"] == severity, None)
    return df


# --- one boundary's day against its history, as one validation ------------------------------


def root(settings: Settings, boundary: str) -> Path:
    """The folder whose ``_profiles/`` keeps ``boundary``'s profiles: raw days beside the raw
    partitions, the other boundaries (features, predictions, training_set) under
    ``DATA_ROOT/profiles/<boundary>``."""
    return settings.raw_dir if boundary == "raw" else settings.data_dir / "profiles" / boundary


def previous(root_: Path, table: str, day: date) -> list[tuple[date, dict]]:
    """The latest profile of ``table`` before ``day``, however long before (a window of one:
    the training set against the previous training set)."""
    found = sorted((root_ / "_profiles" / table).glob("date=*.json"))
    past = [p for p in found if p.stem.removeprefix("date=") < day.isoformat()]
    if not past:
        return []
    last = past[-1]
    return [(date.fromisoformat(last.stem.removeprefix("date=")), json.loads(last.read_text()))]


def validate_day(
    settings: Settings,
    boundary: str,
    day: date,
    profiles: dict[str, dict],
    report_dir: Path | None,
    *,
    min_days: int | None = None,
    latest_only: bool = False,
    per_table: bool = False,
) -> tuple[ValidationReport | None, list[str]]:
    """Compare each table's profile of ``day`` with its reference window, all of them in one
    validation (``boundary`` names its checks: ``features.history.within_band``).

    The window is the ``history_days`` days before ``day`` (``latest_only``: the latest
    profile before it, however old); a table with fewer than ``min_days`` (default
    ``history_min_days``) reference days is left to the static checks, and a note says so.
    With ``per_table``, each table keeps checks of its own name
    (``raw.flights.history.within_band``, evaluated on that table's rows of the one frame).
    Returns the report (None when no table could be compared) and the notes.
    """
    from fti.ground.validation import validate_frame, with_severity

    folder = root(settings, boundary)
    need = settings.history_min_days if min_days is None else min_days
    rows, notes, compared = [], [], []
    for table, today in profiles.items():
        if latest_only:
            window = previous(folder, table, day)
        else:
            window = reference(folder, table, day, settings.history_days)
        if len(window) < need:
            notes.append(
                f"{boundary}/{table} {day}: {len(window)} days of history (fewer than {need}): "
                "static checks only"
            )
            continue
        rows += comparisons(
            table,
            None if latest_only else day,
            today,
            window,
            k=settings.history_k,
            min_band=settings.history_min_band,
            dark_min=settings.history_dark_min,
            prefix="",
        )
        compared.append(table)
    if not rows:
        return None, notes
    warn, halt = settings.validation_patterns
    if per_table:
        checks = [
            e.copy(update={"row_condition": f'table=="{t}"', "condition_parser": "pandas"})
            for t in compared
            for e in expectations(t, boundary)
        ]
    else:
        checks = expectations("", boundary)
    report = validate_frame(
        frame(rows),
        boundary=f"{boundary} {day} against history",
        expectations=with_severity(checks, warn, halt),
        report_dir=report_dir,
        raise_on_failure=False,
    )
    return report, notes


def settle(report: ValidationReport | None, subject: str, settings: Settings) -> list[str]:
    """Act on a :func:`validate_day` report of one subject (``predictions 2013-02-01``): a
    check that halts is an alert and ``ValidationFailed``; warnings are logged and one alert.
    Returns the warnings."""
    import logging

    from fti.ground.notify import notify
    from fti.ground.validation import ValidationFailed

    if report is None:
        return []
    if not report.success:
        notify(
            "halted",
            f"{subject}: halted against its history",
            {"halted": report.describe()},
            settings,
        )
        raise ValidationFailed(report)
    warned = [f.describe() for f in report.warned]
    for line in warned:
        logging.getLogger(__name__).warning("validation warning (%s proceeds): %s", subject, line)
    if warned:
        notify("warned", f"{subject}: {len(warned)} warning(s)", {"warned": warned}, settings)
    return warned


def keep(settings: Settings, boundary: str, day: date, profiles: dict[str, dict]) -> None:
    """Keep ``day``'s profiles as history (call once the day has passed)."""
    from fti.ground import files

    folder = root(settings, boundary)
    for table, value in profiles.items():
        files.write_json(profile_path(folder, table, day), value)
