"""Benchmark: replayed days under the real Airflow scheduler, warm Spark Connect vs a Spark
session per task. Prints figures, asserts nothing.

For each mode (``--modes``, default ``connect,classic``), in a throwaway state directory of its
own (``FTI_HOME``, Airflow's SQLite DB, free ports):

1. **Prepare** as a user does: ``airflow db migrate``, ``feast apply``, then ``python -m fti
   demo`` over ``2013-01-01..FIRST-1`` (features, one training run, one inference run, through
   Airflow in one process; ``DEMO_EXIT=1``). Timed, and not part of the figures below.
2. **Run** ``airflow standalone`` (LocalExecutor, SQLite) with the three DAGs unpaused, and
   ``airflow backfill create`` of feature_pipeline over ``FIRST..FIRST+DAYS-1``: the scheduler
   runs each day, and training and inference run as their schedules say (today: on every
   ``fti_features`` event). ``connect`` mode starts ``python -m fti spark-connect`` beside
   Airflow and the tasks are its clients (``FTI_SPARK_REMOTE``); ``classic`` mode leaves it
   unset, so each Spark task starts its own local session (a JVM).
3. **Read back** Airflow's metadata DB and task logs once every run has finished: per feature
   day, queued-to-done wall time of the feature run and of the training and inference runs its
   event started; per task, queued -> running, running -> the step's first log line
   (``fti step ... starts``: process and task runner start, DAG parse, imports), the step
   itself, and running -> done.

``--materialization`` adds one day's materialization with a week of history next to the same
with a year of history (a year made by repeating a real week's partitions with their
timestamps shifted, so every day holds a real day's rows), Feast's ``materialize`` against the
platform's (``fti.ground.featurestore.materialize``), median of ``--repeats``.

``--spark-overhead`` adds what Spark costs a task beyond its compute: per mode, a fresh client
process that has imported what the scheduler preloads (``plugins/airflow_local_settings.py``:
what a forked task holds) computes a day (session + first query + compute), then the same day three times more
in that process (warm, the middle one kept); overhead = first - warm, median of ``--repeats``
processes (connect: against a server that has already served a day, as under the scheduler).

Run (from the repository root; nothing else on the machine, it takes 15-30 minutes)::

    .venv/bin/python bench/scheduler.py --days 3 --json /tmp/scheduler.json
    .venv/bin/python bench/scheduler.py --days 2 --modes connect --skip-prepare --home DIR
    .venv/bin/python bench/scheduler.py --materialization-only
    .venv/bin/python bench/scheduler.py --skip-modes --spark-overhead --home DIR --first DAY

The JSON holds, per mode, ``{"mode", "days": [{"day", "feature_s", "training_s",
"inference_s"}], "median_feature_day_s", "tasks": [...], "prepare_s", "load"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DAGS = ("feature_pipeline", "training_pipeline", "inference_pipeline")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict, timeout: float = 3600, check: bool = True, log=None):
    full = {**env, "PATH": f"{Path(PY).parent}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"}
    proc = subprocess.run(
        cmd,
        env=full,
        cwd=ROOT,
        timeout=timeout,
        text=True,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if check and proc.returncode != 0:
        tail = (proc.stdout or "")[-3000:] if log is None else f"(see {log.name})"
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {tail}")
    return proc


def mode_env(home: Path, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTI_", "AIRFLOW"))}
    env.update(
        {
            "FTI_HOME": str(home),
            "FTI_AIRFLOW_PORT": str(free_port()),
            "FTI_SERVING_PORT": str(free_port()),
            "FTI_SPARK_CONNECT_PORT": str(free_port()),
            # only the backfill creates feature runs
            "FTI_FEATURE_CATCHUP": "false",
        }
    )
    exports = run(
        [PY, "-m", "fti", "env", *(["--spark-connect"] if mode == "connect" else [])], env
    ).stdout
    for line in exports.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
    return env


def prepare(env: dict, first: date, log) -> float:
    t0 = time.perf_counter()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    run([PY, "-m", "airflow", "db", "migrate"], env, log=log)
    run([PY, "-m", "airflow", "dags", "reserialize"], env, log=log)
    run([PY, "-m", "fti", "feast-apply"], env, log=log)
    demo_env = {k: v for k, v in env.items() if k != "FTI_SPARK_REMOTE"}
    last = first - timedelta(days=1)
    run(
        [PY, "-m", "fti", "demo", "--days", f"2013-01-01..{last}"],
        {**demo_env, "DEMO_EXIT": "1"},
        log=log,
    )
    return time.perf_counter() - t0


def _db(env: dict) -> sqlite3.Connection:
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def _runs(env: dict, since: str) -> list[dict]:
    with _db(env) as con:
        con.row_factory = sqlite3.Row
        return [
            dict(r)
            for r in con.execute(
                "SELECT id, dag_id, run_id, state, queued_at, start_date, end_date, run_type "
                "FROM dag_run WHERE queued_at >= ? ORDER BY id",
                (since,),
            )
        ]


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def start_connect(env: dict, log) -> subprocess.Popen:
    """``python -m fti spark-connect`` for ``env``'s state directory, once it listens."""
    full = {**env, "PATH": f"{Path(PY).parent}{os.pathsep}{env['PATH']}"}
    proc = subprocess.Popen(
        [PY, "-m", "fti", "spark-connect"],
        env={k: v for k, v in full.items() if k != "FTI_SPARK_REMOTE"},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    run([PY, "-m", "fti", "spark-connect", "--wait", "180"], env)
    return proc


def replay(env: dict, first: date, days: int, mode: str, log, timeout: float) -> dict:
    procs = []
    full = {**env, "PATH": f"{Path(PY).parent}{os.pathsep}{env['PATH']}"}
    if mode == "connect":
        procs.append(start_connect(env, log))
    procs.append(
        subprocess.Popen(
            [PY, "-m", "airflow", "standalone"],
            env=full,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )
    since = datetime.utcnow().isoformat(sep=" ")
    try:
        url = f"http://127.0.0.1:{env['FTI_AIRFLOW_PORT']}/api/v2/monitor/health"
        deadline = time.monotonic() + 300
        while True:
            try:
                health = json.load(urllib.request.urlopen(url, timeout=5))
                if health["scheduler"]["status"] == "healthy":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("airflow standalone did not become healthy in 300 s")
            time.sleep(2)
        for dag_id in DAGS:
            run([PY, "-m", "airflow", "dags", "unpause", dag_id], env)
        last = first + timedelta(days=days - 1)
        t0 = time.time()
        run(
            [
                PY,
                "-m",
                "airflow",
                "backfill",
                "create",
                "--dag-id",
                "feature_pipeline",
                "--from-date",
                first.isoformat(),
                "--to-date",
                last.isoformat(),
                "--max-active-runs",
                "1",
            ],
            env,
        )
        deadline = time.monotonic() + timeout
        quiet_since = None
        while True:
            runs = _runs(env, since)
            features = [r for r in runs if r["dag_id"] == "feature_pipeline"]
            busy = [r for r in runs if r["state"] in ("queued", "running")]
            done = len(features) >= days and all(
                r["state"] in ("success", "failed") for r in features
            )
            if done and not busy:
                # asset-triggered runs are created a scheduler loop after their event
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 20:
                    break
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                print(f"  timed out after {timeout:.0f} s with {len(busy)} runs busy", flush=True)
                break
            time.sleep(5)
        wall = time.time() - t0
    finally:
        # the service the inference runs rolled out outlives Airflow (its own session)
        run(
            [PY, "-c", "from serving.rollout.local import stop_local; stop_local()"],
            env,
            check=False,
        )
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    return {"since": since, "wall_s": round(wall, 1)}


def _step_lines(env: dict, dag_id: str, run_id: str, task_id: str, try_number: int) -> tuple:
    """(first 'fti step ... starts' instant, sum of the 'took' seconds) from the task's log."""
    folder = (
        Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / f"dag_id={dag_id}" / f"run_id={run_id}"
    )
    path = folder / f"task_id={task_id}" / f"attempt={try_number}.log"
    if not path.exists():
        return None, None
    first, took = None, 0.0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        event = str(record.get("event", ""))
        if event.startswith("fti step ") and " starts" in event and first is None:
            first = _ts(record.get("timestamp"))
        elif event.startswith("fti step ") and " took " in event:
            took += float(event.rsplit(" took ", 1)[1].split()[0])
    return first, (round(took, 3) if first is not None else None)


def collect(env: dict, since: str) -> dict:
    runs = [r for r in _runs(env, since) if r["state"] in ("success", "failed")]
    with _db(env) as con:
        con.row_factory = sqlite3.Row
        consumed = {}
        for row in con.execute(
            "SELECT r.dag_run_id, e.extra FROM dagrun_asset_event r JOIN asset_event e "
            "ON r.event_id = e.id"
        ):
            extra = json.loads(row["extra"] or "{}")
            consumed.setdefault(row["dag_run_id"], []).append(extra)
        tis = [
            dict(r)
            for r in con.execute(
                "SELECT dag_id, run_id, task_id, state, queued_dttm, start_date, end_date, "
                "try_number FROM task_instance"
            )
        ]
        produced = {}
        for row in con.execute(
            "SELECT e.source_run_id, e.source_dag_id, e.extra FROM asset_event e"
        ):
            produced.setdefault((row["source_dag_id"], row["source_run_id"]), []).append(
                json.loads(row["extra"] or "{}")
            )
    by_run = {(r["dag_id"], r["run_id"]): r for r in runs}

    def seconds(r) -> float | None:
        # from the run's start (running), not its queued_at: the backfill queues every feature
        # run at once and runs them one at a time (--max-active-runs 1), and an asset-triggered
        # run is queued and started within one scheduler loop
        a, b = _ts(r["start_date"]) or _ts(r["queued_at"]), _ts(r["end_date"])
        return round(b - a, 1) if a and b else None

    days = []
    for r in runs:
        if r["dag_id"] != "feature_pipeline":
            continue
        extras = produced.get(("feature_pipeline", r["run_id"]), [])
        day = next((e.get("last_day") for e in extras if e.get("last_day")), None)
        entry = {
            "day": day,
            "state": r["state"],
            "feature_s": seconds(r),
            "training_s": None,
            "inference_s": None,
        }
        for other in runs:
            if other["dag_id"] == "feature_pipeline":
                continue
            if any(e.get("last_day") == day for e in consumed.get(other["id"], [])):
                key = "training_s" if other["dag_id"] == "training_pipeline" else "inference_s"
                entry[key] = round((entry[key] or 0) + (seconds(other) or 0), 1)
        days.append(entry)
    days.sort(key=lambda d: d["day"] or "")
    tasks = []
    for ti in tis:
        run_ = by_run.get((ti["dag_id"], ti["run_id"]))
        if run_ is None or not ti["start_date"]:
            continue
        queued, start, end = _ts(ti["queued_dttm"]), _ts(ti["start_date"]), _ts(ti["end_date"])
        first, work = _step_lines(env, ti["dag_id"], ti["run_id"], ti["task_id"], ti["try_number"])
        tasks.append(
            {
                "dag_id": ti["dag_id"],
                "task_id": ti["task_id"],
                "state": ti["state"],
                "queued_to_running_s": round(start - queued, 2) if queued else None,
                "running_to_first_line_s": round(first - start, 2) if first else None,
                "work_s": work,
                "running_s": round(end - start, 2) if end else None,
            }
        )
    feature = [d["feature_s"] for d in days if d["feature_s"] is not None]
    return {
        "days": days,
        "median_feature_day_s": statistics.median(feature) if feature else None,
        "tasks": tasks,
    }


def summarize_tasks(tasks: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for t in tasks:
        groups.setdefault((t["dag_id"], t["task_id"]), []).append(t)
    out = []

    def med(ts: list[dict], key: str) -> float | None:
        vals = [t[key] for t in ts if t[key] is not None]
        return round(statistics.median(vals), 2) if vals else None

    for (dag_id, task_id), ts in sorted(groups.items()):
        out.append(
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "n": len(ts),
                "queued_to_running_s": med(ts, "queued_to_running_s"),
                "running_to_first_line_s": med(ts, "running_to_first_line_s"),
                "work_s": med(ts, "work_s"),
                "running_s": med(ts, "running_s"),
            }
        )
    return out


def print_mode(result: dict) -> None:
    print(
        f"\n== {result['mode']}: {len(result['days'])} feature days, median feature day "
        f"{result['median_feature_day_s']} s (prepare {result['prepare_s']:.0f} s, "
        f"load average before {result['load']})"
    )
    print(
        f"  wall {result['wall_s']} s for the backfill to the last run's end "
        f"({result['wall_per_day_s']} s per replayed day, all three pipelines)"
    )
    print(f"  {'day':<12}{'feature_s':>10}{'training_s':>12}{'inference_s':>13}")
    for d in result["days"]:
        print(
            f"  {str(d['day']):<12}{d['feature_s']!s:>10}{d['training_s']!s:>12}"
            f"{d['inference_s']!s:>13}   {d['state']}"
        )
    print(
        f"  {'task (median over runs)':<44}{'n':>3}{'queued->run':>12}{'run->line':>11}"
        f"{'work':>8}{'running':>9}"
    )
    for t in result["task_summary"]:
        print(
            f"  {t['dag_id'] + '.' + t['task_id']:<44}{t['n']:>3}{t['queued_to_running_s']!s:>12}"
            f"{t['running_to_first_line_s']!s:>11}{t['work_s']!s:>8}{t['running_s']!s:>9}"
        )


# ------------------------------------------------------------------ materialization


MATERIALIZE_CODE = r"""
import json, shutil, statistics, sys, time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fti.ground import featurestore
from fti.ground.contract import contract
from fti.ground.settings import get_settings

settings = get_settings()
week_days = [date.fromisoformat(d) for d in json.loads(sys.argv[1])]
history = int(sys.argv[2]); repeats = int(sys.argv[3])
zone = ZoneInfo(settings.timezone)
offline = settings.offline_dir
views = contract(settings).online_views
# the measured day is the week's last; the days before the week are copies of its first seven
# days' real partitions, their timestamps shifted onto the day they stand for
target = week_days[-1]
real = week_days[:-1]
for k in range(1, history - len(real) + 1):
    day = real[0] - timedelta(days=k)
    src_day = real[(k - 1) % len(real)]
    shift = pc.cast((day - src_day).days * 86400 * 1_000_000, "duration[us]")
    for view in views:
        src = offline / view / f"date={src_day.isoformat()}" / "part-0.parquet"
        dst = offline / view / f"date={day.isoformat()}" / "part-0.parquet"
        if dst.exists():
            continue
        t = pq.read_table(src)
        i = t.schema.get_field_index("event_timestamp")
        t = t.set_column(i, "event_timestamp", pc.add(t["event_timestamp"], shift))
        dst.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, dst)
featurestore.apply(settings, force=True)
start = datetime(target.year, target.month, target.day, tzinfo=zone)
end = start + timedelta(days=1)
out = {}
for name, fn in (("feast", featurestore.materialize_with_feast), ("platform", featurestore.materialize)):
    fn(start, end, settings)  # warm: imports, registry
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(start, end, settings); times.append(time.perf_counter() - t0)
    out[name] = round(statistics.median(times), 3)
out["partitions_per_view"] = len(list((offline / views[0]).glob("date=*")))
print(json.dumps(out))
"""


def materialization(repeats: int, log) -> dict:
    """One day's materialization with a week and with a year of history, Feast vs platform."""
    home = Path(tempfile.mkdtemp(prefix="fti-bench-mat-"))
    try:
        env = mode_env(home, "classic")
        first = date(2013, 2, 1)
        week = [first + timedelta(days=i) for i in range(8)]
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        code = (
            "from datetime import date, datetime, timedelta; from zoneinfo import ZoneInfo\n"
            "from feature_repo.jobs import pipeline\n"
            "z = ZoneInfo('America/New_York')\n"
            "a = datetime(2013, 1, 3, tzinfo=z); b = datetime(2013, 2, 9, tzinfo=z)\n"
            "pipeline.land_interval(a, b)\n"
            "d = date(2013, 2, 1)\n"
            "while d <= date(2013, 2, 8):\n"
            "    s = datetime(d.year, d.month, d.day, tzinfo=z); e = s + timedelta(days=1)\n"
            "    st = pipeline.compute(s, e); pipeline.publish(s, e, st['staging'])\n"
            "    d += timedelta(days=1)\n"
        )
        run([PY, "-c", code], env, log=log)
        out = {}
        for label, history in (("week", 7), ("year", 365)):
            res = run(
                [
                    PY,
                    "-c",
                    MATERIALIZE_CODE,
                    json.dumps([d.isoformat() for d in week]),
                    str(history),
                    str(repeats),
                ],
                env,
            )
            out[label] = json.loads(res.stdout.strip().splitlines()[-1])
        for name in ("feast", "platform"):
            out[f"{name}_year_over_week"] = round(out["year"][name] / out["week"][name], 2)
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


OVERHEAD_CODE = r"""
import importlib.util, json, sys, time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo
# what a task forked by the LocalExecutor scheduler already holds: the plugin's preload
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("ls", "plugins/airflow_local_settings.py")
plugin = importlib.util.module_from_spec(spec); spec.loader.exec_module(plugin); plugin.preload()
t_preload = time.perf_counter() - t0
t0 = time.perf_counter()
from feature_repo.jobs import features
from fti.ground.settings import get_settings
from fti.ground.spark import build_session
settings = get_settings()
t_import = time.perf_counter() - t0
day = date.fromisoformat(sys.argv[1])
z = ZoneInfo(settings.timezone)
start = datetime(day.year, day.month, day.day, tzinfo=z)
end = start + timedelta(days=1)
t1 = time.perf_counter()
spark = build_session(settings)
first = features.run(start, end, settings, spark=spark)
t_first = time.perf_counter() - t1
again = []
for _ in range(3):
    t2 = time.perf_counter()
    features.run(start, end, settings, spark=spark)
    again.append(time.perf_counter() - t2)
again.sort()
print(json.dumps({"preload_s": round(t_preload, 3), "import_s": round(t_import, 3), "first_s": round(t_first, 3),
                  "warm_s": round(again[1], 3), "session_s": first["seconds"]["spark_session"]}))
"""


def spark_overhead(base: Path, day: date, repeats: int, log) -> dict:
    """Per mode, a fresh client process holding what the scheduler preloads: session + the
    interval's first compute, against the same compute again in that process (warm): the
    difference is what Spark adds per task."""
    out = {}
    for mode in ("connect", "classic"):
        home = base / mode
        env = mode_env(home, mode)
        server = None
        if mode == "connect":
            server = start_connect(env, log)
            # the server has served days before the measured task (as under the scheduler)
            run([PY, "-c", OVERHEAD_CODE, day.isoformat()], env, log=log)
        try:
            rows = []
            for _ in range(repeats):
                res = run([PY, "-c", OVERHEAD_CODE, day.isoformat()], env)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(60)
        first = statistics.median(r["first_s"] for r in rows)
        warm = statistics.median(r["warm_s"] for r in rows)
        out[mode] = {
            "runs": rows,
            "first_s": round(first, 3),
            "warm_s": round(warm, 3),
            "overhead_s": round(first - warm, 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/scheduler.py", description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--first", type=date.fromisoformat, default=date(2013, 2, 1))
    p.add_argument("--modes", default="connect,classic")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--home", type=Path, default=None, help="state directory base (kept)")
    p.add_argument("--skip-prepare", action="store_true", help="--home holds a prepared state")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--materialization", action="store_true")
    p.add_argument("--materialization-only", action="store_true")
    p.add_argument("--skip-modes", action="store_true", help="no replay (e.g. --spark-overhead)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--spark-overhead",
        action="store_true",
        help="after the modes (or alone, on --home's prepared states): Spark's cost per task",
    )
    args = p.parse_args(argv)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "modes": {},
    }
    base = args.home or Path(tempfile.mkdtemp(prefix="fti-bench-sched-"))
    log_path = base / "bench.log"
    base.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        print(f"state and logs under {base} (log: {log_path})", flush=True)
        if not (args.materialization_only or args.skip_modes):
            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                home = base / mode
                env = mode_env(home, mode)
                load = os.getloadavg()[0]
                prep = 0.0
                if not args.skip_prepare:
                    print(f"[{mode}] preparing (demo over January)...", flush=True)
                    prep = prepare(env, args.first, log)
                print(f"[{mode}] {args.days} days under the scheduler...", flush=True)
                rep = replay(env, args.first, args.days, mode, log, args.timeout)
                res = {
                    "mode": mode,
                    "prepare_s": round(prep, 1),
                    "load": round(load, 2),
                    "wall_s": rep["wall_s"],
                    "wall_per_day_s": round(rep["wall_s"] / args.days, 1),
                    **collect(env, rep["since"]),
                }
                res["task_summary"] = summarize_tasks(res["tasks"])
                results["modes"][mode] = res
                print_mode(res)
        if args.spark_overhead:
            print(f"\n[spark overhead] {args.first} computed in fresh client processes...")
            o = spark_overhead(base, args.first, args.repeats, log)
            results["spark_overhead"] = o
            print(f"  {'mode':<10}{'first':>8}{'warm':>8}{'overhead':>10}   (median s)")
            for mode, r in o.items():
                print(f"  {mode:<10}{r['first_s']:>8}{r['warm_s']:>8}{r['overhead_s']:>10}")
        if args.materialization or args.materialization_only:
            print(
                "\n[materialization] one day with a week and with a year of history...", flush=True
            )
            m = materialization(args.repeats, log)
            results["materialization"] = m
            print(f"  {'':<10}{'week':>8}{'year':>8}{'year/week':>11}")
            for name in ("feast", "platform"):
                print(
                    f"  {name:<10}{m['week'][name]:>8}{m['year'][name]:>8}"
                    f"{m[name + '_year_over_week']:>11}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nJSON: {args.json}")
    if args.home is None and not args.materialization_only:
        print(f"(state kept in {base})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
