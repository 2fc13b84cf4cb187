"""``AsyncJulesClient``: the asynchronous transport (httpx), over the shared sans-IO core.

Clients on one event loop share one ``httpx.AsyncClient`` (one connection pool) per network configuration:
a trigger holds its client for its whole life (never one per poll) and the clients of all the triggers on a
triggerer hold a few warm connections between them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import tenacity

from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client._base import DEFAULT_CONNECT_TIMEOUT, ClientBase, normalized_activities
from airflow_provider_jules.client._net import AsyncioBackend
from airflow_provider_jules.client._pool import LeanPool
from airflow_provider_jules.client.errors import JulesError, JulesTransportError
from airflow_provider_jules.client.models import Json, normalize_session
from airflow_provider_jules.client.retry import RetryPolicy, retry_kwargs
from airflow_provider_jules.client.timeouts import bounded


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


async def _decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body, decompressed at most CHUNK_BYTES at a time: a gzip bomb is never inflated whole.

    httpx would inflate each network chunk at once (1000x: ~64 MB from one 64 KiB chunk); gzip and deflate
    are decoded here with a bounded output instead. Other encodings (never asked for) go through httpx.
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if response.is_stream_consumed:  # a body already in memory (e.g. httpx.MockTransport)
        async for chunk in response.aiter_bytes(core.CHUNK_BYTES):
            yield chunk
        return
    if encoding in ("", "identity"):
        async for chunk in response.aiter_raw(core.CHUNK_BYTES):
            yield chunk
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        async for chunk in response.aiter_bytes(core.CHUNK_BYTES):
            yield chunk
        return
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else 32 + zlib.MAX_WBITS)
    first = True
    async for raw in response.aiter_raw(core.CHUNK_BYTES):
        data = raw
        while data and not decoder.eof:
            try:
                out = decoder.decompress(data, core.CHUNK_BYTES)
            except zlib.error:
                if not (first and encoding == "deflate"):
                    raise httpx.DecodingError("invalid compressed body") from None
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, without the zlib header
                first = False
                continue
            first = False
            data = decoder.unconsumed_tail
            if out:
                yield out


#: Seconds an idle connection is kept for the next poll (above the default poll interval).
KEEPALIVE_S = 120.0
#: Pools one event loop opens per network configuration before clients start sharing them. Direct
#: connections use ``LeanPool`` (``client/_pool.py``), whose cost per request does not grow with its size;
#: connections through a proxy use httpcore's pool, which scans every connection on each request (one pool
#: of 32+ connections cost 16 ms per poll against 6 ms for 1,000 one-connection clients over HTTPS,
#: benchmarks/RESULTS.md section 5): several small pools keep those scans short.
POOL_SHARDS = 16
#: Idle connections a pool keeps at least; a direct pool keeps up to one per client (``_SharedPool.count``),
#: a proxied one this many (16 x 8 kept every request warm at 100 polls/s with a 40 ms round trip).
KEEPALIVE_CONNECTIONS = 8

#: What a spent response's stream is replaced with (see ``_attempt``): empty, shared, holds nothing.
_SPENT = httpx.ByteStream(b"")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: The environment that decides httpx's proxies when ``trust_env`` is on: part of a pool's identity.
_PROXY_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)

PoolKey = tuple[object, ...]


def _env_proxies() -> bool:
    """True when the environment names a proxy (httpx then routes through it, so its backend is kept)."""
    return any(os.environ.get(name) for name in _PROXY_ENV if "no_proxy" not in name.lower())


class _DirectTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a pool that costs O(1) per request (``client/_pool.py``) and the lean asyncio
    network backend (``client/_net.py``)."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(verify=_shared_ssl_context(), limits=limits)
        self.lean = LeanPool(
            ssl_context=_shared_ssl_context(),
            keepalive_expiry=KEEPALIVE_S if limits.keepalive_expiry is None else limits.keepalive_expiry,
            max_idle=KEEPALIVE_CONNECTIONS,
            network_backend=AsyncioBackend(),
        )
        self._pool = self.lean  # type: ignore[assignment]


class _SharedPool:
    """One ``httpx.AsyncClient`` (one connection pool) and the number of Jules clients using it."""

    __slots__ = ("http", "lean", "users")

    def __init__(self, http: httpx.AsyncClient, lean: LeanPool | None) -> None:
        self.http = http
        self.lean = lean
        self.users = 0

    def count(self, change: int) -> None:
        """A client joins (+1) or leaves (-1). A direct pool keeps up to one idle connection per client
        (at least KEEPALIVE_CONNECTIONS): each trigger has one request in flight at most, so even a
        saturated triggerer finds a warm connection for every request instead of opening new ones."""
        self.users += change
        if self.lean is not None:
            self.lean.max_idle = max(KEEPALIVE_CONNECTIONS, self.users)


#: event loop -> pool identity -> its pools (at most POOL_SHARDS). Weak on the loop.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PoolKey, list[_SharedPool]]] = (
    weakref.WeakKeyDictionary()
)


def shared_pools() -> list[int]:
    """The users of each shared pool of the running event loop (for tests and diagnostics)."""
    return [pool.users for pools in _POOLS.get(asyncio.get_running_loop(), {}).values() for pool in pools]


def _open_pool(
    timeout: float, proxy: str | None, transport: httpx.AsyncBaseTransport | None, trust_env: bool
) -> _SharedPool:
    """A new shared pool for clients with these settings (``transport``: a test's own, never shared)."""
    # Pollers ask one host every poll_interval (30 s by default): keep connections between polls
    # instead of httpx's 5 s, so a poll is a request, not a new TCP + TLS handshake (over HTTPS with
    # 40 ms round trips the handshake was most of a poll's CPU: benchmarks/RESULTS.md). A connection
    # the server closed meanwhile is detected before reuse (and a GET is retried). No cap on open
    # connections (a slow server never queues one session's poll behind others'), a cap on idle ones
    # (the memory a quiet pool holds).
    limits = httpx.Limits(
        max_connections=None,
        max_keepalive_connections=KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_S,
    )
    lean = None
    own = transport
    if own is None and not proxy and not (trust_env and _env_proxies()):
        own = _DirectTransport(limits)  # no proxy in play: our pool and the asyncio backend
        lean = own.lean
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(DEFAULT_CONNECT_TIMEOUT, timeout)),
        transport=own,
        verify=_shared_ssl_context(),
        follow_redirects=False,
        # Loopback: never a proxy. Else the 'proxy' extra, or the environment (HTTPS_PROXY, NO_PROXY).
        proxy=None if transport is not None else proxy,
        trust_env=trust_env,
        limits=limits,
    )
    return _SharedPool(http, lean)


class AsyncJulesClient(ClientBase):
    """Asynchronous Jules API client; list methods are async iterators that follow ``nextPageToken``.

    Clients on the same event loop with the same network settings share up to ``POOL_SHARDS`` connection
    pools (each client stays on one): a triggerer following 1,000 Jules sessions holds a few dozen warm
    connections, not 1,000 idle ones (memory), and a poll reuses a connection instead of a new TCP + TLS
    handshake (CPU). A pool is counted: it is opened by the first client that sends and closed when its
    last client is closed (``aclose``). The API key travels in each request's headers, never in the pool,
    so clients of different Jules connections can share it. A client given its own ``transport`` (tests)
    never shares.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        max_response_bytes: int = core.DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            retry_policy=retry_policy,
            max_response_bytes=max_response_bytes,
            proxy=proxy,
        )
        self._transport = transport
        self._sleep = sleep
        self._pool: _SharedPool | None = None
        self._pool_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._pool_key: PoolKey = ()
        self._closed = False

    def _http(self) -> httpx.AsyncClient:
        """This client's connection pool on the running event loop (shared, opened on first use)."""
        if self._closed:
            raise JulesError("This Jules client is closed: create a new one.")
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is not None and self._pool_loop() is loop:
            return self._pool.http
        self._release()  # a client moved to another event loop: its old pool cannot serve this one
        if self._transport is not None:  # a test's transport is this client's own
            self._pool = _open_pool(self.timeout, self._proxy, self._transport, trust_env=False)
            self._pool_loop = weakref.ref(loop)
            self._pool.count(+1)
            return self._pool.http
        trust_env = not self.direct and not self._proxy
        env = tuple(os.environ.get(name) for name in _PROXY_ENV) if trust_env else ()
        key: PoolKey = (self.timeout, self._proxy, trust_env, env)
        pools = _POOLS.setdefault(loop, {}).setdefault(key, [])
        if len(pools) < POOL_SHARDS:
            pool = _open_pool(self.timeout, self._proxy, None, trust_env)
            pools.append(pool)
        else:
            pool = min(pools, key=lambda p: p.users)
        pool.count(+1)
        self._pool, self._pool_loop, self._pool_key = pool, weakref.ref(loop), key
        return pool.http

    def _release(self) -> httpx.AsyncClient | None:
        """Leave the pool; returns its client when this was its last user (the caller closes it)."""
        pool, loop_ref, self._pool, self._pool_loop = self._pool, self._pool_loop, None, None
        if pool is None:
            return None
        pool.count(-1)
        if pool.users > 0:
            return None
        loop = loop_ref() if loop_ref is not None else None
        by_key = _POOLS.get(loop) if loop is not None else None
        pools = by_key.get(self._pool_key) if by_key is not None else None
        if by_key is not None and pools is not None and pool in pools:
            pools.remove(pool)
            if not pools:
                del by_key[self._pool_key]
            if not by_key:
                del _POOLS[loop]  # type: ignore[arg-type]
        return pool.http

    async def aclose(self) -> None:
        """Leave the shared pool; the last client of a pool closes it. Idempotent."""
        self._closed = True
        loop_ref = self._pool_loop
        http = self._release()
        if http is not None and loop_ref is not None and loop_ref() is asyncio.get_running_loop():
            await http.aclose()

    async def __aenter__(self) -> AsyncJulesClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -------------------------------------------------------------------------------------- transport
    async def _send_once(self, request: core.Request) -> Json:
        """One attempt, bounded as a whole (connect, send, headers and body) by the connection's timeout."""
        try:
            status, headers, body, reason = await bounded(self._attempt(request), self.timeout)
        except asyncio.TimeoutError:
            timed_out = True
        else:
            timed_out = False
        if timed_out:
            raise core.deadline_exceeded(request, self.timeout)
        return core.parse_response(request, status, headers, body, reason, secret=self._api_key)

    async def _attempt(self, request: core.Request) -> tuple[int, httpx.Headers, bytes, str]:
        error: JulesTransportError | None = None
        response: httpx.Response | None = None
        try:
            async with self._http().stream(
                request.method,
                self._url(request),
                params=dict(request.params) or None,
                content=core.encode_body(request),
                headers=self._headers(request),
            ) as response:
                limit = core.body_limit(response.status_code, self.max_response_bytes)
                ok = 200 <= response.status_code < 300
                chunks: list[bytes] = []
                total = 0
                async for chunk in _decoded(response):
                    total += len(chunk)
                    if total > limit:
                        if ok:
                            raise core.too_large(request, limit)
                        chunks.append(chunk[: limit - (total - len(chunk))])
                        break
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks), response.reason_phrase
        except httpx.HTTPError as exc:
            error = JulesTransportError(
                f"{core.describe(request)} failed: {type(exc).__name__}",
                reached_server=not isinstance(exc, _NOT_SENT),
                method=request.method,
                path=request.path,
            )
        finally:
            if response is not None:
                # Closed by now. httpx's response and its stream wrapper refer to each other: break the
                # cycle, so the response and all it holds (request, headers, the pool's stream) are freed
                # at once instead of waiting for the cyclic garbage collector, whose pauses delay every
                # trigger of the triggerer (benchmarks/RESULTS.md section 5).
                response.stream = _SPENT
        raise error  # outside the except block: no chained context holding the request (and its key)

    async def call(self, request: core.Request, *, tolerate_404: bool = False) -> Json:
        """Send one request with the shared retry policy.

        The first attempt runs before any retry state is built: most calls succeed at once, and tenacity's
        per-call objects (which refer to each other, so only the cyclic collector frees them) would be
        built for nothing. A failed first attempt is handed to the same tenacity loop as its first
        outcome, so the policy (what is retried, the waits, ``Retry-After``, the attempt and time budgets,
        the log lines) is exactly that of the sync client.
        """
        started = time.monotonic()
        try:
            return await self._send_once(request)
        except Exception as exc:  # decided by the retry policy below, as tenacity would
            first: BaseException | None = exc
        kwargs = retry_kwargs(request, self.retry_policy, tolerate_404=tolerate_404, started=started)
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        async for attempt in tenacity.AsyncRetrying(**kwargs):
            with attempt:
                if first is not None:
                    replayed, first = first, None
                    raise replayed
                return await self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _page_lists(
        self, request: core.Request, key: str, *, tolerate_404: bool = False
    ) -> AsyncIterator[list[Json]]:
        """The items of each page; the next page is requested only when the caller asks for it."""
        pager = core.Pager(request)
        page: core.Request | None = request
        while page is not None:  # bounded: the Pager raises after MAX_PAGES pages
            response = await self.call(page, tolerate_404=tolerate_404)
            yield core.list_items(page, response, key)
            page = pager.next(page, response)

    async def _pages(
        self, request: core.Request, key: str, *, tolerate_404: bool = False
    ) -> AsyncIterator[Json]:
        async for items in self._page_lists(request, key, tolerate_404=tolerate_404):
            for item in items:
                yield item

    # -------------------------------------------------------------------------------------- sessions
    async def create_session(self, prompt: str, **fields: Any) -> Json:
        request = core.create_session(prompt, **fields)
        session = normalize_session(core.require_session(request, await self.call(request)))
        self._remember_created(session)
        return session

    async def get_session(self, session: str) -> Json:
        request = core.get_session(session)
        return normalize_session(core.require_session(request, await self.call(request)))

    async def list_sessions(
        self, *, page_size: int | None = None, archived: bool | None = None
    ) -> AsyncIterator[Json]:
        async for item in self._pages(core.list_sessions(page_size=page_size, archived=archived), "sessions"):
            if core.has_session_id(item):  # a listed session without a usable id cannot be used: skipped
                yield normalize_session(item)

    async def list_session_pages(
        self, *, page_size: int | None = None, archived: bool | None = None
    ) -> AsyncIterator[list[Json]]:
        """The session list a page at a time (in the API's order): a caller counts pages and stops between."""
        request = core.list_sessions(page_size=page_size, archived=archived)
        async for items in self._page_lists(request, "sessions"):
            yield [normalize_session(item) for item in items if core.has_session_id(item)]

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
                for item in normalized_activities(core.list_items(request, first, "activities")):
                    yield item
                nxt = core.Pager(request).next(request, first)
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
