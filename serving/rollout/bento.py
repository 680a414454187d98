"""A Bento per model version: the service code and the model's files, in the Bento store.

``build_bento`` packs the service's packages and the model (``model/`` inside the Bento's
source) into a Bento tagged ``<model_name>_service:v<version>``, in the store under
``serving_dir/bentoml`` (``BENTOML_HOME``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fti.ground.settings import PROJECT_ROOT, Settings, get_settings, settings_env

log = logging.getLogger(__name__)

#: the packages the service imports, copied into each Bento
PACKAGES = ("fti", "serving", "training", "feature_repo")
SERVICE = "serving.service:FlightDelayService"


def bento_env(settings: Settings) -> dict[str, str]:
    """The environment ``bentoml`` runs in: the settings, the Bento store, no usage tracking."""
    env = {
        **os.environ,
        **settings_env(settings),
        "BENTOML_HOME": str(settings.serving_dir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def bento_name(settings: Settings) -> str:
    """The Bento's name: ``<model_name>_service``."""
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
            shutil.copytree(
                PROJECT_ROOT / pkg,
                root / pkg,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"),
            )
        shutil.copytree(model_dir, root / "model")
        (root / "model" / "model_version.txt").write_text(f"{version}\n")
        # a subprocess: BentoML reads BENTOML_HOME when first imported
        code = (
            "import bentoml, json, sys; a = json.loads(sys.argv[1]); "
            "print(bentoml.bentos.build(a['service'], name=a['name'], version=a['version'], "
            "labels=a['labels'], include=a['include'], build_ctx=a['ctx']).tag)"
        )
        args = {
            "service": SERVICE,
            "name": bento_name(settings),
            "version": f"v{version}",
            "labels": {"model_name": settings.model_name, "model_version": str(version)},
            "include": [f"{p}/**" for p in (*PACKAGES, "model")],
            "ctx": ctx,
        }
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)],
            cwd=ctx,
            env=bento_env(settings),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bentoml build of {tag} failed:\n{proc.stderr[-3000:]}")
    log.info("built Bento %s", tag)
    return tag


def bento_path(tag: str, settings: Settings) -> Path | None:
    """The Bento's folder in the store, or None when it is not there."""
    name, _, version = tag.partition(":")
    path = settings.serving_dir / "bentoml" / "bentos" / name / version
    return path if (path / "bento.yaml").exists() else None
