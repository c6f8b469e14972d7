"""Error replies in the shapes Microsoft's services use, so clients parse them as they would."""

import datetime
import uuid
from typing import Any

from starlette.responses import JSONResponse


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A Graph error: `{"error": {"code", "message", "innerError": {...}}}`."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now,
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def entra_error(
    status: int, error: str, aadsts: int, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An Entra v2.0 error: `error`, `error_description` starting with the AADSTS code, and the
    codes, ids and timestamp msal reads."""
    now = datetime.datetime.now(datetime.UTC)
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{aadsts}: {description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {now:%Y-%m-%d %H:%M:%SZ}"
        ),
        "error_codes": [aadsts],
        "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return JSONResponse(body, status_code=status, headers=headers)
