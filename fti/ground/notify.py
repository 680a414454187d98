"""Alerts: a halted or warned day is told to the log always, and to a webhook when one is set.

``FTI_ALERT_WEBHOOK_URL`` (a secret: a Slack or Teams incoming webhook carries its token in the
URL) receives one JSON ``POST`` per alert: ``{"event": "halted" | "warned", "summary": ...,
"details": {...}}``. The URL is never logged, rendered or returned; a webhook that does not
answer is retried three times and then logged, and never fails the task that raised the alert
(the alert is about the data, not about the webhook).
"""

from __future__ import annotations

import logging
from typing import Any

from fti.ground.settings import Settings

log = logging.getLogger(__name__)


def notify(event: str, summary: str, details: dict[str, Any], settings: Settings) -> bool:
    """Log the alert and post it to the configured webhook; whether the webhook took it."""
    log.warning("fti alert (%s): %s", event, summary)
    secret = settings.alert_webhook_url
    if secret is None or not secret.get_secret_value():
        return False
    import httpx
    import tenacity

    payload = {"event": event, "summary": summary, "details": details}

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.2, max=2),
        retry=tenacity.retry_if_exception_type(httpx.HTTPError),
        reraise=True,
    )
    def post() -> None:
        response = httpx.post(secret.get_secret_value(), json=payload, timeout=5.0)
        response.raise_for_status()

    try:
        post()
        return True
    except httpx.HTTPError as err:
        # the error's text may hold the URL (and so the secret): only its kind is logged
        log.error("fti alert (%s): the webhook did not take it (%s)", event, type(err).__name__)
        return False
