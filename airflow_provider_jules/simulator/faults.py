"""Injected faults: the error a firing :class:`FaultRule` answers (status names as Google's APIs use them)."""

from __future__ import annotations

import email.utils
import time

from airflow_provider_jules.simulator.config import FaultRule
from airflow_provider_jules.simulator.errors import ApiError

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_STATUS_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    502: "The service is currently unavailable.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
    404: "Requested entity was not found.",
}


def fault_error(rule: FaultRule) -> ApiError:
    """The error ``rule`` answers, with its ``Retry-After`` (seconds or an HTTP date) when it sets one."""
    status = rule.status or 503
    name = _STATUS_NAMES.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        if rule.retry_after_http_date:
            headers["Retry-After"] = email.utils.formatdate(time.time() + rule.retry_after, usegmt=True)
        else:
            headers["Retry-After"] = str(int(rule.retry_after))
    msg = rule.message or _STATUS_MESSAGES.get(status, "Simulated fault.")
    return ApiError(status, name, msg, headers=headers)
