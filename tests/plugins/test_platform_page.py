"""The platform page's routes in process: authentication, the JSON's shape and values (equal to
what the stores hold after a small platform run), escaping, and the faults it must survive."""

from __future__ import annotations

import html
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from helpers import ROOT, free_port, http

from fti.apps.status import sections
from fti.ground.settings import get_settings

SECTIONS = [
    "pipelines",
    "feature_views",
    "online_store",
    "validations",
    "models",
    "live",
    "service",
    "monitoring",
]
ROUTES = ["/fti/", "/fti/api/status", "/fti/reports/validation/raw/flights/x/report.html"]


def _status(client, token) -> dict:
    r = client.get("/fti/api/status", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def env(monkeypatch):
    """Set ``FTI_*`` variables for the page (it reads the settings on every request)."""

    def set_env(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


# ------------------------------------------------------------------ authentication, plugin


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_requires_an_airflow_user(client, token, path):
    # given no credential, or one Airflow did not sign
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    assert client.get(path, cookies={"_token": "not-a-jwt"}).status_code == 403
    # when the UI's own session cookie or a bearer token of an Airflow user comes with it
    for kwargs in (
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"cookies": {"_token": token}},
    ):
        r = client.get(path, **kwargs)
        # then the route answers (the report of a run that does not exist is a 404, not a 401)
        assert r.status_code == (404 if "reports" in path else 200), r.text


def test_reports_route_serves_only_files_under_the_reports_folder(client, token, tmp_path, env):
    home = tmp_path / "home"
    page = home / "reports" / "validation" / "raw" / "flights" / "2013-01-01" / "r1" / "report.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>the report</html>")
    (home / "secret.txt").write_text("not a report")
    (home / "reports" / "monitoring" / ".2013-01-01.abc.tmp").mkdir(parents=True)
    (home / "reports" / "monitoring" / ".2013-01-01.abc.tmp" / "index.html").write_text("half")
    env(FTI_HOME=str(home))
    auth = {"Authorization": f"Bearer {token}"}
    r = client.get("/fti/reports/validation/raw/flights/2013-01-01/r1/report.html", headers=auth)
    assert r.status_code == 200 and r.text == "<html>the report</html>"
    for path in [
        "/fti/reports/..%2fsecret.txt",
        "/fti/reports/%2e%2e/secret.txt",
        "/fti/reports/monitoring/.2013-01-01.abc.tmp/index.html",
        "/fti/reports/validation",
    ]:
        r = client.get(path, headers=auth)
        assert r.status_code == 404, (path, r.status_code)
        assert "not a report" not in r.text


def test_the_plugin_adds_the_app_and_a_relative_nav_entry():
    # the plugin as Airflow loads it from the plugins folder, in a fresh interpreter
    code = (
        "import sys, json\n"
        "from airflow import plugins_manager\n"
        "apps, _ = plugins_manager.get_fastapi_plugins()\n"
        "views, _ = plugins_manager._get_ui_plugins()\n"
        "print(json.dumps({'apps': [{k: v for k, v in a.items() if k != 'app'} for a in apps],\n"
        "  'views': views, 'heavy': sorted(m for m in ('feast', 'mlflow', 'pandas', 'pyarrow',\n"
        "  'great_expectations', 'fti.apps.status.sections') if m in sys.modules)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"url_prefix": "/fti", "name": "FTI platform"} in got["apps"]
    (view,) = [v for v in got["views"] if v["name"] == "FTI platform"]
    # relative to the UI's base URL (works under a sub-path), with the trailing slash the
    # page's relative links need
    assert view["href"] == "fti/" and view["destination"] == "nav"
    # loading plugins (scheduler, DAG processor, workers) pays for none of the page's readers
    assert got["heavy"] == []


def test_displayed_values_are_escaped(client, token, tmp_path, env):
    # given a validation result whose texts hold markup (a column value can be anything)
    run = tmp_path / "home" / "reports" / "validation" / "raw" / "<b>flights" / "2013-01-01" / "r1"
    run.mkdir(parents=True)
    (run / "result.json").write_text(
        json.dumps(
            {
                "boundary": "raw/<b>flights",
                "success": False,
                "evaluated": 3,
                "rows": 10,
                "failed": ['expect_x(column="<script>alert(1)</script>"): 2 of 10 rows'],
            }
        )
    )
    env(FTI_HOME=str(tmp_path / "home"))
    r = client.get("/fti/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<b>flights" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "&lt;b&gt;flights" in r.text


def test_a_day_that_passed_with_warnings_shows_them(client, token, tmp_path, env):
    run = tmp_path / "home" / "reports" / "validation" / "raw" / "weather" / "2013-07-04" / "r1"
    run.mkdir(parents=True)
    warning = (
        "[warn] raw.weather.humidity_follows_temperature_and_dew_point: "
        "expect_column_values_to_be_null(column=rule_x): 5 of 72 rows"
    )
    (run / "result.json").write_text(
        json.dumps(
            {
                "boundary": "raw/weather 2013-07-04",
                "success": True,
                "evaluated": 30,
                "rows": 72,
                "failed": [],
                "warned": [warning],
            }
        )
    )
    env(FTI_HOME=str(tmp_path / "home"))
    r = client.get("/fti/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    row = _row(r.text, 'data-boundary="raw" data-table="weather"')
    assert 'class="result warned">passed with warnings' in row
    assert [_text(li) for li in re.findall(r"<li>.*?</li>", row, re.S)] == [warning]
    data = _status(client, token)["sections"]["validations"]["data"]
    raw = next(b for b in data["boundaries"] if b["boundary"] == "raw")
    assert raw["results"][0]["warned"] == [warning]


def test_a_quarantined_day_shows_and_says_how_to_redeliver_it(client, token, tmp_path, env):
    from feature_repo.jobs import quarantine
    from fti.ground.settings import Settings

    home = Settings(home=tmp_path / "home")
    quarantine.quarantine(
        home, date(2013, 2, 8), "scheduled__2013-02-08", "raw", ["[halt] raw.flights.x: 3 rows"], []
    )
    env(FTI_HOME=str(tmp_path / "home"))
    r = client.get("/fti/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    (line,) = [
        _text(m) for m in re.findall(r'<div [^>]*data-quarantined="2013-02-08".*?</div>', r.text)
    ]
    assert "raw.flights.x" in line and "make redeliver DAY=2013-02-08" in line
    data = _status(client, token)["sections"]["validations"]["data"]
    assert [q["day"] for q in data["quarantined"]] == ["2013-02-08"]
    quarantine.release(home, date(2013, 2, 8), "redeliver")
    assert _status(client, token)["sections"]["validations"]["data"]["quarantined"] == []


# ------------------------------------------------------------------ values equal the stores


def _airflow_runs(settings, dag_id: str) -> list[tuple[str, str]]:
    db = settings.airflow_dir / "airflow.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY run_after DESC, id DESC "
            "LIMIT ?",
            (dag_id, sections.RUNS_PER_PIPELINE),
        ).fetchall()


@pytest.mark.slow
def test_json_equals_what_the_stores_hold(platform, client, token, env):
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    from fti.ground import featurestore
    from serving import rollout

    env(FTI_STATUS_TIMEOUT_S="30")  # correctness here; the faults below keep the default
    s = get_settings()
    got = _status(client, token)
    assert sorted(got["sections"]) == sorted(SECTIONS)
    for name, section in got["sections"].items():
        assert section["available"], (name, section["reason"])
    data = {k: v["data"] for k, v in got["sections"].items()}

    # pipelines: the latest runs of each DAG as Airflow's metadata DB holds them
    for p in data["pipelines"]["pipelines"]:
        assert [(r["run_id"], r["state"]) for r in p["runs"]] == _airflow_runs(s, p["dag_id"])
    by_dag = {p["dag_id"]: p["runs"] for p in data["pipelines"]["pipelines"]}
    assert by_dag["feature_pipeline"] and by_dag["inference_pipeline"][0]["state"] == "success"
    run = by_dag["inference_pipeline"][0]
    assert run["ui_path"].startswith("dags/inference_pipeline/runs/") and "+" not in run["ui_path"]

    # feature views: Feast's materialization intervals, freshness, offline partitions
    store = featurestore.feature_store(s)
    views = {v.name: v for v in store.list_feature_views()}
    shown = {v["name"]: v for v in data["feature_views"]["views"]}
    assert set(shown) == set(views)
    newest = max(e for v in views.values() for _, e in v.materialization_intervals)
    assert data["feature_views"]["now"] == sections._iso(newest)
    for name, v in views.items():
        start, end = (
            max(v.materialization_intervals, key=lambda i: i[1])
            if v.materialization_intervals
            else (None, None)
        )
        if v.online:
            assert shown[name]["last_interval"] == [sections._iso(start), sections._iso(end)]
            assert shown[name]["age_hours"] == round((newest - end).total_seconds() / 3600, 2)
        days = sorted((s.offline_dir / name).glob("date=*"))
        assert shown[name]["latest_partition"] == days[-1].name.removeprefix("date=")
        assert (
            shown[name]["latest_partition_rows"]
            == pq.ParquetFile(days[-1] / "part-0.parquet").metadata.num_rows
        )
    assert (
        shown[platform.stale_view]["freshness"] == "stale"
        and shown[platform.stale_view]["age_hours"] == 48.0
    )
    assert {
        shown[v]["freshness"] for v in featurestore.online_views() if v != platform.stale_view
    } == {"fresh"}
    assert shown["flight_labels"]["freshness"] == "offline only"
    assert data["online_store"]["entities"] == featurestore.online_entity_counts(s)

    # validations: the latest result.json per boundary and table, and its report is served
    boundaries = {b["boundary"]: b for b in data["validations"]["boundaries"]}
    assert list(boundaries) == list(sections.BOUNDARIES)
    raw = {r["name"]: r for r in boundaries["raw"]["results"]}
    assert raw["flights"]["success"] is False and raw["flights"]["run"] == "on_purpose"
    assert raw["flights"]["failed"] == platform.failed["failed"] and raw["flights"]["failed"]
    assert boundaries["raw"]["success"] is False
    assert boundaries["features"]["success"] is True and len(boundaries["features"]["results"]) == 5
    assert boundaries["predictions"]["success"] is True
    for b in boundaries.values():
        for r in b["results"]:
            on_disk = json.loads((s.reports_dir / r["report"]).with_name("result.json").read_text())
            assert (r["success"], r["failed"], r["rows"]) == (
                on_disk["success"],
                on_disk["failed"],
                on_disk["rows"],
            )
    page = client.get(
        f"/fti/reports/{raw['flights']['report']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert page.status_code == 200 and "Great Expectations" in page.text and "distance" in page.text

    # models: MLflow's versions, gate tags and champion alias
    mlflow = MlflowClient(s.tracking_uri)
    assert (
        data["models"]["champion"]
        == platform.champion
        == str(mlflow.get_model_version_by_alias(s.model_name, "champion").version)
    )
    versions = {v["version"]: v for v in data["models"]["versions"]}
    assert set(versions) == {platform.champion, platform.rejected}
    for version, v in versions.items():
        tags = mlflow.get_model_version(s.model_name, version).tags
        numbers = json.loads(tags["gate.numbers"])
        assert v["decision"] == tags["gate.decision"] and v["reasons"] == tags["gate.reasons"]
        assert v["candidate"]["roc_auc"] == round(numbers["candidate"]["roc_auc"], 4)
        assert v["champion"] is (version == platform.champion)
    assert versions[platform.rejected]["decision"] == "rejected"
    assert versions[platform.rejected]["champion_then"]["roc_auc"] == round(
        platform.results["test"]["roc_auc"], 4
    )

    # live history and the service
    assert [(e["model_version"], e["from"], e["until"]) for e in data["live"]["history"]] == [
        (str(e["model_version"]), e["from"], e["until"]) for e in reversed(rollout.history(s))
    ]
    svc = data["service"]
    assert svc["ready"] is True and svc["model_version"] == platform.champion
    status, text = http("GET", f"{s.service_url}/metrics")
    assert status == 200
    metrics = sections.parse_metrics(text.decode())
    assert svc["requests"] == metrics["requests"] >= 1  # the rollout's smoke prediction at least
    assert svc["latency_p95_ms"] == metrics["latency_p95_ms"] is not None

    # monitoring: the latest day's metrics.json, realised accuracy of the labelled day
    days = sorted(p.name for p in s.monitoring_dir.iterdir() if not p.name.startswith("."))
    latest = json.loads((s.monitoring_dir / days[-1] / "metrics.json").read_text())
    mon = data["monitoring"]
    assert mon["latest"]["day"] == days[-1] and mon["threshold"] == latest["threshold"]
    assert {f["feature"]: f["psi"] for f in mon["latest"]["features"]} == latest["feature_psi"]
    assert {f["feature"] for f in mon["latest"]["features"] if f["drifted"]} == set(
        latest["drifted"]
    )
    perf = {p["day"]: p for p in mon["performance"]}
    labelled = json.loads((s.monitoring_dir / platform.labelled / "metrics.json").read_text())
    assert perf[platform.labelled]["roc_auc"] == labelled["performance"]["roc_auc"] is not None


def _row(page: str, attrs: str) -> str:
    """The HTML of the one table row whose opening tag holds ``attrs``."""
    rows = [
        m.group(0)
        for m in re.finditer(r"<tr [^>]*>.*?</tr>", page, re.S)
        if attrs in m.group(0).split(">", 1)[0]
    ]
    assert len(rows) == 1, (attrs, rows)
    return rows[0]


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


@pytest.mark.slow
def test_the_page_shows_the_same_values(platform, client, token, env):
    env(FTI_STATUS_TIMEOUT_S="30")
    auth = {"Authorization": f"Bearer {token}"}
    data = {k: v["data"] for k, v in _status(client, token)["sections"].items()}
    r = client.get("/fti/", headers=auth)
    page = r.text
    assert r.status_code == 200 and 'class="unavailable"' not in page and "Traceback" not in page
    # each view's freshness (stale highlighted) and latest partition's row count
    for v in data["feature_views"]["views"]:
        row = _row(page, f'data-view="{v["name"]}"')
        css = "stale" if v["freshness"] == "stale" else "fresh" if v["freshness"] == "fresh" else ""
        assert re.search(rf'<td class="freshness {css}">{v["freshness"]}</td>', row), row
        assert f'<td class="num rows">{v["latest_partition_rows"]}</td>' in row
    assert 'class="freshness stale">stale<' in _row(page, f'data-view="{platform.stale_view}"')
    # the failed validation, its failed expectations, and a relative link to its report
    row = _row(page, 'data-boundary="raw" data-table="flights"')
    assert 'class="result failed">failed' in row
    assert [_text(li) for li in re.findall(r"<li>.*?</li>", row, re.S)] == platform.failed["failed"]
    report = next(
        r["report"]
        for b in data["validations"]["boundaries"]
        for r in b["results"]
        if b["boundary"] == "raw" and r["name"] == "flights"
    )
    assert re.findall(r'href="([^"]+)"', row) == [f"reports/{report}"]
    assert f'<span id="champion">v{platform.champion}</span>' in page
    assert f'<td id="served-version">v{platform.champion} ' in page
    assert '<td id="readiness" class="ready">ready</td>' in page
    assert '<svg class="chart"' in page and "<circle" in page
    # every link is relative: the page works under any base URL; Airflow's pages open on top
    for href in re.findall(r'href="([^"]*)"', page):
        assert not href.startswith(("/", "http:", "https:")), href
    run = data["pipelines"]["pipelines"][2]["runs"][0]
    assert f'<a href="../{run["ui_path"]}" target="_top">{run["run_id"]}</a>' in html.unescape(page)


# ------------------------------------------------------------------ faults


def _dead_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture
def hanging_server():
    """A TCP port that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


FAULTS = {
    "service down": (
        "service",
        lambda p: {"FTI_SERVING_URL": f"http://127.0.0.1:{p}"},
        "service unreachable at http://127.0.0.1:{port}: [Errno 111] Connection refused",
    ),
    "online store unreachable": (
        "online_store",
        lambda p: {
            "FTI_ONLINE_STORE": "redis",
            "FTI_REDIS_CONNECTION_STRING": f"127.0.0.1:{p},password=s3cret",
        },
        "Redis online store unreachable (127.0.0.1:{port})",
    ),
    "MLflow unreachable": (
        "models",
        lambda p: {"FTI_MLFLOW_TRACKING_URI": f"http://fti:s3cret@127.0.0.1:{p}"},
        "MLflow tracking server unreachable at http://127.0.0.1:{port}/health: [Errno 111] Connection refused",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_store_down_marks_its_part_unavailable_and_the_rest_renders(
    platform, client, token, env, fault
):
    section, make_env, reason = FAULTS[fault]
    port = _dead_port()
    # a generous deadline: the reason must be the fault itself, never a timeout
    env(FTI_STATUS_TIMEOUT_S="10", **make_env(port))
    auth = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    page = client.get("/fti/", headers=auth)
    elapsed = time.perf_counter() - t0
    got = client.get("/fti/api/status", headers=auth).json()
    print(
        f"{fault}: page in {elapsed:.3f} s; sections {[(k, v['seconds']) for k, v in got['sections'].items()]}"
    )
    assert page.status_code == 200
    shown = got["sections"][section]
    assert shown["available"] is False and shown["reason"].startswith(reason.format(port=port)), (
        shown
    )
    assert f"unavailable: {reason.format(port=port)}" in page.text
    others = [k for k in SECTIONS if k != section]
    assert all(got["sections"][k]["available"] for k in others), {
        k: got["sections"][k]["reason"] for k in others
    }
    assert (
        "Traceback" not in page.text
        and "s3cret" not in page.text
        and "s3cret" not in json.dumps(got)
    )


@pytest.mark.slow
def test_a_hanging_service_costs_the_page_its_deadline_only(
    platform, client, token, env, hanging_server
):
    env(FTI_SERVING_URL=f"http://127.0.0.1:{hanging_server}")  # the default deadline
    t0 = time.perf_counter()
    got = client.get("/fti/api/status", headers={"Authorization": f"Bearer {token}"}).json()
    print(
        f"hanging service: answered in {time.perf_counter() - t0:.3f} s (deadline "
        f"{get_settings().status_timeout_s} s)"
    )
    shown = got["sections"]["service"]
    assert shown["available"] is False
    assert shown["reason"] in (
        f"service unreachable at http://127.0.0.1:{hanging_server}: timed out",
        f"no answer within {get_settings().status_timeout_s:g} s",
    )


def test_metrics_are_read_as_prometheus_would():
    text = (
        "# HELP fti_predict_requests_total POST /predict requests, by HTTP status\n"
        "# TYPE fti_predict_requests_total counter\n"
        'fti_predict_requests_total{status="200"} 3.0\n'
        'fti_predict_requests_total{status="400"} 1.0\n'
        "# HELP fti_predict_latency_seconds POST /predict latency\n"
        "# TYPE fti_predict_latency_seconds histogram\n"
        'fti_predict_latency_seconds_bucket{le="0.005"} 2.0\n'
        'fti_predict_latency_seconds_bucket{le="0.01"} 4.0\n'
        'fti_predict_latency_seconds_bucket{le="+Inf"} 4.0\n'
        "fti_predict_latency_seconds_sum 0.02\n"
        "fti_predict_latency_seconds_count 4.0\n"
        "# HELP bentoml_service_request_total Total number of requests\n"
        "# TYPE bentoml_service_request_total counter\n"
        'bentoml_service_request_total{endpoint="/predict",http_response_code="200",'
        'service_name="flight_delay_service",service_version="v7"} 3.0\n'
    )
    got = sections.parse_metrics(text)
    assert got["requests"] == 4 and got["requests_by_status"] == {"200": 3, "400": 1}
    assert got["latency_mean_ms"] == 5.0
    # histogram_quantile: rank 2 of 4 ends the first bucket; rank 3.8 is 90 % into the second
    assert got["latency_p50_ms"] == 5.0 and got["latency_p95_ms"] == 9.5
    assert got["bento_versions"] == ["v7"]
    assert sections.histogram_quantile(0.99, [(0.005, 1.0), (float("inf"), 2.0)]) == 0.005
    assert sections.histogram_quantile(0.5, []) is None


def test_reasons_never_carry_a_configured_secret(tmp_path):
    from fti.ground.settings import Settings

    s = Settings(
        home=tmp_path,
        redis_connection_string="redis:6379,db=0,password=hunter22",
        mlflow_tracking_uri="http://fti:pa%2Fss@mlflow:5000",
        airflow_database_url="postgresql+psycopg2://airflow:db-s3cret@pg/airflow",
    )
    text = (
        "connect to redis:6379 with password=hunter22 failed; GET http://fti:pa%2Fss@mlflow:5000 "
        "and pa/ss; postgresql+psycopg2://airflow:db-s3cret@pg/airflow refused"
    )
    out = sections.scrub(text, s)
    assert "hunter22" not in out and "pa%2Fss" not in out and "pa/ss" not in out
    assert "db-s3cret" not in out and out.count("***") == 4
    assert sections.redact_url("http://fti:pa%2Fss@mlflow:5000/x") == "http://mlflow:5000/x"


def test_the_shadow_challenger_against_the_champion_shows_by_labelled_day(
    client, token, tmp_path, env
):
    from fti.ground import files
    from fti.ground.settings import Settings

    home = Settings(home=tmp_path / "home")
    pair = {
        "champion_version": "3",
        "challenger_version": "4",
        "rows": 812,
        "flights": 400,
        "champion": {"roc_auc": 0.61, "log_loss": 0.52},
        "challenger": {"roc_auc": 0.67, "log_loss": 0.49},
        "winner": "challenger",
        "verdict": "ROC AUC ahead by at least 0.002",
    }
    for day, shadow in [
        ("2013-02-03", {"day": "2013-02-03", "labels": "landed", "pairs": [pair]}),
        ("2013-02-04", {"day": "2013-02-04", "labels": "labels not landed yet", "pairs": []}),
    ]:
        files.write_json(
            home.monitoring_dir / day / "metrics.json",
            {"day": day, "model_version": "3", "feature_psi": {}, "challenger": shadow},
        )
    env(FTI_HOME=str(tmp_path / "home"))
    r = client.get("/fti/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    (row,) = re.findall(r'<tr data-challenger-day="2013-02-03".*?</tr>', r.text, re.S)
    cells = [_text(c) for c in re.findall(r"<td[^>]*>.*?</td>", row, re.S)]
    assert cells[:6] == ["2013-02-03", "v3", "v4", "812", "0.61", "0.67"]
    assert cells[-1].startswith("challenger:")
    assert 'data-challenger-day="2013-02-04"' not in r.text  # no labels yet: nothing compared
    data = _status(client, token)["sections"]["monitoring"]["data"]
    assert [c["day"] for c in data["challenger"]] == ["2013-02-03"]


def test_the_alarm_history_and_the_promise_show_beside_realised_performance(
    client, token, tmp_path, env
):
    from fti.ground import files
    from fti.ground.settings import Settings
    from serving import alarms

    home = Settings(home=tmp_path / "home")
    files.write_json(
        home.monitoring_dir / "2013-02-03" / "metrics.json",
        {
            "day": "2013-02-03",
            "model_version": "3",
            "feature_psi": {},
            "promised_roc_auc": 0.6612,
            "performance": {"roc_auc": 0.6021, "labelled": 840},
        },
    )
    alarms.record(home, date(2013, 2, 3), "performance", "rolling ROC AUC 0.6021 vs 0.6612")
    env(FTI_HOME=str(tmp_path / "home"))
    r = client.get("/fti/", headers={"Authorization": f"Bearer {token}"})
    (row,) = re.findall(r'<tr data-day="2013-02-03".*?</tr>', r.text, re.S)
    cells = [_text(c) for c in re.findall(r"<td[^>]*>.*?</td>", row, re.S)]
    assert cells[:4] == ["2013-02-03", "v3", "0.6612", "0.6021"]
    (alarm,) = re.findall(r'<tr data-alarm="performance".*?</tr>', r.text, re.S)
    assert "rolling ROC AUC 0.6021 vs 0.6612" in _text(alarm)
    data = _status(client, token)["sections"]["monitoring"]["data"]
    assert [a["kind"] for a in data["alarms"]] == ["performance"]


def test_a_busy_registry_shows_its_last_answer_with_its_age(monkeypatch):
    """The Models section while a training holds the registry: the last answer, saying how old
    it is, instead of "unavailable"; the late read still lands and is the next page's."""
    from fti.ground.settings import Settings

    calls = []

    def models(settings):
        calls.append(time.monotonic())
        if len(calls) == 2:  # the registry busy for a while
            time.sleep(1.5)
        return {"name": "flight_delay", "champion": str(len(calls)), "versions": []}

    quick = {k: (lambda s: {}) for k in SECTIONS}
    monkeypatch.setattr(sections, "SECTIONS", {**quick, "models": models})
    monkeypatch.setattr(sections, "NEEDS_LIBRARIES", frozenset())  # these need none
    s = Settings(home=Path("/nonexistent/fti-busy-registry"))
    first = sections.collect(s, timeout_s=0.5)["sections"]["models"]
    assert first["available"] and first["data"]["champion"] == "1" and "note" not in first
    busy = sections.collect(s, timeout_s=0.5)["sections"]["models"]
    assert busy["available"] and busy["data"]["champion"] == "1"
    assert busy["note"].startswith("as of ") and "no answer within 0.5 s" in busy["note"]
    time.sleep(1.5)  # the late read completes
    after = sections.collect(s, timeout_s=0.5)["sections"]["models"]
    assert after["data"]["champion"] == "3" and "note" not in after
    # another configuration never sees this one's answers
    other = Settings(home=Path("/nonexistent/fti-other"))
    monkeypatch.setattr(sections, "SECTIONS", {**quick, "models": lambda s: time.sleep(1) or {}})
    assert sections.collect(other, timeout_s=0.2)["sections"]["models"]["available"] is False
