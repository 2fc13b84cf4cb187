"""Running the simulator: :class:`JulesSimulator` (uvicorn in a thread) and :func:`run_simulator`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from airflow_provider_jules.simulator.app import create_app
from airflow_provider_jules.simulator.config import FaultConfig, FaultRule, SimulatorConfig
from airflow_provider_jules.simulator.state import SimulatorState


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int, allow_remote: bool = False, backlog: int = 4096) -> socket.socket:
    """Bind and listen (refuses non-loopback hosts unless ``allow_remote``)."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"refusing to bind non-loopback host {host!r} without allow_remote")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def uvicorn_http_impl() -> str:
    """``"auto"`` (httptools) when httptools is importable, else ``"h11"``."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "auto"


class NetworkModel:
    """ASGI middleware: the latency of a distant server (``SimulatorConfig.round_trip_ms``).

    Every HTTP request waits one round trip (request out, response back) before the app answers it. The
    first request of a connection (a client address not seen before) waits one more round trip for the
    TCP handshake, and one more for the TLS 1.3 handshake when serving HTTPS. The waits are asyncio
    sleeps: the server handles other requests meanwhile, as the network would carry them.
    """

    MAX_TRACKED = 200_000  # client addresses remembered (bounded; cleared when full)

    def __init__(self, app: Any, round_trip_ms: float, tls: bool) -> None:
        self.app = app
        self.round_trip = round_trip_ms / 1000
        self.handshakes = 2 if tls else 1
        self._seen: set[tuple[str, int]] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            trips = 1
            client = scope.get("client")
            if client is not None:
                key = (str(client[0]), int(client[1]))
                if key not in self._seen:
                    if len(self._seen) >= self.MAX_TRACKED:
                        self._seen.clear()
                    self._seen.add(key)
                    trips += self.handshakes
            await asyncio.sleep(self.round_trip * trips)
        await self.app(scope, receive, send)


def make_uvicorn_server(app: Any, config: SimulatorConfig) -> Any:
    import uvicorn

    tls: dict[str, Any] = {}
    if config.tls_certfile is not None:
        tls = {"ssl_certfile": config.tls_certfile, "ssl_keyfile": config.tls_keyfile}
    ucfg = uvicorn.Config(
        app,
        **tls,
        http=uvicorn_http_impl(),
        loop="auto",
        access_log=False,
        log_level="warning",
        backlog=4096,
        limit_concurrency=None,
        timeout_keep_alive=75,
        lifespan="off",
    )
    return uvicorn.Server(ucfg)


def conn_uri(url: str, api_key: str) -> str:
    """Airflow connection URI for conn_type ``jules`` (host = the URL-encoded base URL)."""
    return f"jules://:{urllib.parse.quote(api_key, safe='')}@{urllib.parse.quote(url, safe='')}"


def conn_json(url: str, api_key: str) -> str:
    return json.dumps({"conn_type": "jules", "host": url, "password": api_key})


class JulesSimulator:
    """A simulator instance: engine state plus (once started) a uvicorn server on 127.0.0.1.

    The Python API works in-process (no HTTP) and is thread-safe.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._initial = dataclasses.replace(self.config)
        self.state = SimulatorState(self.config)
        self.app: Any = create_app(self.config, self.state)
        if self.config.round_trip_ms > 0:
            self.app = NetworkModel(self.app, self.config.round_trip_ms, self.config.tls_certfile is not None)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port: int = 0

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> JulesSimulator:
        if self._thread is not None:
            return self
        self._sock = bind_socket(self.config.host, self.config.port, self.config.allow_remote)
        self.port = int(self._sock.getsockname()[1])
        self._server = make_uvicorn_server(self.app, self.config)
        sock = self._sock
        self._thread = threading.Thread(
            target=lambda: self._server.run(sockets=[sock]), name="jules-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Jules simulator failed to start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = None

    def __enter__(self) -> JulesSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.config.tls_certfile is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1alpha"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def conn_uri(self) -> str:
        return conn_uri(self.url, self.api_key)

    @property
    def conn_json(self) -> str:
        return conn_json(self.url, self.api_key)

    # ------------------------------------------------------------ introspection
    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        return self.state.requests(route)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    @property
    def sessions_created(self) -> int:
        return self.state.engine.sessions_created

    def session_info(self, session_id: str) -> dict[str, Any]:
        return self.state.engine.internal_view(session_id)

    # ------------------------------------------------------------ control
    def reset(self) -> None:
        """Clear sessions, requests, stats and faults; undo :meth:`replace_config`; restore the speed."""
        for f in dataclasses.fields(self._initial):
            setattr(self.config, f.name, getattr(self._initial, f.name))
        self.state.reset()

    def advance(self, seconds: float) -> None:
        """Jump the simulated clock forward by ``seconds``."""
        self.state.engine.clock.advance(seconds)

    def set_speed(self, speed: float) -> None:
        self.state.engine.clock.set_speed(speed)

    def set_faults(self, faults: FaultConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Replace the whole fault configuration (a FaultConfig, its dict form, or keyword fields)."""
        if faults is None:
            faults = FaultConfig.from_dict(kwargs)
        elif isinstance(faults, dict):
            faults = FaultConfig.from_dict({**faults, **kwargs})
        self.state.set_faults(faults)

    def clear_faults(self) -> None:
        self.state.set_faults(FaultConfig())

    def inject(
        self,
        route: str = "*",
        status: int | None = 503,
        count: int | None = 1,
        *,
        probability: float = 1.0,
        skip: int = 0,
        retry_after: float | None = None,
        retry_after_http_date: bool = False,
        latency_ms: float = 0.0,
        store: bool = False,
        message: str | None = None,
    ) -> FaultRule:
        """Append one :class:`FaultRule` ("the next ``count`` requests to ``route`` get ``status``")."""
        rule = FaultRule.from_dict(
            {
                "route": route,
                "status": status,
                "count": count,
                "probability": probability,
                "skip": skip,
                "retry_after": retry_after,
                "retry_after_http_date": retry_after_http_date,
                "latency_ms": latency_ms,
                "store": store,
                "message": message,
            }
        )
        self.state.add_rule(rule)
        return rule

    def force_state(self, session_id: str, state: str, freeze: bool = True) -> dict[str, Any]:
        return self.state.engine.force_state(session_id, state, freeze)

    def replace_config(self, **changes: Any) -> None:
        """Change config fields at run time (e.g. ``scenario``, ``daily_quota``, ``approval_timeout``)."""
        new = dataclasses.replace(self.config, **changes)
        for f in dataclasses.fields(new):
            setattr(self.config, f.name, getattr(new, f.name))


@contextlib.contextmanager
def run_simulator(config: SimulatorConfig | None = None) -> Iterator[JulesSimulator]:
    """Start a simulator on 127.0.0.1 (free port unless ``config.port``) in a background thread."""
    sim = JulesSimulator(config)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
