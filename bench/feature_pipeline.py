"""Benchmark of the feature pipeline: prints figures, asserts nothing.

What it measures, in one run, against its own throwaway state directory (a fresh
``tempfile.mkdtemp(prefix="fti-bench-")`` set as ``FTI_HOME`` before the settings are read;
``--home DIR`` uses DIR instead and keeps it):

1. **DAG parse time.** For every ``dags/*.py``, the wall time of a fresh interpreter
   (``python -c``) that imports ``airflow.sdk`` and executes the DAG file
   (``importlib.util.spec_from_file_location`` + ``exec_module``), next to the same measurement
   of an *empty* DAG file (``@dag(schedule=None) def empty(): pass``) the script writes to a
   temporary folder. Python and Airflow start-up are in both, so the ratio file/empty is what
   the DAG file itself adds (the project's target: <= 1.5x). One discarded warm-up run of
   each, then ``--parse-repeats`` interleaved runs; the medians are reported. The subprocesses
   get the environment of ``python -m fti env`` plus ``FTI_HOME``.

2. **One day broken down.** The history a day needs is landed first (for the default day,
   2013-01-02, that is 2013-01-01 alone; the first landing also builds the source cache), then
   each step of the day is timed separately: Spark session start (this script is a fresh
   process and nothing used Spark before, so this is a cold JVM start and the pyspark import),
   land, raw validation, Spark compute + staged write, feature validation, publish, feast apply
   and materialize. The first Great Expectations validation and the first Feast call in a
   process pay their imports, so the whole day is run a second time ("warm") and both columns
   are printed. The interval of day D is ``[D 00:00, D+1 00:00)`` America/New_York.

3. **Backfill scaling.** The pipeline steps (land, validate_raw, compute, validate_features,
   publish, materialize; feast apply once per range) run day by day over a short range
   (default 7 days from 2013-02-01) and a long one (default 31 days from 2013-03-01) with the
   same Spark session. The 29 days before each range are landed first (land only, timed
   apart), since each day's delay history reads them. Reported: total seconds, seconds per
   day, days/s, raw flight rows/s (rows of the landed raw flight partitions of the range) and
   feature rows/s (rows staged and published, all views), side by side, with the ratio of the
   per-day time long/short so growth with the data already stored is visible.

Run it (from the repository root)::

    make bench                                   # = .venv/bin/python bench/feature_pipeline.py
    .venv/bin/python bench/feature_pipeline.py --json /tmp/bench.json
    .venv/bin/python bench/feature_pipeline.py --quick      # smoke test: a few minutes

Options: ``--parse-repeats N``, ``--day YYYY-MM-DD``, ``--short-start``/``--short-days``,
``--long-start``/``--long-days``, ``--skip-parse``, ``--skip-backfill``, ``--home DIR``,
``--keep`` (keep the temporary state directory), ``--json PATH``. ``--quick`` uses parse
repeats 2, a 2-day and a 3-day range (explicit options still win). The full run takes about
10-15 minutes on a 2-core machine. Figures go into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
# what the Spark job reads before a day: the longest window plus a day (see features.run)
HISTORY_DAYS = 29
PARSE_TARGET = 1.5

DEFAULTS = {
    "parse_repeats": 5,
    "short_days": 7,
    "long_days": 31,
}
QUICK = {
    "parse_repeats": 2,
    "short_days": 2,
    "long_days": 3,
}

#: state locations a caller may have set for their own .fti; the benchmark's state is its own
_LOCATION_VARS = (
    "FTI_DATA_ROOT",
    "FTI_FEAST_REGISTRY",
    "FTI_AIRFLOW_HOME",
    "FTI_AIRFLOW_DATABASE_URL",
)


# --------------------------------------------------------------------------- helpers


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/feature_pipeline.py",
        description="Feature pipeline benchmark: DAG parse time, one day step by step, "
        "backfill scaling. Prints figures; asserts nothing.",
    )
    p.add_argument("--parse-repeats", type=int, default=None, help="runs per DAG file (default 5)")
    p.add_argument(
        "--day",
        type=date.fromisoformat,
        default=date(2013, 1, 2),
        help="the day broken down step by step (default %(default)s)",
    )
    p.add_argument("--short-start", type=date.fromisoformat, default=date(2013, 2, 1))
    p.add_argument("--short-days", type=int, default=None, help="default 7")
    p.add_argument("--long-start", type=date.fromisoformat, default=date(2013, 3, 1))
    p.add_argument("--long-days", type=int, default=None, help="default 31")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: parse repeats 2, short range 2 days, long range 3 days",
    )
    p.add_argument("--skip-parse", action="store_true", help="leave out the DAG parse section")
    p.add_argument("--skip-backfill", action="store_true", help="leave out the backfill section")
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help="FTI_HOME to use (kept); default: a fresh temporary directory",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary FTI_HOME afterwards")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.parse_repeats < 1 or args.short_days < 1 or args.long_days < 1:
        p.error("--parse-repeats, --short-days and --long-days must be at least 1")
    return args


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def _midnight(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))


def _interval(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """``[first 00:00, last+1 00:00)`` local time, tz-aware."""
    return _midnight(first, tz), _midnight(last + timedelta(days=1), tz)


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:5.1f}%" if total else "    -"


def _raw_rows(settings, table: str, first: date, last: date) -> int:
    import pyarrow.parquet as pq

    from fti.ground import files
    from fti.ground.dates import iter_days

    return sum(
        pq.ParquetFile(files.day_partition(settings.raw_dir, table, d)).metadata.num_rows
        for d in iter_days(first, last)
    )


def _airflow_env() -> dict[str, str]:
    """The ``export K=V`` lines of ``python -m fti env``, for this process's FTI_HOME."""
    out = subprocess.run(
        [sys.executable, "-m", "fti", "env"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    env = {}
    for line in out.stdout.splitlines():
        tokens = shlex.split(line)
        if len(tokens) == 2 and tokens[0] == "export" and "=" in tokens[1]:
            key, _, value = tokens[1].partition("=")
            env[key] = value
    return env


# --------------------------------------------------------------------------- 1. DAG parse

_PARSE_CODE = """\
import importlib.util
import airflow.sdk
spec = importlib.util.spec_from_file_location("bench_parsed_dag", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

_EMPTY_DAG = """\
from airflow.sdk import dag


@dag(schedule=None)
def empty():
    pass


empty()
"""


def _parse_once(path: Path, env: dict[str, str]) -> float:
    code = _PARSE_CODE.format(path=str(path))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"parsing {path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return seconds


def bench_parse(repeats: int, env: dict[str, str]) -> dict:
    dag_files = sorted((ROOT / "dags").glob("*.py"))
    tmp = Path(tempfile.mkdtemp(prefix="fti-bench-emptydag-"))
    try:
        empty = tmp / "empty_dag.py"
        empty.write_text(_EMPTY_DAG)
        targets = {"<empty DAG>": empty, **{str(f.relative_to(ROOT)): f for f in dag_files}}
        # one discarded warm-up each: the first run also writes airflow.cfg and fills the
        # page cache, which no later parse pays
        for path in targets.values():
            _parse_once(path, env)
        runs: dict[str, list[float]] = {name: [] for name in targets}
        for i in range(repeats):
            for name, path in targets.items():  # interleaved, so drift hits all alike
                runs[name].append(_parse_once(path, env))
            print(
                f"  parse round {i + 1}/{repeats}: "
                + ", ".join(f"{n} {runs[n][-1]:.2f} s" for n in targets),
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    empty_median = statistics.median(runs["<empty DAG>"])
    files = {}
    for name in targets:
        if name == "<empty DAG>":
            continue
        med = statistics.median(runs[name])
        files[name] = {
            "median_s": round(med, 3),
            "runs_s": [round(s, 3) for s in runs[name]],
            "ratio_to_empty": round(med / empty_median, 3),
            "added_s": round(med - empty_median, 3),
        }
    return {
        "repeats": repeats,
        "target_ratio": PARSE_TARGET,
        "empty_dag": {
            "median_s": round(empty_median, 3),
            "runs_s": [round(s, 3) for s in runs["<empty DAG>"]],
        },
        "files": files,
    }


def print_parse(res: dict) -> None:
    print()
    print(
        f"DAG parse time (fresh interpreter, airflow.sdk import + exec of the file; "
        f"median of {res['repeats']})"
    )
    print(
        f"  {'file':<32}{'median s':>10}{'vs empty':>10}{'added s':>10}   target <= {PARSE_TARGET}x"
    )
    print(f"  {'<empty DAG>':<32}{res['empty_dag']['median_s']:>10.2f}{1.0:>9.2f}x{0.0:>10.2f}")
    for name, r in res["files"].items():
        print(
            f"  {name:<32}{r['median_s']:>10.2f}{r['ratio_to_empty']:>9.2f}x{r['added_s']:>10.2f}"
        )


# --------------------------------------------------------------------------- 2. one day

DAY_STEPS = (
    "spark session",
    "land",
    "validate_raw",
    "compute",
    "validate_features",
    "publish",
    "feast apply",
    "materialize",
)


def _timed_steps(pipeline, settings, day: date, run_id: str, s: dict, apply: bool):
    """The pipeline's steps for one day, each timed into ``s``; returns (staged, online)."""
    start, end = _interval(day, day, settings.timezone)
    _, s["land"] = _timed(pipeline.land_interval, start, end, settings)
    _, s["validate_raw"] = _timed(pipeline.validate_raw, start, end, run_id, settings)
    staged, s["compute"] = _timed(pipeline.compute, start, end, settings)
    _, s["validate_features"] = _timed(
        pipeline.validate_features, start, end, staged["staging"], run_id, settings
    )
    _, s["publish"] = _timed(pipeline.publish, start, end, staged["staging"], settings)
    if apply:
        _, s["feast apply"] = _timed(pipeline.apply_registry, settings)
    online, s["materialize"] = _timed(pipeline.materialize, start, end, settings)
    return staged, online


def _run_day(pipeline, features, settings, day: date, run_id: str) -> dict:
    """Every step of one day, each timed; the session is build_session (getOrCreate)."""
    from fti.ground.spark import build_session

    s: dict[str, float] = {}
    _, s["spark session"] = _timed(build_session, settings)
    staged, online = _timed_steps(pipeline, settings, day, run_id, s, apply=True)
    return {
        "seconds": {k: round(v, 3) for k, v in s.items()},
        "total_s": round(sum(s.values()), 3),
        "compute_inner_s": staged["seconds"],
        "feature_rows": staged["rows"],
        "online_entities": online,
    }


def bench_day(pipeline, features, land, settings, day: date) -> dict:
    tz = settings.timezone
    hist_first = max(day - timedelta(days=HISTORY_DAYS), settings.first_day)
    history = None
    if hist_first < day:
        hist_last = day - timedelta(days=1)
        _, secs = _timed(land.land, *_interval(hist_first, hist_last, tz), settings)
        history = {
            "days": [hist_first.isoformat(), hist_last.isoformat()],
            "n_days": (hist_last - hist_first).days + 1,
            "seconds": round(secs, 3),
        }
        print(
            f"  landed history {hist_first}..{hist_last} in {secs:.2f} s "
            "(first landing: builds the source cache)",
            flush=True,
        )
    pyspark_before = "pyspark" in sys.modules
    cold = _run_day(pipeline, features, settings, day, "bench-day-cold")
    print(f"  cold pass of {day}: {cold['total_s']:.1f} s", flush=True)
    warm = _run_day(pipeline, features, settings, day, "bench-day-warm")
    print(f"  warm pass of {day}: {warm['total_s']:.1f} s", flush=True)
    return {
        "day": day.isoformat(),
        "interval": [x.isoformat() for x in _interval(day, day, tz)],
        "history_landed": history,
        "pyspark_imported_before_session": pyspark_before,
        "raw_flight_rows": _raw_rows(settings, "flights", day, day),
        "cold": cold,
        "warm": warm,
    }


def print_day(res: dict) -> None:
    cold, warm = res["cold"], res["warm"]
    print()
    print(f"One day broken down: {res['day']}  ({res['interval'][0]} .. {res['interval'][1]})")
    print(f"  {'step':<20}{'cold s':>9}{'share':>8}{'warm s':>10}{'share':>8}")
    for step in DAY_STEPS:
        c, w = cold["seconds"][step], warm["seconds"][step]
        print(
            f"  {step:<20}{c:>9.2f}{_share(c, cold['total_s']):>8}"
            f"{w:>10.2f}{_share(w, warm['total_s']):>8}"
        )
    print(f"  {'total':<20}{cold['total_s']:>9.2f}{'':>8}{warm['total_s']:>10.2f}")
    ci, wi = cold["compute_inner_s"], warm["compute_inner_s"]
    print(
        f"  compute = session lookup {ci['spark_session']:.2f} + compute_and_write "
        f"{ci['compute_and_write']:.2f} s cold; {wi['spark_session']:.2f} + "
        f"{wi['compute_and_write']:.2f} s warm"
    )
    print("  cold: a new JVM (and the pyspark import) for 'spark session'; the first")
    print("  validate_raw pays the great_expectations import, the first feast apply the feast")
    print("  import and a new registry. warm: the same day again in the same process.")
    hist = res["history_landed"]
    if hist:
        print(
            f"  history landed before (not in the total): {hist['n_days']} day(s) in "
            f"{hist['seconds']:.2f} s"
        )
    rows = ", ".join(f"{k} {v}" for k, v in cold["feature_rows"].items())
    print(f"  raw flight rows {res['raw_flight_rows']}; feature rows: {rows}")


# --------------------------------------------------------------------------- 3. backfill

RANGE_STEPS = ("land", "validate_raw", "compute", "validate_features", "publish", "materialize")


def bench_range(pipeline, land, settings, label: str, first: date, n_days: int) -> dict:
    tz = settings.timezone
    last = first + timedelta(days=n_days - 1)
    hist_first = max(first - timedelta(days=HISTORY_DAYS), settings.first_day)
    history_s = 0.0
    if hist_first < first:
        _, history_s = _timed(
            land.land, *_interval(hist_first, first - timedelta(days=1), tz), settings
        )
    print(
        f"  {label}: landed {(first - hist_first).days} history day(s) in {history_s:.2f} s; "
        f"running {first}..{last}",
        flush=True,
    )
    _, apply_s = _timed(pipeline.apply_registry, settings)
    steps = dict.fromkeys(RANGE_STEPS, 0.0)
    per_day, feature_rows = [], 0
    for i in range(n_days):
        day = first + timedelta(days=i)
        s: dict[str, float] = {}
        staged, _ = _timed_steps(pipeline, settings, day, f"bench-{label}", s, apply=False)
        for k, v in s.items():
            steps[k] += v
        rows = sum(staged["rows"].values())
        feature_rows += rows
        day_s = sum(s.values())
        per_day.append(
            {
                "day": day.isoformat(),
                "seconds": round(day_s, 3),
                "steps_s": {k: round(v, 3) for k, v in s.items()},
                "feature_rows": rows,
            }
        )
        print(f"    {day}  {day_s:6.2f} s  ({rows} feature rows)", flush=True)
    days_s = sum(d["seconds"] for d in per_day)
    total = apply_s + days_s
    raw_rows = _raw_rows(settings, "flights", first, last)
    return {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "n_days": n_days,
        "history_land_s": round(history_s, 3),
        "feast_apply_s": round(apply_s, 3),
        "steps_total_s": {k: round(v, 3) for k, v in steps.items()},
        "total_s": round(total, 3),
        "per_day_s": round(days_s / n_days, 3),
        "days_per_s": round(n_days / total, 4),
        "raw_flight_rows": raw_rows,
        "raw_rows_per_s": round(raw_rows / total, 1),
        "feature_rows": feature_rows,
        "feature_rows_per_s": round(feature_rows / total, 1),
        "first_day_s": per_day[0]["seconds"],
        "last_day_s": per_day[-1]["seconds"],
        "days": per_day,
    }


def print_backfill(res: dict) -> None:
    a, b = res["short"], res["long"]
    w = 24
    print()
    print("Backfill scaling (day by day, one Spark session; feast apply once per range)")

    def row(name, x, y):
        print(f"  {name:<28}{x:>{w}}{y:>{w}}")

    row("", f"short ({a['n_days']} d)", f"long ({b['n_days']} d)")
    row("range", f"{a['first']}..{a['last'][5:]}", f"{b['first']}..{b['last'][5:]}")
    row("history landed first (s)", f"{a['history_land_s']:.2f}", f"{b['history_land_s']:.2f}")
    row("feast apply, once (s)", f"{a['feast_apply_s']:.2f}", f"{b['feast_apply_s']:.2f}")
    for step in RANGE_STEPS:
        row(
            f"  {step} (s/day)",
            f"{a['steps_total_s'][step] / a['n_days']:.2f}",
            f"{b['steps_total_s'][step] / b['n_days']:.2f}",
        )
    row("total (s)", f"{a['total_s']:.1f}", f"{b['total_s']:.1f}")
    row("per day, apply excluded (s)", f"{a['per_day_s']:.2f}", f"{b['per_day_s']:.2f}")
    row(
        "first day / last day (s)",
        f"{a['first_day_s']:.2f} / {a['last_day_s']:.2f}",
        f"{b['first_day_s']:.2f} / {b['last_day_s']:.2f}",
    )
    row("days/s", f"{a['days_per_s']:.3f}", f"{b['days_per_s']:.3f}")
    row("raw flight rows", f"{a['raw_flight_rows']:,}", f"{b['raw_flight_rows']:,}")
    row("raw flight rows/s", f"{a['raw_rows_per_s']:,.0f}", f"{b['raw_rows_per_s']:,.0f}")
    row("feature rows published", f"{a['feature_rows']:,}", f"{b['feature_rows']:,}")
    row("feature rows/s", f"{a['feature_rows_per_s']:,.0f}", f"{b['feature_rows_per_s']:,.0f}")
    print(
        f"  per-day time long/short: {res['per_day_ratio_long_to_short']:.2f}x "
        "(1.0 = no growth with the data already stored)"
    )


# --------------------------------------------------------------------------- main


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)

    # the benchmark's state is its own: set before fti.ground.settings is first read
    created = args.home is None
    home = Path(tempfile.mkdtemp(prefix="fti-bench-")) if created else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FTI_HOME"] = str(home)
    dropped = [k for k in _LOCATION_VARS if os.environ.pop(k, None) is not None]
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[key]  # replaced by `python -m fti env` below
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from fti.ground.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    env = _airflow_env()
    os.environ.update(env)

    t_start = time.perf_counter()
    results: dict = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick,
        "fti_home": str(home),
        "settings": {
            "spark_master": settings.spark_master,
            "spark_shuffle_partitions": settings.spark_shuffle_partitions,
            "online_store": settings.online_store,
            "timezone": settings.timezone,
        },
        "machine": _machine(),
    }
    print(
        f"feature pipeline benchmark; FTI_HOME={home}"
        + (f" (ignored {', '.join(dropped)})" if dropped else "")
    )
    print(
        f"spark master {settings.spark_master}, online store {settings.online_store}"
        + (", --quick" if args.quick else ""),
        flush=True,
    )

    ok = False
    try:
        # 1. DAG parse (subprocesses only: nothing heavy is imported here yet)
        if not args.skip_parse:
            print("\n[1/3] DAG parse time", flush=True)
            results["parse"] = bench_parse(args.parse_repeats, {**os.environ, **env})
            print_parse(results["parse"])

        # 2. one day: importing the jobs loads pandas/pyarrow but not pyspark, so the first
        # build_session below is a cold pyspark import + JVM start
        from feature_repo.jobs import features, land, pipeline

        print(f"\n[2/3] one day broken down ({args.day})", flush=True)
        results["day"] = bench_day(pipeline, features, land, settings, args.day)
        print_day(results["day"])

        # 3. backfill ranges
        if not args.skip_backfill:
            print("\n[3/3] backfill scaling", flush=True)
            short = bench_range(
                pipeline, land, settings, "short", args.short_start, args.short_days
            )
            long_ = bench_range(pipeline, land, settings, "long", args.long_start, args.long_days)
            results["backfill"] = {
                "short": short,
                "long": long_,
                "per_day_ratio_long_to_short": round(long_["per_day_s"] / short["per_day_s"], 3),
            }
            print_backfill(results["backfill"])
        ok = True
    finally:
        results["wall_s"] = round(time.perf_counter() - t_start, 1)
        results["completed"] = ok
        if "pyspark" in sys.modules:
            try:
                from pyspark.sql import SparkSession

                active = SparkSession.getActiveSession()
                if active is not None:
                    active.stop()
            except Exception:  # noqa: BLE001 - stopping is best effort
                pass
        m = results["machine"]
        print()
        print(
            f"machine: {m['platform']} | {m['cpu_count']} CPUs | Python {m['python']} | "
            f"benchmark wall time {results['wall_s']:.0f} s"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=str))
            print(f"figures written to {args.json}")
        if created and ok and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"state kept in {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
