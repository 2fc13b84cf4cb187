"""The simulator's production-like network: HTTPS from a throw-away CA, and a round-trip latency model."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_jules.client.sync import JulesClient
from airflow_provider_jules.simulator import SimulatorConfig, run_simulator
from airflow_provider_jules.simulator import server as server_module
from airflow_provider_jules.simulator.server import NetworkModel
from airflow_provider_jules.simulator.tls import TLSFiles, make_throwaway_ca


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_throwaway_ca(tmp_path_factory.mktemp("tls"))


def test_https_with_the_throwaway_ca(tls: TLSFiles) -> None:
    config = SimulatorConfig(api_key="tls-key", tls_certfile=str(tls.cert), tls_keyfile=str(tls.key))
    with run_simulator(config) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(tls.ca))
        with httpx.Client(verify=trusting, trust_env=False) as client:
            response = client.get(f"{sim.api_url}/sources", headers={"x-goog-api-key": "tls-key"})
        assert response.status_code == 200 and response.json()["sources"], response.text
        with httpx.Client(verify=ssl.create_default_context(), trust_env=False) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.get(f"{sim.api_url}/sources")


def test_the_sync_client_trusts_the_ca_through_requests_ca_bundle(
    tls: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(api_key="tls-key", tls_certfile=str(tls.cert), tls_keyfile=str(tls.key))
    with run_simulator(config) as sim:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca))
        # An explicit requests.Session (environment honoured): the client may ignore the environment for
        # a loopback Base URL by itself, as it should for proxies; the real API is never loopback.
        client = JulesClient("tls-key", sim.url, session=requests.Session())
        assert [s["name"] for s in client.list_sources()], "no sources"
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        with pytest.raises(requests.exceptions.SSLError):  # without the setting, the CA is not trusted
            requests.Session().get(f"{sim.api_url}/sources", timeout=30)


def test_the_async_client_trusts_the_ca_through_ssl_cert_file(tls: TLSFiles) -> None:
    """In a fresh process: the async client's TLS context is built once per process, from SSL_CERT_FILE."""
    config = SimulatorConfig(api_key="tls-key", tls_certfile=str(tls.cert), tls_keyfile=str(tls.key))
    code = (
        "import asyncio, sys\n"
        "from airflow_provider_jules.client.aio import AsyncJulesClient\n"
        "async def main():\n"
        "    async with AsyncJulesClient('tls-key', sys.argv[1]) as client:\n"
        "        print([s async for s in client.list_sources()][0]['name'])\n"
        "asyncio.run(main())\n"
    )
    with run_simulator(config) as sim:
        env = {
            "SSL_CERT_FILE": str(tls.ca),
            "NO_PROXY": "127.0.0.1",
            "PATH": str(Path(sys.executable).parent),
        }
        out = subprocess.run(
            [sys.executable, "-c", code, sim.url], env=env, capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 0 and out.stdout.startswith("sources/github/"), out.stderr[-2000:]


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValueError, match="go together"):
        SimulatorConfig(tls_certfile="cert.pem")
    with pytest.raises(ValueError, match="round_trip_ms"):
        SimulatorConfig(round_trip_ms=-1)


@pytest.mark.parametrize(("tls", "handshakes"), [(False, 1), (True, 2)])
def test_round_trips_one_per_request_plus_the_handshakes_of_a_new_connection(
    monkeypatch: pytest.MonkeyPatch, tls: bool, handshakes: int
) -> None:
    waits: list[float] = []
    answered: list[str] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        answered.append(scope["path"])

    monkeypatch.setattr(server_module.asyncio, "sleep", fake_sleep)
    model = NetworkModel(app, round_trip_ms=40, tls=tls)

    async def requests() -> None:
        for path, port in (("/a", 5000), ("/b", 5000), ("/c", 5001), ("/d", 5000)):
            await model({"type": "http", "path": path, "client": ("127.0.0.1", port)}, None, None)
        await model({"type": "lifespan", "path": "-"}, None, None)

    asyncio.run(requests())
    first = pytest.approx(0.04 * (1 + handshakes))
    assert waits == [first, pytest.approx(0.04), first, pytest.approx(0.04)]
    assert answered == ["/a", "/b", "/c", "/d", "-"]


def test_cli_options(tls: TLSFiles) -> None:
    from airflow_provider_jules.simulator.__main__ import build_parser, config_from_args

    args = build_parser().parse_args(
        ["--round-trip-ms", "40", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    )
    config = config_from_args(args)
    assert (config.round_trip_ms, config.tls_certfile, config.tls_keyfile) == (
        40,
        str(tls.cert),
        str(tls.key),
    )
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.round_trip_ms, defaults.tls_certfile, defaults.tls_keyfile) == (0.0, None, None)
