"""The feature pipeline's steps, one function per DAG task.

Each step takes the data interval and returns something small (paths, counts): the DAG's tasks
are thin adapters over these, and ``bench/`` and the tests call them directly too.
Order: land -> validate_raw -> compute -> validate_features -> publish -> apply -> materialize.
Nothing reaches the offline or online store before both validations pass. A day that halts is
quarantined and the days after it wait for its re-delivery (``feature_repo.jobs.quarantine``).

Which views are computed, validated, published and materialized is the feature contract
(``fti.ground.contract``): every declared batch view, each with the transform and the suite
named like it. :func:`check_contract` stops a run naming what is missing before it starts.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from datetime import datetime
from pathlib import Path

from feature_repo.jobs import features, land, quarantine
from fti.ground import files, source
from fti.ground.contract import ContractError, contract
from fti.ground.dates import local_days
from fti.ground.runs import step
from fti.ground.settings import Settings, get_settings
from fti.ground.validation import BadInput, ValidationFailed, ValidationReport

log = logging.getLogger(__name__)


def report_dir(settings: Settings, boundary: str, name: str, day: str, run_id: str) -> Path:
    """Where a validation's HTML report and result are kept: one folder per run."""
    return settings.reports_dir / "validation" / boundary / name / day / files.safe_name(run_id)


def _check(
    reports: list[ValidationReport], boundary: str, settings: Settings | None = None
) -> dict[str, object]:
    from fti.ground.notify import notify

    settings = settings or get_settings()
    failed = [r for r in reports if not r.success]
    if failed:
        notify(
            "halted",
            f"{boundary}: {', '.join(r.boundary for r in failed)} halted; nothing is published",
            {
                "boundary": boundary,
                "halted": [f"{r.boundary}: {f.describe()}" for r in failed for f in r.halted],
                "reports": [str(r.report_page) for r in failed if r.report_page],
            },
            settings,
        )
        # one error naming every failure, so a bad day is diagnosed in one read of the log
        for r in failed[1:]:
            failed[0].failed.extend(r.failed)
        raise ValidationFailed(
            ValidationReport(
                boundary=", ".join(r.boundary for r in failed),
                success=False,
                evaluated=sum(r.evaluated for r in failed),
                rows=sum(r.rows for r in failed),
                failed=failed[0].failed,
                report_page=failed[0].report_page,
            )
        )
    warned = [f"{r.boundary}: {f.describe()}" for r in reports for f in r.warned]
    for line in warned:
        log.warning("validation warning (the day proceeds): %s", line)
    if warned:
        notify(
            "warned",
            f"{boundary}: {len(warned)} warning(s), the day proceeds",
            {"boundary": boundary, "warned": warned},
            settings,
        )
    return {
        "boundary": boundary,
        "passed": len(reports),
        "warned": warned,
        "expectations": sum(r.evaluated for r in reports),
        "reports": str(reports[0].report_page.parents[3])
        if reports and reports[0].report_page
        else None,
    }


def contract_problems(settings: Settings | None = None) -> list[str]:
    """Where the declarations, the transforms and the suites disagree (empty when they agree):
    a batch view without a transform or a suite, a transform or suite of an undeclared view."""
    from feature_repo.suites import features as suites

    key = contract(settings)
    declared = set(key.view_names)
    problems = features.transform_problems(key)
    problems += [
        f"feature view {v!r} has no suite: add a function named {v!r} decorated with "
        f"@view_suite to {suites.__name__}"
        for v in key.view_names
        if v not in suites.SUITES
    ]
    problems += [
        f"suite {name!r} checks a view Feast does not declare: declare a FeatureView named "
        f"{name!r} in {key.repo}, or remove the suite"
        for name in suites.SUITES
        if name not in declared
    ]
    return problems


def check_contract(settings: Settings | None = None) -> None:
    """Raise ``ContractError`` naming every problem :func:`contract_problems` finds."""
    problems = contract_problems(settings)
    if problems:
        raise ContractError("the feature contract is broken: " + "; ".join(problems))


@step
def land_interval(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Land the interval's raw tables (``feature_repo.jobs.land``); raise
    ``quarantine.DayWaits`` first when an earlier day is quarantined and not re-delivered."""
    settings = settings or get_settings()
    quarantine.check_not_waiting(settings, local_days(start, end, settings.timezone)[0])
    return land.land(start, end, settings)


def _quarantine_failed(
    settings: Settings, run_id: str, boundary: str, by_day: dict, error: str | None = None
) -> None:
    """Quarantine every day of ``by_day`` (day -> its reports) with a failed report."""
    for day, reports in by_day.items():
        failed = [r for r in reports if not r.success]
        if failed or error:
            quarantine.quarantine(
                settings,
                day,
                run_id,
                boundary,
                [error]
                if error
                else [f"{r.boundary}: {f.describe()}" for r in failed for f in r.halted],
                [r.report_page.parent for r in failed if r.report_page],
            )


@step
def validate_raw(
    start: datetime, end: datetime, run_id: str = "manual", settings: Settings | None = None
) -> dict:
    """Validate every landed raw partition of the interval; raise naming each failure.

    Each partition is first read as the job will read it (``raw.read_partition``: a file or a
    column it cannot read stops here, named), then checked by its suite, the reference tables
    and the domain rules (``raw.checks``); a check configured to warn is logged and reported,
    and the day proceeds.
    """
    from feature_repo.suites import raw
    from fti.ground import history
    from fti.ground.validation import validate_frame, with_severity

    settings = settings or get_settings()
    check_contract(settings)
    warn, halt = settings.validation_patterns
    airlines = source.reference_table(settings, "airlines.csv")
    airports = source.reference_table(settings, "airports.csv")
    reports, notes, profiles = [], [], {}
    by_day: dict = {}
    for day in local_days(start, end, settings.timezone):
        frames = {}
        for table in source.DAILY_TABLES:
            path = files.day_partition(settings.raw_dir, table, day)
            if not path.exists():
                raise FileNotFoundError(f"raw/{table} for {day} was not landed: {path}")
            try:
                frames[table] = raw.read_partition(path, table, day)
            except BadInput as err:
                _quarantine_failed(settings, run_id, "raw", {day: []}, error=str(err))
                raise
        first = len(reports)
        todays: dict = {}
        refs = raw.references(airlines, airports, frames.get("planes"))
        for table, df in frames.items():
            derived = raw.derive(table, df, refs, settings.timezone)
            checks = raw.applicable(raw.checks(table, day, settings.timezone, refs), derived)
            reports.append(
                validate_frame(
                    derived,
                    boundary=f"raw/{table} {day}",
                    expectations=with_severity(checks, warn, halt),
                    report_dir=report_dir(settings, "raw", table, day.isoformat(), run_id),
                    raise_on_failure=False,
                )
            )
            todays[table] = raw.profile(table, df)
        # the day's tables against their own recent history, in one validation whose checks
        # keep each table's name (fti.ground.history)
        against, lacking = history.validate_day(
            settings,
            "raw",
            day,
            todays,
            report_dir(settings, "raw", "history", day.isoformat(), run_id),
            per_table=True,
        )
        notes += lacking
        if against is not None:
            reports.append(against)
        profiles[day] = todays
        by_day[day] = reports[first:]
    for note in notes:
        log.info("%s", note)
    if not all(r.success for r in reports):
        _quarantine_failed(settings, run_id, "raw", by_day)
    result = _check(reports, "raw", settings)
    # only a day that passed becomes history, and a re-delivered day leaves quarantine
    for day, todays in profiles.items():
        history.keep(settings, "raw", day, todays)
    for day in by_day:
        quarantine.release(settings, day, run_id)
    result["history"] = notes
    log.info("raw validation passed: %s", result)
    return result


@step
def compute(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Run the Spark feature job into the interval's staging folder."""
    return features.run(start, end, settings or get_settings())


def _staged_file(staging: Path, view: str, day: str) -> Path | None:
    files = sorted((staging / view / f"date={day}").glob("part-*.parquet"))
    if len(files) > 1:
        raise RuntimeError(f"staging holds {len(files)} files for {view} {day}; expected one")
    return files[0] if files else None


@step
def validate_features(
    start: datetime,
    end: datetime,
    staging: str,
    run_id: str = "manual",
    settings: Settings | None = None,
) -> dict:
    """Validate the staged feature partitions before anything is published."""
    import pandas as pd

    from feature_repo.suites import features as suites
    from fti.ground import history
    from fti.ground.validation import validate_frame

    settings = settings or get_settings()
    check_contract(settings)
    root = Path(staging)
    reports = []
    by_day: dict = {d: [] for d in local_days(start, end, settings.timezone)}
    profiles: dict = {d: {} for d in by_day}
    for view in contract(settings).view_names:
        suite = suites.SUITES[view]
        for day in by_day:
            f = _staged_file(root, view, day.isoformat())
            df = pd.read_parquet(f) if f else pd.DataFrame({"event_timestamp": []})
            reports.append(
                validate_frame(
                    df,
                    boundary=f"features/{view} {day}",
                    expectations=suite(start, end),
                    report_dir=report_dir(settings, "features", view, day.isoformat(), run_id),
                    raise_on_failure=False,
                )
            )
            by_day[day].append(reports[-1])
            profiles[day][view] = history.profile(df)
    # each view's day against its own recent history: rows, null shares, means (one validation)
    notes = []
    for day, views in profiles.items():
        report, lacking = history.validate_day(
            settings,
            "features",
            day,
            views,
            report_dir(settings, "features", "history", day.isoformat(), run_id),
        )
        notes += lacking
        if report is not None:
            reports.append(report)
            by_day[day].append(report)
    for note in notes:
        log.info("%s", note)
    if not all(r.success for r in reports):
        _quarantine_failed(settings, run_id, "features", by_day)
    result = _check(reports, "features", settings)
    for day, views in profiles.items():
        history.keep(settings, "features", day, views)
    result["history"] = notes
    log.info("feature validation passed: %s", result)
    return result


def offline_partition(settings: Settings, view: str, day: str) -> Path:
    """The offline store's file of ``view`` for ``day``."""
    return files.day_partition(settings.offline_dir, view, day)


@step
def publish(
    start: datetime, end: datetime, staging: str, settings: Settings | None = None
) -> dict[str, int]:
    """Move the validated partitions into the offline store.

    Each day of each view is one file, replaced by a rename: a reader sees the old file or the
    new one, and a publish killed half-way leaves at most a hidden temporary file, so a day's
    rows exist exactly once however often the task is retried.
    """
    settings = settings or get_settings()
    root = Path(staging)
    published = {}
    for view in contract(settings).view_names:
        n = 0
        for day in local_days(start, end, settings.timezone):
            src = _staged_file(root, view, day.isoformat())
            if src is None:
                raise FileNotFoundError(f"nothing staged for {view} {day} under {root}")
            files.copy_file(src, offline_partition(settings, view, day.isoformat()))
            n += 1
        published[view] = n
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):  # the interval's folder, once its last attempt is gone
        root.parent.rmdir()
    log.info("published %s", published)
    return published


@step
def apply_registry(settings: Settings | None = None) -> str:
    """``feast apply`` of the feature repo (``fti.ground.featurestore.apply``)."""
    from fti.ground import featurestore

    return featurestore.apply(settings or get_settings())


@step
def materialize(start: datetime, end: datetime, settings: Settings | None = None) -> dict[str, int]:
    """Materialize the interval into the online store; returns entities held per view."""
    from fti.ground import featurestore

    settings = settings or get_settings()
    featurestore.materialize(start, end, settings)
    counts = featurestore.online_entity_counts(settings)
    log.info("online store now holds %s", counts)
    return counts
