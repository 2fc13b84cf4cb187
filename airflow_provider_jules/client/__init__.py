"""The Jules API client: no Airflow imports, usable and testable alone.

Importing this package is cheap: the transports (requests, httpx, tenacity) load only when
``JulesClient`` or ``AsyncJulesClient`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_jules.client.errors import (
    JulesAPIError,
    JulesAuthError,
    JulesConfigError,
    JulesError,
    JulesInvalidArgumentError,
    JulesInvalidResponseError,
    JulesNotFoundError,
    JulesQuotaExhaustedError,
    JulesRateLimitError,
    JulesServerError,
    JulesTransportError,
)

if TYPE_CHECKING:
    from airflow_provider_jules.client.aio import AsyncJulesClient
    from airflow_provider_jules.client.retry import RetryPolicy
    from airflow_provider_jules.client.sync import JulesClient

__all__ = [
    "AsyncJulesClient",
    "JulesAPIError",
    "JulesAuthError",
    "JulesClient",
    "JulesConfigError",
    "JulesError",
    "JulesInvalidArgumentError",
    "JulesInvalidResponseError",
    "JulesNotFoundError",
    "JulesQuotaExhaustedError",
    "JulesRateLimitError",
    "JulesServerError",
    "JulesTransportError",
    "RetryPolicy",
]

_LAZY = {
    "JulesClient": "airflow_provider_jules.client.sync",
    "AsyncJulesClient": "airflow_provider_jules.client.aio",
    "RetryPolicy": "airflow_provider_jules.client.retry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
