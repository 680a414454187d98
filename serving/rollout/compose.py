"""The compose runtime: the serving container follows the registry's champion alias itself.

The DAG's deploy waits until the service answers a real flight with the champion's version
(:func:`await_served`) and records it in the live history; the container's entry point,
:func:`supervise`, stages each new champion and switches its running server to it (in
process, through the admin API; a server without a model yet is restarted on it). The container never
needs the Docker socket, and Airflow never needs access to the container: the registry is the
interface.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fti.ground.settings import PROJECT_ROOT, Settings, get_settings, settings_env
from serving.admin import request_switch
from serving.rollout import live_history as hist
from serving.rollout.bento import SERVICE
from serving.rollout.probe import GiveUp, RolloutFailed, get, predict_one, smoke_flight, wait_until

log = logging.getLogger(__name__)


def await_served(version: str, settings: Settings) -> dict:
    """Wait until the service at ``service_url`` answers a real flight with model ``version``;
    record it in the live history. Raises ``RolloutFailed`` after ``serving_deploy_timeout_s``;
    the container keeps serving what it served before."""
    flight = smoke_flight(settings)

    def served() -> str | None:
        try:
            got = predict_one(settings, flight)
            served_version = str(got.get("model_version"))
            p = float(got["delay_probability"])
            if served_version == str(version) and 0.0 <= p <= 1.0:
                return None
            return f"it serves model version {served_version}"
        except httpx.HTTPStatusError as e:
            return f"/predict answered {e.response.status_code}: {e.response.text[:300]}"
        except (httpx.TransportError, KeyError, IndexError, TypeError, ValueError) as e:
            return f"/predict failed: {e}"

    why = wait_until(served, timeout=settings.serving_deploy_timeout_s, interval=2.0)
    if why is not None:
        raise RolloutFailed(
            f"{settings.service_url} did not serve model version {version} within "
            f"{settings.serving_deploy_timeout_s:.0f} s: {why}"
        )
    current = hist.live(settings)
    if not (current and current["model_version"] == str(version)):
        hist.record(settings, {"model_version": str(version), "bento": None})
    log.info("model version %s is live on %s", version, settings.service_url)
    return {"bento": None, "model_version": str(version), "url": settings.service_url}


class _Server:
    """``bentoml serve`` of the service on one model directory, as a child process."""

    def __init__(self, settings: Settings, model_dir: Path | None, version: str | None):
        self.model_dir, self.version = model_dir, version
        env = {**os.environ, **settings_env(settings), "BENTOML_DO_NOT_TRACK": "True"}
        if model_dir is not None:
            env["FTI_SERVING_MODEL_DIR"] = str(model_dir)
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("bentoml")),
                "serve",
                SERVICE,
                "--host",
                settings.serving_host,
                "--port",
                str(settings.serving_port),
            ],
            env=env,
            cwd=PROJECT_ROOT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _loads_model(settings: Settings, server: _Server, timeout: float = 180) -> str | None:
    """None once the server answers /readyz without a model problem (an unreachable online
    store is the store's problem, not the model's), else why not."""
    url = f"http://127.0.0.1:{settings.serving_port}/readyz"
    gave_up = []

    def loaded() -> str | None:
        if not server.alive():
            gave_up.append(True)
            raise GiveUp(f"the server exited with {server.proc.returncode}")
        try:
            status, body = get(url)
        except httpx.TransportError as e:
            return f"no answer ({e})"
        text = body[:300].decode(errors="replace")
        if status == 200 or ("not ready:" in text and "no model loaded" not in text):
            return None  # ready, or unready for the service's own reasons, none of them the model
        if "no model loaded" in text:
            gave_up.append(True)
            raise GiveUp(f"/readyz {status}: {text}")
        return f"/readyz {status}: {text}"

    why = wait_until(loaded, timeout=timeout, interval=1.0)
    return f"not up after {timeout:.0f} s: {why}" if why is not None and not gave_up else why


def _follow_challenger(settings: Settings, refused: set) -> None:
    """The running server's challenger made the registry's (``serving.challenger.sync``); a
    failure is logged, the champion serves either way, and a version the server refused is
    not tried again."""
    from serving import challenger

    try:
        challenger.sync(settings, f"http://127.0.0.1:{settings.serving_port}", refused)
    except Exception as err:  # registry or staging trouble: try again at the next poll
        log.warning("challenger not synced: %s", err)


def supervise(settings: Settings | None = None) -> int:
    """The serving container's entry point (``python -m serving.rollout supervise``).

    Serves ``FTI_SERVING_MODEL_DIR`` when set; otherwise the registry's champion: it starts
    the service (unready, saying why, while there is no champion), checks the ``champion``
    alias every ``serving_poll_s`` seconds (and the ``challenger`` alias, which the running
    server then shadows: :func:`serving.challenger.sync`), and when the alias names another version it stages
    that version and switches the running server to it (``serving.admin``: no request dropped;
    a version that fails its check is refused and not tried again until the alias moves). A
    server without a model yet is restarted on it instead; a version whose server does not come
    up with its model is abandoned for the one served before. A server that exits is started again;
    SIGTERM stops it and the supervisor.
    """
    from serving import model as served
    from training import registry

    settings = settings or get_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s supervise: %(message)s"
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    pinned = settings.serving_model_dir

    def champion_version() -> str | None:
        try:
            found = registry.champion(settings)
        except Exception as err:  # registry down: keep serving what is served
            log.warning("registry unreachable (%s): keeping the served model", type(err).__name__)
            return None
        return None if found is None else str(found.version)

    if pinned is not None:
        server = _Server(settings, pinned, served.read_version(pinned))
    else:
        first = champion_version()
        model_dir = None
        if first is not None:
            try:
                model_dir = served.stage_champion(settings)
                first = served.read_version(model_dir)
            except Exception as err:
                log.error("staging champion version %s failed: %s", first, err)
                first = None
        # without a champion the service starts unready and says why on /readyz
        server = _Server(settings, model_dir, first)
    last_check = time.monotonic()
    refused_challengers: set[str] = set()
    try:
        while not stopping:
            time.sleep(0.5)
            if not server.alive():
                log.warning("server exited with %s: starting it again", server.proc.returncode)
                server = _Server(settings, server.model_dir, server.version)
                continue
            if pinned is not None or time.monotonic() - last_check < settings.serving_poll_s:
                continue
            last_check = time.monotonic()
            version = champion_version()
            if server.version is not None:
                _follow_challenger(settings, refused_challengers)
            if version is None or version == server.version:
                continue
            try:
                model_dir = served.stage_champion(settings)
            except Exception as err:
                log.error("staging champion version %s failed: %s", version, err)
                continue
            # the alias may have moved again meanwhile: the staged directory says what it holds
            version = served.read_version(model_dir)
            if server.version is not None:
                # a server with a model: it switches inside its process, dropping no request
                why = request_switch(
                    f"http://127.0.0.1:{settings.serving_port}", model_dir, version, settings
                )
                if why is None:
                    log.info("now serving version %s (was %s)", version, server.version)
                    server.model_dir, server.version = model_dir, version
                    continue
                log.error("switching to version %s refused: %s", version, why)
                if "refused" in why:  # the model failed its check: not again until the alias moves
                    while not stopping and champion_version() == version:
                        time.sleep(settings.serving_poll_s)
                    continue
            log.info(
                "champion is version %s (serving %s): restarting on it", version, server.version
            )
            previous = server
            previous.stop()
            server = _Server(settings, model_dir, version)
            why = _loads_model(settings, server)
            if why is not None:
                log.error(
                    "version %s did not come up (%s): back to version %s",
                    version,
                    why,
                    previous.version,
                )
                server.stop()
                server = _Server(settings, previous.model_dir, previous.version)
                # do not try the same version again until the alias moves
                server.version = previous.version
                failed = version
                while not stopping and champion_version() == failed:
                    time.sleep(settings.serving_poll_s)
    finally:
        server.stop()
    return 0
