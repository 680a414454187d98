"""Asking the service whether it serves: one HTTP client and one wait helper for every runtime.

``wait_until`` (tenacity) is the one readiness loop: a check returns ``None`` when what it
waits for holds, or the reason it does not yet; raising :class:`GiveUp` ends the wait at once
(the service exited, or it is up and says what is wrong).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import httpx

from fti.ground.settings import Settings


class RolloutFailed(RuntimeError):
    """The new version did not become ready, or its smoke prediction failed (rolled back)."""


class GiveUp(Exception):
    """Raised by a check to stop waiting at once; its message is the reason."""


@functools.cache
def client() -> httpx.Client:
    """The process's HTTP client for the service (connections kept alive between polls)."""
    return httpx.Client(timeout=5.0)


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """(status, body) of a GET; raises ``httpx.TransportError`` when nothing answers."""
    r = client().get(url, timeout=timeout)
    return r.status_code, r.content


def wait_until(
    check: Callable[[], str | None], *, timeout: float, interval: float = 1.0
) -> str | None:
    """Call ``check`` every ``interval`` seconds until it returns None; None then, else the
    last reason once ``timeout`` seconds have passed (or the reason a :class:`GiveUp` gave)."""
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(lambda reason: reason is not None),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    try:
        return retrying(check)
    except GiveUp as stop:
        return str(stop)


def smoke_flight(settings: Settings) -> dict:
    """A real flight of the latest published day, as a /predict request."""
    from serving.admin import check_flights

    return check_flights(settings, 1)[0]


def predict_one(settings: Settings, flight: dict, timeout: float = 30) -> dict:
    """POST one flight to ``service_url``/predict; its one prediction. Raises
    ``httpx.HTTPStatusError`` on a 4xx/5xx and ``httpx.TransportError`` when nothing answers."""
    r = client().post(f"{settings.service_url}/predict", json=flight, timeout=timeout)
    r.raise_for_status()
    return r.json()[0]


def smoke(settings: Settings, flight: dict | None = None) -> str | None:
    """One prediction of a real flight; None when it is a valid answer, else what was wrong."""
    flight = flight or smoke_flight(settings)
    try:
        got = predict_one(settings, flight)
    except httpx.HTTPStatusError as e:
        return f"/predict answered {e.response.status_code}: {e.response.text[:300]}"
    except (httpx.TransportError, ValueError) as e:
        return f"/predict did not answer a prediction: {e}"
    try:
        p = float(got["delay_probability"])
    except (KeyError, IndexError, TypeError, ValueError):
        return f"/predict answered something else than a prediction: {str(got)[:300]}"
    return None if 0.0 <= p <= 1.0 else f"/predict gave probability {p}"
