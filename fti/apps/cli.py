"""Command line of the platform, used by the Makefile.

- ``env``: shell ``export`` lines that configure Airflow from the settings;
- ``feast-apply``: ``feast apply`` of the feature repo, and a feature_store.yaml for the CLI;
- ``demo``: run the feature pipeline over a range of days and print the summary;
- ``summary``: print what the stores hold now;
- ``mlflow-ui``: the MLflow UI over the embedded tracking store (``make up`` starts it);
- ``spark-connect``: the local Spark Connect server every Spark task uses (``make up`` starts it);
- ``deploy VERSION`` / ``rollback`` / ``stop`` / ``live``: switch the live service to a
  registered model version (starting it when none runs) / restore the previously live one /
  stop the local service / print the live history;
- ``redeliver``: run a quarantined day again once its source is corrected;
- ``quarantine``: list the quarantined days and the days waiting on them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import date

from fti.ground.settings import get_settings


def _env(args: argparse.Namespace) -> int:
    from fti.ground.airflow_env import airflow_env

    settings = get_settings()
    env = airflow_env(settings)
    if args.spark_connect and not settings.spark_remote:
        from fti.apps import spark_server

        # the tasks are clients of the local server `make up` starts beside Airflow
        env["FTI_SPARK_REMOTE"] = spark_server.url(settings)
    for k, v in env.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


def _spark_connect(args: argparse.Namespace) -> int:
    """Run the local Spark Connect server (until ``--watch PID`` ends), or ``--wait`` for one."""
    import socket
    import time

    from fti.apps import spark_server

    settings = get_settings()
    if args.wait is not None:
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", settings.spark_connect_port)) == 0:
                    return 0
            time.sleep(0.5)
        print(
            f"no Spark Connect server on port {settings.spark_connect_port} after {args.wait} s "
            f"(log: {settings.home / 'logs' / 'spark-connect.log'})",
            file=sys.stderr,
        )
        return 1
    return spark_server.serve(settings, watch=args.watch, host=args.host, to_stdout=args.log_stdout)


def _feast_apply(_: argparse.Namespace) -> int:
    from fti.ground import featurestore

    print(featurestore.apply())
    print(f"feature_store.yaml for the feast CLI: {featurestore.write_yaml()}")
    return 0


def _login(args: argparse.Namespace) -> int:
    """Wait for `airflow standalone` to write the admin password, then print the login."""
    import json
    import time

    settings = get_settings()
    path = settings.airflow_dir / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            for user, password in json.loads(path.read_text()).items():
                print(
                    f"\n  Airflow UI: http://localhost:{settings.airflow_port}/  "
                    f"login: {user} / {password}\n",
                    flush=True,
                )
            return 0
        time.sleep(1)
    print(f"no Airflow login found at {path} after {args.wait} s", file=sys.stderr)
    return 1


def mlflow_ui_command(settings) -> list[str] | None:
    """The MLflow UI over the embedded tracking store; None when a tracking server is configured
    (its own UI is the one to open)."""
    from pathlib import Path

    if settings.mlflow_tracking_uri is not None:
        return None
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        settings.tracking_uri,
        "--default-artifact-root",
        (settings.mlflow_dir / "artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.mlflow_ui_port),
        "--workers",
        "1",
    ]


def _mlflow_ui(args: argparse.Namespace) -> int:
    """Run the MLflow UI; with ``--watch PID``, stop it (its whole process group) when PID ends.

    ``make up`` starts it in the background next to ``airflow standalone``; a background job of
    a non-interactive shell ignores Ctrl-C, so it watches Airflow's pid instead (portable, unlike
    Linux's parent-death signal).
    """
    import signal
    import subprocess
    import time

    from fti.apps.processes import alive

    settings = get_settings()
    cmd = mlflow_ui_command(settings)
    if cmd is None:
        print(f"MLflow tracking server configured: {settings.mlflow_tracking_uri}")
        return 0
    print(f"\n  MLflow UI: http://localhost:{settings.mlflow_ui_port}/\n", flush=True)
    if args.watch is None:
        os.execv(cmd[0], cmd)
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)

    def _stop(signum, _frame):
        # killed with its process group (a supervisor's SIGTERM, a closed terminal's SIGHUP):
        # the server runs in a group of its own, so stop it on the way out
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        while proc.poll() is None and alive(args.watch):
            time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0


def _rollback(_: argparse.Namespace) -> int:
    """Make the model version live before the current one live again."""
    from serving import rollout

    settings = get_settings()
    try:
        entry = rollout.rollback(settings)
    except (LookupError, rollout.RolloutFailed) as err:
        print(f"rollback: {err}", file=sys.stderr)
        return 1
    print(
        f"model version {entry['model_version']} ({entry['bento']}) is live again on "
        f"{settings.service_url} (was {entry['rollback_of']})"
    )
    return 0


def _deploy(args: argparse.Namespace) -> int:
    """Switch the live service to a registered model version."""
    from serving import pipeline, rollout

    settings = get_settings()
    try:
        entry = pipeline.deploy_version(args.version, settings)
    except (LookupError, rollout.RolloutFailed) as err:
        print(f"deploy: {err}", file=sys.stderr)
        return 1
    print(f"model version {entry['model_version']} ({entry['bento']}) is live on {entry['url']}")
    return 0


def _challenger(args: argparse.Namespace) -> int:
    """Name (or clear) the shadow challenger; the running local service follows at once."""
    from serving import challenger
    from training import registry

    settings = get_settings()
    if args.version is None and not args.clear:
        found = registry.challenger(settings)
        print(f"challenger: {'v' + str(found.version) if found else 'none'}")
        return 0
    try:
        registry.set_challenger(None if args.clear else args.version, settings)
    except (LookupError, ValueError) as err:
        print(f"challenger: {err}", file=sys.stderr)
        return 1
    wanted = "none" if args.clear else f"v{args.version}"
    if settings.serving_runtime != "local":
        print(f"challenger: {wanted} (the serving container follows the alias)")
        return 0
    synced = challenger.sync(settings)
    if synced["error"] == "the service does not answer":
        print(f"challenger: {wanted} (shadows once the service runs)")
        return 0
    if synced["error"]:
        print(f"challenger: {wanted} is named, but the service refused it: {synced['error']}")
        return 1
    print(f"challenger: {wanted}, shadowing the live model on {settings.service_url}")
    return 0


def _stop(_: argparse.Namespace) -> int:
    """Stop the local service."""
    from serving import rollout

    settings = get_settings()
    stopped = rollout.stop_local(settings)
    print(f"the service on {settings.service_url} " + ("stopped" if stopped else "was not running"))
    return 0


def _live(_: argparse.Namespace) -> int:
    """Which model version served from when to when."""
    from serving import rollout

    for e in rollout.history(get_settings()):
        print(f"v{e['model_version']:<5} {e['bento']:<32} {e['from']} .. {e['until'] or 'now'}")
    return 0


def _days(text: str) -> tuple[date, date]:
    first, _, last = text.partition("..")
    a = date.fromisoformat(first)
    return a, date.fromisoformat(last) if last else a


def _demo(args: argparse.Namespace) -> int:
    from fti.apps.demo import run_demo

    first, last = _days(args.days)
    return run_demo(first, last, train=not args.no_training)


def _summary(args: argparse.Namespace) -> int:
    from fti.apps.demo import print_summary

    first, last = _days(args.days)
    print_summary(first, last)
    return 0


def _redeliver(args: argparse.Namespace) -> int:
    """Run a quarantined day again (the feature DAG, in process) once its source is fixed."""
    from feature_repo.jobs import quarantine
    from fti.apps.demo import run_days

    settings = get_settings()
    day = date.fromisoformat(args.day)
    held = quarantine.open_days(settings)
    if day not in held:
        print(
            f"{day} is not quarantined; nothing to re-deliver (quarantined days: "
            f"{', '.join(map(str, held)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    earlier = quarantine.waiting(settings, day)
    if earlier:
        print(
            f"{day} waits for the earlier quarantined day {earlier[0].day}: re-deliver that "
            "one first",
            file=sys.stderr,
        )
        return 2
    print(f"re-delivering {held[day].describe()}", flush=True)
    states = run_days(day, day, settings)
    if states != [(day, "success")]:
        again = quarantine.open_days(settings).get(day)
        where = f": {again.describe()}, in {again.folders[0].parent}" if again else ""
        print(f"{day} did not pass again{where}", file=sys.stderr)
        return 1
    print(
        f"{day} re-delivered: validated, published and materialized; its quarantine is "
        f"released and the days that waited for it go on (a waiting scheduled run retries "
        f"every {settings.quarantine_poll_s:.0f} s)"
    )
    return 0


def _quarantine(_: argparse.Namespace) -> int:
    from feature_repo.jobs import quarantine

    found = quarantine.entries(get_settings())
    for q in found:
        state = "released" if q.released else "OPEN"
        print(f"{state:8} {q.describe()}  [{q.folders[0].parent}]")
    if not found:
        print("no day has been quarantined")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m fti <command>`` (the module docstring lists the commands)."""
    parser = argparse.ArgumentParser(prog="python -m fti")
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="export lines for Airflow")
    env.add_argument(
        "--spark-connect",
        action="store_true",
        help="tasks use the local Spark Connect server (make up starts it)",
    )
    env.set_defaults(fn=_env)
    sc = sub.add_parser("spark-connect", help="the local Spark Connect server for Spark tasks")
    sc.add_argument("--watch", type=int, default=None, help="stop when this process ends")
    sc.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (the compose stack's service: 0.0.0.0)",
    )
    sc.add_argument(
        "--log-stdout",
        action="store_true",
        help="the server's log on standard output (a container's log)",
    )
    sc.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="only wait until the server listens (exit 1 after SECONDS)",
    )
    sc.set_defaults(fn=_spark_connect)
    sub.add_parser("feast-apply", help="feast apply the feature repo").set_defaults(fn=_feast_apply)
    lg = sub.add_parser("login", help="print the Airflow UI login once standalone wrote it")
    lg.add_argument("--wait", type=int, default=120)
    lg.set_defaults(fn=_login)
    ui = sub.add_parser("mlflow-ui", help="the MLflow UI over the embedded tracking store")
    ui.add_argument("--watch", type=int, default=None, help="stop when this process ends")
    ui.set_defaults(fn=_mlflow_ui)
    sub.add_parser("rollback", help="restore the previously live model version").set_defaults(
        fn=_rollback
    )
    dp = sub.add_parser("deploy", help="switch the live service to a registered model version")
    dp.add_argument("version", help="the registered model version, e.g. 3")
    dp.set_defaults(fn=_deploy)
    ch = sub.add_parser(
        "challenger", help="the shadow challenger: show it, name a version, or --clear it"
    )
    ch.add_argument("version", nargs="?", default=None, help="a registered model version")
    ch.add_argument("--clear", action="store_true", help="no challenger")
    ch.set_defaults(fn=_challenger)
    sub.add_parser("stop", help="stop the local service").set_defaults(fn=_stop)
    sub.add_parser("live", help="which model version was live from when to when").set_defaults(
        fn=_live
    )
    rd = sub.add_parser("redeliver", help="run a quarantined day again once its source is fixed")
    rd.add_argument("--day", required=True, help="the quarantined local day, YYYY-MM-DD")
    rd.set_defaults(fn=_redeliver)
    sub.add_parser("quarantine", help="list the quarantined days").set_defaults(fn=_quarantine)
    demo_days = "2013-01-01..2013-01-31"
    d = sub.add_parser("demo", help="run the feature pipeline over DAYS and print a summary")
    d.add_argument("--days", default=demo_days, help="FIRST..LAST (default: %(default)s)")
    d.add_argument("--no-training", action="store_true", help="run the feature pipeline only")
    d.set_defaults(fn=_demo)
    s = sub.add_parser("summary", help="print the demo summary for DAYS")
    s.add_argument("--days", default=demo_days)
    s.set_defaults(fn=_summary)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return args.fn(args)
