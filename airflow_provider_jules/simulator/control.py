"""The ``/_simulator`` control endpoints: stats, request log, faults, reset, clock and session overrides.

Loopback clients only (403 otherwise), no API key, never logged nor faulted. A control request that cannot
be read (bad JSON, a wrong type) answers 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_jules.simulator import wire
from airflow_provider_jules.simulator.config import FaultConfig, FaultRule
from airflow_provider_jules.simulator.errors import ApiError, bad_request
from airflow_provider_jules.simulator.state import SimulatorState

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}

ControlHandler = Callable[[Request], Awaitable[Any]]


def loopback_only(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for ``handler``: refuses non-loopback clients, answers its result (or error) as JSON."""

    async def endpoint(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if client not in _LOOPBACK:
            return wire.json_response(
                ApiError(403, "PERMISSION_DENIED", "Loopback clients only.").body(), 403
            )
        try:
            result = await handler(request)
        except ApiError as err:
            return wire.error_response(err)
        except (ValueError, TypeError, KeyError) as exc:
            return wire.error_response(bad_request(f"Invalid control request: {exc}"))
        return result if isinstance(result, Response) else wire.json_response(result)

    return endpoint


class ControlHandlers:
    """One method per control endpoint, over the shared :class:`~.state.SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.engine = state.engine

    async def stats(self, request: Request) -> Any:
        return self.state.stats()

    async def requests(self, request: Request) -> Any:
        return {"requests": self.state.requests(request.query_params.get("route"))}

    async def faults(self, request: Request) -> Any:
        """GET: the fault configuration; POST: replace it, or append rules (``"mode": "append"``)."""
        if request.method == "GET":
            return self.state.faults.to_dict()
        body = await wire.json_body(request, allow_empty=True)
        mode = body.pop("mode", "replace")
        if mode == "append":
            for r in body.get("rules", []):
                self.state.add_rule(FaultRule.from_dict(r))
        else:
            self.state.set_faults(FaultConfig.from_dict(body))
        return self.state.faults.to_dict()

    async def reset(self, request: Request) -> Any:
        self.state.reset()
        return {}

    async def clock(self, request: Request) -> Any:
        """Set the clock's ``speed`` and/or jump it ``advance`` seconds ahead."""
        body = await wire.json_body(request, allow_empty=True)
        if "speed" in body:
            self.engine.clock.set_speed(float(body["speed"]))
        if "advance" in body:
            self.engine.clock.advance(float(body["advance"]))
        return {"now": self.engine.now_us() / 1e6, "speed": self.engine.clock.speed}

    async def session(self, request: Request) -> Any:
        return self.engine.internal_view(request.path_params["sid"])

    async def session_state(self, request: Request) -> Any:
        """Force a session's state (frozen there unless ``"freeze": false``)."""
        body = await wire.json_body(request, allow_empty=False)
        state = body.get("state")
        if not isinstance(state, str) or not state:
            raise bad_request("state is required")
        return self.engine.force_state(request.path_params["sid"], state, bool(body.get("freeze", True)))
