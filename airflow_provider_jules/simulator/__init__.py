"""Bundled Jules API simulator (standalone: importing it does not import Airflow).

Public API::

    from airflow_provider_jules.simulator import SimulatorConfig, JulesSimulator, run_simulator, create_app

The heavier modules (Starlette, uvicorn) are imported lazily on first use.

Where things live (each module's docstring says more)::

    config        SimulatorConfig, FaultConfig/FaultRule, SourceSpec, ROUTES, SCENARIOS
    server        JulesSimulator and run_simulator (uvicorn in a thread), the network latency model
    app           create_app: the route table
    handlers      the /v1alpha endpoints -> engine calls
    gateway       what every API request goes through: API key, faults, quirks, request log
    control       the loopback-only /_simulator endpoints
    wire          JSON bodies, page sizes, replies, request-log entries
    state         SimulatorState: engine + request log + faults, shared by the app and the Python API
    faults        the error a firing fault rule answers
    engine        Engine: the session store and its thread-safe Python API
    validation    checks of request bodies, filters and page tokens
    lifecycle     SessionLifecycle: the session state machine
    scenarios     prompt markers -> scenario settings, and the scripts of timed steps
    agent         what the simulated agent writes at each step (plans, progress, change sets, PRs)
    session       the Session record and its JSON forms
    catalog       the default sources and generated diffs
    clock, errors simulated time and timestamps; ApiError and its envelope
    tls           a throw-away CA for HTTPS on 127.0.0.1
    __main__      the CLI; loadtest: the capacity check; pytest_plugin: the jules_simulator fixtures
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
