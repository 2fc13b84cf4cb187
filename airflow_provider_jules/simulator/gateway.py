"""The path every API request takes, whatever its route: the gateway in front of the engine.

In order: the API key (401 without a valid ``X-Goog-Api-Key``), the injected latency and faults
(:class:`~.config.FaultConfig`), the transient 404 of a new session's activities (quirk Q18), then the
engine's answer; every request, answered or refused, goes into the request log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_jules.simulator import wire
from airflow_provider_jules.simulator.config import FaultConfig, SimulatorConfig
from airflow_provider_jules.simulator.errors import ApiError, not_found
from airflow_provider_jules.simulator.faults import fault_error
from airflow_provider_jules.simulator.state import SimulatorState

#: What a route asks of the engine, called once the request got through the gateway.
EngineCall = Callable[[], Any]
_ACTIVITY_ROUTES = ("list_activities", "get_activity")


def raiser(err: ApiError) -> EngineCall:
    """An engine call that fails with ``err`` (a request refused before the engine, answered in turn)."""

    def fail() -> Any:
        raise err

    return fail


class ApiGateway:
    """Runs one API request through the checks, the faults and the quirks, then logs it."""

    def __init__(self, config: SimulatorConfig, state: SimulatorState) -> None:
        self.config = config
        self.state = state

    async def handle(
        self, request: Request, route: str, call: EngineCall, sid: str | None = None
    ) -> Response:
        """Answer ``request`` (named ``route``) with ``call``'s result, or the error on the way."""
        generation = self.state.generation
        logged_body = await wire.body_for_log(request)
        try:
            self._check_api_key(request)
            faults = self.state.faults
            await self._inject_faults(faults, route, call)
            if sid is not None and route in _ACTIVITY_ROUTES:
                self._transient_not_found(faults, sid)
            result = call()
            resp = result if isinstance(result, Response) else wire.json_response(result)
        except ApiError as err:
            resp = wire.error_response(err)
        entry = wire.log_entry(request, route, logged_body, resp.status_code)
        # The client's address and port: which connection carried the request.
        entry["client"] = f"{request.client.host}:{request.client.port}" if request.client else None
        self.state.record(entry, generation)
        return resp

    async def unknown_route(self, request: Request) -> Response:
        """404 for a path or method the API does not have (logged as route ``unknown``)."""
        err = ApiError(404, "NOT_FOUND", f"Method not found: {request.method} {request.url.path}")
        self.state.record(wire.log_entry(request, "unknown", None, 404))
        return wire.error_response(err)

    def _check_api_key(self, request: Request) -> None:
        key = request.headers.get("x-goog-api-key")
        if key is None or key != self.config.api_key:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected a valid API key "
                "in the X-Goog-Api-Key header (bearer tokens are not accepted).",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "CREDENTIALS_MISSING" if key is None else "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "jules.googleapis.com"},
                    }
                ],
            )

    async def _inject_faults(self, faults: FaultConfig, route: str, call: EngineCall) -> None:
        """The configured latency, then the first fault rule that fires (raised as its error)."""
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        rule = self.state.pick_fault(route) if faults.rules else None
        if rule is None:
            return
        if rule.latency_ms > 0:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.status is not None:
            if rule.store and route == "create_session":  # the ambiguous create (quirk Q22)
                try:
                    call()
                except ApiError:
                    pass
            raise fault_error(rule)

    def _transient_not_found(self, faults: FaultConfig, sid: str) -> None:
        """Quirk Q18: a new session's activities answer 404 for a while (time or number of requests)."""
        engine = self.state.engine
        s = engine.session_exists(sid)
        if s is not None:
            s.activity_requests += 1
            age = (engine.now_us() - s.create_us) / 1e6
            if age < faults.transient_404_seconds or s.activity_requests <= faults.transient_404_requests:
                raise not_found()
