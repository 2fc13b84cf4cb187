"""The CLI, the in-process API helpers and the import contract."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.parse

import httpx
import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig, run_simulator

ANY_HOST = "0.0.0.0"  # noqa: S104 - only to check that binding it is refused


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_jules.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for _ in range(10):
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("API key:") or not line:
            break
    return proc, lines


def test_cli_starts_prints_url_and_connection_and_serves() -> None:
    proc, lines = _start_cli("--api-key", "cli-key", "--speed", "50", "--scenario", "failure")
    try:
        assert "listening on http://127.0.0.1:" in lines[0], lines
        url = lines[0].split("listening on", 1)[1].split()[0]
        port = int(url.rsplit(":", 1)[1])
        assert port > 0
        conn = next(line for line in lines if line.startswith("AIRFLOW_CONN_JULES_DEFAULT='jules://"))
        assert urllib.parse.quote(url, safe="") in conn and ":cli-key@" in conn
        r = httpx.get(f"{url}/v1alpha/sources", params={"pageSize": 1}, headers={"x-goog-api-key": "cli-key"})
        assert r.status_code == 200 and r.json()["sources"][0]["id"] == "github/bobalover/boba"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        # uvicorn re-raises the signal after a graceful shutdown on recent versions
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)


def test_cli_fault_flags() -> None:
    proc, lines = _start_cli("--fault", "list_sources:429:1", "--retry-after", "5")
    try:
        url = lines[0].split("listening on", 1)[1].split()[0]
        h = {"x-goog-api-key": "sim-key"}
        assert httpx.get(f"{url}/v1alpha/sources", headers=h).status_code == 429
        assert httpx.get(f"{url}/v1alpha/sources", headers=h).status_code == 200
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)


def test_cli_refuses_non_loopback_host_without_allow_remote() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "airflow_provider_jules.simulator", "--host", ANY_HOST, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "refusing to bind non-loopback host" in r.stderr


def test_run_simulator_properties() -> None:
    with run_simulator(SimulatorConfig(api_key="a b/c", speed=100.0)) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port > 0
        assert sim.api_key == "a b/c"
        assert sim.conn_uri == f"jules://:a%20b%2Fc@{urllib.parse.quote(sim.url, safe='')}"
        assert json.loads(sim.conn_json) == {"conn_type": "jules", "host": sim.url, "password": "a b/c"}
        assert httpx.get(f"{sim.url}/v1alpha/sources", headers={"x-goog-api-key": "a b/c"}).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.url}/v1alpha/sources", timeout=2)


def test_jules_simulator_refuses_remote_host() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        JulesSimulator(SimulatorConfig(host=ANY_HOST)).start()


def test_create_app_embeddable_in_process() -> None:
    from airflow_provider_jules.simulator import create_app

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(
            app=create_app(SimulatorConfig(api_key="k")), client=("127.0.0.1", 1234)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            await client.get("/_simulator/stats")
            return await client.post(
                "/v1alpha/sessions", json={"prompt": "hi"}, headers={"x-goog-api-key": "k"}
            )

    r = asyncio.run(go())
    assert r.status_code == 200 and r.json()["state"] == "QUEUED"


def test_control_endpoints_refuse_non_loopback_clients() -> None:
    from airflow_provider_jules.simulator import create_app

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(SimulatorConfig()), client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await client.get("/_simulator/stats")

    assert asyncio.run(go()).status_code == 403


def test_import_does_not_import_airflow() -> None:
    code = (
        "import sys; import airflow_provider_jules.simulator as s; "
        "from airflow_provider_jules.simulator import run_simulator; "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_invalid_config_rejected() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(scenario="nope")
    with pytest.raises(ValueError):
        SimulatorConfig(speed=0)


def test_pytest_fixture_resets_between_tests_part1(jules_simulator: JulesSimulator) -> None:
    jules_simulator.replace_config(scenario="stuck")
    jules_simulator.inject(route="list_sources", status=503, count=None)
    httpx.post(
        f"{jules_simulator.url}/v1alpha/sessions", json={"prompt": "x"}, headers={"x-goog-api-key": "sim-key"}
    )
    assert jules_simulator.sessions_created == 1


def test_pytest_fixture_resets_between_tests_part2(jules_simulator: JulesSimulator) -> None:
    assert jules_simulator.sessions_created == 0 and jules_simulator.requests() == []
    assert jules_simulator.config.scenario == "happy"
    assert (
        httpx.get(f"{jules_simulator.url}/v1alpha/sources", headers={"x-goog-api-key": "sim-key"}).status_code
        == 200
    )


def test_loadtest_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_jules.simulator import loadtest

    assert loadtest.main(["--clients", "20", "--seconds", "1.5", "--sessions", "3", "--interval", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clients"] == 20 and result["errors"] == 0 and result["non_200"] == 0
    assert result["requests"] >= 40 and result["p99_ms"] > 0
