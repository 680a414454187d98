"""Each raw day against its own recent history (issue 13, part 1 of the history checks).

A **profile** per table and day (:func:`profile`): row volume, per-slice coverage (each
carrier's and each origin's flights, each station's weather hours), each column's null share and
each numeric column's mean. It is kept beside the raw partitions
(``raw/_profiles/<table>/date=D.json``) once the day passes, so a halted day never becomes
history.

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

#: the slices whose coverage is profiled, per table
SLICES = {"flights": ("carrier", "origin"), "weather": ("origin",)}
#: numeric columns whose mean is profiled (not keys or calendar fields)
MEANS = {
    "flights": ("dep_delay", "arr_delay", "air_time", "distance"),
    "weather": ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"),
}


def profile(table: str, df: pd.DataFrame) -> dict[str, Any]:
    """The day's profile of ``table``: rows, slices, null shares, means."""
    out: dict[str, Any] = {"rows": int(len(df)), "slices": {}, "null_share": {}, "mean": {}}
    for column in SLICES.get(table, ()):
        if column in df:
            counts = df[column].astype(str).value_counts()
            out["slices"][column] = {str(k): int(v) for k, v in counts.items()}
    for column in df.columns:
        if not str(column).startswith(("rule_", "station_hours")):
            out["null_share"][str(column)] = float(df[column].isna().mean()) if len(df) else 0.0
    for column in MEANS.get(table, ()):
        if column in df and len(df):
            value = float(df[column].mean())
            out["mean"][column] = None if math.isnan(value) else value
    return out


def profile_path(raw_dir: Path, table: str, day: date) -> Path:
    """Where the profile of ``table`` on ``day`` is kept."""
    return raw_dir / "_profiles" / table / f"date={day.isoformat()}.json"


def reference(raw_dir: Path, table: str, day: date, days: int) -> list[tuple[date, dict]]:
    """The profiles of the ``days`` days before ``day`` that have one (oldest first)."""
    out = []
    for k in range(days, 0, -1):
        d = day - timedelta(days=k)
        path = profile_path(raw_dir, table, d)
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
    day: date,
    today: dict,
    window: list[tuple[date, dict]],
    *,
    k: float = 6.0,
    min_band: float = 0.25,
    dark_min: int = 20,
) -> list[dict[str, Any]]:
    """One row per compared metric: ``metric``, ``observed``, ``low``, ``high``, ``median``,
    ``severity`` and ``out`` (a description when outside the band, else None)."""
    first, last = window[0][0].isoformat(), window[-1][0].isoformat()
    days = f"{len(window)} days {first}..{last}"
    # volumes follow the week (a Saturday has a third fewer flights than a Thursday): they are
    # compared with the same weekday of the window when it holds at least three of them
    weekday = [(d, p) for d, p in window if d.weekday() == day.weekday()]
    volume_window = weekday if len(weekday) >= 3 else window
    volume_days = (
        f"{len(weekday)} {day.strftime('%A')}s {weekday[0][0]}..{weekday[-1][0]}"
        if volume_window is weekday
        else days
    )
    rows: list[dict[str, Any]] = []

    def compare(metric: str, observed, past: list[float], floor: float, ref: str = days):
        if observed is None or not past:
            return
        median, low, high = _band(past, k, floor)
        outside = not (low <= observed <= high)
        rows.append(
            {
                "metric": metric,
                "observed": observed,
                "median": median,
                "low": low,
                "high": high,
                "severity": "warn",
                "out": (
                    f"{metric} = {observed:.4g}, expected {max(low, 0):.4g}..{high:.4g} "
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
                        "metric": f"{column}={name} rows",
                        "observed": 0,
                        "median": median,
                        "low": 1,
                        "high": None,
                        "severity": "halt",
                        "out": f"{column} {name} went dark: 0 rows, median {median:g} over "
                        f"{volume_days}",
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


def expectations(table: str) -> list:
    """The history checks on a :func:`comparisons` frame: dark slices halt, the rest warn."""
    return [
        gxe.ExpectColumnValuesToBeNull(
            column="out_halt",
            meta={"check": f"raw.{table}.history.slice_went_dark"},
            description="a slice that always has rows (carrier, origin, station) has none",
            severity=FailureSeverity.CRITICAL,
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="out_warn",
            meta={"check": f"raw.{table}.history.within_band"},
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
