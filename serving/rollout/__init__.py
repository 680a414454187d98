"""Rollout of the champion, split by runtime (``FTI_SERVING_RUNTIME``).

- ``bento``: a Bento per model version (``build_bento``);
- ``local`` (embedded default): the local ``bentoml serve`` process, health-gated, with rollback;
- ``compose``: the serving container follows the champion alias; deploy waits until it serves it;
- ``kubernetes``: Deployment and Service manifests, validated against the Kubernetes schema;
- ``live_history``: ``serving_dir/live.json``, which version was live from when to when;
- ``probe``: the one HTTP client and the one wait helper all of them use.

``python -m fti rollback`` (``make rollback``) restores the version before the current one.
"""

from __future__ import annotations

from pathlib import Path

from fti.ground.settings import Settings, get_settings
from serving.rollout.bento import bento_name, bento_path, build_bento
from serving.rollout.compose import await_served, supervise
from serving.rollout.kubernetes import render_manifests, validate_manifests, write_manifests
from serving.rollout.live_history import history, history_path, live
from serving.rollout.local import ensure_running, start_local, stop_local, wait_ready
from serving.rollout.probe import RolloutFailed, smoke, smoke_flight

__all__ = [
    "RolloutFailed",
    "await_served",
    "bento_name",
    "bento_path",
    "build_bento",
    "ensure_running",
    "history",
    "history_path",
    "live",
    "render_manifests",
    "rollback",
    "rollout",
    "smoke",
    "smoke_flight",
    "start_local",
    "stop_local",
    "supervise",
    "validate_manifests",
    "wait_ready",
    "write_manifests",
]


def rollout(model_dir: Path, version: str, settings: Settings | None = None) -> dict:
    """Make model ``version`` (its files in ``model_dir``) the live service in the configured
    runtime: the local process (health-gated, rolled back on failure), the serving container
    (waited for), or the cluster's manifests (rendered). Raises ``RolloutFailed``."""
    from serving.rollout import local

    settings = settings or get_settings()
    if settings.serving_runtime == "compose":
        return await_served(version, settings)
    if settings.serving_runtime == "kubernetes":
        tag = build_bento(model_dir, version, settings)
        path = write_manifests(tag, version, settings)
        return {"bento": tag, "model_version": version, "manifests": str(path)}
    return local.rollout(model_dir, version, settings)


def rollback(settings: Settings | None = None) -> dict:
    """Make the version live before the current one live again (local runtime)."""
    from serving.rollout import local

    settings = settings or get_settings()
    if settings.serving_runtime != "local":
        raise RolloutFailed(
            f"rollback restarts the local service; with FTI_SERVING_RUNTIME="
            f"{settings.serving_runtime} move the registry's 'champion' alias of "
            f"{settings.model_name!r} back to the earlier version instead (the serving container, "
            "or the cluster's CD, follows it)"
        )
    return local.rollback(settings)
