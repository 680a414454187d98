"""Rollout of the champion: a Bento per model version, a health-gated switch, and rollback.

``build_bento`` packs the service code and the model's files (``model/`` inside the Bento's
source) into a Bento tagged ``<model_name>_service:v<version>``, in the Bento store under
``serving_dir/bentoml`` (``BENTOML_HOME``). ``rollout`` then, in the embedded runtime, stops the
local service, starts the new Bento on ``serving_port`` and gates it on ``/readyz`` plus one smoke
prediction of a real flight; if either fails it starts the previous Bento again and raises. In the
kubernetes runtime it renders Deployment and Service manifests for the serving image, validated
against the Kubernetes schema (``render_manifests``; applying them is the cluster's CD's job).

``serving_dir/live.json`` is the history: which model version (and Bento) was live from when to
when. ``python -m fti rollback`` (``make rollback``) restores the one before the current.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from fti.settings import PROJECT_ROOT, Settings, get_settings, settings_env

log = logging.getLogger(__name__)

#: the packages the service imports, copied into each Bento
PACKAGES = ("fti", "serving", "training", "feature_repo")
SERVICE = "serving.service:FlightDelayService"


class RolloutFailed(RuntimeError):
    """The new Bento did not become ready, or its smoke prediction failed (rolled back)."""


def _bento_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **settings_env(settings),
           "BENTOML_HOME": str(settings.serving_dir / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def bento_name(settings: Settings) -> str:
    return f"{settings.model_name}_service"


def build_bento(model_dir: Path, version: str, settings: Settings | None = None) -> str:
    """Build (or reuse) the Bento of model ``version``; returns its tag."""
    settings = settings or get_settings()
    tag = f"{bento_name(settings)}:v{version}"
    if bento_path(tag, settings) is not None:
        return tag
    with tempfile.TemporaryDirectory(prefix="fti-bento-") as ctx:
        root = Path(ctx)
        for pkg in PACKAGES:
            shutil.copytree(PROJECT_ROOT / pkg, root / pkg,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
        shutil.copytree(model_dir, root / "model")
        (root / "model" / "model_version.txt").write_text(f"{version}\n")
        # a subprocess: BentoML reads BENTOML_HOME when first imported
        code = (
            "import bentoml, json, sys; a = json.loads(sys.argv[1]); "
            "print(bentoml.bentos.build(a['service'], name=a['name'], version=a['version'], "
            "labels=a['labels'], include=a['include'], build_ctx=a['ctx']).tag)"
        )
        args = {
            "service": SERVICE, "name": bento_name(settings), "version": f"v{version}",
            "labels": {"model_name": settings.model_name, "model_version": str(version)},
            "include": [f"{p}/**" for p in (*PACKAGES, "model")], "ctx": ctx,
        }
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ctx,
                              env=_bento_env(settings), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bentoml build of {tag} failed:\n{proc.stderr[-3000:]}")
    log.info("built Bento %s", tag)
    return tag


def bento_path(tag: str, settings: Settings) -> Path | None:
    """The Bento's folder in the store, or None when it is not there."""
    name, _, version = tag.partition(":")
    path = settings.serving_dir / "bentoml" / "bentos" / name / version
    return path if (path / "bento.yaml").exists() else None


# ---------------------------------------------------------------- the live history


def history_path(settings: Settings) -> Path:
    return settings.serving_dir / "live.json"


def history(settings: Settings | None = None) -> list[dict]:
    """Every rollout, oldest first: model version, Bento, from, until (None while live)."""
    settings = settings or get_settings()
    path = history_path(settings)
    return json.loads(path.read_text()) if path.exists() else []


def _record(settings: Settings, entries: list[dict]) -> None:
    path = history_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    os.replace(tmp, path)


def live(settings: Settings | None = None) -> dict | None:
    entries = history(settings)
    return entries[-1] if entries and entries[-1]["until"] is None else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the local service


def _pid_file(settings: Settings) -> Path:
    return settings.serving_dir / "service.pid"


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # started by this process (a demo, a test): reap it, or it lingers as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
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
        raise FileNotFoundError(f"Bento {tag} is not in the store {settings.serving_dir / 'bentoml'}")
    env = _bento_env(settings)
    env["FTI_SERVING_MODEL_DIR"] = str(path / "src" / "model")
    logs = settings.serving_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{tag.replace(':', '-')}.log", "ab") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("bentoml")), "serve", tag,
             "--host", settings.serving_host, "--port", str(settings.serving_port)],
            env=env, cwd=path / "src", stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _pid_file(settings).write_text(str(proc.pid))
    return proc.pid


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(settings: Settings, timeout: float = 180, grace: float = 15) -> str | None:
    """Poll ``/readyz`` until 200; None when ready, else why not.

    Gives up after ``timeout`` seconds without an answer (a start takes 10-30 s), or once the
    service has answered "not ready" for ``grace`` seconds: it is up, and says what is wrong.
    """
    url = f"{settings.service_url}/readyz"
    deadline, last, unready_since = time.monotonic() + timeout, "no answer", None
    pid_file = _pid_file(settings)
    while time.monotonic() < deadline:
        try:
            status, body = _get(url)
            if status == 200:
                return None
            last = f"/readyz {status}: {body[:300].decode(errors='replace')}"
            unready_since = unready_since or time.monotonic()
            if time.monotonic() - unready_since > grace:
                return last
        except OSError as e:
            last = f"no answer ({e})"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), 0)
            except ProcessLookupError:
                return f"the service exited ({last})"
        time.sleep(1)
    return f"not ready after {timeout:.0f} s: {last}"


def smoke_flight(settings: Settings) -> dict:
    """A real flight of the latest published day, as a /predict request."""
    import pandas as pd

    labels = sorted((settings.offline_dir / "flight_labels").glob("date=*"))
    if not labels:
        raise FileNotFoundError("no published flights to smoke-test with")
    df = pd.read_parquet(labels[-1])
    row = df[df["tailnum"].notna()].sort_values("flight_id").iloc[0]
    local = row["sched_dep_ts"].tz_convert(settings.timezone)
    return {"carrier": row["carrier"], "flight": int(row["flight"]), "origin": row["origin"],
            "dest": row["dest"], "tailnum": row["tailnum"],
            "sched_dep_ts": local.strftime("%Y-%m-%dT%H:%M:%S")}


def smoke(settings: Settings, flight: dict | None = None) -> str | None:
    """One prediction of a real flight; None when it is a valid answer, else what was wrong."""
    flight = flight or smoke_flight(settings)
    req = urllib.request.Request(f"{settings.service_url}/predict", method="POST",
                                 data=json.dumps(flight).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        return f"/predict answered {e.code}: {e.read()[:300].decode(errors='replace')}"
    except OSError as e:
        return f"/predict did not answer: {e}"
    try:
        p = float(body[0]["delay_probability"])
    except (KeyError, IndexError, TypeError, ValueError):
        return f"/predict answered something else than a prediction: {str(body)[:300]}"
    return None if 0.0 <= p <= 1.0 else f"/predict gave probability {p}"


def _switch(tag: str, settings: Settings) -> str | None:
    stop_local(settings)
    start_local(tag, settings)
    why = wait_ready(settings)
    if why is None:
        why = smoke(settings)
    return why


def rollout(model_dir: Path, version: str, settings: Settings | None = None) -> dict:
    """Build the Bento of ``version`` and make it the live service (embedded runtime), or render
    its manifests (kubernetes runtime), or wait for the serving container to serve it (compose
    runtime). Raises ``RolloutFailed`` after rolling back."""
    settings = settings or get_settings()
    if settings.serving_runtime == "compose":
        return await_served(version, settings)
    tag = build_bento(model_dir, version, settings)
    if settings.serving_runtime == "kubernetes":
        path = write_manifests(tag, version, settings)
        return {"bento": tag, "model_version": version, "manifests": str(path)}
    previous = live(settings)
    why = _switch(tag, settings)
    entries = history(settings)
    if why is not None:
        log.error("rollout of %s failed: %s", tag, why)
        if previous is not None:
            back = _switch(previous["bento"], settings)
            if back is not None:
                raise RolloutFailed(f"rollout of {tag} failed ({why}); rolling back to "
                                    f"{previous['bento']} failed too ({back})")
            raise RolloutFailed(f"rollout of {tag} failed ({why}); rolled back to "
                                f"{previous['bento']} (model version {previous['model_version']})")
        stop_local(settings)
        raise RolloutFailed(f"rollout of {tag} failed ({why}); no earlier version to roll back to")
    now = _now()
    if entries and entries[-1]["until"] is None:
        entries[-1]["until"] = now
    entries.append({"model_version": str(version), "bento": tag, "from": now, "until": None})
    _record(settings, entries)
    log.info("model version %s (%s) is live on %s", version, tag, settings.service_url)
    return {"bento": tag, "model_version": str(version), "url": settings.service_url}


def rollback(settings: Settings | None = None) -> dict:
    """Make the version live before the current one live again (a new history entry)."""
    settings = settings or get_settings()
    if settings.serving_runtime != "local":
        raise RolloutFailed(
            f"rollback restarts the local service; with FTI_SERVING_RUNTIME="
            f"{settings.serving_runtime} move the registry's 'champion' alias of "
            f"{settings.model_name!r} back to the earlier version instead (the serving container, "
            "or the cluster's CD, follows it)"
        )
    entries = history(settings)
    current = entries[-1] if entries else None
    earlier = [e for e in entries[:-1] if current is None or e["bento"] != current["bento"]]
    if not earlier:
        raise LookupError("no earlier model version to roll back to "
                          f"(history: {history_path(settings)})")
    target = earlier[-1]
    why = _switch(target["bento"], settings)
    if why is not None:
        if current is not None:
            _switch(current["bento"], settings)
        raise RolloutFailed(f"rollback to {target['bento']} failed: {why}; "
                            f"{current['bento'] if current else 'nothing'} stays live")
    now = _now()
    if current is not None and current["until"] is None:
        current["until"] = now
    entries.append({"model_version": target["model_version"], "bento": target["bento"],
                    "from": now, "until": None, "rollback_of": current["model_version"] if current else None})
    _record(settings, entries)
    return entries[-1]


def ensure_running(settings: Settings | None = None) -> dict | None:
    """Start the live Bento if it is not answering (after a reboot, say); returns the entry."""
    settings = settings or get_settings()
    entry = live(settings)
    if entry is None:
        return None
    try:
        if _get(f"{settings.service_url}/readyz")[0] == 200:
            return entry
    except OSError:
        pass
    why = _switch(entry["bento"], settings)
    if why is not None:
        raise RolloutFailed(f"restarting {entry['bento']} failed: {why}")
    return entry


# ---------------------------------------------------------------- kubernetes


def render_manifests(tag: str, version: str, settings: Settings) -> list[dict]:
    """Deployment and Service for the containerized Bento (``serving_image``)."""
    name = f"{settings.model_name.replace('_', '-')}-service"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "fti-platform"}
    probe = {"httpGet": {"path": "/readyz", "port": 3000}, "periodSeconds": 10, "failureThreshold": 3}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": settings.k8s_namespace, "labels": labels,
                     "annotations": {"fti/model-version": str(version), "fti/bento": tag}},
        "spec": {
            "replicas": settings.serving_replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"fti/model-version": str(version)}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                    "containers": [{
                        "name": "service",
                        "image": settings.serving_image,
                        "ports": [{"containerPort": 3000, "name": "http"}],
                        # connection strings come from a Secret, never as plain values here
                        "envFrom": [{"secretRef": {"name": settings.k8s_secret}}],
                        "env": [{"name": "FTI_ONLINE_STORE", "value": settings.online_store},
                                {"name": "FTI_SERVING_PORT", "value": "3000"}],
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": 3000}},
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}},
                    }],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": settings.k8s_namespace, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return [deployment, service]


def validate_manifests(docs: list[dict], k8s_version: str = "1.30.0") -> None:
    """Raise naming the field if a manifest is not valid Kubernetes (kubernetes-validate)."""
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, k8s_version, strict=True)


def write_manifests(tag: str, version: str, settings: Settings) -> Path:
    import yaml

    docs = render_manifests(tag, version, settings)
    validate_manifests(docs)
    path = settings.serving_dir / "manifests" / f"{tag.replace(':', '-')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# ---------------------------------------------------------------- compose: the serving container


def predict_one(settings: Settings, flight: dict, timeout: float = 30) -> dict:
    """POST one flight to ``service_url``/predict; its one prediction (raises on any failure)."""
    req = urllib.request.Request(f"{settings.service_url}/predict", method="POST",
                                 data=json.dumps(flight).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())[0]


def await_served(version: str, settings: Settings) -> dict:
    """Compose runtime: wait until the service at ``service_url`` answers a real flight with model
    ``version`` (the serving container follows the champion alias by itself, see
    :func:`supervise`); record it in the live history. Raises ``RolloutFailed`` after
    ``serving_deploy_timeout_s``; the container keeps serving what it served before."""
    flight = smoke_flight(settings)
    deadline = time.monotonic() + settings.serving_deploy_timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            got = predict_one(settings, flight)
            served_version = str(got.get("model_version"))
            p = float(got["delay_probability"])
            if served_version == str(version) and 0.0 <= p <= 1.0:
                break
            last = f"it serves model version {served_version}"
        except urllib.error.HTTPError as e:
            last = f"/predict answered {e.code}: {e.read()[:300].decode(errors='replace')}"
        except (OSError, KeyError, IndexError, TypeError, ValueError) as e:
            last = f"/predict failed: {e}"
        time.sleep(2)
    else:
        raise RolloutFailed(f"{settings.service_url} did not serve model version {version} within "
                            f"{settings.serving_deploy_timeout_s:.0f} s: {last}")
    entries = history(settings)
    if not (entries and entries[-1]["until"] is None and entries[-1]["model_version"] == str(version)):
        now = _now()
        if entries and entries[-1]["until"] is None:
            entries[-1]["until"] = now
        entries.append({"model_version": str(version), "bento": None, "from": now, "until": None})
        _record(settings, entries)
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
            [str(Path(sys.executable).with_name("bentoml")), "serve", SERVICE,
             "--host", settings.serving_host, "--port", str(settings.serving_port)],
            env=env, cwd=PROJECT_ROOT,
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
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if not server.alive():
            return f"the server exited with {server.proc.returncode}"
        try:
            status, body = _get(url)
            text = body[:300].decode(errors="replace")
            last = f"/readyz {status}: {text}"
            if status == 200:
                return None
            if "no model loaded" in text:
                return last
            if "not ready:" in text:  # the service's own reasons, none of them the model
                return None
        except OSError as e:
            last = f"no answer ({e})"
        time.sleep(1)
    return f"not up after {timeout:.0f} s: {last}"


def supervise(settings: Settings | None = None) -> int:
    """The serving container's entry point (``python -m serving.rollout supervise``).

    Serves ``FTI_SERVING_MODEL_DIR`` when set; otherwise the registry's champion: it starts
    the service (unready, saying why, while there is no champion), checks the ``champion``
    alias every ``serving_poll_s`` seconds, and when the alias names another version it stages
    that version and restarts the server on it. A version whose server does not come up with
    its model is abandoned for the one served before. The container never needs the Docker
    socket, and Airflow never needs access to the container: the registry is the interface.
    A server that exits is started again; SIGTERM stops it and the supervisor.
    """
    from serving import model as served
    from training import registry

    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s supervise: %(message)s")
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
            if version is None or version == server.version:
                continue
            try:
                model_dir = served.stage_champion(settings)
            except Exception as err:
                log.error("staging champion version %s failed: %s", version, err)
                continue
            # the alias may have moved again meanwhile: the staged directory says what it holds
            version = served.read_version(model_dir)
            log.info("champion is version %s (serving %s): restarting on it", version, server.version)
            previous = server
            previous.stop()
            server = _Server(settings, model_dir, version)
            why = _loads_model(settings, server)
            if why is not None:
                log.error("version %s did not come up (%s): back to version %s", version, why,
                          previous.version)
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


if __name__ == "__main__":
    if sys.argv[1:] != ["supervise"]:
        raise SystemExit("usage: python -m serving.rollout supervise")
    raise SystemExit(supervise())
