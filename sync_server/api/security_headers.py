"""Security headers on every HTTP response, and the API docs page served from this server.

- ``Content-Security-Policy``: the browser app loads scripts, styles, its
  manifest and its service worker from this origin only and talks to this
  origin only (its REST API and, for the same host, ws:/wss: sync); nothing
  may frame it (``frame-ancestors 'none'``). API responses (JSON, problem
  details, CSV) get ``default-src 'none'``: they are never meant to run or
  load anything.
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers
  older than frame-ancestors), ``Referrer-Policy: no-referrer``,
  ``Cross-Origin-Opener-Policy: same-origin``, and
  ``Strict-Transport-Security`` when the request came over https.
- ``/docs`` is Swagger UI from the swagger-ui-py package's copy of
  swagger-ui-dist, served from here (no CDN, so no third party can change
  the script the page runs), started by a script file instead of an inline
  one, so its page keeps a policy without 'unsafe-inline' for scripts.

These few lines are kept here rather than taken from a headers library: the
policy is specific to this app (the sync socket's host, the docs page), and
what each header does is the part worth reading.
"""

from __future__ import annotations

from pathlib import Path

from quart import Quart, Response, request, send_file
from quart_schema import hide

from sync_server.api.problems import problem_response

API_PREFIXES = ("/api/", "/openapi.json", "/healthz")
DOCS_FILES = {"swagger-ui-bundle.js", "swagger-ui.css"}

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tandem API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/start.js"></script>
</body>
</html>
"""

DOCS_START = """SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def swagger_ui_dir() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).resolve().parent / "static"


def app_policy(host: str) -> str:
    """The browser app's policy; ``host`` is the request's (the sync socket is on it)."""
    sockets = f" ws://{host} wss://{host}" if host else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            f"connect-src 'self'{sockets}",
            "worker-src 'self'",
            "manifest-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI's React sets style attributes
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def install(app: Quart) -> None:
    @app.after_request
    async def security_headers(response: Response) -> Response:
        path = request.path
        if path.startswith(API_PREFIXES):
            policy = API_POLICY
        elif path == "/docs" or path.startswith("/docs/"):
            policy = DOCS_POLICY
        else:
            policy = app_policy(request.host)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.scheme in ("https", "wss"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    static = swagger_ui_dir()

    @app.get("/docs")
    @hide
    async def docs() -> Response:
        return Response(DOCS_PAGE, content_type="text/html; charset=utf-8")

    @app.get("/docs/static/<name>")
    @hide
    async def docs_static(name: str) -> Response:
        if name == "start.js":
            return Response(DOCS_START, content_type="text/javascript; charset=utf-8")
        if name not in DOCS_FILES:
            return problem_response(404, f"no file {name!r}")
        response = await send_file(static / name, conditional=True)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response
