"""Run one client call, sync or async, against the hostile server."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any
from unittest import mock

from airflow_provider_jules.client.aio import AsyncJulesClient
from airflow_provider_jules.client.retry import NO_RETRY
from airflow_provider_jules.client.sync import JulesClient
from tests.hostile.conftest import KEY

KINDS = ["sync", "async"]
SESSION = {"name": "sessions/1", "id": "1", "state": "IN_PROGRESS", "updateTime": "2026-01-01T00:00:00Z"}
ERR_429 = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}


def client(kind: str, url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("retry_policy", NO_RETRY)
    key = kwargs.pop("api_key", KEY)
    return (JulesClient if kind == "sync" else AsyncJulesClient)(key, url, **kwargs)


def call(
    kind: str, url: str, method: str, *args: Any, client_kwargs: dict[str, Any] | None = None, **kw: Any
) -> Any:
    """Call ``method`` on a fresh client; lists are drained. Returns the result or raises."""
    if kind == "sync":
        with client(kind, url, **(client_kwargs or {})) as c:
            result = getattr(c, method)(*args, **kw)
            return list(result) if inspect.isgenerator(result) else result

    async def run() -> Any:
        async with client(kind, url, **(client_kwargs or {})) as c:
            result = getattr(c, method)(*args, **kw)
            if inspect.isasyncgen(result):
                return [item async for item in result]
            return await result

    return asyncio.run(run())


def timed(fn: Any) -> tuple[float, BaseException | None]:
    """Seconds ``fn`` took, and what it raised (None when it returned)."""
    start = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


def context(try_number: int = 1) -> dict[str, Any]:
    ti = mock.MagicMock(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=try_number)
    return {"ti": ti}


def pushed(ctx: dict[str, Any]) -> dict[str, Any]:
    """The XCom values an operator pushed through the mock task instance."""
    return {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
