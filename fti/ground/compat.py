"""Every place the platform relies on a library's internals, each guarded by the exact version
it was written for.

A guarded function checks the installed version (:data:`WRITTEN_FOR`) and, on any other
version, does not touch the internals: it takes the library's public path (slower, never
wrong) and logs once that the guard is off. ``tests/test_compat.py`` fails, naming the
library, the versions and what to re-check, as soon as the lock moves a guarded library, so an
upgrade re-validates each patch instead of silently dropping or misapplying it.

- BentoML 1.4.40 ``TimeoutMiddleware`` never cancels its per-request timer
  (:func:`cancel_bentoml_request_timers`; no upstream issue found, searched 2026-12-01).
- BentoML 1.4.40 derives a root model's media type from a freshly built JSON schema on every
  response (:func:`declare_json_output`; no upstream issue found).
- Feast 0.67.0: its online response read straight from the protobuf, without
  ``OnlineResponse.to_dict``'s general converter per value (:func:`read_online_response`).
- Feast 0.67.0: its Redis clients, built lazily inside the online store, tuned to fail fast
  (:func:`redis_client`, :func:`fail_fast`, :func:`fail_fast_async`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

#: the version of each library the internals here were read from
WRITTEN_FOR = {"bentoml": "1.4.40", "feast": "0.67.0"}


@functools.cache
def guarded(library: str) -> bool:
    """Whether the installed ``library`` is the version this module was written for (logged
    once when it is not: the public path is used then)."""
    installed = version(library)
    ok = installed == WRITTEN_FOR[library]
    if not ok:
        log.warning(
            "%s %s is installed but fti.ground.compat was written for %s: its patches of %s "
            "are off (public path; re-check them, see tests/test_compat.py)",
            library,
            installed,
            WRITTEN_FOR[library],
            library,
        )
    return ok


# ------------------------------------------------------------------ BentoML


def cancel_bentoml_request_timers() -> bool:
    """Cancel BentoML's per-request timeout timer when the request ends; True when applied.

    BentoML 1.4.40's ``TimeoutMiddleware`` schedules ``call_later(traffic.timeout, ...)`` per
    request and never cancels it: each request's future and closures live on for the whole
    timeout, the collector's full passes grow with them, and under load the worst request takes
    0.4-0.8 s even on a no-op endpoint (../shared/ENVIRONMENT.md; docs/benchmarks.md). This is
    the same method with the handle cancelled in ``finally``.
    """
    if not guarded("bentoml"):
        return False
    from bentoml._internal.server.http import traffic
    from starlette.responses import JSONResponse

    middleware = traffic.TimeoutMiddleware
    if getattr(middleware, "_fti_cancels_timers", False):
        return True

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        handle = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            try:
                await waiter
            except TimeoutError:
                if fut.cancel():
                    resp = JSONResponse(
                        {"error": f"Not able to process the request in {self.timeout} seconds"},
                        status_code=504,
                    )
                    await resp(scope, receive, send)
            else:
                await fut
        finally:
            handle.cancel()

    middleware.__call__ = __call__
    middleware._fti_cancels_timers = True
    return True


def declare_json_output(service_class, api: str) -> bool:
    """Declare once that ``api`` of a BentoML service answers JSON; True when applied.

    BentoML 1.4.40 works out a root model's media type from its JSON schema on every response
    (a pydantic TypeAdapter built per request, ~17% of a one-flight prediction's CPU).
    """
    if not guarded("bentoml"):
        return False
    service_class.apis[api].output_spec.media_type = "application/json"
    return True


# ------------------------------------------------------------------ Feast

#: Feast value fields of the scalar types the views use, read without Feast's general converter
_SCALAR_VALUES = frozenset(
    {"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val"}
)


def read_online_response(
    response, stamps_of: frozenset[str] | set[str]
) -> tuple[list[str], dict[str, list], dict[str, list[int]]]:
    """Feature names, values by name (None where missing) and, for the features in
    ``stamps_of``, their row timestamps in microseconds (0 where the entity has no row) of a
    Feast ``OnlineResponse``.

    Feast 0.67.0: read from its protobuf directly, what ``to_dict`` does without its general
    converter for the scalar types (a function call per value cost ~1.4 ms per 64 rows). On
    any other version: the public ``to_dict(include_event_timestamps=True)``.
    """
    if not guarded("feast"):
        return _read_public(response, stamps_of)
    from feast.type_map import feast_value_type_to_python_type

    names = list(response.proto.metadata.feature_names.val)
    values: dict[str, list] = {}
    micros: dict[str, list[int]] = {}
    for name, vector in zip(names, response.proto.results, strict=True):
        out = []
        for v in vector.values:
            kind = v.WhichOneof("val")
            if kind is None:
                out.append(None)
            elif kind in _SCALAR_VALUES:
                out.append(getattr(v, kind))
            else:
                out.append(feast_value_type_to_python_type(v))
        values[name] = out
        if name in stamps_of:
            micros[name] = [
                t.seconds * 1_000_000 + t.nanos // 1000 for t in vector.event_timestamps
            ]
    return names, values, micros


def _read_public(response, stamps_of) -> tuple[list[str], dict[str, list], dict[str, list[int]]]:
    # to_dict gives whole seconds: the views' rows are stamped on whole hours, so nothing is lost
    names = list(response.proto.metadata.feature_names.val)
    data = response.to_dict(include_event_timestamps=True)
    micros = {n: [s * 1_000_000 for s in data[f"{n}__ts"]] for n in names if n in stamps_of}
    return names, {n: data[n] for n in names}, micros


def _online_store(store: FeatureStore):
    return store._get_provider().online_store


def redis_client(store: FeatureStore):
    """The redis-py client Feast's Redis online store reads with (built on first use)."""
    return _online_store(store)._get_client(store.config.online_store)


def fail_fast(store: FeatureStore, connect_timeout_s: float = 0.25, timeout_s: float = 0.4) -> bool:
    """Make the store's Redis reads fail within a second when Redis is down or hangs; True
    when applied (a no-op for other online stores, and on another Feast version).

    redis-py retries a failed command three times with up to 2, 4 and 8 s of backoff by
    default; a service must answer 503 at once instead. One immediate retry stays, so a
    connection left stale by a Redis restart is replaced without failing the request (two
    tries of at most ``timeout_s`` each when Redis hangs).
    """
    if store.config.online_store.type != "redis" or not guarded("feast"):
        return False
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Feast builds its client lazily from the connection string; tune it before first use
    client = redis_client(store)
    kwargs = client.connection_pool.connection_kwargs
    kwargs.setdefault("socket_connect_timeout", connect_timeout_s)
    kwargs.setdefault("socket_timeout", timeout_s)
    client.set_retry(Retry(NoBackoff(), 1))
    return True


async def fail_fast_async(
    store: FeatureStore, connect_timeout_s: float = 0.25, timeout_s: float = 0.4
) -> bool:
    """:func:`fail_fast` for Feast's asyncio Redis client (a separate client, made on first use
    inside the running event loop)."""
    if store.config.online_store.type != "redis" or not guarded("feast"):
        return False
    client = await _online_store(store)._get_client_async(store.config.online_store)
    if getattr(client, "_fti_fail_fast", False):
        return True
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kwargs = client.connection_pool.connection_kwargs
    kwargs.setdefault("socket_connect_timeout", connect_timeout_s)
    kwargs.setdefault("socket_timeout", timeout_s)
    client.set_retry(Retry(NoBackoff(), 1))
    client._fti_fail_fast = True
    return True


def ping_redis(store: FeatureStore, settings) -> Any:
    """Ping the Redis online store (raises redis errors): through Feast's own client, tuned by
    :func:`fail_fast`, on the guarded version; through a fresh client with the same limits
    otherwise."""
    if guarded("feast"):
        return redis_client(store).ping()
    from fti.ground.featurestore import redis_client as own_client

    return own_client(settings, socket_connect_timeout=0.25, socket_timeout=0.4).ping()
