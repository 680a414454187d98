"""What a pipeline run works on, and how its tasks fail: the glue the DAG files share.

A run decides its data interval from what triggered it, never from "the latest day in
storage": the feature pipeline's asset event carries the days it published
(:func:`published`), and the training and inference runs read the events that triggered them
(:func:`latest_day`). Airflow keeps a run's triggering events with the run, so clearing an old
run redoes that run's day. A manual run names its day in its parameters; without one it takes
the latest day stored, and says so in its log.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from fti.ground.dates import as_day, local_days

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def published(start: datetime, end: datetime, tz: str) -> dict[str, str]:
    """The extra of the features asset event for the interval ``[start, end)``: its first and
    last local day and its bounds (ISO text, as Airflow stores extras as JSON)."""
    days = local_days(start, end, tz)
    return {
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def event_extras(events: Mapping | None, asset) -> list[dict[str, Any]]:
    """The extras of the triggering events of ``asset`` (matched by name), oldest first."""
    if not events:
        return []
    out = []
    for key in events:
        if getattr(key, "name", None) == asset.name:
            out += [dict(e.extra or {}) for e in events[key]]
    return out


def latest_day(events: Mapping | None, fields: Mapping[Any, str]) -> date | None:
    """The latest day the triggering events name: for each asset in ``fields``, its events'
    extra field of that name (e.g. ``{FEATURES: "last_day"}``). None when no event names one."""
    days = [
        as_day(extra[field])
        for asset, field in fields.items()
        for extra in event_extras(events, asset)
        if extra.get(field)
    ]
    return max(days) if days else None


def requested_day(params: Mapping | None, name: str) -> date | None:
    """The day a manual run names in its parameter ``name`` (None when not given)."""
    value = (params or {}).get(name)
    return as_day(value) if value else None


def fail_fast(fn: F) -> F:
    """Run ``fn``; a failed data check fails the task at once, without retries (retrying
    cannot fix the data): ``ValidationFailed``, ``BadInput`` and ``ContractError`` become Airflow's
    ``AirflowFailException`` with the same message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from fti.ground.contract import ContractError
        from fti.ground.validation import BadInput, ValidationFailed

        try:
            return fn(*args, **kwargs)
        except (ValidationFailed, BadInput, ContractError) as err:
            raise AirflowFailException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def wait_or_fail(err: Exception, conf: Mapping | None, poll_s: float) -> Exception:
    """What a task raises for a day that must wait (``err`` says why, and is logged): under
    the scheduler, a reschedule in ``poll_s`` seconds (the task frees its worker and comes
    back); in a run whose conf says ``{"wait": false}`` (the in-process runner,
    ``fti.apps.demo.run_days``, which cannot wait for itself), a failure with the message."""
    from datetime import UTC, timedelta

    from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

    log.warning("%s", err)
    if conf is not None and conf.get("wait") is False:
        return AirflowFailException(str(err))
    return AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=poll_s))


#: the log line each step starts with (``bench/scheduler.py`` reads it from the task logs:
#: what a task paid before it, process start, DAG parse and imports, ends there)
STEP_STARTS = "fti step %s starts"
STEP_ENDS = "fti step %s took %.3f s"


def step(fn: F) -> F:
    """Log when a pipeline step starts and how long it took (its module's logger)."""
    logger = logging.getLogger(fn.__module__)
    name = f"{fn.__module__.rsplit('.', 1)[0]}.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logger.info(STEP_STARTS, name)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            logger.info(STEP_ENDS, name, time.perf_counter() - t0)

    return wrapper  # type: ignore[return-value]
