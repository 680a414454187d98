"""The platform page in a real browser: Airflow's API server with this project's plugins, served
under a sub-path, driven by headless Chromium (Debian's, through Playwright): log in, open the
page from the navigation, and check that it shows what the stores hold, including the stale
feature view and the failed validation made on purpose. Saves docs/img/platform-page.png."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, free_port, http

from fti.ground.airflow_env import airflow_env

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUB_PATH = "/airflow/"
SCREENSHOT = ROOT / "docs" / "img" / "platform-page.png"


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    return path


@pytest.fixture
def api_server(platform, tmp_path):
    """``airflow api-server`` with the project's plugins over the platform's stores, at a
    sub-path of a free port; yields its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}{SUB_PATH}"
    env = {**os.environ, **platform.env, **airflow_env(platform.settings)}
    env.update(
        {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    log = tmp_path / "api-server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "airflow"),
                "api-server",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"api-server exited {proc.returncode}:\n{log.read_text()[-4000:]}"
                )
            try:
                if http("GET", f"{base_url}api/v2/monitor/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"api-server not healthy:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield base_url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)


def _password(settings) -> tuple[str, str]:
    users = json.loads(
        (settings.airflow_dir / "simple_auth_manager_passwords.json.generated").read_text()
    )
    return "admin", users["admin"]


def _wait_for_libraries(base_url: str, token: str, timeout: float = 120) -> dict:
    """Until every section answers (the API server loads Feast and MLflow after it starts)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(
            f"{base_url}fti/api/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            got = json.loads(resp.read())
        missing = {k: v["reason"] for k, v in got["sections"].items() if not v["available"]}
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"sections still unavailable: {missing}")
        time.sleep(1)


def _token(base_url: str, user: str, password: str) -> str:
    status, body = http(
        "POST", f"{base_url}auth/token", json.dumps({"username": user, "password": password})
    )
    assert status in (200, 201), body
    return json.loads(body)["access_token"]


def test_the_page_in_the_airflow_ui_shows_the_platform(platform, api_server):
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    user, password = _password(platform.settings)
    # the same data as JSON, for the comparison (and the first read loads the libraries)
    status = _wait_for_libraries(api_server, _token(api_server, user, password))
    data = {k: v["data"] for k, v in status["sections"].items()}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2900})
            # log in through Airflow's own login page
            page.goto(api_server)
            page.locator("input[name=username]").fill(user)
            page.locator("input[name=password]").fill(password)
            page.get_by_role("button", name="Sign in").click()
            # open the page from the navigation
            page.get_by_role("link", name="FTI platform").click()
            expect(page).to_have_url(re.compile(re.escape(f"{api_server}plugin/fti-platform")))
            frame = page.frame_locator("iframe")
            expect(frame.locator("h1")).to_have_text("FTI platform", timeout=30_000)

            # the stale view is highlighted as stale, the others fresh; row counts as stored
            for v in data["feature_views"]["views"]:
                row = frame.locator(f'tr[data-view="{v["name"]}"]')
                expect(row.locator("td.freshness")).to_have_text(v["freshness"])
                expect(row.locator("td.rows")).to_have_text(str(v["latest_partition_rows"]))
            stale = frame.locator(f'tr[data-view="{platform.stale_view}"] td.freshness')
            expect(stale).to_have_text("stale")
            expect(stale).to_have_css("background-color", "rgb(255, 216, 211)")
            # the failed validation with its failed expectations
            raw = frame.locator('tr[data-boundary="raw"][data-table="flights"]')
            expect(raw.locator("td.result")).to_contain_text("failed")
            expect(raw.locator("li")).to_have_text(platform.failed["failed"])
            # models, the live service and monitoring
            expect(frame.locator("#champion")).to_have_text(f"v{platform.champion}")
            expect(frame.locator(f'tr[data-version="{platform.rejected}"]')).to_contain_text(
                "rejected"
            )
            expect(frame.locator("#readiness")).to_have_text("ready")
            expect(frame.locator("#served-version")).to_contain_text(f"v{platform.champion}")
            expect(frame.locator(f'tr[data-live="{platform.champion}"]')).to_contain_text(
                "now (live)"
            )
            expect(frame.locator(f'tr[data-day="{platform.labelled}"]')).to_contain_text(
                str(
                    next(
                        p["roc_auc"]
                        for p in data["monitoring"]["performance"]
                        if p["day"] == platform.labelled
                    )
                )
            )
            expect(frame.locator("svg.chart circle").first).to_be_visible()
            expect(frame.locator(".unavailable")).to_have_count(0)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # the report link shows the validation's Data Docs page (in the frame: Airflow's
            # sandbox allows no pop-up), through the sub-path
            raw.get_by_role("link", name="report").click()
            expect(
                frame.get_by_role("heading", name="Expectation Validation Result")
            ).to_be_visible(timeout=30_000)
            assert [f.url for f in page.main_frame.child_frames] == [
                f"{api_server}fti/reports/{next(r['report'] for b in data['validations']['boundaries'] for r in b['results'] if b['boundary'] == 'raw' and r['name'] == 'flights')}"
            ]
            expect(frame.locator("body")).to_contain_text("distance")

            # a pipeline run's link opens Airflow's own page of the run, in the UI itself
            page.goto(f"{api_server}plugin/fti-platform")
            run = data["pipelines"]["pipelines"][2]["runs"][0]  # the inference run
            frame.locator(f'tr[data-run="{run["run_id"]}"] a').click()
            expect(page).to_have_url(
                re.compile(re.escape(f"{api_server}dags/inference_pipeline/runs/"))
            )
            expect(page.get_by_text(run["run_id"]).first).to_be_visible(timeout=30_000)
            expect(page.locator("iframe")).to_have_count(0)
        finally:
            browser.close()

    # signed out, the page and its JSON are refused
    assert http("GET", f"{api_server}fti/")[0] == 401
    assert http("GET", f"{api_server}fti/api/status")[0] == 401
