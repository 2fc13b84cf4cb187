"""Scripted HTTP backends for client unit tests: they record the exact requests sent and answer from a script;
and the one fake hook (:class:`FakeHook`) of the operator, sensor, follower and trigger tests.

The same script drives the sync client (through a requests adapter) and the async client (through an httpx
MockTransport), so every endpoint test runs on both transports.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from airflow_provider_jules.client.aio import AsyncJulesClient
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.client.sync import JulesClient
from airflow_provider_jules.options import WaitOptions

API_KEY = "test-key-QWxhZGRpbjpvcGVu"
BASE = "https://jules.example.test"
FAST = RetryPolicy(max_attempts=4, initial_wait=0.001, max_wait=0.002, max_retry_after=5)


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if self.body is not None:
            return self.body
        return b"" if self.json is None else json.dumps(self.json).encode()


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


class Script:
    """Replies in order; an Exception instance (or a factory) in the script is raised instead."""

    def __init__(self, *replies: Reply | BaseException | Callable[[], BaseException]) -> None:
        self.replies = list(replies)
        self.sent: list[Sent] = []

    def record(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Any:
        parts = urlsplit(url)
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
        self.sent.append(
            Sent(
                method,
                parts.path,
                dict(parse_qsl(parts.query)),
                parsed,
                {k.lower(): v for k, v in headers.items()},
            )
        )
        if not self.replies:
            raise AssertionError(f"unexpected request {method} {url}")
        reply = self.replies.pop(0)
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply()
        if isinstance(reply, BaseException):
            raise reply
        return reply


class _Adapter(requests.adapters.BaseAdapter):
    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = request.body.encode() if isinstance(request.body, str) else request.body
        reply = self.script.record(request.method or "", request.url or "", dict(request.headers), body)
        response = requests.Response()
        response.status_code = reply.status
        response._content = reply.content()
        response.headers = CaseInsensitiveDict(reply.headers)
        response.reason = "Scripted"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def sync_client(script: Script, **kwargs: Any) -> JulesClient:
    session = requests.Session()
    session.mount("https://", _Adapter(script))
    session.mount("http://", _Adapter(script))
    kwargs.setdefault("retry_policy", FAST)
    return JulesClient(API_KEY, BASE, session=session, **kwargs)


def async_client(script: Script, **kwargs: Any) -> AsyncJulesClient:
    def handler(request: httpx.Request) -> httpx.Response:
        reply = script.record(request.method, str(request.url), dict(request.headers), request.content)
        return httpx.Response(reply.status, content=reply.content(), headers=reply.headers)

    kwargs.setdefault("retry_policy", FAST)
    return AsyncJulesClient(API_KEY, BASE, transport=httpx.MockTransport(handler), **kwargs)


def call(
    kind: str,
    script: Script,
    method: str,
    *args: Any,
    client_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``method`` on a fresh sync or async client; iterators are drained into lists."""
    if kind == "sync":
        result = getattr(sync_client(script, **(client_kwargs or {})), method)(*args, **kwargs)
        return list(result) if inspect.isgenerator(result) else result

    async def run() -> Any:
        async with async_client(script, **(client_kwargs or {})) as client:
            result = getattr(client, method)(*args, **kwargs)
            if inspect.isasyncgen(result):
                return [item async for item in result]
            return await result

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------- the fake hook
SESSION_UPDATE_TIME = "2026-01-01T00:00:00Z"


class FakeHook:
    """The one fake :class:`~airflow_provider_jules.hooks.jules.JulesHook` of the unit tests; every call is
    recorded in ``calls``.

    Sync face (operators, sensor, follower): ``get_session`` reads the next of ``states`` (the last one
    repeats) with ``session`` merged in; ``list_activities`` returns the ``activities`` created after the
    cursor; ``send_message`` is kept in ``sent`` and, with ``echo_messages``, shows up in the activities as
    it does in Jules.

    Async face (the trigger builds its own hook from the connection id, see :func:`install_hook`): the
    class-level ``polls`` script, one ``(session or exception, activities or exception)`` per poll; every
    instance is kept in ``instances``.
    """

    instances: ClassVar[list[FakeHook]] = []
    polls: ClassVar[list[tuple[Any, Any]]] = []

    def __init__(
        self,
        conn_id: str = "jules_default",
        *,
        states: list[str] | None = None,
        session: dict[str, Any] | None = None,
        activities: list[dict[str, Any]] | None = None,
        update_time: str = SESSION_UPDATE_TIME,
        echo_messages: bool = False,
    ) -> None:
        self.conn_id = conn_id
        self.states = list(states or ["IN_PROGRESS"])
        self.session = dict(session or {})
        self.activities = list(activities or [])
        self.update_time = update_time
        self.echo_messages = echo_messages
        self.calls: list[tuple[str, Any]] = []
        self.sent: list[str] = []
        self.closed = False
        FakeHook.instances.append(self)

    # ------------------------------------------------------------------------------------------ sync face
    def get_source(self, source: str) -> dict[str, Any]:
        self.calls.append(("get_source", source))
        return {"name": source, "githubRepo": {"defaultBranch": {"displayName": "develop"}}}

    def create_session(self, prompt: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(("create_session", fields))
        sid = "14550388554331055113"
        return {
            "id": sid,
            "name": f"sessions/{sid}",
            "state": "QUEUED",
            "url": f"https://jules.google.com/session/{sid}",
        }

    def get_session(self, sid: str) -> dict[str, Any]:
        self.calls.append(("get_session", sid))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {
            "id": sid,
            "name": f"sessions/{sid}",
            "state": state,
            "url": f"https://jules.google.com/session/{sid}",
            "updateTime": self.update_time,
            **self.session,
        }

    def list_activities(self, sid: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("list_activities", kwargs))
        after = kwargs.get("created_after")
        return [a for a in self.activities if after is None or a["createTime"] > after]

    def send_message(self, sid: str, prompt: str) -> None:
        self.calls.append(("send_message", prompt))
        self.sent.append(prompt)
        if self.echo_messages:
            self.activities.append(
                {
                    "id": f"u{len(self.sent)}",
                    "createTime": "2026-01-01T00:00:02Z",
                    "originator": "user",
                    "userMessaged": {"userMessage": prompt},
                }
            )

    def approve_plan(self, sid: str) -> None:
        self.calls.append(("approve_plan", sid))

    def archive_session(self, sid: str) -> dict[str, Any]:
        self.calls.append(("archive_session", sid))
        return {}

    def delete_session(self, sid: str) -> None:
        self.calls.append(("delete_session", sid))

    def list_sessions(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("list_sessions", kwargs))
        return []

    # ------------------------------------------------------------------------------------------ async face
    async def aget_session(self, session_id: str) -> dict[str, Any]:
        self.calls.append(("get", session_id))
        session, _ = FakeHook.polls[0]
        if isinstance(session, BaseException):
            FakeHook.polls.pop(0)
            raise session
        return dict(session)

    async def alist_activities(
        self, session_id: str, *, created_after: Any = None, new_session: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(("list", created_after))
        _, activities = FakeHook.polls.pop(0) if len(FakeHook.polls) > 1 else FakeHook.polls[0]
        if isinstance(activities, BaseException):
            raise activities
        for a in activities:
            yield a

    async def aarchive_session(self, session_id: str) -> dict[str, Any]:
        self.calls.append(("archive", session_id))
        return {}

    async def adelete_session(self, session_id: str) -> None:
        self.calls.append(("delete", session_id))

    async def aclose(self) -> None:
        self.closed = True


def install_hook(monkeypatch: Any, hook: Any) -> Any:
    """Every hook a task builds from its connection id is ``hook`` (a :class:`FakeHook` or a mock)."""
    import airflow_provider_jules.hooks.jules as hooks

    monkeypatch.setattr(hooks, "JulesHook", lambda *args, **kwargs: hook)
    return hook


def wait_options(**overrides: Any) -> WaitOptions:
    """Checked wait options for a follower built directly (an operator's defaults, not deferrable)."""
    values: dict[str, Any] = {
        "target_states": ["COMPLETED"],
        "poll_interval": 7,
        "timeout": 3600,
        "on_timeout": "archive",
        "on_kill_action": "archive",
        "deferrable": False,
        "inline_patch_limit": 100_000,
        "max_poll_errors": 5,
        "artifacts_path": None,
    }
    values.update(overrides)
    return WaitOptions.check(**values)


class FakeAccount:
    """A Jules account's session list for the fix notifier's tests: ``list_sessions`` (archived ones left
    out, as the API does), ``create_session`` (stamped with ``clock()``), ``archive_session`` and
    ``get_source``; every call is recorded in ``calls``. ``on_create`` runs just before a create is stored
    (a twin created by another worker at that moment)."""

    def __init__(self, clock: Callable[[], float], sessions: list[Any] | None = None) -> None:
        self.clock = clock
        self.sessions: list[Any] = list(sessions or [])
        self.calls: list[tuple[str, Any]] = []
        self.on_create: Callable[[FakeAccount], None] | None = None
        self.next_id = 1000

    @staticmethod
    def stamp(seconds: float) -> str:
        from airflow_provider_jules.client.models import format_timestamp_ns

        return format_timestamp_ns(int(seconds * 1e9))

    def add(
        self, title: str, *, age: float = 0.0, state: str = "IN_PROGRESS", **extra: Any
    ) -> dict[str, Any]:
        self.next_id += 1
        sid = str(self.next_id)
        session = {
            "name": f"sessions/{sid}",
            "id": sid,
            "title": title,
            "state": state,
            "createTime": self.stamp(self.clock() - age),
            "url": f"https://jules.google.com/session/{sid}",
            **extra,
        }
        self.sessions.append(session)
        return session

    def list_sessions(self, *, page_size: int | None = None) -> Any:
        self.calls.append(("list_sessions", page_size))
        for s in list(self.sessions):
            if not (isinstance(s, dict) and s.get("archived")):
                yield s

    def get_source(self, source: str) -> dict[str, Any]:
        self.calls.append(("get_source", source))
        return {"name": source, "githubRepo": {"defaultBranch": {"displayName": "main"}}}

    def create_session(self, prompt: str, **fields: Any) -> dict[str, Any]:
        self.calls.append(("create_session", fields))
        if self.on_create is not None:
            self.on_create(self)
        return self.add(fields.get("title") or prompt[:40], state="QUEUED")

    def archive_session(self, session_id: str) -> dict[str, Any]:
        self.calls.append(("archive_session", session_id))
        for s in self.sessions:
            if isinstance(s, dict) and s.get("id") == session_id:
                s["archived"] = True
                return s
        raise KeyError(session_id)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]
