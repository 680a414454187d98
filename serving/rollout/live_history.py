"""The live history: which model version (and Bento) served from when to when.

``serving_dir/live.json``, oldest first, each entry ``{model_version, bento, from, until}``
(``until`` is None while live; a rollback's entry names the version it replaced in
``rollback_of``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fti.ground import files
from fti.ground.settings import Settings, get_settings


def history_path(settings: Settings) -> Path:
    """The history file."""
    return settings.serving_dir / "live.json"


def history(settings: Settings | None = None) -> list[dict]:
    """Every rollout, oldest first: model version, Bento, from, until (None while live)."""
    settings = settings or get_settings()
    path = history_path(settings)
    return json.loads(path.read_text()) if path.exists() else []


def live(settings: Settings | None = None) -> dict | None:
    """The entry live now, or None."""
    entries = history(settings)
    return entries[-1] if entries and entries[-1]["until"] is None else None


def now() -> str:
    """The current instant as the history writes it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(settings: Settings, entry: dict) -> dict:
    """Close the live entry and append ``entry`` (given ``model_version`` and ``bento``; its
    ``from`` is now and its ``until`` None); returns it."""
    entries = history(settings)
    at = now()
    if entries and entries[-1]["until"] is None:
        entries[-1]["until"] = at
    entry = {**entry, "from": at, "until": None}
    entries.append(entry)
    files.write_json(history_path(settings), entries)
    return entry
