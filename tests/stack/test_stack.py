"""The multi-service stack, driven for real: images built, docker-compose.yml up, the feature,
training and inference pipelines triggered through Airflow's REST API, the service asked for a
prediction, the stores checked; then the faults (no .env, a killed scheduler, a stopped Redis)
and the secrets (never in a log, a rendered template field or the training pod's spec)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from helpers import ROOT, real_source
from stackkit import DAYS, require_engine, stack_env, stackctl

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DAGS = ("feature_pipeline", "training_pipeline", "inference_pipeline")


def _http(
    url: str, body: dict | list | None = None, timeout: float = 30
) -> tuple[int, dict | list | str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _local_midnight(day: str) -> str:
    import pandas as pd

    return pd.Timestamp(day, tz="America/New_York").isoformat()


def _real_flight(day: str) -> dict:
    """A flight of ``day`` from the data set's own file, as a /predict request."""
    import pandas as pd

    y, m, d = (int(x) for x in day.split("-"))
    df = pd.read_csv(real_source() / "flights.csv.zip", na_values=["NA"])
    row = df[(df.year == y) & (df.month == m) & (df.day == d) & df.tailnum.notna()].iloc[0]
    hh, mm = divmod(int(row.sched_dep_time), 100)
    return {
        "carrier": row.carrier,
        "flight": int(row.flight),
        "origin": row.origin,
        "dest": row.dest,
        "tailnum": row.tailnum,
        "sched_dep_ts": f"{day}T{hh:02d}:{mm:02d}:00",
    }


def _python_in(stack, service: str, code: str):
    """Run ``code`` with the service's Python and settings; its last stdout line, as JSON."""
    out = stack.exec(service, "python", "-c", code).stdout.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="session")
def cycle(stack):
    """One feature -> training -> inference cycle through the REST API; what it returned."""
    af = stack.airflow
    af.wait_dags(DAGS)
    started = time.monotonic()
    runs = {"feature_pipeline": []}
    for day in DAYS:
        runs["feature_pipeline"].append(
            af.run_once("feature_pipeline", _local_midnight(day), stack)
        )
    runs["training_pipeline"] = [af.run_once("training_pipeline", None, stack)]
    runs["inference_pipeline"] = [af.run_once("inference_pipeline", None, stack)]
    return {"runs": runs, "seconds": time.monotonic() - started}


# ------------------------------------------------------------------------------ no engine needed


def test_compose_refuses_to_start_without_env(tmp_path):
    # given a checkout without .env and none of its variables in the environment
    compose = stackctl.compose_bin()
    if subprocess.run(["sh", "-c", f"command -v {compose}"], capture_output=True).returncode:
        require_engine()
    env = {k: v for k, v in os.environ.items() if k not in stack_env.generate()}
    # when compose reads docker-compose.yml
    proc = subprocess.run(
        [
            compose,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--project-directory",
            str(tmp_path),
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    # then it stops, saying how to make the file
    assert proc.returncode != 0
    assert "run make stack-env" in proc.stderr, proc.stderr
    # and so does the stack script, before calling compose
    with pytest.raises(stackctl.StackError, match="run make stack-env"):
        stackctl.Stack(project="ftinoenv", env_file=tmp_path / ".env").up()


def test_stack_env_writes_private_generated_secrets(tmp_path):
    path = tmp_path / ".env"
    assert stack_env.main([str(path)]) == 0
    first = path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    values = dict(
        line.split("=", 1)
        for line in first.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(stack_env.generate()) <= set(values)
    assert all(len(values[k]) >= 32 for k in stack_env.generate())
    # an existing file keeps its secrets
    assert stack_env.main([str(path)]) == 0 and path.read_text() == first
    # and two generations share nothing
    assert not set(stack_env.generate().values()) & set(stack_env.generate().values())


def test_training_pod_spec_holds_no_secret(tmp_path):
    from kubernetes.client import ApiClient

    from fti.ground.settings import Settings
    from training.pipeline import training_pod_operator

    sentinels = [f"sentinel{n}{os.urandom(8).hex()}" for n in range(3)]
    settings = Settings(
        home=tmp_path,
        training_runtime="kubernetes",
        redis_connection_string=f"redis:6379,password={sentinels[0]}",
        airflow_database_url=f"postgresql+psycopg2://airflow:{sentinels[1]}@pg/airflow",
        mlflow_tracking_uri=f"http://mlflow:5000?token={sentinels[2]}",
    )
    op = training_pod_operator("train", settings)
    pod = json.dumps(ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True)))
    assert '"secretRef"' in pod
    for s in sentinels:
        assert s not in pod


# ------------------------------------------------------------------------------ the stack


def test_images_run_as_non_root_and_training_image_is_slim(images):
    for name in ("base", "spark", "airflow", "serving", "training"):
        user = stackctl.run(
            [
                stackctl.docker(),
                "image",
                "inspect",
                "--format",
                "{{.Config.User}}",
                stackctl.image_tag(name),
            ]
        ).stdout.strip()
        assert user not in ("", "root", "0"), f"{name} runs as root"
    # the training image runs the entry point and has no Airflow, Feast or Spark
    tag = stackctl.image_tag("training")
    help_text = stackctl.run([stackctl.docker(), "run", "--rm", tag, "train", "--help"]).stdout
    assert "--snapshot" in help_text
    probe = stackctl.run(
        [
            stackctl.docker(),
            "run",
            "--rm",
            "--entrypoint",
            "python",
            tag,
            "-c",
            "import importlib.util as u; print([m for m in ('airflow', 'feast', 'pyspark', 'torch') if u.find_spec(m)])",
        ]
    ).stdout
    assert probe.strip() == "['torch']"
    # Spark's image has Java for the cluster and the driver
    java = stackctl.run(
        [stackctl.docker(), "run", "--rm", stackctl.image_tag("spark"), "java", "-version"]
    )
    assert "17" in java.stderr + java.stdout


def test_feature_training_inference_through_the_stack(stack, cycle):
    af = stack.airflow
    # every feature day, the training and the inference run succeeded (wait_run fails otherwise)
    assert len(cycle["runs"]["feature_pipeline"]) == len(DAYS)

    # the feature jobs ran on the Spark cluster through the warm Spark Connect server: its one
    # application, and none of a task (a task is its client, not a driver)
    status, master = _http(stack.url["spark_ui"] + "/json/")
    assert status == 200, master
    assert [a["name"] for a in master["activeapps"]] == ["Spark Connect server"], master
    assert master["completedapps"] == [], master

    # the registry holds the promoted model
    status, alias = _http(
        stack.url["mlflow"] + "/api/2.0/mlflow/registered-models/alias?"
        "name=flight_delay&alias=champion"
    )
    assert status == 200, alias
    version = alias["model_version"]["version"]
    tags = {t["key"]: t["value"] for t in alias["model_version"].get("tags", [])}
    assert tags.get("gate.decision") == "promoted"

    # Feast's online store in Redis holds every online view's entities
    counts = _python_in(
        stack,
        "serving",
        "import json; from fti.ground.featurestore import "
        "online_entity_counts; print(json.dumps(online_entity_counts()))",
    )
    assert all(n > 0 for n in counts.values()), counts

    # the serving container answers a real flight with the champion
    flight = _real_flight(DAYS[-1])
    status, body = _http(stack.url["serving"] + "/predict", flight)
    assert status == 200, body
    assert body[0]["model_version"] == str(version)
    assert 0.0 <= body[0]["delay_probability"] <= 1.0
    assert body[0]["oldest_feature_age_s"] is not None

    # the inference run published the next day's predictions
    run = cycle["runs"]["inference_pipeline"][0]
    states = {ti["task_id"]: ti["state"] for ti in af.task_instances("inference_pipeline", run)}
    assert states["deploy"] == states["score_next_day"] == "success", states


def test_platform_page_in_the_stacks_airflow_ui(stack, cycle):
    """The Airflow UI page (plugins/fti_platform.py) in the compose shape: the api-server reads
    Postgres, the Feast registry with Redis, the MLflow server and the serving container."""
    status, _ = _http(stack.url["airflow"] + "/fti/api/status")
    assert status == 401  # Airflow users only
    deadline, page = time.monotonic() + 120, None
    while time.monotonic() < deadline:  # Feast and MLflow load once after the server starts
        page = stack.airflow.get("/fti/api/status")["sections"]
        if all(sec["available"] for sec in page.values()):
            break
        time.sleep(5)
    assert all(sec["available"] for sec in page.values()), {
        name: sec["reason"] for name, sec in page.items() if not sec["available"]
    }
    runs = {p["dag_id"]: p["runs"] for p in page["pipelines"]["data"]["pipelines"]}
    for dag_id in ("feature_pipeline", "training_pipeline", "inference_pipeline"):
        assert runs[dag_id] and runs[dag_id][0]["state"] == "success", (dag_id, runs[dag_id])
    assert page["online_store"]["data"]["type"] == "redis"
    champion = page["models"]["data"]["champion"]
    assert champion is not None
    assert page["service"]["data"]["ready"] is True
    assert page["service"]["data"]["model_version"] == champion
    assert page["live"]["data"]["history"][-1]["model_version"] == champion


def _partitions_without_duplicates(stack, day: str) -> dict:
    code = f"""
import json
from pathlib import Path
import pandas as pd
from fti.ground.contract import contract
root, day, out = Path('/data'), {day!r}, {{}}
for spec in contract().views:
    view, keys = spec.name, {{*spec.keys, 'event_timestamp'}}
    files = sorted((root / 'offline' / view / f'date={{day}}').glob('*.parquet'))
    df = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
    subset = [c for c in df.columns if c in keys]
    out[view] = {{'files': len(files), 'rows': len(df), 'duplicates': int(df.duplicated(subset=subset).sum()) if len(df) else 0}}
print(json.dumps(out))
"""
    return _python_in(stack, "airflow-scheduler", code)


def _predictions_without_duplicates(stack, day: str) -> dict:
    code = f"""
import json
from pathlib import Path
import pandas as pd
files = sorted(Path('/data/predictions/date={day}').glob('*.parquet'))
df = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame({{'flight_id': []}})
print(json.dumps({{'files': len(files), 'rows': len(df), 'duplicates': int(df['flight_id'].duplicated().sum())}}))
"""
    return _python_in(stack, "airflow-scheduler", code)


def _kill_scheduler_during(stack, dag_id: str, logical_date: str | None, task_id: str) -> str:
    """Trigger ``dag_id``, SIGKILL the scheduler container while ``task_id`` runs, start it
    again; returns the run id once the run has finished (successfully: asserted)."""
    af = stack.airflow
    af.drop_queued_events(dag_id)
    af.set_paused(dag_id, False)
    # a task of a second or two can end between two looks: a run that finished before its
    # task was seen running is triggered again (the kill must land while the task runs); a
    # run for a logical date exists once, so that one gets one try
    attempts = 1 if logical_date else 5
    for _attempt in range(attempts):
        run_id = af.trigger(dag_id, logical_date)
        deadline = time.monotonic() + 900
        caught = False
        while time.monotonic() < deadline:
            states = {ti["task_id"]: ti["state"] for ti in af.task_instances(dag_id, run_id)}
            if states.get(task_id) == "running":
                caught = True
                break
            if af.state(dag_id, run_id) in ("success", "failed"):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"{task_id} of {dag_id} never ran: {states}")
        if caught:
            break
        af.wait_run(dag_id, run_id, stack)
    else:
        pytest.fail(f"{task_id} of {dag_id} was never seen running in {attempts} runs: {states}")
    scheduler = stack.containers()["airflow-scheduler"]["id"]
    stackctl.run([stackctl.docker(), "kill", scheduler])
    stack.compose("start", "airflow-scheduler")
    stack.wait_healthy(timeout=600)
    try:
        assert af.wait_run(dag_id, run_id, stack) == "success"
    finally:
        af.set_paused(dag_id, True)
    return run_id


def test_scheduler_killed_mid_run_finishes_without_duplicates(stack, cycle):
    day = "2013-01-04"
    # a feature day whose Spark job dies with the scheduler
    _kill_scheduler_during(stack, "feature_pipeline", _local_midnight(day), "compute_features")
    parts = _partitions_without_duplicates(stack, day)
    for view, p in parts.items():
        assert p["files"] == 1 and p["rows"] > 0 and p["duplicates"] == 0, (view, p)
    # batch scoring killed the same way: the next day's predictions, once
    _kill_scheduler_during(stack, "inference_pipeline", None, "score_next_day")
    preds = _predictions_without_duplicates(stack, "2013-01-05")
    assert preds["files"] == 1 and preds["rows"] > 0 and preds["duplicates"] == 0, preds


def test_redis_stopped_makes_readyz_503_until_it_is_back(stack, cycle):
    url = stack.url["serving"]
    before = stack.containers()["serving"]
    assert _http(url + "/readyz")[0] == 200
    stack.compose("stop", "redis")
    try:
        deadline = time.monotonic() + 60
        status, body = _http(url + "/readyz")
        while status != 503 and time.monotonic() < deadline:
            time.sleep(1)
            status, body = _http(url + "/readyz")
        assert status == 503 and "Redis" in str(body), (status, body)
        # and /predict says so too, at once
        status, body = _http(url + "/predict", _real_flight(DAYS[-1]))
        assert status == 503, body
    finally:
        stack.compose("start", "redis")
    deadline = time.monotonic() + 120
    while _http(url + "/readyz")[0] != 200:
        assert time.monotonic() < deadline, _http(url + "/readyz")
        time.sleep(1)
    status, body = _http(url + "/predict", _real_flight(DAYS[-1]))
    assert status == 200, body
    # the same container and the same process: nothing restarted
    after = stack.containers()["serving"]
    assert after["id"] == before["id"] and after["restarts"] == before["restarts"]
    started = [
        stackctl.run(
            [stackctl.docker(), "inspect", "--format", "{{.State.StartedAt}}", c["id"]]
        ).stdout
        for c in (before, after)
    ]
    assert started[0] == started[1]


def test_no_secret_in_logs_or_rendered_fields(stack, cycle):
    sentinels = list(stack.secrets.values())
    # every container's log
    logs = stack.compose("logs", "--no-color", timeout=300).stdout
    assert "scheduler" in logs and len(logs) > 10_000
    for name, value in stack.secrets.items():
        assert value not in logs, f"{name} appears in a container log"
    # Airflow's task logs (files of every try of every task)
    code = (
        "import json, sys; from pathlib import Path; files = [p for p in "
        "Path('/opt/fti/airflow/logs').rglob('*') if p.is_file()]; hits = [str(p) for p in files "
        "if any(s.encode() in p.read_bytes() for s in sys.argv[1:])]; "
        "print(json.dumps({'files': len(files), 'hits': hits}))"
    )
    found = json.loads(
        stack.exec("airflow-scheduler", "python", "-c", code, *sentinels).stdout.splitlines()[-1]
    )
    assert found["files"] > 20 and found["hits"] == [], found
    # rendered template fields of every task of every run
    af = stack.airflow
    rendered = []
    for dag_id in DAGS:
        for run in af.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]:
            for ti in af.task_instances(dag_id, run["dag_run_id"]):
                rendered.append(ti.get("rendered_fields"))
    text = json.dumps(rendered)
    assert len(rendered) > 20 and any(rendered), rendered[:5]
    for name, value in stack.secrets.items():
        assert value not in text, f"{name} appears in a rendered template field"


# the serving container's own Python: two more versions of the champion's model registered, one
# a clone that answers, one whose weights are NaN (it loads, and fails the switch's check)
_REGISTER_VERSIONS = """
import json, shutil, tempfile, torch
from pathlib import Path
from fti.ground.settings import get_settings
from serving import model as served
from training import registry
s = get_settings()
champion = str(registry.champion(s).version)
staged = served.stage_champion(s)
results = {"validation": {}, "test": {}, "samples_per_second": 1.0}
clone = registry.register(staged, results, {"code_version": "stack clone"}, s)[1]
with tempfile.TemporaryDirectory() as tmp:
    nan = Path(tmp) / "nan"
    shutil.copytree(staged, nan)
    saved = torch.load(nan / "model.pt", weights_only=False)
    saved["state_dict"] = {k: v * float("nan") for k, v in saved["state_dict"].items()}
    torch.save(saved, nan / "model.pt")
    broken = registry.register(nan, results, {"code_version": "stack nan"}, s)[1]
print(json.dumps({"champion": champion, "clone": str(clone), "nan": str(broken)}))
"""


def _alias(stack, alias: str, version: str | None) -> None:
    """Move (or, with None, delete) an alias of the stack's registered model with the MLflow
    client against the stack's tracking server, as a person or a CD system would."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.url["mlflow"])
    if version is None:
        client.delete_registered_model_alias("flight_delay", alias)
    else:
        client.set_registered_model_alias("flight_delay", alias, version)


def test_switches_through_the_serving_container_under_load_drop_no_request(stack, cycle):
    """The compose runtime: the champion alias moved to another version, to one that fails its
    check, and back, while a client calls /predict at more than 50 requests a second; a
    challenger named meanwhile shadows it. Every request is answered, each by the version live
    when it started, and the serving container is never restarted."""
    import threading

    import httpx

    url = stack.url["serving"]
    before = stack.containers()["serving"]
    v = _python_in(stack, "serving", _REGISTER_VERSIONS)
    flight = _real_flight(DAYS[-1])
    answers: list = []
    stop = threading.Event()

    def client():
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = c.post(url + "/predict", json=flight)
                    got = r.json()[0]["model_version"] if r.status_code == 200 else r.text
                    answers.append((sent, time.monotonic(), r.status_code, got))
                except Exception as err:  # a dropped connection is a failed request too
                    answers.append((sent, time.monotonic(), repr(err), None))

    def serves(version: str, timeout: float = 90) -> float:
        """When the first answer of ``version`` to a request sent from now on came back."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            got = [a[1] for a in list(answers) if a[3] == version and a[0] > since]
            if got:
                return min(got)
            time.sleep(0.5)
        raise AssertionError(f"the service never answered with version {version}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    switches = []
    try:
        time.sleep(3)
        _alias(stack, "champion", v["clone"])
        switches.append((v["clone"], serves(v["clone"])))
        _alias(stack, "challenger", v["champion"])
        time.sleep(8)  # the supervisor's next polls: the running server shadows it
        # a version that fails its check: refused by the running server, which keeps the clone
        _alias(stack, "champion", v["nan"])
        time.sleep(12)  # four polls of the supervisor (FTI_SERVING_POLL_S=3)
        _alias(stack, "champion", v["champion"])  # the rollback
        switches.append((v["champion"], serves(v["champion"])))
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        _alias(stack, "champion", v["champion"])
        _alias(stack, "challenger", None)
    seconds = time.monotonic() - started
    failed = [a for a in answers if a[2] != 200]
    assert not failed, failed[:5]
    assert len(answers) / seconds >= 50, (len(answers), seconds)
    assert {a[3] for a in answers} == {v["champion"], v["clone"]}  # never the NaN one
    # after the first answer of a new version, every request sent later got it (or a later one)
    for i, (version, first) in enumerate(switches):
        until = switches[i + 1][1] if i + 1 < len(switches) else float("inf")
        wrong = [a for a in answers if first < a[0] and a[1] < until and a[3] != version]
        assert not wrong, (version, wrong[:5])
    # the challenger shadowed the clone in the inference log of the shared offline store
    logged = _python_in(
        stack,
        "serving",
        "import json; from serving import inference_log; from fti.ground.settings import "
        "get_settings; df = inference_log.read(get_settings()); "
        "print(json.dumps(sorted(df[df.challenger_version.notna()].groupby("
        "['model_version', 'challenger_version']).size().index.map(list).tolist())))",
    )
    assert [v["clone"], v["champion"]] in logged, logged
    # the same container and process throughout: switched inside it
    after = stack.containers()["serving"]
    assert after["id"] == before["id"] and after["restarts"] == before["restarts"]
