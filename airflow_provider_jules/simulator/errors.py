"""The simulator's API errors: :class:`ApiError` and the google.rpc.Status envelope it is answered in.

Every module that refuses a request raises one of these; the HTTP layer turns it into the JSON reply.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered in the google.rpc.Status envelope."""

    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def bad_request(message: str, field_name: str = "") -> ApiError:
    violation = {"description": message}
    if field_name:
        violation = {"field": field_name, "description": message}
    detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
    return ApiError(400, "INVALID_ARGUMENT", message, [detail])


def unknown_field(name: str) -> ApiError:
    """The error for a JSON field the API does not know (``name`` as the caller spelled it)."""
    return bad_request(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.', name)


def not_found(message: str = "Requested entity was not found.") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def quota_exceeded() -> ApiError:
    detail = {
        "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
        "violations": [
            {"type": "QUOTA", "subject": "sessions", "description": "Daily session quota exceeded."}
        ],
    }
    return ApiError(400, "FAILED_PRECONDITION", "Precondition check failed.", [detail])
