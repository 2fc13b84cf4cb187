"""The private internals of httpx, httpcore and urllib3 that the clients rely on (issue #19 item 7).

The async client puts its own connection pool in httpx's transport (``AsyncHTTPTransport._pool``) and swaps
httpcore's per-connection locks for one that never waits (``_request_lock``, ``_state_lock``); its network
backend answers httpcore's ``get_extra_info("is_readable")``. The sync client's watchdog gets each attempt's
socket from urllib3 (its connection classes, ``getresponse``, ``HTTPResponse._connection`` and ``._fp``).
None of that is those libraries' public API: most of the code tolerates its absence and silently loses what
it saves (benchmarks/RESULTS.md), so this test makes an upgrade that removes one fail loudly, naming it.

pyproject.toml bounds httpx, httpcore and urllib3 to the tested releases. When one of these checks fails
after an upgrade (``make test-latest``), adapt the code that the message names, then widen the bound.
"""

from __future__ import annotations

import asyncio
import http.server
import inspect
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import httpcore
import httpx
import pytest
import requests
import urllib3.connection
import urllib3.connectionpool

from airflow_provider_jules.client import _net, _pool, aio, sync


@dataclass(frozen=True)
class Reach:
    library: str
    used_by: str
    check: Callable[[], None]


REACHES: dict[str, Reach] = {}


def reach(name: str, library: str, used_by: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(check: Callable[[], None]) -> Callable[[], None]:
        REACHES[name] = Reach(library, used_by, check)
        return check

    return register


def _run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


# ------------------------------------------------------------------------------------------------ httpx


class _RecordingPool:
    """Stands in for httpcore's pool in httpx's transport: records what the transport asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __aenter__(self) -> _RecordingPool:
        self.calls.append("__aenter__")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.calls.append("__aexit__")

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.calls.append("handle_async_request")
        return httpcore.Response(200, content=b"ok")

    async def aclose(self) -> None:
        self.calls.append("aclose")


@reach(
    "httpx.AsyncHTTPTransport._pool",
    "httpx",
    "client/aio.py _DirectTransport (puts LeanPool of client/_pool.py there)",
)
def _transport_pool() -> None:
    async def main() -> None:
        transport = httpx.AsyncHTTPTransport()
        assert "_pool" in vars(transport), "the transport has no attribute _pool"
        recorder = _RecordingPool()
        transport._pool = recorder  # type: ignore[assignment]
        async with transport:
            response = await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/"))
            assert response.status_code == 200
            await response.aclose()
        await transport.aclose()
        assert recorder.calls == ["__aenter__", "handle_async_request", "__aexit__", "aclose"], (
            f"the transport no longer does all its work through _pool: {recorder.calls}"
        )
        missing = [name for name in recorder.calls if not hasattr(_pool.LeanPool, name)]
        assert not missing, f"the transport asks its pool for what LeanPool lacks: {missing}"

    _run(main)
    transport = aio._DirectTransport(httpx.Limits())
    assert transport._pool is transport.lean  # type: ignore[comparison-overlap]


@reach(
    "httpx.Response.stream",
    "httpx",
    "client/aio.py AsyncJulesClient._attempt (replaces a spent response's stream to break a reference cycle)",
)
def _response_stream() -> None:
    response = httpx.Response(200, content=b"ok")
    assert "stream" in vars(response), "httpx.Response has no attribute stream"


# --------------------------------------------------------------------------------------------- httpcore


class _ScriptedStream(httpcore.AsyncNetworkStream):
    """One keep-alive HTTP/1.1 answer; ``readable`` is what ``get_extra_info("is_readable")`` reports."""

    def __init__(self) -> None:
        self.readable = False
        self.asked: list[str] = []
        self._answer = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._answer.pop(0) if self._answer else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def get_extra_info(self, info: str) -> Any:
        self.asked.append(info)
        return self.readable if info == "is_readable" else None


class _ScriptedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, stream: _ScriptedStream) -> None:
        self.stream = stream

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return self.stream


def _idle_connection() -> tuple[httpcore.AsyncHTTPConnection, _ScriptedStream]:
    """An httpcore connection that answered one request (as LeanPool opens it) and is idle again."""
    stream = _ScriptedStream()
    connection = httpcore.AsyncHTTPConnection(
        origin=httpcore.Origin(b"http", b"127.0.0.1", 1),
        keepalive_expiry=60.0,
        http1=True,
        http2=False,
        network_backend=_ScriptedBackend(stream),
    )

    async def main() -> None:
        request = httpcore.Request("GET", "http://127.0.0.1:1/", headers=[(b"Host", b"127.0.0.1")])
        response = await connection.handle_async_request(request)
        assert await response.aread() == b"ok"
        await response.aclose()

    _run(main)
    return connection, stream


@reach(
    "httpcore.AsyncHTTPConnection._request_lock",
    "httpcore",
    "client/_pool.py _exclusive (a lock that never waits, for connections used by one request at a time)",
)
def _request_lock() -> None:
    connection = httpcore.AsyncHTTPConnection(origin=httpcore.Origin(b"http", b"127.0.0.1", 1))
    assert "_request_lock" in vars(connection), "AsyncHTTPConnection has no attribute _request_lock"
    _pool._exclusive(connection)
    assert connection._request_lock is _pool._EXCLUSIVE  # type: ignore[comparison-overlap]


@reach(
    "httpcore.AsyncHTTPConnection._connection",
    "httpcore",
    "client/_pool.py _exclusive (finds the HTTP/1.1 connection whose lock it swaps)",
)
def _inner_connection() -> None:
    connection, _ = _idle_connection()
    inner = vars(connection).get("_connection")
    assert isinstance(inner, httpcore.AsyncHTTP11Connection), (
        f"AsyncHTTPConnection._connection is {inner!r}, not the AsyncHTTP11Connection it made"
    )


@reach(
    "httpcore.AsyncHTTP11Connection._state_lock",
    "httpcore",
    "client/_pool.py _exclusive (a lock that never waits, for connections used by one request at a time)",
)
def _state_lock() -> None:
    connection, _ = _idle_connection()
    inner = connection._connection
    assert "_state_lock" in vars(inner), "AsyncHTTP11Connection has no attribute _state_lock"
    _pool._exclusive(connection)
    assert inner._state_lock is _pool._EXCLUSIVE  # type: ignore[union-attr]


@reach(
    'httpcore network stream get_extra_info("is_readable")',
    "httpcore",
    "client/_net.py AsyncioStream.get_extra_info (how LeanPool's idle connections report a server close)",
)
def _is_readable() -> None:
    connection, stream = _idle_connection()
    assert connection.is_available() and not connection.has_expired()
    stream.readable = True  # the server closed the idle connection
    assert connection.has_expired(), "an idle connection whose stream is readable is not expired any more"
    assert "is_readable" in stream.asked, f"httpcore asked the stream for {stream.asked}, not is_readable"


def _interface(base: type, ours: type) -> None:
    """Every public method of httpcore's base class is ours too, with the same parameters."""
    for name, member in vars(base).items():
        if name.startswith("_") or not callable(member):
            continue
        mine = vars(ours).get(name)
        assert mine is not None, f"{base.__name__}.{name} is new and {ours.__name__} does not implement it"
        expected = list(inspect.signature(member).parameters)
        got = list(inspect.signature(mine).parameters)
        assert got == expected, f"{base.__name__}.{name} takes {expected}, {ours.__name__}.{name} {got}"


@reach(
    "httpcore.AsyncNetworkStream (its methods)",
    "httpcore",
    "client/_net.py AsyncioStream (the lean asyncio network stream of direct connections)",
)
def _stream_interface() -> None:
    _interface(httpcore.AsyncNetworkStream, _net.AsyncioStream)


@reach(
    "httpcore.AsyncNetworkBackend (its methods)",
    "httpcore",
    "client/_net.py AsyncioBackend (the lean asyncio network backend of direct connections)",
)
def _backend_interface() -> None:
    _interface(httpcore.AsyncNetworkBackend, _net.AsyncioBackend)


# ---------------------------------------------------------------------------------------------- urllib3


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # a client that closes its kept-alive connection is no error here


@pytest.fixture(scope="module", autouse=True)
def _loopback_server() -> Iterator[None]:
    server = _QuietServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SERVER.append(f"http://127.0.0.1:{server.server_address[1]}/")
    yield
    server.shutdown()
    server.server_close()
    _SERVER.clear()


_SERVER: list[str] = []


def _streamed() -> tuple[requests.Session, requests.Response, sync._Watchdog]:
    """A response of the watched session, its body not read yet (as the sync client reads it)."""
    session = sync._watched_session()
    session.trust_env = False
    with sync._Watchdog(30.0) as watchdog:
        response = session.get(_SERVER[0], stream=True, timeout=10)
    return session, response, watchdog


@reach(
    "urllib3.PoolManager.pool_classes_by_scheme",
    "urllib3",
    "client/sync.py _WatchedAdapter (its pools make connections that report their socket)",
)
def _pool_classes() -> None:
    adapter = sync._WatchedAdapter()
    assert "pool_classes_by_scheme" in vars(adapter.poolmanager), "PoolManager has no pool_classes_by_scheme"
    assert isinstance(adapter.poolmanager.connection_from_url(_SERVER[0]), sync._WatchedHTTPPool)
    proxied = adapter.proxy_manager_for("http://127.0.0.1:9")
    assert isinstance(proxied.connection_from_url("https://jules.example.test/"), sync._WatchedHTTPSPool)


@reach(
    "urllib3.connectionpool.HTTPConnectionPool.ConnectionCls",
    "urllib3",
    "client/sync.py _WatchedHTTPPool / _WatchedHTTPSPool (their connection class)",
)
def _connection_cls() -> None:
    for cls in (urllib3.connectionpool.HTTPConnectionPool, urllib3.connectionpool.HTTPSConnectionPool):
        assert "ConnectionCls" in vars(cls), f"{cls.__name__} has no attribute ConnectionCls"
    pool = sync._WatchedHTTPPool("127.0.0.1", 1)
    assert isinstance(pool._new_conn(), sync._WatchedHTTPConnection)


@reach(
    "urllib3.connection.HTTPConnection.getresponse and .sock",
    "urllib3",
    "client/sync.py _WatchedHTTPConnection (reports the attempt's socket to its watchdog)",
)
def _getresponse() -> None:
    assert "getresponse" in vars(urllib3.connection.HTTPConnection), "HTTPConnection has no getresponse"
    session, response, watchdog = _streamed()
    try:
        assert len(watchdog._sockets) == 1, f"the watchdog saw {len(watchdog._sockets)} sockets, not 1"
        assert isinstance(watchdog._sockets[0], socket.socket)
    finally:
        response.close()
        session.close()


@reach(
    "urllib3.response.HTTPResponse._connection",
    "urllib3",
    "client/sync.py _set_read_timeout (bounds each body read by the time left of the attempt)",
)
def _response_connection() -> None:
    session, response, _ = _streamed()
    try:
        conn = vars(response.raw).get("_connection")
        assert conn is not None, "a streamed HTTPResponse has no _connection"
        sock = conn.sock
        assert isinstance(sock, socket.socket), f"its _connection.sock is {sock!r}"
        sync._set_read_timeout(response.raw, 7.0)
        assert sock.gettimeout() == 7.0, "_set_read_timeout did not reach the socket"
    finally:
        response.close()
        session.close()


@reach(
    "urllib3.response.HTTPResponse._fp (.fp.raw._sock)",
    "urllib3",
    "client/sync.py _set_read_timeout (its way to the socket when the response has no _connection)",
)
def _response_fp() -> None:
    session, response, _ = _streamed()
    try:
        fp = vars(response.raw).get("_fp")
        assert fp is not None, "a streamed HTTPResponse has no _fp"
        sock = fp.fp.raw._sock
        assert isinstance(sock, socket.socket), f"its _fp.fp.raw._sock is {sock!r}"
        response.raw._connection = None
        sync._set_read_timeout(response.raw, 9.0)
        assert sock.gettimeout() == 9.0, "_set_read_timeout did not reach the socket through _fp"
    finally:
        response.close()
        session.close()


# ------------------------------------------------------------------------------------------------ the test


@pytest.mark.parametrize("name", sorted(REACHES), ids=str)
def test_a_private_internal_the_clients_rely_on_is_still_there(name: str) -> None:
    used = REACHES[name]
    try:
        used.check()
    except Exception as exc:
        problem: str | None = f"{type(exc).__name__}: {exc}"
    else:
        problem = None
    if problem is not None:  # outside the except block: the message alone, without the chained traceback
        pytest.fail(
            f"{name} is gone or changed in {used.library} {version(used.library)}: {problem}\n"
            f"  relied on by {used.used_by}.\n"
            f"  Adapt that code to this {used.library} (or keep the bound in pyproject.toml below it).",
            pytrace=False,
        )
