"""Operations endpoints: ``/readyz`` (may a load balancer send this node traffic?) and
``/metrics`` (Prometheus). ``/healthz`` (liveness) is the app factory's."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request
from quart_schema import hide

from sync_server.api.problems import problem_response
from sync_server.shell.monitoring import CONTENT_TYPE, ServerMetrics, may_read
from sync_server.shell.readiness import Readiness
from sync_server.shell.settings import Settings


def ops_blueprint(readiness: Readiness, metrics: ServerMetrics, settings: Settings) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/readyz")
    @hide
    async def readyz():
        """200 when every probe answers; 503 problem details naming what failed."""
        state = readiness.state()
        if state is not None:
            metrics.ready = 0
            metrics.readyz_failed(state.split(":")[0])
            response = problem_response(503, f"not ready: {state}", checks={})
            response.headers["Retry-After"] = "5"
            return response
        results = await readiness.check()
        checks = {r.name: r.detail for r in results}
        failed = [r for r in results if not r.ok]
        metrics.ready = 0 if failed else 1
        if failed:
            for r in failed:
                metrics.readyz_failed(r.name)
            detail = "; ".join(f"{r.name}: {r.detail}" for r in failed)
            response = problem_response(503, f"not ready: {detail}", checks=checks)
            response.headers["Retry-After"] = "5"
            return response
        return jsonify(status="ready", checks=checks)

    @bp.get("/metrics")
    @hide
    async def prometheus_metrics():
        if not may_read(request.remote_addr, dict(request.headers), settings.metrics_token):
            return problem_response(
                403,
                "metrics are served to loopback clients that are not proxied, or with"
                " Authorization: Bearer <TANDEM_METRICS_TOKEN>",
            )
        await metrics.refresh()
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    return bp
