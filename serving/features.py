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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from fti.ground import compat, featurestore
from fti.ground.contract import contract
from fti.ground.featurestore import TS_PREFIX, ServedView
from fti.ground.settings import Settings, get_settings

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
    views: list[ServedView]
    on_demand: list[tuple[Any, Any]]  # (OnDemandFeatureView, its projection)

    @functools.cached_property
    def feature_columns(self) -> list[str]:
        """Every feature the service returns, batch views first, then on-demand."""
        cols = [f for v in self.views for f in v.features]
        cols += [f.name for _, proj in self.on_demand for f in proj.features]
        return cols

    @functools.cached_property
    def stamped_features(self) -> frozenset[str]:
        """The first feature of each view: its row timestamps are the view's."""
        return frozenset(v.features[0] for v in self.views)

    @functools.cached_property
    def entity_keys(self) -> list[str]:
        """The join keys of every view, sorted: the columns of one online lookup."""
        return sorted({k for v in self.views for k in v.keys})

    @functools.cached_property
    def feature_refs(self) -> list[str]:
        """'view:feature' of every batch-view feature: the service's online lookup, without
        Feast rebuilding the service from the registry on every call."""
        return [f"{v.name}:{f}" for v in self.views for f in v.features]

    @functools.cached_property
    def dtypes(self) -> dict[str, str]:
        """pandas dtype per batch-view feature, from its Feast type (nullable integers)."""
        names = {
            "Int32": "Int32",
            "Int64": "Int64",
            "Float32": "float64",
            "Float64": "float64",
            "String": "object",
            "Bool": "boolean",
        }
        return {
            f.name: names.get(str(f.dtype), "object")
            for proj in self.service.feature_view_projections
            for f in proj.features
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
        name = featurestore.feature_service_name()
        views, odfvs = featurestore.resolve_service(store, name)
        spec = ServiceSpec(store.get_feature_service(name), views, odfvs)
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


def check_online_store(settings: Settings | None = None, store: FeatureStore | None = None) -> None:
    """Raise :class:`OnlineStoreUnavailable`, with a message saying what is wrong, unless the
    online store answers and something has been materialized."""
    settings = settings or get_settings()
    store = store or featurestore.feature_store(settings)
    if settings.online_store == "redis":
        import redis

        compat.fail_fast(store)
        try:
            compat.ping_redis(store, settings)
        except redis.RedisError as err:
            raise OnlineStoreUnavailable(
                f"Redis online store unreachable ({redis_address(settings)}): {err}"
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


def redis_address(settings: Settings) -> str:
    """Host and port of the Redis online store (never the password its connection string may
    hold)."""
    return settings.redis_connection_string.get_secret_value().split(",")[0]


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error, ConnectionError, TimeoutError]
    try:
        import redis

        errors.append(redis.RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return tuple(errors)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _utc_micros(value, zone: ZoneInfo) -> int:
    """Microseconds since the epoch of one departure time; a naive time is local time, as the
    data set's own columns are (Python's rule for the hour a DST change skips or repeats,
    fold=0, never an error)."""
    import pandas as pd

    if isinstance(value, str | np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValueError(f"sched_dep_ts: not a time: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return (value - _EPOCH) // _MICROSECOND


def _flights_columns(flights, settings: Settings) -> tuple[dict[str, Any], np.ndarray]:
    """The flights as columns (their own columns kept, in order) and their departure times in
    UTC microseconds.

    Per-request frames cost milliseconds in pandas for one flight; a dict of arrays built
    once is what the online path needs (a service answers one to a hundred flights).
    """
    import pandas as pd

    if isinstance(flights, pd.DataFrame):
        cols = {c: flights[c].to_numpy() for c in flights.columns}
        ts = flights["sched_dep_ts"] if "sched_dep_ts" in flights.columns else None
        if ts is not None and isinstance(ts.dtype, pd.DatetimeTZDtype):
            micros = (
                ts.dt.tz_convert("UTC")
                .astype("datetime64[us, UTC]")
                .to_numpy(dtype="datetime64[us]")
                .view("int64")
            )
        else:
            micros = None
    else:
        rows = flights if isinstance(flights, list) else list(flights)
        names = list(dict.fromkeys(k for r in rows for k in r)) if rows else FLIGHT_COLUMNS
        cols = {c: _object_array([r.get(c) for r in rows]) for c in names}
        micros = None
    missing = [c for c in FLIGHT_COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"flights lack column(s): {', '.join(missing)}")
    if micros is None:
        zone = ZoneInfo(settings.timezone)
        micros = np.fromiter(
            (_utc_micros(v, zone) for v in cols["sched_dep_ts"]),
            dtype="int64",
            count=len(cols["sched_dep_ts"]),
        )
    return cols, micros


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _utc_index(micros: np.ndarray, valid: np.ndarray | None = None):
    """A UTC DatetimeIndex (microseconds) of epoch microseconds; NaT where not ``valid``."""
    import pandas as pd

    stamps = micros.astype("datetime64[us]")
    if valid is not None:
        stamps[~valid] = np.datetime64("NaT")
    return pd.DatetimeIndex(stamps).tz_localize("UTC")


def flight_id(df: pd.DataFrame, tz: str = "America/New_York") -> list[str]:
    """The feature pipeline's flight key in the format the flight entity declares
    (``fti.ground.contract``; local date and time of ``sched_dep_ts``), for frames with a
    ``flight`` number column."""
    import pandas as pd

    key = contract()
    # calendar fields from the index and one %-format per row: pandas' vectorized strftime
    # takes milliseconds even for one row
    local = pd.DatetimeIndex(df["sched_dep_ts"]).tz_convert(tz)
    columns = {
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "flight": [int(n) for n in df["flight"]],
    }
    fields = [
        columns[f] if f in columns else df[f].astype(str).tolist() for f in key.flight_key_fields
    ]
    return [key.flight_key_format % parts for parts in zip(*fields, strict=True)]


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
    req = _Request.of(flights, settings, store, now)
    lookup = _lookup(req) if req.n else ({}, {})
    return _assemble(req, *lookup)


async def online_features_async(
    flights: list[dict] | pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    now: pd.Timestamp | datetime | None = None,
) -> pd.DataFrame:
    """:func:`online_features` for a service's event loop: the Redis read is awaited (Feast's
    async path, with the same fail-fast limits), so one worker serves many requests without a
    thread per request. The SQLite online store has no async reader in Feast: its read, a local
    file and well under a millisecond, runs inline."""
    req = _Request.of(flights, settings, store, now)
    if not req.n:
        return _assemble(req, {}, {})
    if req.store.config.online_store.type != "redis":
        return _assemble(req, *_lookup(req))
    await compat.fail_fast_async(req.store)
    try:
        response = await req.store.get_online_features_async(
            features=req.spec.feature_refs, entity_rows=_entities(req)
        )
    except _unavailable_errors() as err:
        raise OnlineStoreUnavailable(
            f"online store ({req.settings.online_store}) unreadable: {err}"
        ) from err
    return _assemble(req, *_read(response, req))


@dataclass
class _Request:
    """The flights of one lookup, with the store, the feature service and the instant."""

    settings: Settings
    store: FeatureStore
    spec: ServiceSpec
    cols: dict[str, Any]
    n: int
    now_us: int

    @classmethod
    def of(cls, flights, settings, store, now) -> _Request:
        import pandas as pd

        settings = settings or get_settings()
        store = store or featurestore.feature_store(settings)
        cols, sched = _flights_columns(flights, settings)
        now = as_of(settings, store) if now is None else pd.Timestamp(now)
        now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
        cols["sched_dep_ts"] = _utc_index(sched)
        # Timestamp.value is nanoseconds whatever the unit
        return cls(settings, store, service_spec(store), cols, len(sched), now.value // 1000)


def _assemble(req: _Request, values: dict[str, list], micros_of: dict[str, np.ndarray]):
    """The flights with every feature, each view's TTL rule applied as of ``req.now_us``."""
    import pandas as pd

    n, now_us, spec = req.n, req.now_us, req.spec
    added: dict[str, Any] = {"event_timestamp": _utc_index(np.full(n, now_us, dtype="int64"))}
    ages = np.full(n, np.nan)
    dtypes = spec.dtypes
    for view in spec.views:
        micros = micros_of.get(view.name, np.zeros(n, dtype="int64"))
        # Feast's rule, as the offline ASOF join applies it: only a row inside [now - ttl, now]
        fresh = (micros > 0) & (micros <= now_us)
        if view.ttl:
            fresh &= micros >= now_us - view.ttl // _MICROSECOND
        for f in view.features:
            added[f] = _typed(values.get(f, [None] * n), fresh, dtypes[f])
        added[f"{TS_PREFIX}{view.name}"] = _utc_index(micros, fresh)
        age = np.round((now_us - micros) / 1e6, 3)
        ages = np.where(fresh, np.fmax(ages, age), ages)
    # on-demand features: the transformation the offline join applies, on the same input
    if spec.on_demand:
        request = pd.DataFrame({"sched_dep_ts": req.cols["sched_dep_ts"]})
        for odfv, proj in spec.on_demand:
            transformed = odfv.feature_transformation.transform(request)
            for f in proj.features:
                added[f.name] = transformed[f.name].to_numpy()
    added[AGE_COLUMN] = ages
    return pd.DataFrame({**{c: v for c, v in req.cols.items() if c not in added}, **added})


def _typed(raw: list, fresh: np.ndarray, dtype: str):
    """One feature's values as the training set holds them (nullable integers and booleans,
    float64 with NaN, objects with None); null where its row does not count."""
    import pandas as pd

    present = np.fromiter((v is not None for v in raw), dtype=bool, count=len(raw)) & fresh
    if dtype in ("Int32", "Int64"):
        data = np.fromiter(
            (v if v is not None else 0 for v in raw), dtype=dtype.lower(), count=len(raw)
        )
        return pd.arrays.IntegerArray(data, ~present)
    if dtype == "boolean":
        data = np.fromiter((bool(v) for v in raw), dtype=bool, count=len(raw))
        return pd.arrays.BooleanArray(data, ~present)
    if dtype == "float64":
        data = np.fromiter(
            (v if v is not None else np.nan for v in raw), dtype="float64", count=len(raw)
        )
        data[~present] = np.nan
        return data
    out = _object_array(list(raw))
    out[~present] = None
    return out


def _entities(req: _Request) -> dict[str, list]:
    import pandas as pd

    return {k: [None if pd.isna(v) else str(v) for v in req.cols[k]] for k in req.spec.entity_keys}


def _lookup(req: _Request):
    """One batched online read: feature values by name (None where missing), and each view's
    row timestamps in microseconds (0 where the entity has no row)."""
    try:
        response = req.store.get_online_features(
            features=req.spec.feature_refs, entity_rows=_entities(req)
        )
    except _unavailable_errors() as err:
        raise OnlineStoreUnavailable(
            f"online store ({req.settings.online_store}) unreadable: {err}"
        ) from err
    return _read(response, req)


def _read(response, req: _Request):
    """Feature values by name and each view's row timestamps in microseconds (0 where the
    entity has no row) of one online response."""
    _, values, micros_of = compat.read_online_response(response, req.spec.stamped_features)
    micros = {}
    for view in req.spec.views:
        # every feature of a view comes from the same row: the first one's timestamps are the
        # view's, read from the response itself to the microsecond
        stamps = micros_of[view.features[0]]
        micros[view.name] = np.fromiter(stamps, dtype="int64", count=req.n)
    return values, micros
