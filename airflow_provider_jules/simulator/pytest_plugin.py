"""pytest plugin: ``pytest_plugins = ["airflow_provider_jules.simulator.pytest_plugin"]``.

Fixtures:

* ``jules_simulator``: a running :class:`JulesSimulator` (speed 100, api key ``sim-key``), reset before
  each test (sessions, requests, faults, clock speed). One server is shared by the whole test session.
* ``jules_simulator_config``: override it to change the :class:`SimulatorConfig` of the shared server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_jules.simulator.config import SimulatorConfig
from airflow_provider_jules.simulator.server import JulesSimulator, run_simulator


@pytest.fixture(scope="session")
def jules_simulator_config() -> SimulatorConfig:
    return SimulatorConfig(api_key="sim-key", speed=100.0, seed=0)


@pytest.fixture(scope="session")
def _jules_simulator_server(jules_simulator_config: SimulatorConfig) -> Iterator[JulesSimulator]:
    with run_simulator(jules_simulator_config) as sim:
        yield sim


@pytest.fixture
def jules_simulator(_jules_simulator_server: JulesSimulator) -> Iterator[JulesSimulator]:
    sim = _jules_simulator_server
    sim.reset()
    yield sim
    sim.reset()
