"""``make demo``: run the feature pipeline day by day and print what it produced.

The runs go through Airflow (``dag.test``, in this process, recorded in Airflow's metadata DB),
so they are the runs a user then sees in the web UI after ``make up``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from fti.ground.settings import Settings, get_settings


def _configure_airflow(settings: Settings) -> None:
    from fti.ground.airflow_env import airflow_env

    # Airflow reads its configuration from the environment when first imported
    for k, v in airflow_env(settings).items():
        os.environ.setdefault(k, v)


def load_dag(settings: Settings, dag_id: str):
    """The DAG object of ``dags/<dag_id>.py``, imported as the DAG processor would."""
    import importlib.util

    path = settings.dags_folder / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"fti_dags_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"{dag_id}_dag")


@contextlib.contextmanager
def _output_to(log: Path | None):
    """Send everything written to stdout/stderr (Airflow's and Spark's too) to ``log``."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _fix_start_date(dr) -> None:
    """``dag.test`` records the logical date (2013) as the run's start, which the UI turns into
    runs of 13 years; record when its first task really started instead."""
    from airflow.models.dagrun import DagRun
    from airflow.settings import Session

    with Session() as session:
        run = session.get(DagRun, dr.id)
        starts = [ti.start_date for ti in run.get_task_instances(session=session) if ti.start_date]
        if starts:
            run.start_date = min(starts)
            session.commit()


def run_days(
    first: date, last: date, settings: Settings | None = None, log: Path | None = None
) -> list[tuple[date, str]]:
    """Run ``feature_pipeline`` for each local day in order; returns (day, state) pairs.

    With ``log``, Airflow's output goes to that file and only one line per day is printed.
    """
    settings = settings or get_settings()
    _configure_airflow(settings)
    import pendulum

    dag = load_dag(settings, "feature_pipeline")
    states = []
    d = first
    while d <= last:
        t0 = time.perf_counter()
        with _output_to(log):
            # the logical date a scheduled run of that day has: once the DAG is unpaused, the
            # scheduler sees these days as done and carries on with the next one
            # in process nothing else can re-deliver a quarantined day: a day that must wait
            # fails, naming the day it waits for ({"wait": false}; fti.ground.runs.wait_or_fail)
            dr = dag.test(
                logical_date=pendulum.datetime(d.year, d.month, d.day, tz=settings.timezone),
                run_conf={"wait": False},
            )
        _fix_start_date(dr)
        state = str(dr.state)
        states.append((d, state))
        print(f"feature_pipeline {d}: {state} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if state != "success":
            failed = [ti.task_id for ti in dr.get_task_instances() if ti.state == "failed"]
            print(f"  failed task(s): {', '.join(failed) or '?'}; see {log or 'the output above'}")
            break
        d += timedelta(days=1)
    return states


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def summary(first: date, last: date, settings: Settings | None = None) -> dict:
    """What the stores hold for the days ``first..last`` (read from the stores themselves)."""
    from fti.ground import featurestore, files, source
    from fti.ground.contract import contract
    from fti.ground.dates import iter_days

    settings = settings or get_settings()
    days = list(iter_days(first, last))
    landed = [
        d
        for d in days
        if all(files.day_partition(settings.raw_dir, t, d).exists() for t in source.DAILY_TABLES)
    ]
    rows = {}
    for view in contract(settings).view_names:
        n = 0
        for d in days:
            p = files.day_partition(settings.offline_dir, view, d)
            if p.exists():
                n += _rows(p)
        rows[view] = n
    passed = failed = 0
    for d in days:
        for result in (settings.reports_dir / "validation").glob(
            f"*/*/{d.isoformat()}/*/result.json"
        ):
            ok = json.loads(result.read_text()).get("success")
            passed += bool(ok)
            failed += not ok
    try:
        online = featurestore.online_entity_counts(settings)
    except Exception as err:  # the summary still prints when the online store is down
        online = {"unavailable": str(err)}
    return {
        "days": [first.isoformat(), last.isoformat()],
        "days_landed": len(landed),
        "rows_per_feature_view": rows,
        "validations_passed": passed,
        "validations_failed": failed,
        "online_entities": online,
    }


def print_summary(first: date, last: date, settings: Settings | None = None) -> dict:
    """Print :func:`summary` for the days ``first..last`` and where to look next; returns it."""
    settings = settings or get_settings()
    s = summary(first, last, settings)
    print()
    print(f"Feature pipeline summary, {first} .. {last}")
    print(f"  days landed:            {s['days_landed']} of {(last - first).days + 1}")
    print("  rows per feature view (offline store):")
    for view, n in s["rows_per_feature_view"].items():
        print(f"    {view:<24}{n:>10,}")
    print(
        f"  validations passed:     {s['validations_passed']}  (failed: {s['validations_failed']})"
    )
    print(f"  online store ({settings.online_store}) entities:")
    for view, n in s["online_entities"].items():
        print(f"    {view:<24}{n:>10}")
    print()
    print("Where to look next:")
    print(
        f"  make up                  Airflow UI on http://localhost:{settings.airflow_port} (these runs are there)"
    )
    print(
        f"  validation reports       {settings.reports_dir / 'validation'}/<boundary>/<table>/<day>/<run>/report.html"
    )
    print(f"  offline store            {settings.offline_dir}")
    print(
        f"  feast CLI                .venv/bin/feast -c feature_repo -f {settings.feast_dir / 'feature_store.yaml'} feature-views list"
    )
    return s


def run_training(settings: Settings, log: Path | None = None, through: date | None = None) -> dict:
    """One manual ``training_pipeline`` run through Airflow, on the days up to ``through``
    (default: the latest published day); returns what its tasks reported."""
    conf = {"through": through.isoformat()} if through else None
    return _run_once(
        settings,
        "training_pipeline",
        ("trigger", "build_training_set", "train", "evaluate"),
        log,
        conf,
    )


def run_inference(settings: Settings, log: Path | None = None, day: date | None = None) -> dict:
    """One manual ``inference_pipeline`` run through Airflow, scoring ``day`` (default: the day
    after the latest published day); returns what its tasks reported."""
    conf = {"day": day.isoformat()} if day else None
    return _run_once(
        settings, "inference_pipeline", ("deploy", "score_next_day", "monitor"), log, conf
    )


def _run_once(
    settings: Settings,
    dag_id: str,
    task_ids: tuple[str, ...],
    log: Path | None,
    conf: dict | None = None,
) -> dict:
    _configure_airflow(settings)
    dag = load_dag(settings, dag_id)
    t0 = time.perf_counter()
    with _output_to(log):
        dr = dag.test(run_conf=conf)
    _fix_start_date(dr)
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    out = {"state": str(dr.state), "seconds": time.perf_counter() - t0}
    for task_id in task_ids:
        ti = tis.get(task_id)
        out[task_id] = (
            ti.xcom_pull(task_ids=task_id) if ti is not None and ti.state == "success" else None
        )
    out["failed"] = [t for t, ti in tis.items() if ti.state == "failed"]
    return out


def _metric_line(name: str, m: dict | None) -> str:
    if not m:
        return f"    {name:<10} (none)"
    return (
        f"    {name:<10} ROC AUC {m['roc_auc']:.4f}   log loss {m['log_loss']:.4f}   "
        f"calibration error {m['calibration_error']:.4f}"
    )


def print_training_summary(t: dict) -> None:
    """Print what one training run reported: its training set, metrics and decision."""
    print()
    print(f"Training pipeline: {t['state']} ({t['seconds']:.0f} s)")
    built, ev = t.get("build_training_set"), t.get("evaluate")
    if built:
        print(
            f"  training set             {built['rows']:,} rows {built['splits']}, "
            f"{built['data_interval']}"
        )
        print(f"  training-set hash        {built['hash']}")
    if ev:
        print("  test window metrics:")
        print(_metric_line("candidate", ev.get("candidate")))
        print(_metric_line("baseline", ev.get("baseline")))
        champ = ev.get("champion")
        label = (
            f"champion (v{ev['champion_version']})" if ev.get("champion_version") else "champion"
        )
        print(_metric_line(label[:10], champ) if champ else f"    {label:<10} (none yet)")
        print(f"  model version {ev['version']}: {ev['decision']}")
    if t["failed"]:
        print(f"  failed task(s): {', '.join(t['failed'])}")


def print_inference_summary(i: dict, settings: Settings) -> None:
    """Print what one inference run reported: the live service, the scored day, drift."""
    print()
    print(f"Inference pipeline: {i['state']} ({i['seconds']:.0f} s)")
    dep, scored, mon = i.get("deploy"), i.get("score_next_day"), i.get("monitor")
    if dep:
        print(
            f"  live service             model version {dep['model_version']} ({dep['bento']}) "
            f"on {settings.service_url}"
        )
    if scored and scored.get("day"):
        print(
            f"  batch predictions        {scored['rows']:,} flights of {scored['day']}, "
            f"mean delay probability {scored['mean_probability']:.3f}: {scored['path']}"
        )
    if mon and mon.get("day"):
        drifted = ", ".join(mon["drifted"][:5]) or "none"
        print(
            f"  monitoring               drifted features (PSI > {settings.drift_psi_threshold}): "
            f"{drifted}"
        )
        print(f"                           report: {mon['report']}")
    if i["failed"]:
        print(f"  failed task(s): {', '.join(i['failed'])}")


def curl_example(settings: Settings) -> str:
    """A ready-to-paste curl calling /predict for a real flight."""
    from serving.rollout import smoke_flight

    flight = json.dumps(smoke_flight(settings))
    return f"curl -s -X POST {settings.service_url}/predict -H 'Content-Type: application/json' -d '{flight}'"


@contextlib.contextmanager
def _warm_spark(settings: Settings):
    """The demo's Spark: a local Spark Connect server for the run (stopped after it), its tasks
    the server's clients, as under ``make up``; an already configured server is used as is."""
    if settings.spark_remote or not settings.spark_master.startswith("local"):
        yield settings
        return
    from fti.apps import spark_server

    print(
        f"Starting a Spark Connect server for the run (log: {settings.home / 'logs'})", flush=True
    )
    with spark_server.running(settings) as url:
        os.environ["FTI_SPARK_REMOTE"] = url
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            from fti.ground.spark import stop_remote_session

            stop_remote_session()
            os.environ.pop("FTI_SPARK_REMOTE", None)
            get_settings.cache_clear()


def run_demo(first: date, last: date, train: bool = True) -> int:
    """``make demo``: the feature pipeline over ``first..last``, one training run and one
    inference run, each through Airflow, with a summary; serves until Ctrl-C."""
    t0 = time.perf_counter()
    with _warm_spark(get_settings()) as settings:
        ok = _demo(first, last, train, settings, t0)
    print(f"\ndemo took {time.perf_counter() - t0:.0f} s")
    settings = get_settings()
    if ok and train:
        return _serve_until_interrupted(settings)
    # py4j logs its connection shutdown at interpreter exit; nothing there is news
    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    return 0 if ok else 1


def _demo(first: date, last: date, train: bool, settings: Settings, t0: float) -> bool:
    """The demo's runs; whether all of them succeeded."""
    log = settings.home / "logs" / "demo.log"
    print(f"Running feature_pipeline for {first}..{last} through Airflow (full log: {log})")
    states = run_days(first, last, settings, log=log)
    s = print_summary(first, last, settings)
    print(f"\nfeature pipeline over {len(states)} days took {time.perf_counter() - t0:.0f} s")
    ok = (
        all(state == "success" for _, state in states)
        and s["days_landed"] == (last - first).days + 1
    )
    if ok and train:
        print("\nRunning training_pipeline once through Airflow ...", flush=True)
        t = run_training(settings, log=log, through=last)
        print_training_summary(t)
        print(
            f"  MLflow                   {settings.tracking_uri}  "
            f"(.venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri})"
        )
        ok = t["state"] == "success"
        if ok:
            print("\nRunning inference_pipeline once through Airflow ...", flush=True)
            i = run_inference(settings, log=log, day=last + timedelta(days=1))
            print_inference_summary(i, settings)
            ok = i["state"] == "success" and bool(i.get("deploy"))
            if not i.get("deploy"):
                print("  no model is live: the training pipeline promoted none (see its decision)")
    return ok


def _serve_until_interrupted(settings: Settings) -> int:
    """Print the curl, keep the service up until Ctrl-C (or return at once with DEMO_EXIT=1);
    the service is stopped either way."""
    from serving import rollout

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    print("\nTry it:\n")
    print(f"  {curl_example(settings)}\n")
    print(f"  OpenAPI: {settings.service_url}/docs.json   metrics: {settings.service_url}/metrics")
    import signal

    def _stop(signum, frame):  # `kill` (SIGTERM) stops it as cleanly as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        if os.environ.get("DEMO_EXIT") == "1":
            return 0
        print("\nThe service keeps running; Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()
        return 0
    finally:
        rollout.stop_local(settings)
        print("service stopped", flush=True)
