"""Online features of ``flight_delay_v1`` for flights, with the offline join's rules.

One batched ``get_online_features`` call per set of flights reads the feature service from the
online store (SQLite or Redis) with each feature row's timestamp. Each view's TTL is then
applied relative to ``now`` exactly as ``training.dataset.point_in_time_join`` applies it
offline: a feature row older than ``now - ttl`` (or stamped after ``now``) counts as no row, so
its features are null. That rule is what makes the online features of a flight equal its
offline ASOF features as of the same instant.

``now`` is :func:`as_of`: with ``serving_clock=replay`` the last instant of the latest
materialized interval (the demo replays 2013, so the wall clock would expire every feature),
with ``wall`` the current time. ``training.dataset.point_in_time_join`` of the same flights stamped at that
instant gives the same features (tested).

No BentoML here: batch scoring and the parity test use the same functions.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fti import featurestore
from fti.settings import Settings, get_settings
from training.dataset import FEATURE_SERVICE, TS_PREFIX, ViewSpec, _view_specs

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore

#: the input columns a flight needs (``flight``, the flight number, is optional here)
FLIGHT_COLUMNS = ["carrier", "origin", "dest", "tailnum", "sched_dep_ts"]
#: seconds between ``now`` and the oldest feature row a flight's features come from
AGE_COLUMN = "oldest_feature_age_s"


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be read (Redis down, SQLite file missing, nothing materialized)."""


@dataclass(frozen=True)
class ServiceSpec:
    """The feature service as the registry has it, resolved once per store."""

    service: FeatureService
    views: list[ViewSpec]
    on_demand: list[tuple[Any, Any]]  # (OnDemandFeatureView, its projection)

    @functools.cached_property
    def feature_columns(self) -> list[str]:
        cols = [f for v in self.views for f in v.features]
        cols += [f.name for _, proj in self.on_demand for f in proj.features]
        return cols

    @functools.cached_property
    def feature_refs(self) -> list[str]:
        """'view:feature' of every batch-view feature: the service's online lookup, without
        Feast rebuilding the service from the registry on every call."""
        return [f"{v.name}:{f}" for v in self.views for f in v.features]

    @functools.cached_property
    def dtypes(self) -> dict[str, str]:
        """pandas dtype per batch-view feature, from its Feast type (nullable integers)."""
        names = {"Int32": "Int32", "Int64": "Int64", "Float32": "float64", "Float64": "float64",
                 "String": "object", "Bool": "boolean"}
        return {
            f.name: names.get(str(f.dtype), "object")
            for proj in self.service.feature_view_projections for f in proj.features
        }


_specs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_as_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: how long a replay "now" is reused (reading it from the registry takes milliseconds)
AS_OF_CACHE_S = 1.0


def service_spec(store: FeatureStore) -> ServiceSpec:
    """Views, keys, features and TTLs of ``flight_delay_v1`` (cached per store: the registry
    is read once, not per request)."""
    spec = _specs.get(store)
    if spec is None:
        views, odfvs = _view_specs(store)
        spec = ServiceSpec(store.get_feature_service(FEATURE_SERVICE), views, odfvs)
        _specs[store] = spec
    return spec


def as_of(settings: Settings | None = None, store: FeatureStore | None = None) -> pd.Timestamp:
    """The instant online features are "as of" (UTC).

    ``replay``: the last instant of the latest materialized interval of the service's views,
    one microsecond before its end (a feature row stamped exactly at a local midnight belongs
    to the interval that starts there, as in batch scoring); ``wall``: now.
    Raises :class:`OnlineStoreUnavailable` when nothing was materialized yet.
    """
    import pandas as pd

    settings = settings or get_settings()
    if settings.serving_clock == "wall":
        return pd.Timestamp.now(tz="UTC")
    store = store or featurestore.feature_store(settings)
    cached = _as_of.get(store)
    if cached is not None and time.monotonic() - cached[0] < AS_OF_CACHE_S:
        return cached[1]
    ends: list[datetime] = []
    for view in service_spec(store).views:
        # the registry is cached (cache_ttl_seconds): new materializations show within a minute
        fv = store.registry.get_feature_view(view.name, store.project, allow_cache=True)
        ends += [end for _, end in fv.materialization_intervals]
    if not ends:
        raise OnlineStoreUnavailable(
            "nothing has been materialized into the online store yet: run the feature pipeline"
        )
    now = pd.Timestamp(max(ends)).tz_convert("UTC") - pd.Timedelta(microseconds=1)
    _as_of[store] = (time.monotonic(), now)
    return now


def fail_fast(store: FeatureStore, connect_timeout_s: float = 0.25, timeout_s: float = 0.4) -> None:
    """Make the store's Redis reads fail within a second when Redis is down or hangs.

    redis-py retries a failed command three times with up to 2, 4 and 8 s of backoff by
    default; a service must answer 503 at once instead. One immediate retry stays, so a
    connection left stale by a Redis restart is replaced without failing the request (two
    tries of at most ``timeout_s`` each when Redis hangs). A no-op for the SQLite online store.
    """
    if store.config.online_store.type != "redis":
        return
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    online = store._get_provider().online_store
    # Feast builds its client lazily from the connection string; tune it before first use
    client = online._get_client(store.config.online_store)
    kwargs = client.connection_pool.connection_kwargs
    kwargs.setdefault("socket_connect_timeout", connect_timeout_s)
    kwargs.setdefault("socket_timeout", timeout_s)
    client.set_retry(Retry(NoBackoff(), 1))


def check_online_store(settings: Settings | None = None, store: FeatureStore | None = None) -> None:
    """Raise :class:`OnlineStoreUnavailable`, with a message saying what is wrong, unless the
    online store answers and something has been materialized."""
    settings = settings or get_settings()
    store = store or featurestore.feature_store(settings)
    if settings.online_store == "redis":
        import redis

        fail_fast(store)
        online = store._get_provider().online_store
        try:
            online._get_client(store.config.online_store).ping()
        except redis.RedisError as err:
            raise OnlineStoreUnavailable(
                f"Redis online store unreachable ({_redis_address(settings)}): {err}"
            ) from err
    else:
        path = settings.sqlite_online_path
        if not path.exists():
            raise OnlineStoreUnavailable(f"SQLite online store missing: {path}")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as con:
                con.execute("SELECT 1").fetchone()
        except sqlite3.Error as err:
            raise OnlineStoreUnavailable(f"SQLite online store unreadable ({path}): {err}") from err
    as_of(settings, store)


def _redis_address(settings: Settings) -> str:
    # the connection string may hold a password: name the host and port only
    return settings.redis_connection_string.get_secret_value().split(",")[0]


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error, ConnectionError, TimeoutError]
    try:
        import redis

        errors.append(redis.RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return tuple(errors)


def _flights_frame(flights, settings: Settings) -> pd.DataFrame:
    import pandas as pd

    df = flights.copy() if isinstance(flights, pd.DataFrame) else pd.DataFrame(list(flights))
    if df.empty and not len(df.columns):
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in FLIGHT_COLUMNS})
    missing = [c for c in FLIGHT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"flights lack column(s): {', '.join(missing)}")
    zone = ZoneInfo(settings.timezone)

    def utc(value) -> pd.Timestamp:
        t = pd.Timestamp(value)
        if t.tzinfo is not None:
            return t
        # a naive departure time is local time, as the data set's own columns are; Python's
        # rule for the hour a DST change skips or repeats (fold=0), never an error
        return pd.Timestamp(t.to_pydatetime().replace(tzinfo=zone))

    col = df["sched_dep_ts"]
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        ts = col
    else:
        ts = pd.Series([utc(v) for v in col], index=df.index, dtype=object)
        ts = pd.to_datetime(ts, utc=True)
    df["sched_dep_ts"] = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return df.reset_index(drop=True)


def flight_id(df: pd.DataFrame, tz: str = "America/New_York") -> pd.Series:
    """The feature pipeline's flight key, 'YYYYMMDD-<carrier><number>-<origin>-<hhmm>' (local
    date and time), for frames with a ``flight`` number column."""
    local = df["sched_dep_ts"].dt.tz_convert(tz)
    return (
        local.dt.strftime("%Y%m%d-") + df["carrier"].astype(str) + df["flight"].astype(int).astype(str)
        + "-" + df["origin"].astype(str) + "-" + local.dt.strftime("%H%M")
    )


def online_features(
    flights: list[dict] | pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    now: pd.Timestamp | datetime | None = None,
) -> pd.DataFrame:
    """Every feature of ``flight_delay_v1`` for each flight, as of ``now`` (default
    :func:`as_of`), read from the online store in one batched call.

    ``flights``: dicts or a frame with carrier, origin, dest, tailnum and sched_dep_ts (a naive
    time is local time). Returns the flights (same order, their columns kept, sched_dep_ts in
    UTC) with ``event_timestamp`` (= now), one column per feature named as in the training set,
    ``_feature_ts__<view>`` (the feature row's timestamp, null when none counts), and
    ``oldest_feature_age_s`` (seconds from the oldest feature row used to now; null when no
    view has one). Raises :class:`OnlineStoreUnavailable` when the store cannot be read.
    """
    import numpy as np
    import pandas as pd

    settings = settings or get_settings()
    store = store or featurestore.feature_store(settings)
    df = _flights_frame(flights, settings)
    now = as_of(settings, store) if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    spec = service_spec(store)

    data, micros_of = _lookup(store, spec, df, settings) if len(df) else ({}, {})

    cols: dict[str, Any] = {"event_timestamp": np.full(len(df), now.to_datetime64())}
    ages = np.full(len(df), np.nan)
    dtypes = spec.dtypes
    for view in spec.views:
        micros = micros_of.get(view.name, np.zeros(0, dtype="int64"))
        ts = pd.to_datetime(micros, unit="us", utc=True).as_unit("us")
        # Feast's rule, as the offline ASOF join applies it: only a row inside [now - ttl, now]
        fresh = (micros > 0) & (ts <= now)
        if view.ttl:
            fresh &= ts >= now - view.ttl
        for f in view.features:
            values = np.asarray(data.get(f, []), dtype=object)
            values[~fresh] = None
            cols[f] = pd.array(values, dtype=dtypes[f]) if dtypes[f] != "object" else values
        cols[f"{TS_PREFIX}{view.name}"] = ts.where(fresh)
        age = np.round((now - ts).total_seconds().to_numpy(), 3)
        ages = np.where(fresh, np.fmax(ages, age), ages)
    # on-demand features: the transformation the offline join applies, on the same input
    for odfv, proj in spec.on_demand:
        transformed = odfv.feature_transformation.transform(df[["sched_dep_ts"]])
        for f in proj.features:
            cols[f.name] = transformed[f.name].to_numpy()
    cols[AGE_COLUMN] = ages
    added = pd.DataFrame(cols, index=df.index)
    added["event_timestamp"] = added["event_timestamp"].dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    return pd.concat([df.drop(columns=[c for c in cols if c in df.columns]), added], axis=1)


def _lookup(store: FeatureStore, spec: ServiceSpec, df: pd.DataFrame, settings: Settings):
    """One batched online read: feature values by name, and each view's row timestamps in
    microseconds (0 where the entity has no row)."""
    import numpy as np
    import pandas as pd

    keys = sorted({k for v in spec.views for k in v.keys})
    rows = [
        {k: (None if pd.isna(v) else str(v)) for k, v in r.items()}
        for r in df[keys].to_dict("records")
    ]
    try:
        response = store.get_online_features(features=spec.feature_refs, entity_rows=rows)
        data = response.to_dict()
    except _unavailable_errors() as err:
        raise OnlineStoreUnavailable(f"online store ({settings.online_store}) unreadable: {err}") from err
    position = {name: i for i, name in enumerate(response.proto.metadata.feature_names.val)}
    micros = {}
    for view in spec.views:
        # every feature of a view comes from the same row: the first one's timestamps are the
        # view's, read from the response itself to the microsecond (to_dict keeps seconds)
        stamps = response.proto.results[position[view.features[0]]].event_timestamps
        micros[view.name] = np.fromiter(
            (t.seconds * 1_000_000 + t.nanos // 1000 for t in stamps), dtype="int64", count=len(df)
        )
    return data, micros
