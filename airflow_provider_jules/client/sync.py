"""``JulesClient``: the synchronous transport (requests), over the shared sans-IO core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import requests
import tenacity
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client._base import DEFAULT_CONNECT_TIMEOUT, ClientBase, normalized_activities
from airflow_provider_jules.client.errors import JulesTransportError
from airflow_provider_jules.client.models import Json, normalize_session
from airflow_provider_jules.client.retry import RetryPolicy, retry_kwargs


def _never_reached_server(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
    return False


class JulesClient(ClientBase):
    """Synchronous Jules API client. Every list method is an iterator that follows ``nextPageToken``."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, retry_policy=retry_policy)
        self._http = session or requests.Session()
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JulesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- transport
    def _send_once(self, request: core.Request) -> Json:
        try:
            response = self._http.request(
                request.method,
                self._url(request),
                params=dict(request.params) or None,
                data=core.encode_body(request),
                headers=self._headers(request),
                timeout=(min(DEFAULT_CONNECT_TIMEOUT, self.timeout), self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise JulesTransportError(
                f"{core.describe(request)} failed: {type(exc).__name__}",
                reached_server=not _never_reached_server(exc),
                method=request.method,
                path=request.path,
            ) from None
        return core.parse_response(
            request, response.status_code, response.headers, response.content, response.reason or ""
        )

    def call(self, request: core.Request, *, tolerate_404: bool = False) -> Json:
        """Send one request with the shared retry policy."""
        kwargs = retry_kwargs(request, self.retry_policy, tolerate_404=tolerate_404)
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        for attempt in tenacity.Retrying(**kwargs):
            with attempt:
                return self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, request: core.Request, key: str, *, tolerate_404: bool = False) -> Iterator[Json]:
        page: core.Request | None = request
        for _ in range(core.MAX_PAGES):
            if page is None:
                return
            response = self.call(page, tolerate_404=tolerate_404)
            yield from (item for item in response.get(key, []) if isinstance(item, dict))
            page = core.next_page(page, response)

    # -------------------------------------------------------------------------------------- sessions
    def create_session(self, prompt: str, **fields: Any) -> Json:
        session = normalize_session(self.call(core.create_session(prompt, **fields)))
        self._remember_created(session)
        return session

    def get_session(self, session: str) -> Json:
        return normalize_session(self.call(core.get_session(session)))

    def list_sessions(self, *, page_size: int | None = None, archived: bool | None = None) -> Iterator[Json]:
        for item in self._pages(core.list_sessions(page_size=page_size, archived=archived), "sessions"):
            yield normalize_session(item)

    def delete_session(self, session: str) -> None:
        self.call(core.delete_session(session))

    def send_message(self, session: str, prompt: str) -> None:
        self.call(core.send_message(session, prompt))

    def approve_plan(self, session: str) -> None:
        self.call(core.approve_plan(session))

    def archive_session(self, session: str) -> Json:
        return normalize_session(self.call(core.archive_session(session)))

    def unarchive_session(self, session: str) -> Json:
        return normalize_session(self.call(core.unarchive_session(session)))

    # -------------------------------------------------------------------------------------- activities
    def list_activities(
        self,
        session: str,
        *,
        created_after: str | int | None = None,
        page_size: int | None = None,
        new_session: bool = False,
    ) -> Iterator[Json]:
        """Activities oldest-first; with ``created_after`` only those created strictly later."""
        tolerate = self._is_new(session, new_session)
        if created_after is not None and self.activity_filter_supported:
            request = core.list_activities(session, page_size=page_size, created_after=created_after)
            try:
                first = self.call(request, tolerate_404=tolerate)
            except Exception as exc:
                if not self._filter_rejected(exc, created_after):
                    raise
            else:
                yield from normalized_activities(first.get("activities", []))
                nxt = core.next_page(request, first)
                if nxt is not None:
                    yield from normalized_activities(self._pages(nxt, "activities", tolerate_404=tolerate))
                return
        items = list(
            self._pages(
                core.list_activities(session, page_size=page_size), "activities", tolerate_404=tolerate
            )
        )
        if created_after is not None:
            items = core.filter_created_after(items, created_after)
        yield from normalized_activities(items)

    def get_activity(self, session: str, activity: str) -> Json:
        return normalized_activities([self.call(core.get_activity(session, activity))])[0]

    # -------------------------------------------------------------------------------------- sources
    def list_sources(self, *, filter: str | None = None, page_size: int | None = None) -> Iterator[Json]:
        yield from self._pages(core.list_sources(filter=filter, page_size=page_size), "sources")

    def get_source(self, source: str) -> Json:
        return self.call(core.get_source(source))
