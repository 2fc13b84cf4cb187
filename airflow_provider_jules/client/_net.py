"""A lean asyncio network backend for the async client's connections (httpcore), in place of anyio's.

httpcore drives its connections through a "network backend". Its default one (anyio) wraps every read and
write in a cancel scope and runs TLS through anyio's generic TLS stream; over HTTPS that machinery was the
largest single share of a trigger's CPU per poll (``python -m benchmarks.profile_trigger --tls``:
benchmarks/RESULTS.md section 5). This backend does the same job with asyncio's own streams for TCP (with
happy eyeballs and ``TCP_NODELAY``, as asyncio connects) and an ``ssl.SSLObject`` over memory buffers for
TLS, and bounds each operation with ``asyncio.timeout``. It maps every failure to httpcore's exceptions, as
the anyio backend does, so httpx reports them the same way.

Used for direct connections only; a proxy's connections (CONNECT tunnels) stay on httpx's own backend.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore

from airflow_provider_jules.client.timeouts import bounded

#: Bytes asked of the socket per read (a TLS record is at most 16 KiB plus overhead).
RECV_BYTES = 65536
#: StreamReader buffer limit (the transport pauses reading above twice this).
READ_LIMIT = 65536
#: Steps of a TLS handshake or a TLS read before giving up (each step waits for the network).
MAX_TLS_STEPS = 10_000


@contextmanager
def _mapped(on_timeout: type[Exception], on_error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, asyncio.TimeoutError) as exc:  # two classes before Python 3.11
        raise on_timeout(str(exc) or type(exc).__name__) from exc
    except (OSError, ssl.SSLError, EOFError) as exc:  # ssl.SSLError is an OSError; explicit for clarity
        raise on_error(str(exc) or type(exc).__name__) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP connection (asyncio streams), optionally with TLS over memory BIOs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()

    # ------------------------------------------------------------------------------------ plumbing
    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _fill(self) -> None:
        """One network read into the TLS layer's incoming buffer (EOF included)."""
        data = await self._reader.read(RECV_BYTES)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def _tls_read(self, tls: ssl.SSLObject, max_bytes: int) -> bytes:
        for _ in range(MAX_TLS_STEPS):
            try:
                data = tls.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify or a ragged EOF: the end of the stream, as httpcore's anyio does
            if self._outgoing.pending:  # e.g. a TLS 1.3 KeyUpdate answered while reading
                await self._flush()
            return data
        raise ssl.SSLError("TLS read made no progress")

    async def _tls_write(self, tls: ssl.SSLObject, buffer: bytes) -> None:
        view = memoryview(buffer)
        for _ in range(MAX_TLS_STEPS):
            if not view:
                break
            try:
                view = view[tls.write(view) :]
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
        else:
            raise ssl.SSLError("TLS write made no progress")
        await self._flush()

    async def _handshake(self, tls: ssl.SSLObject) -> None:
        for _ in range(MAX_TLS_STEPS):
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
                continue
            await self._flush()
            return
        raise ssl.SSLError("TLS handshake made no progress")

    # ------------------------------------------------------------------------------------ httpcore API
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            if self._tls is None:
                return await bounded(self._reader.read(max_bytes), timeout)
            return await bounded(self._tls_read(self._tls, max_bytes), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            if self._tls is None:
                self._writer.write(buffer)
                await bounded(self._writer.drain(), timeout)
            else:
                await bounded(self._tls_write(self._tls, buffer), timeout)

    async def aclose(self) -> None:
        self._writer.close()  # no close_notify, as httpcore's anyio backend (standard_compatible=False)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._tls is not None:
            raise httpcore.ConnectError("TLS inside TLS is not supported here")
        tls = ssl_context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                await bounded(self._handshake(tls), timeout)
        except BaseException:
            await self.aclose()
            raise
        self._tls = tls
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._tls
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # Asked of idle connections: has the server closed it (or failed it) since the last answer?
            # asyncio reads the socket as data comes, so the socket itself is never readable here.
            return self._writer.is_closing() or self._reader.at_eof() or self._reader.exception() is not None
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend on asyncio streams (connect with happy eyeballs, as asyncio does)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            reader, writer = await bounded(
                asyncio.open_connection(
                    host,
                    port,
                    limit=READ_LIMIT,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=0.25,
                ),
                timeout,
            )
            sock = writer.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are not used by the Jules client")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
