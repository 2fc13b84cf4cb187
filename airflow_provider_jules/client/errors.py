"""Typed errors of the Jules API client.

The google.rpc error envelope (``{"error": {"code", "message", "status", "details"}}``) becomes a
:class:`JulesAPIError` subclass chosen by the rpc ``status`` first and the HTTP status second. A body that is
not the envelope (HTML from a proxy, an empty body, garbage) still gives a clear error, never a crash.

Nothing here ever includes request headers, so the API key cannot leak through an exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "JulesAPIError",
    "JulesAuthError",
    "JulesConfigError",
    "JulesError",
    "JulesInvalidArgumentError",
    "JulesInvalidResponseError",
    "JulesNotFoundError",
    "JulesQuotaExhaustedError",
    "JulesRateLimitError",
    "JulesServerError",
    "JulesTransportError",
    "error_from_response",
]


class JulesError(Exception):
    """Base class of every error raised by this package's Jules client."""


class JulesConfigError(JulesError, ValueError):
    """Bad input, caught before any request is sent. The message names the field and the fix."""


class JulesTransportError(JulesError):
    """The request failed below HTTP: connection refused, timeout, reset.

    ``reached_server`` is False only when the request provably never reached the server (the
    connection could not be opened), which is the only transport failure after which a
    non-idempotent call such as ``POST /sessions`` may be retried.
    """

    def __init__(self, message: str, *, reached_server: bool, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.reached_server = reached_server
        self.method = method
        self.path = path


class JulesAPIError(JulesError):
    """The Jules API answered with an error status."""

    #: Whether retrying the same call later can succeed (used by operators to fail fast).
    retryable_by_nature: bool = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        code: int | None = None,
        status: str = "",
        details: list[Any] | None = None,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.http_status = http_status
        self.code = code if code is not None else http_status
        self.status = status
        self.message = message
        self.details = details or []
        self.retry_after = retry_after
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        label = f"{self.code} {status}".strip()
        super().__init__(f"Jules API error {label}{where}: {message}{self._hint()}")

    def _hint(self) -> str:
        return ""


class JulesAuthError(JulesAPIError):
    """401 UNAUTHENTICATED / 403 PERMISSION_DENIED: the API key was refused."""

    def _hint(self) -> str:
        return (
            ". Check the API key in the password field of the Jules connection "
            "(create one at https://jules.google.com/settings#api)."
        )


class JulesNotFoundError(JulesAPIError):
    """404 NOT_FOUND: unknown session, activity or source."""


class JulesInvalidArgumentError(JulesAPIError):
    """400 INVALID_ARGUMENT: the request was malformed; retrying it unchanged cannot succeed."""


class JulesInvalidResponseError(JulesAPIError):
    """The API answered with a body this client cannot use: not JSON, too deeply nested, not an object,
    a list field that is not a list, a session without an id, or a paging loop (repeated or oversize page
    token, too many pages). ``status`` is ``INVALID_RESPONSE``; ``http_status`` is the answer's status."""


class JulesQuotaExhaustedError(JulesAPIError):
    """400 FAILED_PRECONDITION: the live API's answer to an exhausted daily session quota."""

    def _hint(self) -> str:
        return (
            ". This usually means the daily Jules session quota is used up "
            "(15, 100 or 300 sessions a day depending on the plan); it resets about 24 h later."
        )


class JulesRateLimitError(JulesAPIError):
    """429 RESOURCE_EXHAUSTED: too many requests; ``retry_after`` holds the server's hint."""

    retryable_by_nature = True


class JulesServerError(JulesAPIError):
    """5xx: the service failed or is unavailable."""

    retryable_by_nature = True


_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


#: Bytes of an error body looked at for the snippet (the body itself is read up to ERROR_BODY_LIMIT).
SNIPPET_BYTES = 2048


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:SNIPPET_BYTES].decode("utf-8", errors="replace")
    text = _SPACE.sub(" ", _TAGS.sub(" ", text)).strip()
    return text[:limit] + ("..." if len(text) > limit else "")


def error_from_response(
    http_status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
    reason: str = "",
    method: str = "",
    path: str = "",
    secret: str = "",
) -> JulesAPIError:
    """Build the typed error for an error response; tolerant of any body.

    ``secret`` (the API key) is masked wherever the server echoed it in the message or details.
    """
    code: int | None = None
    status = ""
    message = ""
    details: list[Any] = []
    try:
        parsed = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        parsed = None
    envelope = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(envelope, dict):
        raw_code = envelope.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        status = str(envelope.get("status") or "")
        message = str(envelope.get("message") or "")
        raw_details = envelope.get("details")
        details = raw_details if isinstance(raw_details, list) else []
    if not message:
        snippet = _snippet(body)
        message = f"HTTP {http_status} {reason}".strip() + (f": {snippet}" if snippet else " (empty body)")
    if secret:
        message = mask(message, secret)
        reason = mask(reason, secret)
        if secret in repr(details):
            details = [mask(repr(d), secret) for d in details]
    cls = _error_class(http_status, status)
    return cls(
        message,
        http_status=http_status,
        code=code,
        status=status,
        details=details,
        retry_after=retry_after,
        method=method,
        path=path,
    )


def mask(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def _error_class(http_status: int, status: str) -> type[JulesAPIError]:
    by_status: dict[str, type[JulesAPIError]] = {
        "UNAUTHENTICATED": JulesAuthError,
        "PERMISSION_DENIED": JulesAuthError,
        "NOT_FOUND": JulesNotFoundError,
        "INVALID_ARGUMENT": JulesInvalidArgumentError,
        "FAILED_PRECONDITION": JulesQuotaExhaustedError,
        "RESOURCE_EXHAUSTED": JulesRateLimitError,
        "UNAVAILABLE": JulesServerError,
        "INTERNAL": JulesServerError,
        "DEADLINE_EXCEEDED": JulesServerError,
    }
    if http_status == 429:
        return JulesRateLimitError
    if http_status >= 500:
        return JulesServerError
    if status in by_status:
        return by_status[status]
    by_http: dict[int, type[JulesAPIError]] = {
        400: JulesInvalidArgumentError,
        401: JulesAuthError,
        403: JulesAuthError,
        404: JulesNotFoundError,
    }
    return by_http.get(http_status, JulesAPIError)
