"""The ``/v1alpha`` route handlers: each API call, from its path and method to the engine method it calls.

Every call goes through the :class:`~.gateway.ApiGateway` (API key, faults, quirks, request log) under its
route name from :data:`~.config.ROUTES`; a path or method the API does not have is a logged 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_jules.simulator import wire
from airflow_provider_jules.simulator.config import SimulatorConfig
from airflow_provider_jules.simulator.errors import ApiError
from airflow_provider_jules.simulator.gateway import ApiGateway, raiser

_SessionAction = Callable[[Request, str], Awaitable[Response]]


class ApiHandlers:
    """The endpoints of the four ``/v1alpha`` routes; each names its call and hands it to the gateway."""

    def __init__(self, config: SimulatorConfig, gateway: ApiGateway) -> None:
        self.config = config
        self.gateway = gateway
        self.engine = gateway.state.engine
        # /v1alpha/sessions/{id}[:verb], by (method, verb)
        self._session_actions: dict[tuple[str, str], _SessionAction] = {
            ("GET", ""): self._get_session,
            ("DELETE", ""): self._delete_session,
            ("POST", "sendMessage"): self._send_message,
            ("POST", "approvePlan"): self._approve_plan,
            ("POST", "archive"): self._archive,
            ("POST", "unarchive"): self._unarchive,
        }

    # ---- routes
    async def sessions(self, request: Request) -> Response:
        """``/v1alpha/sessions``: create (POST) or list (GET)."""
        if request.method == "POST":
            return await self._with_body(request, "create_session", self.engine.create_session)
        q = request.query_params

        def do_list() -> Any:
            return self.engine.list_sessions(
                wire.page_size(request, 30), q.get("pageToken", ""), q.get("filter", "")
            )

        return await self.gateway.handle(request, "list_sessions", do_list)

    async def session_path(self, request: Request) -> Response:
        """``/v1alpha/sessions/{id}``, ``.../{id}:verb`` and ``.../{id}/activities[/{activity}]``."""
        rest: str = request.path_params["rest"]
        if "/" not in rest:
            sid, _, verb = rest.partition(":")
            action = self._session_actions.get((request.method, verb))
            if action is not None:
                return await action(request, sid)
        else:
            parts = rest.split("/")
            if request.method == "GET" and len(parts) == 2 and parts[1] == "activities":
                return await self._list_activities(request, parts[0])
            if request.method == "GET" and len(parts) == 3 and parts[1] == "activities":
                return await self._get_activity(request, parts[0], parts[2])
        return await self.gateway.unknown_route(request)

    async def sources(self, request: Request) -> Response:
        """``GET /v1alpha/sources``."""
        q = request.query_params

        def do_list() -> Any:
            return self.engine.list_sources(
                wire.page_size(request, 30), q.get("pageToken", ""), q.get("filter", "")
            )

        return await self.gateway.handle(request, "list_sources", do_list)

    async def source(self, request: Request) -> Response:
        """``GET /v1alpha/sources/{name}``."""
        name: str = request.path_params["name"]
        return await self.gateway.handle(request, "get_source", lambda: self.engine.get_source(name))

    # ---- one session
    async def _get_session(self, request: Request, sid: str) -> Response:
        return await self.gateway.handle(request, "get_session", lambda: self.engine.get_session(sid))

    async def _delete_session(self, request: Request, sid: str) -> Response:
        def delete() -> Any:
            self.engine.delete_session(sid)
            return wire.empty_reply(self.config.empty_reply_delete)

        return await self.gateway.handle(request, "delete_session", delete)

    async def _send_message(self, request: Request, sid: str) -> Response:
        def send(body: dict[str, Any]) -> Any:
            self.engine.send_message(sid, body)
            return wire.empty_reply(self.config.empty_reply_send_message)

        return await self._with_body(request, "send_message", send)

    async def _approve_plan(self, request: Request, sid: str) -> Response:
        def approve() -> Any:
            self.engine.approve_plan(sid)
            return wire.empty_reply(self.config.empty_reply_approve_plan)

        return await self.gateway.handle(request, "approve_plan", approve)

    async def _archive(self, request: Request, sid: str) -> Response:
        return await self.gateway.handle(request, "archive_session", lambda: self.engine.archive(sid, True))

    async def _unarchive(self, request: Request, sid: str) -> Response:
        return await self.gateway.handle(
            request, "unarchive_session", lambda: self.engine.archive(sid, False)
        )

    async def _list_activities(self, request: Request, sid: str) -> Response:
        q = request.query_params

        def do_list() -> Any:
            size = wire.page_size(request, 50)
            return self.engine.list_activities(sid, size, q.get("pageToken", ""), q.get("filter", ""))

        return await self.gateway.handle(request, "list_activities", do_list, sid=sid)

    async def _get_activity(self, request: Request, sid: str, aid: str) -> Response:
        return await self.gateway.handle(
            request, "get_activity", lambda: self.engine.get_activity(sid, aid), sid=sid
        )

    # ---- helpers
    async def _with_body(
        self, request: Request, route: str, use: Callable[[dict[str, Any]], Any]
    ) -> Response:
        """Read the JSON body first; a body that is not a JSON object is refused by the gateway in turn."""
        try:
            body = await wire.json_body(request, allow_empty=False)
        except ApiError as exc:
            return await self.gateway.handle(request, route, raiser(exc))
        return await self.gateway.handle(request, route, lambda: use(body))
