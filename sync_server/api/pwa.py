"""Serves the browser app (client_pwa/dist) at /, with the caching a PWA needs.

    /assets/*           content-hashed: cached for a year, immutable
    /sw.js, /index.html, /manifest.webmanifest, /registerSW.js, ...: always revalidated
                        (a new deploy must reach installed apps)
    any other path      index.html (the app routes with #hashes, but deep links still work)

Paths under /api/, /sync/ and the API's own documents are never answered with the app.
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_file
from quart_schema import hide

from sync_server.api.problems import problem_response

NOT_THE_APP = ("api/", "sync/", "openapi.json", "docs", "healthz")


def pwa_blueprint(dist: str | Path) -> Blueprint:
    root = Path(dist).resolve()
    bp = Blueprint("pwa", __name__)

    async def serve(path: str) -> Response:
        if not (root / "index.html").is_file():
            return problem_response(503, f"the browser app is not built ({root}); run `make setup`")
        target = (root / path).resolve() if path else root / "index.html"
        if root not in target.parents and target != root / "index.html":
            return problem_response(404, f"no file {path!r}")
        if not target.is_file():
            if path.startswith(NOT_THE_APP) or "." in Path(path).name:
                return problem_response(404, f"no file {path!r}")
            target = root / "index.html"
        response = await send_file(target, conditional=True)
        if target.parent.name == "assets":
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        if target.name == "sw.js":
            response.headers["Service-Worker-Allowed"] = "/"
        return response

    @bp.get("/")
    @hide
    async def index() -> Response:
        return await serve("")

    @bp.get("/<path:path>")
    @hide
    async def files(path: str) -> Response:
        return await serve(path)

    return bp
