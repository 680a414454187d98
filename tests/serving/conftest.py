"""Fixtures of the online-serving tests: a trained model directory, and the real service
started as a subprocess (``bentoml serve``) against the session's feature store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import ROOT, free_port, http
from hypothesis.configuration import set_hypothesis_home_dir

from fti.ground.settings import get_settings
from serving import model
from training import train

# Hypothesis keeps its caches in ./.hypothesis by default: keep them in the test home instead
set_hypothesis_home_dir(get_settings().home / "hypothesis")


@dataclass
class Service:
    """A running ``bentoml serve`` of ``serving.service:FlightDelayService``."""

    url: str
    proc: subprocess.Popen
    log: Path
    children: list = field(default_factory=list)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = http("GET", f"{self.url}/readyz", timeout=5)
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz still {status}: {body!r}\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server (its arbiter stops the workers), then kill whatever is left."""
        import psutil

        try:
            self.children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for child in self.children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def _start(env: dict[str, str], log: Path, timeout: float = 180) -> Service:
    port = free_port()
    full = {**os.environ, **env}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full.setdefault("OMP_NUM_THREADS", "1")
    full["BENTOML_DO_NOT_TRACK"] = "true"  # no usage reporting from tests
    cmd = [
        str(Path(sys.executable).parent / "bentoml"),
        "serve",
        "serving.service:FlightDelayService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    out = open(log, "w")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    out.close()
    service = Service(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"bentoml serve exited {proc.returncode}:\n{service.log_tail()}")
        try:
            if http("GET", f"{service.url}/healthz", timeout=2)[0] == 200:
                return service
        except OSError:
            pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"service not up after {timeout} s:\n{service.log_tail()}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def champion_home(snapshot, tmp_path_factory):
    """``champion_home(name)``: a private home (its own MLflow, reports and predictions) over
    the session's offline store, with a champion trained on the session's training set, kept
    where the training pipeline keeps training sets (monitoring finds it by the hash tag)."""
    import pandas as pd

    from fti.ground.settings import Settings
    from training import dataset, gate, registry

    def make(name: str) -> SimpleNamespace:
        base = get_settings()
        root = tmp_path_factory.mktemp(name)
        (root / "data").mkdir()
        (root / "data" / "offline").symlink_to(base.offline_dir, target_is_directory=True)
        s = Settings(home=root / "home", data_root=root / "data", feast_registry=base.registry)
        path, digest = dataset.write_snapshot(
            pd.read_parquet(snapshot), s.data_dir / "training_sets"
        )
        model_dir = root / "model"
        results = train.train(path, model_dir, epochs=2)
        _, version = registry.register(model_dir, results, {"training_set.hash": digest}, s)
        registry.record_decision(version, gate.Decision(True, ["test champion"]), {}, s)
        return SimpleNamespace(settings=s, version=str(version), model_dir=model_dir, snapshot=path)

    return make


@pytest.fixture(scope="session")
def second_model(snapshot, tmp_path_factory) -> Path:
    """Another model trained on the session's snapshot (one epoch), version ``test-2``."""
    out = tmp_path_factory.mktemp("second-model")
    train.train(snapshot, out, epochs=1)
    model.write_version(out, "test-2")
    return out


@pytest.fixture(scope="session")
def nan_model(served_model, tmp_path_factory) -> Path:
    """The served model with its weights set to NaN: it loads, and scores NaN."""
    import torch

    out = tmp_path_factory.mktemp("nan-model") / "model"
    shutil.copytree(served_model, out)
    saved = torch.load(out / model.MODEL_FILE, map_location="cpu", weights_only=False)
    saved["state_dict"] = {k: v * float("nan") for k, v in saved["state_dict"].items()}
    torch.save(saved, out / model.MODEL_FILE)
    model.write_version(out, "test-nan")
    return out


@pytest.fixture
def data_root(two_days, tmp_path):
    """A data root of its own whose offline store shows the session's views (so the inference
    log a test counts is its own)."""
    from fti.ground.contract import contract

    base = get_settings()
    offline = tmp_path / "data" / "offline"
    offline.mkdir(parents=True)
    for view in contract().view_names:
        (offline / view).symlink_to(base.offline_dir / view, target_is_directory=True)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def start_service(tmp_path_factory):
    """Start the service with extra environment: ``start_service({"FTI_...": ...})``. Every
    service started is stopped at the end of the session, its processes with it."""
    started: list[Service] = []

    def start(env: dict[str, str]) -> Service:
        n = len(started)
        home = get_settings().serving_dir / f"bentoml-{n}"
        home.mkdir(parents=True, exist_ok=True)
        service = _start(
            {"BENTOML_HOME": str(home), **env},
            tmp_path_factory.mktemp("service-log") / f"service-{n}.log",
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
