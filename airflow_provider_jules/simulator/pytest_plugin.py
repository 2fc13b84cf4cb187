"""pytest plugin: ``pytest_plugins = ["airflow_provider_jules.simulator.pytest_plugin"]`` (or ``-p`` on the
command line / in ``addopts``).

Fixtures:

* ``jules_simulator``: a running :class:`JulesSimulator` (speed 100, api key ``sim-key``), reset before
  and after each test (sessions, requests, faults, clock speed).
* ``jules_simulator_config``: override it (in a ``conftest.py`` or a test module) to change the
  :class:`SimulatorConfig` of the simulator the tests below it get.

One server is started per distinct configuration, the first time a test asks for it, and shared by every
test that uses the same configuration until the end of the test session. A session-scoped server
fixture would not do: pytest caches it once, with whichever configuration the first test had, so a
``conftest.py`` overriding the configuration further down would silently get the first server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from airflow_provider_jules.simulator.config import SimulatorConfig
from airflow_provider_jules.simulator.server import JulesSimulator, run_simulator


class SimulatorServers:
    """The running simulators of one test session, one per configuration."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._running: dict[str, JulesSimulator] = {}

    def get(self, config: SimulatorConfig) -> JulesSimulator:
        key = repr(config)  # a dataclass: its repr names every setting
        if key not in self._running:
            self._running[key] = self._stack.enter_context(run_simulator(config))
        return self._running[key]


@pytest.fixture(scope="session")
def jules_simulator_config() -> SimulatorConfig:
    return SimulatorConfig(api_key="sim-key", speed=100.0, seed=0)


@pytest.fixture(scope="session")
def jules_simulator_servers() -> Iterator[SimulatorServers]:
    with ExitStack() as stack:
        yield SimulatorServers(stack)


@pytest.fixture
def jules_simulator(
    jules_simulator_servers: SimulatorServers, jules_simulator_config: SimulatorConfig
) -> Iterator[JulesSimulator]:
    sim = jules_simulator_servers.get(jules_simulator_config)
    sim.reset()
    yield sim
    sim.reset()
