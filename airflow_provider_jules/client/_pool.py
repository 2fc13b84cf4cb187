"""A connection pool that costs the same per request whatever its size: idle HTTP/1.1 connections on a stack.

httpcore's ``AsyncConnectionPool`` re-examines every connection and every waiting request of the pool on
each request and each response it finishes. That is cheap for one client's few connections, but the Jules
triggers of a triggerer share their pools, and when the loop is saturated (thousands of triggers, requests
piling up) a pool holds hundreds of connections: the scans grow with the square of the load and the
triggerer spent its time in them (benchmarks/RESULTS.md section 2: 5,000 triggers on loopback, 0.30 of the
polls delivered, 56,490 retried errors). It also closed every connection beyond its idle cap, so under
load most requests opened a new connection.

This pool does neither. A request takes the most recently used idle connection to its origin (LIFO: the
working set stays warm, the rest ages out), or opens a new one; when its response is closed the connection
goes back on top of the stack if it can be reused, and the oldest beyond ``max_idle`` are closed.
Connections idle longer than ``keepalive_expiry``, or that the server closed, are dropped when they are
met: at the top when a request looks for one, at the bottom (the oldest) when one is returned. Every step
is O(1) amortized.
It speaks HTTP/1.1 only (the Jules API does) and never queues a request: ``max_idle`` bounds what a quiet
pool holds, not how many requests run at once.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import AsyncIterator

import httpcore


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return (origin.scheme, origin.host, origin.port)


class _Exclusive:
    """The lock of a connection that only one request uses at a time, which this pool guarantees (a
    connection is either on the idle stack or held by one request). httpcore guards each connection with
    anyio locks for pools that share connections between concurrent requests; an uncontended anyio lock
    still yields to the event loop on every acquire (three times per request). This one never waits."""

    __slots__ = ()

    async def __aenter__(self) -> _Exclusive:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


_EXCLUSIVE = _Exclusive()


def _exclusive(connection: httpcore.AsyncHTTPConnection) -> None:
    """Give a connection of this pool (and its HTTP/1.1 connection, once made) the lock that never waits.
    Attributes httpcore does not have (another version) are left alone: only the saving is lost."""
    if hasattr(connection, "_request_lock"):
        connection._request_lock = _EXCLUSIVE  # type: ignore[assignment]
    http11 = getattr(connection, "_connection", None)
    if http11 is not None and hasattr(http11, "_state_lock"):
        http11._state_lock = _EXCLUSIVE


class LeanPool:
    """The part of httpcore's pool interface that ``httpx.AsyncHTTPTransport`` uses."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        keepalive_expiry: float,
        max_idle: int,
        network_backend: httpcore.AsyncNetworkBackend,
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._backend = network_backend
        #: idle connections kept at most; the shared pools raise it with their number of clients
        self.max_idle = max_idle
        #: connections opened so far (diagnostics and tests)
        self.opened = 0
        self._idle: dict[tuple[bytes, bytes, int], deque[httpcore.AsyncHTTPConnection]] = {}
        self._closed = False

    def idle_connections(self) -> int:
        return sum(len(stack) for stack in self._idle.values())

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self._closed:
            raise httpcore.UnsupportedProtocol("the connection pool is closed")  # httpx: a transport error
        origin = request.url.origin
        for _ in range(2):  # a kept connection that turns out unusable is replaced once
            connection = await self._take(origin)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                await connection.aclose()
                continue
            except BaseException:
                await connection.aclose()
                raise
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_Returning(response.stream, connection, origin, self),  # type: ignore[arg-type]
                extensions=response.extensions,
            )
        raise httpcore.ConnectError("no usable connection")

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        stack = self._idle.get(_key(origin))
        while stack:  # bounded: each pass removes one connection
            connection = stack.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        self.opened += 1
        connection = httpcore.AsyncHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=self._backend,
        )
        _exclusive(connection)
        return connection

    async def _give_back(self, connection: httpcore.AsyncHTTPConnection, origin: httpcore.Origin) -> None:
        key = _key(origin)
        stack = self._idle.setdefault(key, deque())
        while stack and stack[0].has_expired():  # the oldest first; bounded: each pass removes one
            await stack.popleft().aclose()
        if self._closed or not connection.is_available() or connection.has_expired():
            await connection.aclose()
        else:
            _exclusive(connection)  # its HTTP/1.1 connection was made by its first request
            stack.append(connection)  # on top: the next request takes the warmest connection
        while len(stack) > self.max_idle:  # fewer clients now, or the pool closed: the oldest go
            await stack.popleft().aclose()
        if not stack:
            self._idle.pop(key, None)

    async def aclose(self) -> None:
        self._closed = True
        stacks, self._idle = list(self._idle.values()), {}
        for stack in stacks:
            for connection in stack:
                await connection.aclose()

    async def __aenter__(self) -> LeanPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Returning:
    """A response body that returns its connection to the pool once it is closed."""

    __slots__ = ("_connection", "_origin", "_pool", "_stream")

    def __init__(
        self,
        stream: object,
        connection: httpcore.AsyncHTTPConnection,
        origin: httpcore.Origin,
        pool: LeanPool,
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._origin = origin
        self._pool = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:  # type: ignore[attr-defined]
            yield part

    async def aclose(self) -> None:
        try:
            closer = getattr(self._stream, "aclose", None)
            if closer is not None:
                await closer()  # an HTTP/1.1 connection is idle again (or closed, if it cannot be reused)
        finally:
            await self._pool._give_back(self._connection, self._origin)
