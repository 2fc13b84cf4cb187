"""Fixtures for the simulator tests (plain HTTP with httpx against a running simulator)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make sim_helpers importable (no __init__.py here)

from sim_helpers import Api

from airflow_provider_jules.simulator import JulesSimulator


@pytest.fixture
def sim(jules_simulator: JulesSimulator) -> JulesSimulator:
    return jules_simulator


@pytest.fixture
def api(jules_simulator: JulesSimulator) -> Iterator[Api]:
    a = Api(jules_simulator)
    yield a
    a.http.close()
