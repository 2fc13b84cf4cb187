"""A deliberately hostile HTTP server on 127.0.0.1, for the client's hardening tests.

It answers the way a broken proxy, a captive portal, an API regression or an attacker on a bad network
would: huge bodies, gzip bombs, endless chunked streams, one byte at a time, deeply nested JSON, paging
loops. Each test queues the behaviour of the next answers; every answer is bounded in bytes and in time
(it stops at its own limit, when the client goes away, or when the server stops), so no test can hang.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

#: No single answer streams longer than this, whatever its behaviour.
MAX_ANSWER_SECONDS = 20.0
#: No single answer sends more than this many bytes on the wire.
MAX_ANSWER_BYTES = 1024 * 1024 * 1024

Behaviour = Callable[["Conn"], None]


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class Conn:
    """One accepted request: what was received, and helpers to answer it (each write is bounded)."""

    def __init__(self, sock: socket.socket, request: Received, stop: threading.Event) -> None:
        self.sock = sock
        self.request = request
        self.stop = stop
        self.started = time.monotonic()
        self.sent = 0

    def alive(self) -> bool:
        return (
            not self.stop.is_set()
            and time.monotonic() - self.started < MAX_ANSWER_SECONDS
            and self.sent < MAX_ANSWER_BYTES
        )

    def write(self, data: bytes) -> bool:
        """Send ``data``; False once the client is gone or a bound is reached."""
        if not self.alive():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def head(self, status: int = 200, headers: dict[str, str] | None = None, reason: str = "X") -> bool:
        lines = [f"HTTP/1.1 {status} {reason}"]
        for key, value in {"Connection": "close", **(headers or {})}.items():
            lines.append(f"{key}: {value}")
        return self.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def stream(self, status: int, chunks: Iterator[bytes], headers: dict[str, str]) -> None:
        if self.head(status, headers):
            for chunk in chunks:
                if not self.write(chunk):
                    return

    def pause(self, seconds: float) -> bool:
        return not self.stop.wait(seconds)


# ---------------------------------------------------------------------------------------------- answers


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    def answer(conn: Conn) -> None:
        conn.head(
            status, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        )
        conn.write(body)

    return answer


def _repeat(first: bytes, filler: bytes, total: int) -> Iterator[bytes]:
    yield first
    sent = len(first)
    while sent < total:
        piece = filler[: total - sent]
        sent += len(piece)
        yield piece


def huge_json(total: int, status: int = 200, content_type: str = "application/json") -> Behaviour:
    """A valid-looking JSON string of ``total`` bytes, with a Content-Length."""

    def answer(conn: Conn) -> None:
        filler = b"x" * 65536
        chunks = _repeat(b'{"name": "sessions/1", "pad": "', filler, total)
        conn.stream(status, chunks, {"Content-Type": content_type, "Content-Length": str(total)})

    return answer


def html_error(total: int, status: int = 502) -> Behaviour:
    """A proxy's error page of ``total`` bytes."""

    def answer(conn: Conn) -> None:
        filler = b"<p>Bad gateway. " + b"a" * 65520 + b"</p>"
        chunks = _repeat(b"<html><body><h1>502 Bad Gateway</h1>", filler, total)
        conn.stream(status, chunks, {"Content-Type": "text/html", "Content-Length": str(total)})

    return answer


def endless_chunked() -> Behaviour:
    """Transfer-Encoding: chunked that never ends (until the client leaves or a bound is reached)."""

    def answer(conn: Conn) -> None:
        piece = b"y" * 65536
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        if conn.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}):
            conn.write(b'6\r\n{"a":"\r\n')
            while conn.write(frame):
                pass

    return answer


@cache
def gzip_bomb_body(inflated: int) -> bytes:
    """gzip of ``inflated`` zero bytes (about 1000x smaller), computed once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"0" * (1024 * 1024)
    parts = [compressor.compress(b'{"pad": "')]
    for _ in range(inflated // len(zeros)):
        parts.append(compressor.compress(zeros))
    parts.append(compressor.compress(b'"}'))
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bomb(inflated: int) -> Behaviour:
    def answer(conn: Conn) -> None:
        body = gzip_bomb_body(inflated)
        conn.head(
            200,
            {
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": str(len(body)),
            },
        )
        conn.write(body)

    return answer


def drip(body: bytes, every: float, *, headers_too: bool = False) -> Behaviour:
    """One byte each ``every`` seconds: of the body, or of the status line and headers too."""

    def answer(conn: Conn) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += "Connection: close\r\n\r\n"
        raw = head.encode()
        if not headers_too:
            if not conn.write(raw):
                return
            raw = b""
        for i in range(len(raw + body)):
            if not conn.write((raw + body)[i : i + 1]) or not conn.pause(every):
                return

    return answer


def silence(seconds: float) -> Behaviour:
    """Accept, then send nothing for ``seconds``."""

    def answer(conn: Conn) -> None:
        conn.pause(seconds)

    return answer


def reset() -> Behaviour:
    """Close the connection at once, without an answer."""

    def answer(conn: Conn) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    return answer


# ---------------------------------------------------------------------------------------------- server


@dataclass
class HostileServer:
    """``queue`` answers in order; ``default`` answers once the queue is empty; ``received`` records all."""

    default: Behaviour | None = None
    queue: list[Behaviour] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    _server: socketserver.ThreadingTCPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *behaviours: Behaviour) -> HostileServer:
        with self._lock:
            self.queue.extend(behaviours)
        return self

    def always(self, behaviour: Behaviour) -> HostileServer:
        self.default = behaviour
        return self

    def _next(self) -> Behaviour | None:
        with self._lock:
            return self.queue.pop(0) if self.queue else self.default

    def start(self) -> HostileServer:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    received = _read_request(sock)
                except (OSError, ValueError):
                    return
                if received is None:
                    return
                with outer._lock:
                    outer.received.append(received)
                behaviour = outer._next()
                if behaviour is None:
                    json_reply(
                        {"error": {"code": 500, "message": "no answer queued", "status": "INTERNAL"}}, 500
                    )(Conn(sock, received, outer.stop))
                    return
                behaviour(Conn(sock, received, outer.stop))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _read_request(sock: socket.socket) -> Received | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1024 * 1024:
            raise ValueError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(rest) < min(length, 1024 * 1024):
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Received(method, target, headers, rest[:length])
