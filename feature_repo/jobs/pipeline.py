"""The feature pipeline's steps, one function per DAG task.

Each step takes the data interval and returns something small (paths, counts): the DAG's tasks
are thin adapters over these, and ``bench/`` and the tests call them directly too.
Order: land -> validate_raw -> compute -> validate_features -> publish -> apply -> materialize.
Nothing reaches the offline or online store before both validations pass.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from datetime import datetime
from pathlib import Path

from feature_repo.jobs import features, land
from fti.settings import Settings, get_settings
from fti.validation import ValidationFailed, ValidationReport

log = logging.getLogger(__name__)


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def report_dir(settings: Settings, boundary: str, name: str, day: str, run_id: str) -> Path:
    """Where a validation's HTML report and result are kept: one folder per run."""
    return settings.reports_dir / "validation" / boundary / name / day / _safe(run_id)


def _check(
    reports: list[ValidationReport], boundary: str
) -> dict[str, object]:
    failed = [r for r in reports if not r.success]
    if failed:
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
    return {
        "boundary": boundary,
        "passed": len(reports),
        "expectations": sum(r.evaluated for r in reports),
        "reports": str(reports[0].report_page.parents[3]) if reports and reports[0].report_page else None,
    }


def land_interval(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    return land.land(start, end, settings or get_settings())


def validate_raw(
    start: datetime, end: datetime, run_id: str = "manual", settings: Settings | None = None
) -> dict:
    """Validate every landed raw partition of the interval; raise naming each failure."""
    import pandas as pd

    from feature_repo.suites import raw
    from fti.validation import validate_frame

    settings = settings or get_settings()
    reports = []
    for day in land.local_days(start, end, settings.timezone):
        for table, suite in raw.SUITES.items():
            path = land.partition_path(settings.raw_dir, table, day)
            if not path.exists():
                raise FileNotFoundError(f"raw/{table} for {day} was not landed: {path}")
            reports.append(
                validate_frame(
                    pd.read_parquet(path),
                    boundary=f"raw/{table} {day}",
                    expectations=suite(day, settings.timezone),
                    report_dir=report_dir(settings, "raw", table, day.isoformat(), run_id),
                    raise_on_failure=False,
                )
            )
    result = _check(reports, "raw")
    log.info("raw validation passed: %s", result)
    return result


def compute(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Run the Spark feature job into the interval's staging folder."""
    return features.run(start, end, settings or get_settings())


def _staged_file(staging: Path, view: str, day: str) -> Path | None:
    files = sorted((staging / view / f"date={day}").glob("part-*.parquet"))
    if len(files) > 1:
        raise RuntimeError(f"staging holds {len(files)} files for {view} {day}; expected one")
    return files[0] if files else None


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
    from fti.validation import validate_frame

    settings = settings or get_settings()
    root = Path(staging)
    reports = []
    for view, suite in suites.SUITES.items():
        for day in land.local_days(start, end, settings.timezone):
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
    result = _check(reports, "features")
    log.info("feature validation passed: %s", result)
    return result


def offline_partition(settings: Settings, view: str, day: str) -> Path:
    return settings.offline_dir / view / f"date={day}" / land.PART_FILE


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
    for view in features.VIEWS:
        n = 0
        for day in land.local_days(start, end, settings.timezone):
            src = _staged_file(root, view, day.isoformat())
            if src is None:
                raise FileNotFoundError(f"nothing staged for {view} {day} under {root}")
            dst = offline_partition(settings, view, day.isoformat())
            dst.parent.mkdir(parents=True, exist_ok=True)
            for stale in dst.parent.glob(".*.tmp"):
                stale.unlink()
            tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            n += 1
        published[view] = n
    shutil.rmtree(root, ignore_errors=True)
    log.info("published %s", published)
    return published


def apply_registry(settings: Settings | None = None) -> str:
    from fti import featurestore

    return featurestore.apply(settings or get_settings())


def materialize(start: datetime, end: datetime, settings: Settings | None = None) -> dict[str, int]:
    """Materialize the interval into the online store; returns entities held per view."""
    from fti import featurestore

    settings = settings or get_settings()
    featurestore.materialize(start, end, settings)
    counts = featurestore.online_entity_counts(settings)
    log.info("online store now holds %s", counts)
    return counts
