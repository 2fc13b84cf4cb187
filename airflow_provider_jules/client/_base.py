"""State and rules shared by the two transports (configuration, repr, "new session" bookkeeping)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from airflow_provider_jules.client._core import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Request,
    headers_for,
    is_loopback,
    user_agent,
    validate_api_key,
    validate_base_url,
)
from airflow_provider_jules.client.errors import JulesConfigError, JulesInvalidArgumentError, mask
from airflow_provider_jules.client.models import Json, normalize_activity, session_id
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.client.validation import duration, integer, optional_string

#: How long after create a 404 on a session's activities is treated as eventual consistency (Q18).
NEW_SESSION_GRACE_SECONDS = 120.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The longest per-attempt timeout accepted (the connection's ``timeout`` extra).
MAX_TIMEOUT = 3600.0
#: Bounds of the connection extra ``max_response_bytes``.
MIN_RESPONSE_BYTES = 1024
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024


def validate_proxy(proxy: object) -> str | None:
    """An ``http://`` or ``https://`` proxy URL (credentials allowed), or None. The error never shows it."""
    text = optional_string("proxy", proxy)
    if text is None or not text.strip():
        return None
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JulesConfigError(
            "The proxy must be an http:// or https:// URL such as 'http://proxy.example:3128' "
            "(the connection extra 'proxy')."
        )
    return text.strip()


class ClientBase:
    """Configuration of a Jules client. The API key is held privately and never shown."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
    ) -> None:
        self._api_key = validate_api_key(api_key)
        self.base_url = validate_base_url(base_url)
        #: Total seconds of one HTTP attempt: connect, send, status, headers and the whole body.
        self.timeout = duration("timeout", timeout, maximum=MAX_TIMEOUT) or DEFAULT_TIMEOUT
        #: Cap on the decompressed bytes of one response body.
        self.max_response_bytes = integer(
            "max_response_bytes", max_response_bytes, minimum=MIN_RESPONSE_BYTES, maximum=MAX_RESPONSE_BYTES
        )
        #: True for a loopback Base URL: no proxy is ever used (not even from the environment).
        self.direct = is_loopback(urlsplit(self.base_url).hostname or "")
        proxy_url = validate_proxy(proxy)  # checked even when a loopback Base URL ignores it
        self._proxy = None if self.direct else proxy_url
        self.retry_policy = retry_policy or RetryPolicy()
        self._user_agent = user_agent()
        self._created: dict[str, float] = {}
        #: Set once the server rejected the ``create_time>`` filter: filter on the client from then on.
        self.activity_filter_supported = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key=***)"

    def redact(self, text: str) -> str:
        """``text`` with this client's API key replaced by ``***`` wherever it appears.

        The client's own errors are masked already; this is for text built around them (e.g. a connection
        test's message), so that a caller never needs the key itself.
        """
        return mask(text, self._api_key)

    def _url(self, request: Request) -> str:
        return self.base_url + request.path

    def _headers(self, request: Request) -> dict[str, str]:
        return headers_for(self._api_key, self._user_agent, request)

    def _remember_created(self, session: Json) -> None:
        ident = session.get("id") or str(session.get("name", "")).rsplit("/", 1)[-1]
        if ident:
            self._created[str(ident)] = time.monotonic()
        if len(self._created) > 10_000:  # bounded
            oldest = sorted(self._created.items(), key=lambda kv: kv[1])[:5_000]
            for key, _ in oldest:
                self._created.pop(key, None)

    def _is_new(self, session: str, new_session: bool) -> bool:
        if new_session:
            return True
        created = self._created.get(session_id(session))
        return created is not None and time.monotonic() - created < NEW_SESSION_GRACE_SECONDS

    def _filter_rejected(self, exc: Exception, created_after: object) -> bool:
        """True when the server refused the ``create_time>`` filter: fall back to client-side filtering."""
        if created_after is not None and isinstance(exc, JulesInvalidArgumentError):
            self.activity_filter_supported = False
            return True
        return False


def normalized_activities(items: Iterable[Json]) -> list[Json]:
    return [normalize_activity(a) for a in items if isinstance(a, dict)]
