"""Quarantine of a halted day, the wait of the days after it, and its re-delivery.

A day that halts at a data boundary (its raw tables or its feature partitions) has its landed
raw partitions moved out of ``raw/`` into
``quarantine/<table>/date=<day>/<run>/part-0.parquet``, beside ``quarantine.json`` (the day,
the run, the boundary, every halting check) and copies of the halting checks' HTML reports
(``reports/``). Nothing of the day reaches a store, and its raw rows are not history any more:
no later day's profile window or delay history reads them.

The days after it wait (:func:`waiting`): their delay-history features read the 28 days
before them, so a run on top of a missing day would publish features that a clean run would
not. Under the scheduler the waiting day's first task is rescheduled until the day is
released, and each try logs why it waits.

Re-delivery: once the source holds the corrected day, ``python -m fti redeliver --day D``
runs the day again; when it passes it releases the quarantine (``released.json`` beside
``quarantine.json``; the quarantined files stay as the record of what arrived) and the days
that waited go on. A day that halts again gets a new run folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from fti.ground import files, source
from fti.ground.settings import Settings

log = logging.getLogger(__name__)

RECORD = "quarantine.json"
RELEASED = "released.json"


class DayWaits(RuntimeError):
    """A day cannot run yet: an earlier day is quarantined and not re-delivered."""


@dataclass(frozen=True)
class Quarantined:
    """One quarantined delivery of a day (one run that halted)."""

    day: date
    run_id: str
    boundary: str
    reason: str
    at: str
    folders: tuple[Path, ...]
    released: bool

    def describe(self) -> str:
        """One line: the day, the run and the first halting check."""
        first = self.reason.splitlines()[0] if self.reason else "?"
        return f"{self.day} (run {self.run_id}, {self.boundary}: {first})"


def root(settings: Settings) -> Path:
    """The quarantine folder: ``DATA_ROOT/quarantine`` beside ``raw/``."""
    return settings.data_dir / "quarantine"


def quarantine(
    settings: Settings,
    day: date,
    run_id: str,
    boundary: str,
    failures: list[str],
    reports: list[Path],
) -> list[Path]:
    """Move ``day``'s landed raw partitions into quarantine with the halting reports.

    Each table's partition moves by a rename (``raw/`` and ``quarantine/`` share a file
    system), after its record and reports are written, so a kill half-way leaves the
    partition either still in ``raw/`` or in quarantine beside its record. Returns the
    folders written.
    """
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "day": day.isoformat(),
        "run_id": run_id,
        "boundary": boundary,
        "at": now,
        "failures": failures,
        "redeliver": f"python -m fti redeliver --day {day.isoformat()}",
    }
    out = []
    for table in source.DAILY_TABLES:
        part = files.day_partition(settings.raw_dir, table, day)
        folder = root(settings) / table / f"date={day.isoformat()}" / files.safe_name(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        copied = []
        for report in reports:
            if report.is_dir():
                dest = folder / "reports" / "-".join(report.parts[-4:-2])
                shutil.copytree(report, dest, dirs_exist_ok=True)
                copied.append(str(dest.relative_to(folder)))
        files.write_json(
            folder / RECORD,
            {**record, "table": table, "moved": part.exists(), "reports": copied},
        )
        if part.exists():
            os.replace(part, folder / part.name)
            try:
                part.parent.rmdir()
            except OSError:
                pass
        out.append(folder)
    log.warning(
        "quarantined %s (run %s, %s halted): raw partitions moved to %s; the days after it "
        "wait until it is re-delivered: %s",
        day,
        run_id,
        boundary,
        root(settings),
        record["redeliver"],
    )
    return out


def entries(settings: Settings) -> list[Quarantined]:
    """Every quarantined delivery, oldest day first (open and released)."""
    found: dict[tuple[str, str], list[Path]] = {}
    for rec in sorted(root(settings).glob(f"*/date=*/*/{RECORD}")):
        found.setdefault((rec.parts[-3], rec.parts[-2]), []).append(rec.parent)
    out = []
    for (_, _), folders in sorted(found.items()):
        meta = json.loads((folders[0] / RECORD).read_text())
        out.append(
            Quarantined(
                day=date.fromisoformat(meta["day"]),
                run_id=meta["run_id"],
                boundary=meta["boundary"],
                reason="\n".join(meta.get("failures") or []),
                at=meta["at"],
                folders=tuple(folders),
                released=all((f / RELEASED).exists() for f in folders),
            )
        )
    return sorted(out, key=lambda q: (q.day, q.at))


def open_days(settings: Settings) -> dict[date, Quarantined]:
    """The quarantined days not yet re-delivered, each with its latest halted run."""
    out: dict[date, Quarantined] = {}
    for q in entries(settings):
        if not q.released:
            out[q.day] = q
    return out


def waiting(settings: Settings, first: date) -> list[Quarantined]:
    """The open quarantines of days before ``first``: a run of ``first`` must wait for them."""
    return [q for d, q in sorted(open_days(settings).items()) if d < first]


def check_not_waiting(settings: Settings, first: date) -> None:
    """Raise :class:`DayWaits` naming each earlier quarantined day and how to re-deliver it."""
    blocking = waiting(settings, first)
    if blocking:
        raise DayWaits(
            f"feature day {first} waits: "
            + "; ".join(q.describe() for q in blocking)
            + " is quarantined and the delay history of the days after it would include it. "
            + f"Correct the source, then run `python -m fti redeliver --day {blocking[0].day}` "
            + f"(the quarantined files: {root(settings)})"
        )


def release(settings: Settings, day: date, run_id: str) -> list[Quarantined]:
    """Mark every open quarantine of ``day`` released by the run ``run_id`` that passed."""
    released = []
    for q in entries(settings):
        if q.day == day and not q.released:
            for folder in q.folders:
                files.write_json(
                    folder / RELEASED,
                    {"by_run": run_id, "at": datetime.now(UTC).isoformat(timespec="seconds")},
                )
            released.append(q)
            log.info(
                "%s re-delivered by run %s: quarantine of run %s released", day, run_id, q.run_id
            )
    return released
