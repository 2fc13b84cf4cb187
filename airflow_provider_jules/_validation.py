"""Argument checks, written once: pure functions that return the checked value or raise JulesConfigError.

Every error names the argument, what was given and the fix. Nothing here imports Airflow or an HTTP
library, so the client, the hook and the operators can all use it before sending any request.
"""

from __future__ import annotations

import math
from datetime import timedelta

from airflow_provider_jules.client.errors import JulesConfigError

#: The longest duration any argument accepts (timeout, poll_interval, stall_timeout, ...): 7 days.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


def duration(
    name: str,
    value: object,
    *,
    allow_none: bool = False,
    maximum: float = MAX_DURATION_SECONDS,
) -> float | None:
    """Seconds as a float: a finite number (or ``timedelta``) > 0 and <= ``maximum``."""
    if value is None and allow_none:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise JulesConfigError(
            f"{name} must be a positive number of seconds (or a timedelta), got {value!r}"
            f"{' (use None to turn it off)' if allow_none else ''}."
        )
    number = float(seconds)
    if not math.isfinite(number) or number <= 0 or number > maximum:
        raise JulesConfigError(
            f"{name} must be a finite number of seconds > 0 and <= {maximum:.0f} "
            f"({maximum / 86400:g} days), got {value!r}."
        )
    return number


def integer(name: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An ``int`` (never a ``bool``) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise JulesConfigError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise JulesConfigError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}.")
    return value


def optional_string(name: str, value: object) -> str | None:
    """``None`` or a ``str``."""
    if value is not None and not isinstance(value, str):
        raise JulesConfigError(f"{name} must be a string or None, got {type(value).__name__} {value!r}.")
    return value
