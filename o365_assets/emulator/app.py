"""The emulator's ASGI application: Entra at the root, Graph under `/v1.0`, admin under
`/_emulator`."""

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from o365_assets.emulator import admin, entra, graph
from o365_assets.emulator.errors import graph_error
from o365_assets.emulator.state import EmulatorState

log = logging.getLogger(__name__)


def build_app(state: EmulatorState) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status == 405:
            return graph_error(405, "Request_BadRequest", "The HTTP method is not allowed here.")
        return graph_error(404, "UnknownError", f"No resource at {request.url.path}.")

    async def server_error(request: Request, exc: Exception) -> Response:
        # Never a stack trace on the wire: log it here, answer in Graph's shape.
        log.exception("emulator error on %s %s", request.method, request.url.path)
        return graph_error(500, "generalException", "The emulator failed on this request.")

    routes = [
        Route("/_health", health),
        Mount("/v1.0", app=graph.build_app(state)),
        Mount("/_emulator", app=admin.build_app(state)),
        *entra.routes(state),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_found, 500: server_error},
    )
