"""Scripted HTTP backends for client unit tests: they record the exact requests sent and answer from a script.

The same script drives the sync client (through a requests adapter) and the async client (through an httpx
MockTransport), so every endpoint test runs on both transports.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from airflow_provider_jules.client.aio import AsyncJulesClient
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.client.sync import JulesClient

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
