"""``AsyncJulesClient``: the asynchronous transport (httpx), over the shared sans-IO core.

One instance holds one ``httpx.AsyncClient`` (one connection pool) for its whole life: a trigger creates it
once and closes it when it ends, never one client per poll.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import tenacity

from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client._base import DEFAULT_CONNECT_TIMEOUT, ClientBase, normalized_activities
from airflow_provider_jules.client.errors import JulesTransportError
from airflow_provider_jules.client.models import Json, normalize_session
from airflow_provider_jules.client.retry import RetryPolicy, retry_kwargs


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context per process, shared by every async client.

    httpx builds a new context (loading the whole CA bundle) for each client it creates: ~20 ms of CPU and
    ~850 KiB per trigger, run inside the triggerer's event loop (measured in benchmarks/RESULTS.md).
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured as httpx honours them.
    """
    import certifi

    cafile = os.environ.get("SSL_CERT_FILE") or certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=os.environ.get("SSL_CERT_DIR") or None)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class AsyncJulesClient(ClientBase):
    """Asynchronous Jules API client; list methods are async iterators that follow ``nextPageToken``."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, retry_policy=retry_policy)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(DEFAULT_CONNECT_TIMEOUT, self.timeout)),
            transport=transport,
            verify=_shared_ssl_context(),
            follow_redirects=False,
            trust_env=transport is None,
        )
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJulesClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -------------------------------------------------------------------------------------- transport
    async def _send_once(self, request: core.Request) -> Json:
        try:
            response = await self._http.request(
                request.method,
                self._url(request),
                params=dict(request.params) or None,
                content=core.encode_body(request),
                headers=self._headers(request),
            )
        except httpx.HTTPError as exc:
            raise JulesTransportError(
                f"{core.describe(request)} failed: {type(exc).__name__}",
                reached_server=not isinstance(exc, _NOT_SENT),
                method=request.method,
                path=request.path,
            ) from None
        return core.parse_response(
            request, response.status_code, response.headers, response.content, response.reason_phrase
        )

    async def call(self, request: core.Request, *, tolerate_404: bool = False) -> Json:
        """Send one request with the shared retry policy."""
        kwargs = retry_kwargs(request, self.retry_policy, tolerate_404=tolerate_404)
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        async for attempt in tenacity.AsyncRetrying(**kwargs):
            with attempt:
                return await self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pages(
        self, request: core.Request, key: str, *, tolerate_404: bool = False
    ) -> AsyncIterator[Json]:
        page: core.Request | None = request
        for _ in range(core.MAX_PAGES):
            if page is None:
                return
            response = await self.call(page, tolerate_404=tolerate_404)
            for item in response.get(key, []):
                if isinstance(item, dict):
                    yield item
            page = core.next_page(page, response)

    # -------------------------------------------------------------------------------------- sessions
    async def create_session(self, prompt: str, **fields: Any) -> Json:
        session = normalize_session(await self.call(core.create_session(prompt, **fields)))
        self._remember_created(session)
        return session

    async def get_session(self, session: str) -> Json:
        return normalize_session(await self.call(core.get_session(session)))

    async def list_sessions(
        self, *, page_size: int | None = None, archived: bool | None = None
    ) -> AsyncIterator[Json]:
        async for item in self._pages(core.list_sessions(page_size=page_size, archived=archived), "sessions"):
            yield normalize_session(item)

    async def delete_session(self, session: str) -> None:
        await self.call(core.delete_session(session))

    async def send_message(self, session: str, prompt: str) -> None:
        await self.call(core.send_message(session, prompt))

    async def approve_plan(self, session: str) -> None:
        await self.call(core.approve_plan(session))

    async def archive_session(self, session: str) -> Json:
        return normalize_session(await self.call(core.archive_session(session)))

    async def unarchive_session(self, session: str) -> Json:
        return normalize_session(await self.call(core.unarchive_session(session)))

    # -------------------------------------------------------------------------------------- activities
    async def list_activities(
        self,
        session: str,
        *,
        created_after: str | int | None = None,
        page_size: int | None = None,
        new_session: bool = False,
    ) -> AsyncIterator[Json]:
        """Activities oldest-first; with ``created_after`` only those created strictly later."""
        tolerate = self._is_new(session, new_session)
        if created_after is not None and self.activity_filter_supported:
            request = core.list_activities(session, page_size=page_size, created_after=created_after)
            try:
                first = await self.call(request, tolerate_404=tolerate)
            except Exception as exc:
                if not self._filter_rejected(exc, created_after):
                    raise
            else:
                for item in normalized_activities(first.get("activities", [])):
                    yield item
                nxt = core.next_page(request, first)
                if nxt is not None:
                    async for item in self._pages(nxt, "activities", tolerate_404=tolerate):
                        yield normalized_activities([item])[0]
                return
        items = [
            a
            async for a in self._pages(
                core.list_activities(session, page_size=page_size), "activities", tolerate_404=tolerate
            )
        ]
        if created_after is not None:
            items = core.filter_created_after(items, created_after)
        for item in normalized_activities(items):
            yield item

    async def get_activity(self, session: str, activity: str) -> Json:
        return normalized_activities([await self.call(core.get_activity(session, activity))])[0]

    # -------------------------------------------------------------------------------------- sources
    async def list_sources(
        self, *, filter: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Json]:
        async for item in self._pages(core.list_sources(filter=filter, page_size=page_size), "sources"):
            yield item

    async def get_source(self, source: str) -> Json:
        return await self.call(core.get_source(source))
