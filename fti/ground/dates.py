"""Days and instants of the data set's local time zone (``FTI_TIMEZONE``, America/New_York).

A "day" is a local calendar day; every stored timestamp is a UTC instant. These are the rules
every pipeline uses to turn one into the other, so a day means the same thing in the feature
job, the training set, batch scoring and the service.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def as_day(day: date | datetime | str) -> date:
    """``day`` as a date: a date, a datetime (its own calendar date) or ISO text."""
    if isinstance(day, datetime):
        return day.date()
    return day if isinstance(day, date) else date.fromisoformat(str(day))


def day_start(day: date | str, tz: str) -> datetime:
    """The local midnight that starts ``day``, as a UTC instant."""
    day = as_day(day)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def day_end(day: date | str, tz: str) -> datetime:
    """The local midnight that ends ``day`` (the next one's start), as a UTC instant."""
    return day_start(as_day(day) + timedelta(days=1), tz)


def local_days(start: datetime, end: datetime, tz: str) -> list[date]:
    """Local calendar days whose midnight falls in ``[start, end)``; at least the start's day."""
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    days = [first]
    d = first + timedelta(days=1)
    while datetime(d.year, d.month, d.day, tzinfo=zone) < end:
        days.append(d)
        d += timedelta(days=1)
    return days


def iter_days(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last``, both included."""
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def local_hours(days: Sequence[date], tz: str) -> list[datetime]:
    """The start of every local hour of ``days`` as UTC instants (23 or 25 on DST days)."""
    out = []
    for day in days:
        ts, end = day_start(day, tz), day_end(day, tz)
        while ts < end:
            out.append(ts)
            ts += timedelta(hours=1)
    return out
