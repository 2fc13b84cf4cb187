"""The async client's shared connection pools: the Jules clients of one event loop share a few warm
connections (a triggerer with 1,000 Jules triggers holds POOL_SHARDS pools, not 1,000 idle connections).

Against the simulator on loopback, which logs the client address (so the connection) of every request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_jules.client import _pool, aio
from airflow_provider_jules.client.aio import AsyncJulesClient, shared_pools
from airflow_provider_jules.client.errors import JulesAuthError, JulesError, JulesTransportError
from airflow_provider_jules.client.retry import NO_RETRY
from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig, run_simulator
from airflow_provider_jules.simulator.tls import TLSFiles, make_throwaway_ca


def _client(sim: JulesSimulator, key: str | None = None, **kwargs: Any) -> AsyncJulesClient:
    return AsyncJulesClient(key or sim.api_key, sim.url, retry_policy=NO_RETRY, **kwargs)


async def _ask(client: AsyncJulesClient) -> None:
    await client.list_sources(page_size=1).__anext__()


def _connections(sim: JulesSimulator) -> list[str]:
    """The client address of each logged request, in order (one address = one connection)."""
    return [str(r["client"]) for r in sim.requests()]


def _run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())
    assert len(aio._POOLS) == 0, "a finished event loop left pools registered"


def test_clients_of_one_loop_share_the_pools_and_the_last_one_closes_them(
    jules_simulator: JulesSimulator,
) -> None:
    sim = jules_simulator
    n = aio.POOL_SHARDS * 3

    async def main() -> None:
        clients = [_client(sim) for _ in range(n)]
        assert shared_pools() == []  # a client opens nothing before its first request
        for client in clients:
            await _ask(client)
        assert shared_pools() == [3] * aio.POOL_SHARDS  # spread evenly over POOL_SHARDS pools
        first_round = _connections(sim)
        assert len(first_round) == n
        assert len(set(first_round)) == aio.POOL_SHARDS  # one request at a time: one connection a pool
        for client in clients:
            await _ask(client)
        assert set(_connections(sim)[n:]) == set(first_round)  # the second round: no new connection
        for client in clients[1:]:
            await client.aclose()
        assert shared_pools() == [1]
        await _ask(clients[0])  # the others closing never closed the pool under the last one
        assert _connections(sim)[-1] in set(first_round)
        await clients[0].aclose()
        assert shared_pools() == []

    _run(main)


def test_a_saturated_pool_keeps_a_warm_connection_for_every_client(
    jules_simulator: JulesSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All clients of one pool asking at once, round after round: far more requests in flight than
    KEEPALIVE_CONNECTIONS. The pool keeps up to one idle connection per client, so no round after the first
    opens a connection (httpcore's pool kept 8 and opened a new one for most requests under such load)."""
    sim = jules_simulator
    monkeypatch.setattr(aio, "POOL_SHARDS", 1)
    n = aio.KEEPALIVE_CONNECTIONS * 5

    async def main() -> None:
        clients = [_client(sim) for _ in range(n)]
        await asyncio.gather(*(_ask(c) for c in clients))
        lean = clients[0]._pool.lean  # type: ignore[union-attr]
        assert lean.max_idle == n
        opened = lean.opened
        assert 1 <= opened <= n
        for _ in range(4):
            await asyncio.gather(*(_ask(c) for c in clients))
        assert lean.opened == opened  # every request of rounds 2-5 found a warm connection
        assert len(set(_connections(sim))) == opened
        for client in clients[: n - 2]:
            await client.aclose()
        assert lean.max_idle == aio.KEEPALIVE_CONNECTIONS  # fewer clients, fewer idle connections kept
        await asyncio.gather(*(_ask(c) for c in clients[n - 2 :]))
        assert lean.idle_connections() <= aio.KEEPALIVE_CONNECTIONS
        for client in clients[n - 2 :]:
            await client.aclose()
        assert lean.idle_connections() == 0  # the last client closed the pool and its connections

    _run(main)


def test_a_connection_idle_longer_than_the_keepalive_is_not_reused(
    jules_simulator: JulesSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = jules_simulator
    monkeypatch.setattr(aio, "KEEPALIVE_S", 0.2)

    async def main() -> None:
        async with _client(sim) as client:
            await _ask(client)
            await _ask(client)  # within the keep-alive: the same connection
            await asyncio.sleep(0.4)
            await _ask(client)  # past it: a new one
            assert client._pool.lean.idle_connections() == 1  # type: ignore[union-attr]

    _run(main)
    first, second, third = _connections(sim)
    assert first == second != third


def test_each_request_carries_its_own_clients_key_over_a_shared_connection(
    jules_simulator: JulesSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = jules_simulator
    monkeypatch.setattr(aio, "POOL_SHARDS", 1)

    async def main() -> None:
        right, wrong = _client(sim), _client(sim, key="another-accounts-key-123")
        try:
            await _ask(right)
            with pytest.raises(JulesAuthError):
                await _ask(wrong)
            await _ask(right)
            assert shared_pools() == [2]
        finally:
            await right.aclose()
            await wrong.aclose()

    _run(main)
    statuses = [r["status"] for r in sim.requests()]
    assert statuses == [200, 401, 200]
    assert len(set(_connections(sim))) == 1, "the three requests did not share one connection"


def test_clients_with_different_network_settings_do_not_share(
    jules_simulator: JulesSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = jules_simulator
    monkeypatch.setattr(aio, "POOL_SHARDS", 1)  # so that only the settings keep clients apart

    async def main() -> None:
        clients = [_client(sim, timeout=20), _client(sim, timeout=25), _client(sim, timeout=25)]
        for client in clients:
            await _ask(client)
        assert sorted(shared_pools()) == [1, 2]
        for client in clients:
            await client.aclose()

    _run(main)
    first, second, third = _connections(sim)
    assert first != second and second == third


def test_a_closed_client_refuses_new_requests_and_closing_twice_is_harmless(
    jules_simulator: JulesSimulator,
) -> None:
    sim = jules_simulator

    async def main() -> None:
        client = _client(sim)
        await _ask(client)
        await client.aclose()
        await client.aclose()
        with pytest.raises(JulesError, match="closed"):
            await _ask(client)
        assert shared_pools() == []

    _run(main)
    assert len(sim.requests()) == 1  # the refused request never left


def test_each_event_loop_gets_its_own_pools(jules_simulator: JulesSimulator) -> None:
    """asyncio.run twice (as dag.test runs each deferral): no connection crosses loops, none is left."""
    sim = jules_simulator
    client = _client(sim)

    async def once() -> None:
        await _ask(client)
        assert shared_pools() == [1]

    asyncio.run(once())  # the client is not closed here: a later loop must not reuse this loop's pool

    async def again() -> None:
        await _ask(client)
        assert shared_pools() == [1]
        await client.aclose()

    _run(again)
    first, second = _connections(sim)
    assert first != second


# ------------------------------------------------------------------------------ the asyncio network backend
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_throwaway_ca(tmp_path_factory.mktemp("tls"))


def _trusting(monkeypatch: pytest.MonkeyPatch, ca: Path) -> None:
    """The clients' shared TLS context trusts ``ca`` (it is built once per process from SSL_CERT_FILE)."""
    context = ssl.create_default_context(cafile=str(ca))
    monkeypatch.setattr(aio, "_shared_ssl_context", lambda: context)


def test_https_keeps_one_tls_connection_between_requests(
    tls: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(api_key="tls-key", tls_certfile=str(tls.cert), tls_keyfile=str(tls.key))
    _trusting(monkeypatch, tls.ca)
    with run_simulator(config) as sim:

        async def main() -> None:
            async with AsyncJulesClient("tls-key", sim.url, retry_policy=NO_RETRY) as client:
                assert isinstance(client._http()._transport, aio._DirectTransport)  # the asyncio backend
                names = [s["name"] async for s in client.list_sources()]
                assert names and all(n.startswith("sources/") for n in names)
                session = await client.create_session(
                    "Fix the flaky test sim:scenario=stuck", source=names[0], starting_branch="main"
                )
                assert (await client.get_session(session["id"]))["id"] == session["id"]

        _run(main)
        addresses = _connections(sim)
    assert len(addresses) >= 3 and len(set(addresses)) == 1, addresses


def test_an_untrusted_certificate_fails_before_anything_is_sent(
    tls: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(api_key="tls-key", tls_certfile=str(tls.cert), tls_keyfile=str(tls.key))
    monkeypatch.setattr(aio, "_shared_ssl_context", ssl.create_default_context)  # not the throw-away CA
    with run_simulator(config) as sim:

        async def main() -> None:
            async with AsyncJulesClient("tls-key", sim.url, retry_policy=NO_RETRY) as client:
                with pytest.raises(JulesTransportError, match="ConnectError") as caught:
                    await client.get_session("123")
                assert caught.value.reached_server is False

        _run(main)
        assert sim.requests() == []


class _OneAnswerServer:
    """Answers each connection's first request with keep-alive, then closes the connection after ``linger``
    seconds (as a server's idle timeout does); with ``cut`` it sends half of the body and resets instead."""

    BODY = json.dumps({"name": "sessions/1", "id": "1", "state": "IN_PROGRESS"}).encode()

    def __init__(self, linger: float = 0.05, cut: bool = False) -> None:
        self.linger, self.cut, self.connections = linger, cut, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        head = (
            f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(self.BODY)}\r\n\r\n"
        )
        writer.write(head.encode() + (self.BODY[: len(self.BODY) // 2] if self.cut else self.BODY))
        await writer.drain()
        await asyncio.sleep(self.linger)
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """No retry policy: a reused dead connection would fail the second request."""

    async def main() -> None:
        server = _OneAnswerServer(linger=0.05)
        async with server as url:
            async with AsyncJulesClient("key-1234567890", url, retry_policy=NO_RETRY) as client:
                for _ in range(3):
                    assert (await client.get_session("1"))["id"] == "1"
                    await asyncio.sleep(0.3)  # the server closes the connection meanwhile
        assert server.connections == 3

    _run(main)


def test_a_connection_cut_mid_answer_is_a_transport_error() -> None:
    async def main() -> None:
        async with _OneAnswerServer(linger=0, cut=True) as url:
            async with AsyncJulesClient("key-1234567890", url, retry_policy=NO_RETRY) as client:
                with pytest.raises(JulesTransportError) as caught:
                    await client.get_session("1")
                assert caught.value.reached_server is True

    _run(main)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_poll_that_succeeds_leaves_nothing_for_the_cyclic_collector(
    scheme: str, tls: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a trigger does every poll (read the session, list new activities) is freed by reference counting
    alone: a triggerer with a thousand Jules triggers must not pause for garbage collections that the
    polls cause (benchmarks/RESULTS.md section 5 measured 191 such objects per poll before)."""
    files = {"tls_certfile": str(tls.cert), "tls_keyfile": str(tls.key)} if scheme == "https" else {}
    _trusting(monkeypatch, tls.ca)
    with run_simulator(SimulatorConfig(api_key="gc-key", **files)) as sim:
        assert sim.url.startswith(f"{scheme}://")
        client = AsyncJulesClient("gc-key", sim.url, retry_policy=NO_RETRY)

        async def poll(session_id: str) -> None:
            await client.get_session(session_id)
            assert [a async for a in client.list_activities(session_id)]

        async def main() -> None:
            session = await client.create_session("Fix the flaky test sim:scenario=stuck")
            sim.advance(3600)  # the session has its activities (and is stuck: they stay the same)
            await poll(session["id"])  # the connection is open and warm: what follows is a steady poll

            gc.collect()  # the collector is off around the polls only: the loop's start-up is not ours
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for _ in range(5):
                    await poll(session["id"])
                gc.collect()
                garbage.extend(sorted(type(o).__qualname__ for o in gc.garbage))
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
            await client.aclose()

        garbage: list[str] = []
        _run(main)
    assert garbage == []


def test_pooled_connections_skip_httpcores_locks(jules_simulator: JulesSimulator) -> None:
    """A connection of the pool serves one request at a time (it is on the idle stack or held by one
    request), so httpcore's per-connection anyio locks, which yield to the event loop on every acquire
    (three times a request, ~14 % of a poll's CPU in benchmarks/RESULTS.md), are swapped for one that
    never waits. Concurrent requests still each get a connection of their own."""
    sim = jules_simulator

    async def main() -> None:
        async with _client(sim) as client:
            await asyncio.gather(*(_ask(client) for _ in range(6)))
            lean = client._pool.lean  # type: ignore[union-attr]
            assert lean.opened == 6 and lean.idle_connections() == 6
            for stack in lean._idle.values():
                for connection in stack:
                    assert connection._request_lock is _pool._EXCLUSIVE
                    assert connection._connection._state_lock is _pool._EXCLUSIVE
            await asyncio.gather(*(_ask(client) for _ in range(6)))  # all six reused, none opened
            assert lean.opened == 6

    _run(main)
    assert len(set(_connections(sim))) == 6
