"""Bundled Jules API simulator (standalone: importing it does not import Airflow).

Public API::

    from airflow_provider_jules.simulator import SimulatorConfig, JulesSimulator, run_simulator, create_app

The heavier modules (Starlette, uvicorn) are imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_jules.simulator.config import (
    ROUTES,
    SCENARIOS,
    FaultConfig,
    FaultRule,
    SimulatorConfig,
    SourceSpec,
)

if TYPE_CHECKING:
    from airflow_provider_jules.simulator.app import create_app
    from airflow_provider_jules.simulator.server import JulesSimulator, run_simulator

__all__ = [
    "ROUTES",
    "SCENARIOS",
    "FaultConfig",
    "FaultRule",
    "JulesSimulator",
    "SimulatorConfig",
    "SourceSpec",
    "create_app",
    "run_simulator",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from airflow_provider_jules.simulator.app import create_app

        return create_app
    if name in ("JulesSimulator", "run_simulator"):
        from airflow_provider_jules.simulator import server

        return getattr(server, name)
    raise AttributeError(name)
