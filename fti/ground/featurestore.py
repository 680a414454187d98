"""Feast, configured from the platform settings.

The store's configuration is built in code from :class:`~fti.ground.settings.Settings` (SQLite or
Redis online store, file or SQL registry), so no ``feature_store.yaml`` has to be edited per
machine. :func:`write_yaml` renders one for the ``feast`` CLI, with secrets left as
``${FTI_...}`` references that Feast expands from the environment.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fti.ground.contract import contract
from fti.ground.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

log = logging.getLogger(__name__)

#: prefix of the columns holding each view's feature-row timestamp next to a lookup's features
#: (``_feature_ts__<view>``): not features, they prove what instant each value is from
TS_PREFIX = "_feature_ts__"


def online_views(settings: Settings | None = None) -> list[str]:
    """The feature views materialized to the online store: every one declared ``online=True``."""
    return contract(settings).online_views


def feature_service_name(settings: Settings | None = None) -> str:
    """The feature service the model reads (``fti.ground.contract``)."""
    return contract(settings).feature_service


@dataclass(frozen=True)
class ServedView:
    """A batch view of a feature service as the registry holds it: what a lookup joins."""

    name: str
    keys: list[str]
    features: list[str]
    ttl: timedelta
    path: str


def resolve_service(store: FeatureStore, name: str) -> tuple[list[ServedView], list]:
    """The batch views and the on-demand views (with their projections) of feature service
    ``name``, as the registry has them."""
    service = store.get_feature_service(name)
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    views, odfvs = [], []
    for proj in service.feature_view_projections:
        if proj.name in on_demand:
            odfvs.append((on_demand[proj.name], proj))
            continue
        fv = store.get_feature_view(proj.name)
        views.append(
            ServedView(
                name=fv.name,
                keys=[e.name for e in fv.entity_columns],
                features=[f.name for f in proj.features],
                ttl=fv.ttl,
                path=fv.batch_source.path,
            )
        )
    return views, odfvs


def _online_store(settings: Settings, *, for_yaml: bool = False) -> dict[str, Any]:
    if settings.online_store == "redis":
        conn = (
            "${FTI_REDIS_CONNECTION_STRING}"
            if for_yaml
            else settings.redis_connection_string.get_secret_value()
        )
        return {"type": "redis", "connection_string": conn}
    return {"type": "sqlite", "path": str(settings.sqlite_online_path)}


def _registry(settings: Settings) -> dict[str, Any]:
    reg = settings.registry
    if "://" in reg and not reg.startswith(("s3://", "gs://", "file://")):
        return {"registry_type": "sql", "path": reg, "cache_ttl_seconds": 60}
    return {"registry_type": "file", "path": reg, "cache_ttl_seconds": 60}


def repo_config(settings: Settings | None = None) -> RepoConfig:
    """The Feast ``RepoConfig`` these settings describe."""
    from feast.repo_config import RepoConfig

    settings = settings or get_settings()
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=_registry(settings),
        online_store=_online_store(settings),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=settings.feature_repo,
    )


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """A Feast ``FeatureStore`` over :func:`repo_config` of the settings."""
    from feast import FeatureStore

    settings = settings or get_settings()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def _fingerprint(settings: Settings) -> str:
    """What an apply depends on: the declaration files' contents and the store's configuration."""
    import hashlib

    from feast.repo_operations import get_repo_files

    h = hashlib.sha256()
    h.update(repr(sorted(repo_config(settings).model_dump(mode="json").items())).encode())
    repo = Path(settings.feature_repo).resolve()
    for path in get_repo_files(repo):
        h.update(str(path.relative_to(repo)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def apply(settings: Settings | None = None, force: bool = False) -> str:
    """``feast apply`` of the feature repo (idempotent: an unchanged repo changes nothing).

    Returns Feast's printed plan. With a file registry, an apply whose declarations and store
    configuration are those of the last apply into the same registry is skipped (a daily run
    pays nothing for it): ``applied.json`` beside the registry records what was applied.
    """
    from feast.repo_operations import apply_total

    settings = settings or get_settings()
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    marker = settings.feast_dir / "applied.json"
    registry = Path(settings.registry)
    file_registry = _registry(settings)["registry_type"] == "file"
    fingerprint = _fingerprint(settings)
    if not force and file_registry and registry.exists() and marker.exists():
        import json

        recorded = json.loads(marker.read_text())
        if recorded == {"fingerprint": fingerprint, "registry": str(registry)}:
            return "No changes to the declarations since the last apply: nothing to apply."
    cwd = os.getcwd()
    repo = str(settings.feature_repo)
    # the declarations import each other by module name, as `feast apply` run in the repo does
    if repo not in sys.path:
        sys.path.insert(0, repo)
    out = io.StringIO()
    try:
        # apply_total chdirs into the repo and prints its plan
        with contextlib.redirect_stdout(out):
            apply_total(repo_config(settings), settings.feature_repo, skip_source_validation=True)
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    log.info("feast apply:\n%s", text)
    if file_registry and registry.exists():
        from fti.ground import files

        # `make clean` removes the marker with the registry; a registry moved elsewhere is a
        # different path, applied again
        files.write_json(marker, {"fingerprint": fingerprint, "registry": str(registry)})
    return text


def materialize(start: datetime, end: datetime, settings: Settings | None = None) -> dict[str, int]:
    """Load the online views' latest values of the interval into the online store, reading
    only the interval's day partitions; returns the rows written per view.

    What Feast's own ``materialize`` does (the latest row of each entity with
    ``start <= event_timestamp <= end``: Feast 0.67's file store includes the end, so a row
    stamped at the next midnight counts when that day is already published; written through
    the online store's own writer; the interval recorded in the registry), except that Feast's
    file offline store reads every partition of a view to find an interval's rows: 0.4 s with a
    week of history, 12-18 s with a year (docs/benchmarks.md). The offline store holds one file
    per local day (``<view>/date=YYYY-MM-DD/``), so the interval's rows are in its days' files.
    ``tests/test_materialize.py`` checks the online store ends up holding exactly what Feast's
    ``materialize`` leaves there.
    """
    settings = settings or get_settings()
    store = feature_store(settings)
    written = {}
    for name in online_views(settings):
        fv = store.get_feature_view(name)
        rows = interval_latest(fv, start, end, settings)
        if len(rows):
            store.write_to_online_store(name, rows)
        store.registry.apply_materialization(fv, store.project, start, end)
        written[name] = len(rows)
    return written


def interval_latest(fv, start: datetime, end: datetime, settings: Settings):
    """The latest row of each entity of view ``fv`` with ``start <= event_timestamp <= end``
    (Feast's bounds), read from the partitions of the local days those bounds fall on only."""
    import pandas as pd
    import pyarrow.dataset as ds

    from fti.ground.dates import iter_days

    zone = ZoneInfo(settings.timezone)
    first = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    root = Path(fv.batch_source.path)
    paths = [
        p
        for d in iter_days(first, last)
        for p in (root / f"date={d.isoformat()}").glob("*.parquet")
    ]
    keys = [e.name for e in fv.entity_columns]
    ts = fv.batch_source.timestamp_field
    columns = [*keys, ts, *(f.name for f in fv.features)]
    if not paths:
        return pd.DataFrame(columns=columns)
    table = ds.dataset(paths, format="parquet").to_table(
        columns=columns,
        filter=(ds.field(ts) >= pd.Timestamp(start)) & (ds.field(ts) <= pd.Timestamp(end)),
    )
    df = table.to_pandas()
    return (
        df.sort_values(ts, kind="stable")
        .drop_duplicates(subset=keys, keep="last")
        .reset_index(drop=True)
    )


def materialize_with_feast(
    start: datetime, end: datetime, settings: Settings | None = None
) -> None:
    """Feast's own ``materialize`` of the online views (the reference :func:`materialize` is
    tested against, and the benchmark's baseline)."""
    store = feature_store(settings)
    with contextlib.redirect_stdout(io.StringIO()):
        store.materialize(start_date=start, end_date=end, feature_views=online_views(settings))


def online_entity_counts(settings: Settings | None = None) -> dict[str, int]:
    """Entities held in the online store, per online feature view."""
    settings = settings or get_settings()
    if settings.online_store == "redis":
        return _redis_counts(settings)
    import sqlite3

    path = settings.sqlite_online_path
    counts = dict.fromkeys(online_views(settings), 0)
    if not path.exists():
        return counts
    with contextlib.closing(sqlite3.connect(path)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for view in counts:
            table = f"{settings.feast_project}_{view}"
            if table in tables:
                (n,) = con.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{table}"').fetchone()
                counts[view] = n
    return counts


def redis_client(settings: Settings, **options):
    """A redis-py client for Feast's connection string ('host:port,db=0,password=...');
    ``options`` go to ``redis.Redis`` (default: a 2 s socket timeout)."""
    import redis

    parts = settings.redis_connection_string.get_secret_value().split(",")
    host, _, port = parts[0].partition(":")
    kwargs: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379)}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        k = k.strip()
        if k == "db":
            kwargs["db"] = int(v)
        elif k == "password":
            kwargs["password"] = v
        elif k == "ssl":
            kwargs["ssl"] = v.lower() == "true"
        elif k == "username":
            kwargs["username"] = v
    options.setdefault("socket_timeout", 2)
    return redis.Redis(**kwargs, **options)


def _redis_counts(settings: Settings) -> dict[str, int]:
    # Feast keeps one hash per entity key with a "_ts:<view>" field for each view it holds
    client = redis_client(settings)
    counts = dict.fromkeys(online_views(settings), 0)
    marker = settings.feast_project.encode()
    for key in client.scan_iter(count=1000):
        if not key.endswith(marker):
            continue
        for field in client.hkeys(key):
            if field.startswith(b"_ts:"):
                view = field[4:].decode()
                if view in counts:
                    counts[view] += 1
    return counts


def write_yaml(settings: Settings | None = None) -> Path:
    """Render ``feature_store.yaml`` for the feast CLI (``feast -f <it> ...``)."""
    import yaml

    settings = settings or get_settings()
    cfg = {
        "project": settings.feast_project,
        "provider": "local",
        "registry": _registry(settings),
        "online_store": _online_store(settings, for_yaml=True),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    path = settings.feast_dir / "feature_store.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
