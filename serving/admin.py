"""The service's admin API: which model version it serves, switched inside the running process.

``GET /admin/model`` answers the live version; ``POST /admin/model`` with
``{"version": "7", "model_dir": "/path/to/model"}`` loads that model beside the live one,
checks it (a prediction of real flights of the latest published day: one finite probability in
[0, 1] per flight, within ``FTI_SERVING_SWITCH_MAX_MS``) and swaps it in with one assignment:
a request already running finishes on the model it started with (it holds its own reference),
the next one gets the new model, and the old one is released when its last request ends.
A model that fails its check is never swapped in: the answer is a 422 naming why, and the live
model stays. ``POST /admin/challenger`` with the same body checks a model the same way and
makes it the challenger, scored beside the live model off the response path (its answers go to
the inference log, never to the caller); ``{"version": null}`` stops it. ``GET /admin/model``
names both. Every admin call needs ``Authorization: Bearer <token>`` (401 otherwise, nothing
changed): ``FTI_SERVING_ADMIN_TOKEN``, else a token generated once into
``SERVING_DIR/admin-token`` (mode 0600) that the service and its clients on the machine share.

Written as an ASGI middleware, not a BentoML API, so that an unauthenticated call never
reaches BentoML's request parsing and its status codes are exactly these.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

from fti.ground.settings import Settings

log = logging.getLogger(__name__)

PATH = "/admin/model"
#: ``POST {"version": ..., "model_dir": ...}`` (or ``{"version": null}``): the shadow challenger
CHALLENGER_PATH = "/admin/challenger"
TOKEN_FILE = "admin-token"
#: how many real flights the check of a new model scores
CHECK_FLIGHTS = 20


def admin_token(settings: Settings) -> str:
    """The admin API's bearer token: the setting, else the machine's generated one."""
    if settings.serving_admin_token is not None:
        return settings.serving_admin_token.get_secret_value()
    path = settings.serving_dir / TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # created with its final mode; a concurrent creator's token wins (O_EXCL)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class SwitchRefused(RuntimeError):
    """The candidate model failed its check; the live model stays."""


def live_models(base_url: str, settings: Settings) -> dict[str, Any] | None:
    """``GET /admin/model`` of the service at ``base_url`` (live version and challenger), None
    when it does not answer."""
    import httpx

    try:
        r = httpx.get(
            f"{base_url}{PATH}",
            headers={"Authorization": f"Bearer {admin_token(settings)}"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()
    except (httpx.TransportError, httpx.HTTPStatusError, ValueError):
        return None


def check_flights(settings: Settings, n: int = CHECK_FLIGHTS):
    """Up to ``n`` real departed flights of the latest published day, as /predict requests
    (a new model's check, and the rollout's smoke prediction); ``FileNotFoundError`` when no
    day is published."""
    import pandas as pd

    from fti.ground import files
    from fti.ground.contract import contract

    view = contract(settings).label_view
    days = files.partition_days(settings.offline_dir / view)
    if not days:
        raise FileNotFoundError("no published flights to check a model with")
    df = pd.read_parquet(files.day_partition(settings.offline_dir, view, days[-1]))
    df = df[df["tailnum"].notna()].sort_values("flight_id").head(n)
    local = df["sched_dep_ts"].dt.tz_convert(settings.timezone).dt.tz_localize(None)
    return [
        {
            "carrier": r.carrier,
            "flight": int(r.flight),
            "origin": r.origin,
            "dest": r.dest,
            "tailnum": r.tailnum,
            "sched_dep_ts": t.isoformat(),
        }
        for r, t in zip(df.itertuples(), local, strict=True)
    ]


def check(candidate, frame, max_ms: float) -> dict[str, Any]:
    """Score ``frame`` (features of real flights) with ``candidate``; the check's figures, or
    :class:`SwitchRefused` naming what is wrong."""
    candidate.predict_proba(frame)  # the first call pays one-off set-up: not the model's speed
    t0 = time.perf_counter()
    try:
        p = candidate.predict_proba(frame)
    except Exception as err:
        raise SwitchRefused(f"model {candidate.version} could not score: {err}") from err
    ms = (time.perf_counter() - t0) * 1000
    values = [float(v) for v in p]
    if len(values) != len(frame):
        raise SwitchRefused(
            f"model {candidate.version} gave {len(values)} probabilities for {len(frame)} flights"
        )
    bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise SwitchRefused(
            f"model {candidate.version} gave {len(bad)} of {len(values)} probabilities that are "
            f"not finite numbers in [0, 1], e.g. {bad[:3]}"
        )
    if ms > max_ms:
        raise SwitchRefused(
            f"model {candidate.version} took {ms:.0f} ms for {len(values)} flights "
            f"(limit {max_ms:.0f} ms)"
        )
    return {"flights": len(values), "model_ms": round(ms, 2)}


class AdminGate:
    """ASGI middleware answering ``/admin/model`` for the service (``holder()`` returns the
    running service object: its ``model`` attribute is what requests are answered with)."""

    def __init__(self, app, holder, settings_fn):
        self.app, self.holder, self.settings_fn = app, holder, settings_fn

    async def __call__(self, scope, receive, send):
        """The ASGI entry: answer admin calls, pass everything else through."""
        if scope["type"] != "http" or scope["path"] not in (PATH, CHALLENGER_PATH):
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        request = Request(scope, receive)
        settings = self.settings_fn()
        given = request.headers.get("authorization", "")
        expected = f"Bearer {admin_token(settings)}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            response = JSONResponse({"error": "admin API: missing or wrong bearer token"}, 401)
            return await response(scope, receive, send)
        service = self.holder()
        if service is None:
            response = JSONResponse({"error": "the service has not started yet"}, 503)
        elif request.method == "GET":
            response = JSONResponse(service.live_model())
        elif request.method == "POST" and scope["path"] == CHALLENGER_PATH:
            response = await self._shadow(request, service)
        elif request.method == "POST":
            response = await self._switch(request, service, settings)
        else:
            response = JSONResponse({"error": f"{request.method} not allowed"}, 405)
        await response(scope, receive, send)

    async def _switch(self, request, service, settings: Settings):
        import anyio
        from starlette.responses import JSONResponse

        try:
            body = json.loads(await request.body())
            version, model_dir = str(body["version"]), Path(body["model_dir"])
        except (ValueError, KeyError, TypeError) as err:
            return JSONResponse(
                {"error": f'invalid body ({err}): expected {{"version": ..., "model_dir": ...}}'},
                400,
            )
        try:
            # loading and checking take a second of CPU: off the event loop, so the live model
            # keeps answering meanwhile; the swap itself is one assignment on the loop
            candidate, figures = await anyio.to_thread.run_sync(service.prepare, model_dir, version)
        except SwitchRefused as err:
            log.error("switch to model %s refused: %s", version, err)
            return JSONResponse({"error": str(err), "live": service.live_model()}, 422)
        previous = service.swap(candidate)
        log.info("now serving model %s (was %s): %s", version, previous, figures)
        return JSONResponse({"live": version, "previous": previous, "check": figures})

    async def _shadow(self, request, service):
        """Name the challenger (checked like a new champion) or, with a null version, stop
        shadowing."""
        import anyio
        from starlette.responses import JSONResponse

        try:
            body = json.loads(await request.body())
            version = body["version"]
            model_dir = None if version is None else Path(body["model_dir"])
        except (ValueError, KeyError, TypeError) as err:
            return JSONResponse(
                {
                    "error": f"invalid body ({err}): expected "
                    '{"version": ..., "model_dir": ...} or {"version": null}'
                },
                400,
            )
        figures = None
        try:
            candidate = None
            if version is not None:
                candidate, figures = await anyio.to_thread.run_sync(
                    service.prepare, model_dir, str(version)
                )
            previous = service.shadow(candidate)
        except SwitchRefused as err:
            log.error("challenger %s refused: %s", version, err)
            return JSONResponse({"error": str(err), **service.live_model()}, 422)
        log.info("challenger now %s (was %s)", version, previous)
        return JSONResponse({**service.live_model(), "previous": previous, "check": figures})


def request_switch(
    base_url: str, model_dir: Path | None, version: str | None, settings: Settings, path=PATH
) -> str | None:
    """Ask the service at ``base_url`` to serve the model in ``model_dir`` (the caller's side
    of ``POST /admin/model``; ``path=CHALLENGER_PATH``: to shadow it, or with ``version``
    None to stop shadowing); None once it does, else why not (the service's own reason when
    it refused the model: then nothing was swapped)."""
    import httpx

    body = {"version": None} if version is None else {"version": str(version)}
    if model_dir is not None:
        body["model_dir"] = str(model_dir)
    try:
        r = httpx.post(
            f"{base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {admin_token(settings)}"},
            timeout=120,
        )
    except httpx.TransportError as err:
        return f"the service's admin API did not answer: {err}"
    if r.status_code == 200:
        return None
    try:
        reason = r.json().get("error", "")
    except ValueError:
        reason = r.text[:300]
    return f"the live service refused it ({r.status_code}): {reason}"
