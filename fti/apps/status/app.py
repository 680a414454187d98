"""The platform page's web app, mounted by ``plugins/fti_platform.py`` in Airflow's API server.

Routes (relative to where it is mounted, ``/fti`` by default), all of them behind Airflow's own
authentication dependency (``get_user``: the UI's session cookie or an ``Authorization: Bearer``
token; 401 without one, 403 with an invalid one):

- ``GET /``: the page (HTML);
- ``GET /api/status``: the same data as JSON (documented in docs/ui.md);
- ``GET /reports/<path>``: the validation and monitoring reports the page links to.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from fti.apps.status import page, sections
from fti.ground.settings import get_settings


def create_app() -> FastAPI:
    """The page's FastAPI app; every route requires an authenticated Airflow user."""
    from airflow.api_fastapi.core_api.security import get_user

    # A mounted app inherits none of the API server's own dependencies: declared here, on the
    # app, so that no route of it can be added without authentication.
    app = FastAPI(
        title="FTI platform",
        dependencies=[Depends(get_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        status = sections.collect(get_settings())
        return HTMLResponse(page.render(status), headers={"Cache-Control": "no-store"})

    @app.get("/api/status")
    def api_status() -> JSONResponse:
        return JSONResponse(sections.collect(get_settings()), headers={"Cache-Control": "no-store"})

    @app.get("/reports/{path:path}")
    def report(path: str) -> FileResponse:
        root = get_settings().reports_dir.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file() or _hidden(target, root):
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(target)

    return app


def _hidden(target: Path, root: Path) -> bool:
    # a report folder being swapped in (".<day>.<id>.tmp") is not a report yet
    return any(part.startswith(".") for part in target.relative_to(root).parts)
