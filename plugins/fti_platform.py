"""The "FTI platform" page in the Airflow web UI: the platform's state one click away.

A FastAPI app mounted in Airflow's API server at ``/fti`` (routes: ``fti.apps.status.app``), and a
navigation entry that shows it inside the UI. Every route requires an authenticated Airflow
user. The scheduler, DAG processor and workers load this file too: nothing heavy is imported
here, and the app is built on its first request.
"""

import threading

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/fti"


class PlatformApp:
    """ASGI app that builds :func:`fti.apps.status.app.create_app` on first use."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        """Build the app on the first request, then pass every request to it."""
        if self._app is None:
            from fti.apps.status.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def _warm_up() -> None:
    from fti.apps.status import sections

    sections.warm_up()


class WarmUpOnStart:
    """A pass-through root middleware, there only for its start: the API server builds its
    middleware stack once, at start-up, so the page's libraries (Feast alone takes seconds to
    import) load in the background then rather than during the first page's deadline. Only
    the API server builds it; the other components never pay for those imports."""

    def __init__(self, app) -> None:
        self.app = app
        threading.Thread(target=_warm_up, name="fti-status-warm-up", daemon=True).start()

    async def __call__(self, scope, receive, send) -> None:
        """Pass every request through unchanged."""
        await self.app(scope, receive, send)


class FtiPlatformPlugin(AirflowPlugin):
    """The platform page: its app at ``/fti`` and its navigation entry."""

    name = "fti_platform"
    fastapi_apps = [{"app": PlatformApp(), "url_prefix": URL_PREFIX, "name": "FTI platform"}]
    fastapi_root_middlewares = [{"middleware": WarmUpOnStart, "name": "fti_platform_warm_up"}]
    external_views = [
        {
            "name": "FTI platform",
            # relative, with the trailing slash: the UI resolves it against [api] base_url,
            # and the page's own relative links resolve against it
            "href": "fti/",
            "destination": "nav",
            "nav_top_level": True,  # its own button in the navigation, not under "Plugins"
            "url_route": "fti-platform",
        }
    ]
