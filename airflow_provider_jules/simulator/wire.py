"""The API's wire format: JSON request bodies and query parameters in, JSON replies and errors out.

Also the request log's entry for one request (credentials redacted).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_jules.simulator.errors import ApiError, bad_request

JSON_TYPE = "application/json; charset=UTF-8"
_REDACTED_HEADERS = {"x-goog-api-key", "authorization"}


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type=JSON_TYPE, headers=headers)


def error_response(err: ApiError) -> Response:
    return json_response(err.body(), err.code, err.headers)


def empty_reply(zero_length: bool) -> Response:
    """The reply of a call that returns nothing: a zero-length body, or ``{}`` (per ``empty_reply_*``)."""
    if zero_length:
        return Response(b"", status_code=200, media_type=JSON_TYPE)
    return json_response({})


def page_size(request: Request, default: int) -> int:
    """``pageSize``: absent or 0 means ``default``; capped at 100; negative or not a number is a 400."""
    raw = request.query_params.get("pageSize")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"", "page_size") from None
    if value < 0:
        raise bad_request("page_size must not be negative.", "page_size")
    if value == 0:
        return default
    return min(value, 100)


async def json_body(request: Request, allow_empty: bool) -> dict[str, Any]:
    """The request's JSON object (400 INVALID_ARGUMENT for anything else)."""
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("Invalid JSON payload received. Unexpected end of string.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(data, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    return data


async def body_for_log(request: Request) -> Any:
    """The body as the request log keeps it: parsed JSON, else text, else ``None``."""
    if request.method not in ("POST", "PATCH", "PUT"):
        return None
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def log_entry(request: Request, route: str, body: Any, status: int) -> dict[str, Any]:
    """The request log's entry for one request (without the client's address)."""
    return {
        "time": time.time(),
        "method": request.method,
        "path": request.url.path,
        "query": dict(request.query_params),
        "route": route,
        "json": body,
        "headers": {k: v for k, v in request.headers.items() if k not in _REDACTED_HEADERS},
        "status": status,
    }
