"""The embedded runtime: the service as a local ``bentoml serve`` process on ``serving_port``.

A rollout builds the new version's Bento; when the service is running it switches to the
Bento's model **inside the running process** (``serving.admin``: loaded beside the live model,
checked on real flights, swapped atomically; no request is dropped) and a model that fails its
check is refused, the live one staying. With no service running, it starts the Bento and gates
it on ``/readyz`` plus one smoke prediction of a real flight (a start that fails starts the
previous Bento again, and raises). ``rollback`` is the same switch to the version live before.
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

from fti.ground.settings import Settings, get_settings
from serving.admin import request_switch
from serving.rollout import live_history as hist
from serving.rollout.bento import bento_env, bento_path, build_bento
from serving.rollout.probe import GiveUp, RolloutFailed, get, smoke, wait_until

log = logging.getLogger(__name__)


def _pid_file(settings: Settings) -> Path:
    return settings.serving_dir / "service.pid"


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_local(settings: Settings | None = None, timeout: float = 20) -> bool:
    """Stop the local service (its whole process group); True if one was running."""
    settings = settings or get_settings()
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False

    def gone() -> str | None:
        try:
            # started by this process (a demo, a test): reap it, or it lingers as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return None if not _group_alive(pid) else "still running"

    if wait_until(gone, timeout=timeout, interval=0.2) is not None:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def start_local(tag: str, settings: Settings | None = None) -> int:
    """Start ``bentoml serve <tag>`` on the serving port in its own session; returns its pid.

    Its log goes to ``serving_dir/logs/<tag>.log``. The process outlives the task that started
    it (that is the point); ``stop_local`` ends it.
    """
    settings = settings or get_settings()
    path = bento_path(tag, settings)
    if path is None:
        raise FileNotFoundError(
            f"Bento {tag} is not in the store {settings.serving_dir / 'bentoml'}"
        )
    env = bento_env(settings)
    env["FTI_SERVING_MODEL_DIR"] = str(path / "src" / "model")
    logs = settings.serving_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{tag.replace(':', '-')}.log", "ab") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("bentoml")),
                "serve",
                tag,
                "--host",
                settings.serving_host,
                "--port",
                str(settings.serving_port),
            ],
            env=env,
            cwd=path / "src",
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pid_file(settings).write_text(str(proc.pid))
    return proc.pid


def wait_ready(settings: Settings, timeout: float = 180, grace: float = 15) -> str | None:
    """Poll ``/readyz`` until 200; None when ready, else why not.

    Gives up after ``timeout`` seconds without an answer (a start takes 10-30 s), once the
    service has answered "not ready" for ``grace`` seconds (it is up, and says what is wrong),
    or as soon as the service's process has exited.
    """
    url = f"{settings.service_url}/readyz"
    pid_file = _pid_file(settings)
    state: dict = {"unready_since": None, "last": "no answer"}

    def ready() -> str | None:
        try:
            status, body = get(url)
            if status == 200:
                return None
            state["last"] = f"/readyz {status}: {body[:300].decode(errors='replace')}"
            state["unready_since"] = state["unready_since"] or time.monotonic()
            if time.monotonic() - state["unready_since"] > grace:
                state["gave_up"] = True
                raise GiveUp(state["last"])
        except httpx.TransportError as e:
            state["last"] = f"no answer ({e})"
        if pid_file.exists() and not _group_alive(int(pid_file.read_text())):
            state["gave_up"] = True
            raise GiveUp(f"the service exited ({state['last']})")
        return state["last"]

    why = wait_until(ready, timeout=timeout, interval=1.0)
    if why is not None and not state.get("gave_up"):
        return f"not ready after {timeout:.0f} s: {why}"
    return why


def switch(tag: str, settings: Settings) -> str | None:
    """Serve ``tag`` instead of what is served; None when it is ready and answers, else why."""
    stop_local(settings)
    start_local(tag, settings)
    why = wait_ready(settings)
    if why is None:
        why = smoke(settings)
    return why


def answering(settings: Settings) -> bool:
    """Whether the local service is up and ready."""
    try:
        return get(f"{settings.service_url}/readyz", timeout=5)[0] == 200
    except httpx.TransportError:
        return False


def switch_in_service(tag: str, version: str, settings: Settings) -> str | None:
    """Ask the running service to serve the model of Bento ``tag``; None once it does, else
    why not (the service's reason when it refused the model: nothing was swapped)."""
    path = bento_path(tag, settings)
    if path is None:
        return f"Bento {tag} is not in the store"
    return request_switch(settings.service_url, path / "src" / "model", version, settings)


def rollout(model_dir: Path, version: str, settings: Settings) -> dict:
    """Build the Bento of ``version`` and make it the local service: switched inside the
    running service, else started; raises ``RolloutFailed`` when the new version fails its
    check (the live version stays, or the previous Bento is started again)."""
    tag = build_bento(model_dir, version, settings)
    previous = hist.live(settings)
    if previous is not None and answering(settings):
        why = switch_in_service(tag, version, settings)
        if why is not None:
            log.error("rollout of %s refused: %s", tag, why)
            raise RolloutFailed(
                f"rollout of {tag} failed: {why}; model version {previous['model_version']} "
                "stays live"
            )
        hist.record(settings, {"model_version": str(version), "bento": tag})
        log.info("model version %s (%s) is live in the running service", version, tag)
        return {"bento": tag, "model_version": str(version), "url": settings.service_url}
    why = switch(tag, settings)
    if why is not None:
        log.error("rollout of %s failed: %s", tag, why)
        if previous is not None:
            back = switch(previous["bento"], settings)
            if back is not None:
                raise RolloutFailed(
                    f"rollout of {tag} failed ({why}); rolling back to "
                    f"{previous['bento']} failed too ({back})"
                )
            raise RolloutFailed(
                f"rollout of {tag} failed ({why}); rolled back to "
                f"{previous['bento']} (model version {previous['model_version']})"
            )
        stop_local(settings)
        raise RolloutFailed(f"rollout of {tag} failed ({why}); no earlier version to roll back to")
    hist.record(settings, {"model_version": str(version), "bento": tag})
    log.info("model version %s (%s) is live on %s", version, tag, settings.service_url)
    return {"bento": tag, "model_version": str(version), "url": settings.service_url}


def rollback(settings: Settings) -> dict:
    """Make the version live before the current one live again (a new history entry)."""
    entries = hist.history(settings)
    current = entries[-1] if entries else None
    earlier = [e for e in entries[:-1] if current is None or e["bento"] != current["bento"]]
    if not earlier:
        raise LookupError(
            f"no earlier model version to roll back to (history: {hist.history_path(settings)})"
        )
    target = earlier[-1]
    if current is not None and answering(settings):
        why = switch_in_service(target["bento"], target["model_version"], settings)
    else:
        why = switch(target["bento"], settings)
        if why is not None and current is not None:
            switch(current["bento"], settings)
    if why is not None:
        raise RolloutFailed(
            f"rollback to {target['bento']} failed: {why}; "
            f"{current['bento'] if current else 'nothing'} stays live"
        )
    return hist.record(
        settings,
        {
            "model_version": target["model_version"],
            "bento": target["bento"],
            "rollback_of": current["model_version"] if current else None,
        },
    )


def ensure_running(settings: Settings | None = None) -> dict | None:
    """Start the live Bento if it is not answering (after a reboot, say); returns the entry."""
    settings = settings or get_settings()
    entry = hist.live(settings)
    if entry is None:
        return None
    if answering(settings):
        return entry
    why = switch(entry["bento"], settings)
    if why is not None:
        raise RolloutFailed(f"restarting {entry['bento']} failed: {why}")
    return entry
