"""The Jules API client: no Airflow imports, usable and testable alone.

Importing this package is cheap: the transports (requests, httpx, tenacity) load only when
``JulesClient`` or ``AsyncJulesClient`` is first used.

Public: the names below (``__all__``) and the modules without a leading underscore (``aio``, ``errors``,
``models``, ``retry``, ``sync``, ``timeouts``, ``validation``). Modules with one (``_core``, ``_base``,
``_net``, ``_pool``) are the client's own and may change without notice.
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
    from airflow_provider_jules.client._base import DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES
    from airflow_provider_jules.client._core import DEFAULT_MAX_RESPONSE_BYTES
    from airflow_provider_jules.client.aio import AsyncJulesClient
    from airflow_provider_jules.client.retry import RetryPolicy
    from airflow_provider_jules.client.sync import JulesClient

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
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

#: Public name -> the module that defines it, imported on first use (the settings' defaults and bounds:
#: seconds per HTTP attempt, the cap on one response body and its upper bound).
_LAZY = {
    "DEFAULT_MAX_RESPONSE_BYTES": "airflow_provider_jules.client._core",
    "DEFAULT_TIMEOUT": "airflow_provider_jules.client._base",
    "MAX_RESPONSE_BYTES": "airflow_provider_jules.client._base",
    "JulesClient": "airflow_provider_jules.client.sync",
    "AsyncJulesClient": "airflow_provider_jules.client.aio",
    "RetryPolicy": "airflow_provider_jules.client.retry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
