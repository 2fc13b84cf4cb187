"""Fixtures for the simulator tests (plain HTTP with httpx against a running simulator)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make sim_helpers importable (no __init__.py here)

from sim_helpers import Api

from airflow_provider_jules.simulator import JulesSimulator
from airflow_provider_jules.simulator.pytest_plugin import (  # noqa: F401 - re-exported fixtures
    _jules_simulator_server,
    jules_simulator,
    jules_simulator_config,
)


@pytest.fixture
def sim(jules_simulator: JulesSimulator) -> JulesSimulator:  # noqa: F811
    return jules_simulator


@pytest.fixture
def api(jules_simulator: JulesSimulator) -> Iterator[Api]:  # noqa: F811
    a = Api(jules_simulator)
    yield a
    a.http.close()
