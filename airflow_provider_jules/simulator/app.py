"""The Starlette application: the 12 ``/v1alpha`` endpoints plus ``/_simulator/`` control endpoints.

This module only routes: the API calls are answered by :mod:`.handlers` through :mod:`.gateway`, the
control endpoints by :mod:`.control`; :class:`~.state.SimulatorState` is what they share.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from airflow_provider_jules.simulator.config import ROUTES, SimulatorConfig
from airflow_provider_jules.simulator.control import ControlHandlers, loopback_only
from airflow_provider_jules.simulator.faults import fault_error
from airflow_provider_jules.simulator.gateway import ApiGateway
from airflow_provider_jules.simulator.handlers import ApiHandlers
from airflow_provider_jules.simulator.state import SimulatorState


def create_app(config: SimulatorConfig | None = None, state: SimulatorState | None = None) -> Starlette:
    """Build the simulator's ASGI app (``state`` lets a :class:`JulesSimulator` share its state)."""
    cfg = config or (state.config if state else SimulatorConfig())
    st = state or SimulatorState(cfg)
    api = ApiHandlers(cfg, ApiGateway(cfg, st))
    control = ControlHandlers(st)
    routes = [
        Route("/v1alpha/sessions", api.sessions, methods=["GET", "POST"]),
        Route("/v1alpha/sessions/{rest:path}", api.session_path, methods=["GET", "POST", "DELETE"]),
        Route("/v1alpha/sources", api.sources, methods=["GET"]),
        Route("/v1alpha/sources/{name:path}", api.source, methods=["GET"]),
        Route("/_simulator/stats", loopback_only(control.stats), methods=["GET"]),
        Route("/_simulator/requests", loopback_only(control.requests), methods=["GET"]),
        Route("/_simulator/faults", loopback_only(control.faults), methods=["GET", "POST"]),
        Route("/_simulator/reset", loopback_only(control.reset), methods=["POST"]),
        Route("/_simulator/clock", loopback_only(control.clock), methods=["POST"]),
        Route("/_simulator/sessions/{sid}", loopback_only(control.session), methods=["GET"]),
        Route("/_simulator/sessions/{sid}/state", loopback_only(control.session_state), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = st
    return app


__all__ = ["ROUTES", "SimulatorState", "create_app", "fault_error"]
