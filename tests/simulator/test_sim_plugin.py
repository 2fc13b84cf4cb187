"""The simulator's pytest plugin (loaded once for the whole suite by ``addopts``): one server per config."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig
from airflow_provider_jules.simulator.pytest_plugin import SimulatorServers


@pytest.fixture(scope="module")
def jules_simulator_config() -> SimulatorConfig:
    """This module's own configuration: other tests of the session run on other ones."""
    return SimulatorConfig(api_key="sim-key-plugin-test", speed=50.0, seed=3)


def test_an_overridden_configuration_gets_its_own_server(jules_simulator: JulesSimulator) -> None:
    assert jules_simulator.api_key == "sim-key-plugin-test"
    r = httpx.get(f"{jules_simulator.url}/v1alpha/sources", headers={"x-goog-api-key": "sim-key-plugin-test"})
    assert r.status_code == 200


def test_one_server_per_configuration_stopped_with_the_session() -> None:
    with ExitStack() as stack:
        servers = SimulatorServers(stack)
        a = servers.get(SimulatorConfig(api_key="a"))
        assert servers.get(SimulatorConfig(api_key="a")) is a
        b = servers.get(SimulatorConfig(api_key="b"))
        assert b is not a and (a.api_key, b.api_key) == ("a", "b")
        url = a.url
        assert httpx.get(f"{url}/v1alpha/sources", headers={"x-goog-api-key": "a"}).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1alpha/sources", headers={"x-goog-api-key": "a"}, timeout=2)
