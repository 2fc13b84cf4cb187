"""The Starlette application: the 12 ``/v1alpha`` endpoints plus ``/_simulator/`` control endpoints."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_jules.simulator.config import ROUTES, FaultConfig, FaultRule, SimulatorConfig
from airflow_provider_jules.simulator.engine import Engine
from airflow_provider_jules.simulator.errors import ApiError, bad_request, not_found

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_STATUS_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    502: "The service is currently unavailable.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
    404: "Requested entity was not found.",
}
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}
_REDACTED_HEADERS = {"x-goog-api-key", "authorization"}
_JSON = "application/json; charset=UTF-8"


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type=_JSON, headers=headers)


def _error_response(err: ApiError) -> Response:
    return _json_response(err.body(), err.code, err.headers)


def fault_error(rule: FaultRule) -> ApiError:
    status = rule.status or 503
    name = _STATUS_NAMES.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        if rule.retry_after_http_date:
            headers["Retry-After"] = email.utils.formatdate(time.time() + rule.retry_after, usegmt=True)
        else:
            headers["Retry-After"] = str(int(rule.retry_after))
    msg = rule.message or _STATUS_MESSAGES.get(status, "Simulated fault.")
    return ApiError(status, name, msg, headers=headers)


class SimulatorState:
    """Engine + request log + stats + faults: everything the app and the Python API share."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self._lock = threading.Lock()
        self.set_faults(config.faults)
        self.reset_log()

    # ---- log / stats
    def reset_log(self) -> None:
        with self._lock:
            self.log: collections.deque[dict[str, Any]] = collections.deque(
                maxlen=self.config.max_recorded_requests
            )
            self.by_route: collections.Counter[str] = collections.Counter()
            self.by_status: collections.Counter[str] = collections.Counter()
            self.by_route_status: dict[str, collections.Counter[str]] = {}
            self.total_requests = 0

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
            self.total_requests += 1
            route = entry["route"]
            status = str(entry["status"])
            self.by_route[route] += 1
            self.by_status[status] += 1
            self.by_route_status.setdefault(route, collections.Counter())[status] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self.total_requests,
                "requests_per_route": dict(self.by_route),
                "requests_per_status": dict(self.by_status),
                "requests_per_route_status": {k: dict(v) for k, v in self.by_route_status.items()},
                "sessions_created": self.engine.sessions_created,
                "sessions_live": self.engine.live_count(),
                "simulated_time": self.engine.clock.now_us() / 1e6,
                "speed": self.engine.clock.speed,
            }

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.log if route is None or e["route"] == route]

    # ---- faults
    def set_faults(self, faults: FaultConfig) -> None:
        with self._lock:
            self.faults = faults
            self._fault_rng = random.Random(f"faults:{faults.seed}")
            self._fault_seen = [0] * len(faults.rules)
            self._fault_fired = [0] * len(faults.rules)

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self.faults.rules.append(rule)
            self._fault_seen.append(0)
            self._fault_fired.append(0)

    def pick_fault(self, route: str) -> FaultRule | None:
        with self._lock:
            for i, rule in enumerate(self.faults.rules):
                if rule.route != "*" and rule.route != route:
                    continue
                if rule.count is not None and self._fault_fired[i] >= rule.count:
                    continue
                self._fault_seen[i] += 1
                if self._fault_seen[i] <= rule.skip:
                    continue
                if rule.probability < 1.0 and self._fault_rng.random() >= rule.probability:
                    continue
                self._fault_fired[i] += 1
                return rule
            return None

    def reset(self) -> None:
        self.engine.reset()
        self.engine.clock.set_speed(self.config.speed)
        self.set_faults(FaultConfig())
        self.reset_log()


# ----------------------------------------------------------------------------- request handling
def _page_size(request: Request, default: int) -> int:
    raw = request.query_params.get("pageSize")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"", "page_size") from None
    if value < 0:
        raise bad_request("page_size must not be negative.", "page_size")
    if value == 0:
        return default
    return min(value, 100)


async def _json_body(request: Request, allow_empty: bool) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("Invalid JSON payload received. Unexpected end of string.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(data, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    return data


def create_app(config: SimulatorConfig | None = None, state: SimulatorState | None = None) -> Starlette:
    """Build the simulator's ASGI app (``state`` lets a :class:`JulesSimulator` share its state)."""
    cfg = config or (state.config if state else SimulatorConfig())
    st = state or SimulatorState(cfg)
    engine = st.engine

    def empty(zero_length: bool) -> Response:
        if zero_length:
            return Response(b"", status_code=200, media_type=_JSON)
        return _json_response({})

    async def handle(request: Request, route: str, fn: Callable[[], Any], sid: str | None = None) -> Response:
        body_for_log: Any = None
        status = 500
        try:
            if request.method in ("POST", "PATCH", "PUT"):
                raw = await request.body()
                if raw:
                    try:
                        body_for_log = json.loads(raw)
                    except (ValueError, UnicodeDecodeError):
                        body_for_log = raw.decode("utf-8", "replace")
            key = request.headers.get("x-goog-api-key")
            if key is None or key != cfg.api_key:
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
            faults = st.faults
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            rule = st.pick_fault(route) if faults.rules else None
            if rule is not None:
                if rule.latency_ms > 0:
                    await asyncio.sleep(rule.latency_ms / 1000)
                if rule.status is not None:
                    if rule.store and route == "create_session":
                        try:
                            fn()
                        except ApiError:
                            pass
                    raise fault_error(rule)
            if sid is not None and route in ("list_activities", "get_activity"):
                s = engine.session_exists(sid)
                if s is not None:
                    s.activity_requests += 1
                    age = (engine.now_us() - s.create_us) / 1e6
                    if (
                        age < faults.transient_404_seconds
                        or s.activity_requests <= faults.transient_404_requests
                    ):
                        raise not_found()
            result = fn()
            resp = result if isinstance(result, Response) else _json_response(result)
        except ApiError as err:
            resp = _error_response(err)
        status = resp.status_code
        st.record(
            {
                "time": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "route": route,
                "json": body_for_log,
                "headers": {k: v for k, v in request.headers.items() if k not in _REDACTED_HEADERS},
                "status": status,
                # The client's address and port: which connection carried the request.
                "client": f"{request.client.host}:{request.client.port}" if request.client else None,
            }
        )
        return resp

    # ---- /v1alpha/sessions
    async def sessions_root(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_body(request, allow_empty=False)
            except ApiError as exc:
                return await handle(request, "create_session", _raiser(exc))
            return await handle(request, "create_session", lambda: engine.create_session(body))

        def do_list() -> Any:
            q = request.query_params
            return engine.list_sessions(_page_size(request, 30), q.get("pageToken", ""), q.get("filter", ""))

        return await handle(request, "list_sessions", do_list)

    async def sessions_sub(request: Request) -> Response:
        rest: str = request.path_params["rest"]
        method = request.method
        if "/" not in rest:
            sid, _, verb = rest.partition(":")
            if not verb:
                if method == "GET":
                    return await handle(request, "get_session", lambda: engine.get_session(sid))
                if method == "DELETE":

                    def delete() -> Any:
                        engine.delete_session(sid)
                        return empty(cfg.empty_reply_delete)

                    return await handle(request, "delete_session", delete)
            elif method == "POST":
                if verb == "sendMessage":
                    try:
                        body = await _json_body(request, allow_empty=False)
                    except ApiError as exc:
                        return await handle(request, "send_message", _raiser(exc))

                    def send() -> Any:
                        engine.send_message(sid, body)
                        return empty(cfg.empty_reply_send_message)

                    return await handle(request, "send_message", send)
                if verb == "approvePlan":

                    def approve() -> Any:
                        engine.approve_plan(sid)
                        return empty(cfg.empty_reply_approve_plan)

                    return await handle(request, "approve_plan", approve)
                if verb in ("archive", "unarchive"):
                    flag = verb == "archive"
                    return await handle(request, f"{verb}_session", lambda: engine.archive(sid, flag))
        else:
            parts = rest.split("/")
            if method == "GET" and len(parts) == 2 and parts[1] == "activities":
                sid = parts[0]

                def acts() -> Any:
                    q = request.query_params
                    return engine.list_activities(
                        sid, _page_size(request, 50), q.get("pageToken", ""), q.get("filter", "")
                    )

                return await handle(request, "list_activities", acts, sid=sid)
            if method == "GET" and len(parts) == 3 and parts[1] == "activities":
                sid, aid = parts[0], parts[2]
                return await handle(request, "get_activity", lambda: engine.get_activity(sid, aid), sid=sid)
        return await _unknown_route(request)

    async def sources_root(request: Request) -> Response:
        def do_list() -> Any:
            q = request.query_params
            return engine.list_sources(_page_size(request, 30), q.get("pageToken", ""), q.get("filter", ""))

        return await handle(request, "list_sources", do_list)

    async def sources_get(request: Request) -> Response:
        name: str = request.path_params["name"]
        return await handle(request, "get_source", lambda: engine.get_source(name))

    async def _unknown_route(request: Request) -> Response:
        err = ApiError(404, "NOT_FOUND", f"Method not found: {request.method} {request.url.path}")
        st.record(
            {
                "time": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "route": "unknown",
                "json": None,
                "headers": {k: v for k, v in request.headers.items() if k not in _REDACTED_HEADERS},
                "status": 404,
            }
        )
        return _error_response(err)

    # ---- /_simulator control endpoints (loopback only, no API key)
    def control(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapper(request: Request) -> Response:
            client = request.client.host if request.client else ""
            if client not in _LOOPBACK:
                return _json_response(
                    ApiError(403, "PERMISSION_DENIED", "Loopback clients only.").body(), 403
                )
            try:
                result = await fn(request)
            except ApiError as err:
                return _error_response(err)
            except (ValueError, TypeError, KeyError) as exc:
                return _error_response(bad_request(f"Invalid control request: {exc}"))
            return result if isinstance(result, Response) else _json_response(result)

        return wrapper

    async def c_stats(request: Request) -> Any:
        return st.stats()

    async def c_requests(request: Request) -> Any:
        return {"requests": st.requests(request.query_params.get("route"))}

    async def c_faults(request: Request) -> Any:
        if request.method == "GET":
            return st.faults.to_dict()
        body = await _json_body(request, allow_empty=True)
        mode = body.pop("mode", "replace")
        if mode == "append":
            for r in body.get("rules", []):
                st.add_rule(FaultRule.from_dict(r))
        else:
            st.set_faults(FaultConfig.from_dict(body))
        return st.faults.to_dict()

    async def c_reset(request: Request) -> Any:
        st.reset()
        return {}

    async def c_clock(request: Request) -> Any:
        body = await _json_body(request, allow_empty=True)
        if "speed" in body:
            engine.clock.set_speed(float(body["speed"]))
        if "advance" in body:
            engine.clock.advance(float(body["advance"]))
        return {"now": engine.now_us() / 1e6, "speed": engine.clock.speed}

    async def c_session(request: Request) -> Any:
        return engine.internal_view(request.path_params["sid"])

    async def c_session_state(request: Request) -> Any:
        body = await _json_body(request, allow_empty=False)
        state = body.get("state")
        if not isinstance(state, str) or not state:
            raise bad_request("state is required")
        return engine.force_state(request.path_params["sid"], state, bool(body.get("freeze", True)))

    routes = [
        Route("/v1alpha/sessions", sessions_root, methods=["GET", "POST"]),
        Route("/v1alpha/sessions/{rest:path}", sessions_sub, methods=["GET", "POST", "DELETE"]),
        Route("/v1alpha/sources", sources_root, methods=["GET"]),
        Route("/v1alpha/sources/{name:path}", sources_get, methods=["GET"]),
        Route("/_simulator/stats", control(c_stats), methods=["GET"]),
        Route("/_simulator/requests", control(c_requests), methods=["GET"]),
        Route("/_simulator/faults", control(c_faults), methods=["GET", "POST"]),
        Route("/_simulator/reset", control(c_reset), methods=["POST"]),
        Route("/_simulator/clock", control(c_clock), methods=["POST"]),
        Route("/_simulator/sessions/{sid}", control(c_session), methods=["GET"]),
        Route("/_simulator/sessions/{sid}/state", control(c_session_state), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = st
    return app


def _raiser(err: ApiError) -> Callable[[], Any]:
    def fail() -> Any:
        raise err

    return fail


__all__ = ["ROUTES", "SimulatorState", "create_app"]
