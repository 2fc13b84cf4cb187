"""The one retry policy: which failure, status and method retry; Retry-After; create never blindly retried."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from airflow_provider_jules.client import (
    JulesRateLimitError,
    JulesServerError,
    JulesTransportError,
)
from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client.errors import JulesAuthError, JulesInvalidArgumentError, JulesNotFoundError
from airflow_provider_jules.client.retry import RetryPolicy, backoff, should_retry, wait_seconds
from tests.fakes import Reply, Script, async_client, call, sync_client

POLICY = RetryPolicy()
CREATE = core.create_session("x")
GET = core.get_session("1")
SEND = core.send_message("1", "hi")
APPROVE = core.approve_plan("1")
DELETE = core.delete_session("1")


def _recording_sleep(kind: str) -> tuple[list[float], Callable[[float], Any]]:
    """The sleeps a client of ``kind`` ("sync" or "async") asks for, recorded instead of slept."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    return slept, (slept.append if kind == "sync" else fake_sleep)


def _err(cls, status):
    return cls("m", http_status=status)


@pytest.mark.parametrize(
    ("exc", "request_", "expected"),
    [
        # 429: always, create included
        (_err(JulesRateLimitError, 429), GET, True),
        (_err(JulesRateLimitError, 429), CREATE, True),
        (_err(JulesRateLimitError, 429), SEND, True),
        # 5xx: idempotent calls only
        (_err(JulesServerError, 500), GET, True),
        (_err(JulesServerError, 503), APPROVE, True),
        (_err(JulesServerError, 503), DELETE, True),
        (_err(JulesServerError, 500), CREATE, False),
        (_err(JulesServerError, 503), SEND, False),
        # connection never opened: everything
        (JulesTransportError("refused", reached_server=False), CREATE, True),
        (JulesTransportError("refused", reached_server=False), GET, True),
        # sent, then timed out or reset: idempotent only
        (JulesTransportError("read timeout", reached_server=True), GET, True),
        (JulesTransportError("read timeout", reached_server=True), CREATE, False),
        (JulesTransportError("reset", reached_server=True), SEND, False),
        # errors no retry can fix
        (_err(JulesAuthError, 401), GET, False),
        (_err(JulesAuthError, 403), GET, False),
        (_err(JulesInvalidArgumentError, 400), GET, False),
        (_err(JulesNotFoundError, 404), GET, False),
    ],
)
def test_retry_matrix(exc, request_, expected):
    assert should_retry(exc, request_, POLICY) is expected


def test_404_retried_only_for_activities_of_new_sessions():
    nf = _err(JulesNotFoundError, 404)
    assert should_retry(nf, core.list_activities("1"), POLICY, tolerate_404=True)
    assert should_retry(nf, core.get_activity("1", "a"), POLICY, tolerate_404=True)
    assert not should_retry(nf, core.list_activities("1"), POLICY, tolerate_404=False)
    assert not should_retry(nf, GET, POLICY, tolerate_404=True)


def test_retry_after_longer_than_the_cap_is_not_waited_for():
    exc = JulesRateLimitError("m", http_status=429, retry_after=POLICY.max_retry_after + 1)
    assert not should_retry(exc, GET, POLICY)


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(initial_wait=1, max_wait=8, jitter=0.5)
    waits = [backoff(n, policy) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        base = min(8, 2 ** (n - 1))
        assert base * 0.5 <= wait <= base
    assert max(waits) <= 8


def test_wait_honours_retry_after_when_longer_than_backoff():
    exc = JulesRateLimitError("m", http_status=429, retry_after=7.0)
    assert wait_seconds(exc, 1, RetryPolicy(initial_wait=0.1)) == 7.0


def test_retry_after_parses_seconds_and_http_date():
    assert core.parse_retry_after("3") == 3.0
    now = time.time()
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert 18 <= (core.parse_retry_after(date, now=now) or 0) <= 21
    assert core.parse_retry_after("soon") is None


def _rate_limited(retry_after: str) -> Reply:
    return Reply(
        429,
        json={"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}},
        headers={"Retry-After": retry_after},
    )


def test_sync_client_sleeps_for_retry_after():
    slept: list[float] = []
    script = Script(_rate_limited("2"), Reply(json={"name": "sessions/1"}))
    client = sync_client(script, sleep=slept.append)
    assert client.get_session("1")["id"] == "1"
    assert slept == [2.0]


def test_async_client_sleeps_for_retry_after_http_date():
    slept, fake_sleep = _recording_sleep("async")
    date = email.utils.formatdate(time.time() + 3, usegmt=True)
    script = Script(_rate_limited(date), Reply(json={"name": "sessions/1"}))

    async def run():
        async with async_client(script, sleep=fake_sleep) as client:
            return await client.get_session("1")

    assert asyncio.run(run())["id"] == "1"
    assert len(slept) == 1 and 1.5 <= slept[0] <= 3.0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_create_is_retried_on_429(kind):
    script = Script(_rate_limited("0"), Reply(json={"name": "sessions/9"}))
    assert call(kind, script, "create_session", "x")["id"] == "9"
    assert [s.method for s in script.sent] == ["POST", "POST"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_create_is_not_retried_on_500(kind):
    script = Script(Reply(500, json={"error": {"code": 500, "status": "INTERNAL", "message": "boom"}}))
    with pytest.raises(JulesServerError):
        call(kind, script, "create_session", "x")
    assert len(script.sent) == 1


def _sync_read_timeout():
    return requests.ReadTimeout("read timed out")


def _async_read_timeout():
    return httpx.ReadTimeout("read timed out")


@pytest.mark.parametrize(("kind", "timeout"), [("sync", _sync_read_timeout), ("async", _async_read_timeout)])
def test_create_is_not_retried_on_read_timeout(kind, timeout):
    script = Script(timeout)
    with pytest.raises(JulesTransportError) as info:
        call(kind, script, "create_session", "x")
    assert info.value.reached_server is True
    assert len(script.sent) == 1


def _sync_refused():
    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "Connection refused")))


def _async_refused():
    return httpx.ConnectError("Connection refused")


@pytest.mark.parametrize(("kind", "refused"), [("sync", _sync_refused), ("async", _async_refused)])
def test_create_is_retried_when_connection_was_refused(kind, refused):
    script = Script(refused, Reply(json={"name": "sessions/5"}))
    assert call(kind, script, "create_session", "x")["id"] == "5"
    assert len(script.sent) == 2


def test_sync_connection_reset_after_send_counts_as_reached():
    aborted = requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))
    script = Script(aborted)
    with pytest.raises(JulesTransportError) as info:
        call("sync", script, "create_session", "x")
    assert info.value.reached_server is True and len(script.sent) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_idempotent_calls_retry_5xx_then_succeed(kind, status):
    script = Script(Reply(status, body=b"<html>busy</html>"), Reply(json={"name": "sessions/1"}))
    assert call(kind, script, "get_session", "1")["id"] == "1"
    assert len(script.sent) == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_retries_are_bounded_by_max_attempts(kind):
    busy = Reply(503, json={"error": {"code": 503, "status": "UNAVAILABLE", "message": "busy"}})
    script = Script(*[busy] * 10)
    with pytest.raises(JulesServerError):
        call(kind, script, "get_session", "1")
    assert len(script.sent) == 4  # tests.fakes.FAST.max_attempts


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_send_message_not_retried_after_ambiguous_5xx(kind):
    script = Script(Reply(503, body=b""))
    with pytest.raises(JulesServerError):
        call(kind, script, "send_message", "1", "hi")
    assert len(script.sent) == 1


def test_every_request_has_a_timeout():
    seen = {}

    class Recorder(requests.Session):
        def request(self, method, url, **kwargs):  # type: ignore[override]
            seen.update(kwargs)
            raise requests.ConnectTimeout("x")

    from airflow_provider_jules.client.sync import JulesClient

    client = JulesClient(
        "k" * 10,
        "https://jules.example.test",
        session=Recorder(),
        retry_policy=RetryPolicy(max_attempts=1),
        timeout=12,
    )
    with pytest.raises(JulesTransportError):
        client.get_session("1")
    assert seen["timeout"] == (10.0, 12.0)
    assert async_client(Script()).timeout == 30.0


def test_5xx_with_a_retry_after_above_the_cap_is_not_retried_like_429():
    for cls, status in ((JulesRateLimitError, 429), (JulesServerError, 503)):
        exc = cls("m", http_status=status, retry_after=POLICY.max_retry_after + 1)
        assert should_retry(exc, GET, POLICY) is False
        exc = cls("m", http_status=status, retry_after=POLICY.max_retry_after)
        assert should_retry(exc, GET, POLICY) is True


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_budget_is_checked_before_each_sleep(kind):
    """Retry-After 250 s each time with a 600 s budget: two sleeps (500 s); a third would pass 600 s."""
    policy = RetryPolicy(max_attempts=6, max_retry_after=300, max_elapsed=600)
    limited = Reply(
        429, json={"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, headers={"Retry-After": "250"}
    )
    script = Script(*[limited] * 6)
    slept, sleep = _recording_sleep(kind)
    with pytest.raises(JulesRateLimitError):
        call(kind, script, "get_session", "1", client_kwargs={"retry_policy": policy, "sleep": sleep})
    assert slept == [250.0, 250.0]
    assert len(script.sent) == 3


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_budget_counts_the_time_of_the_first_attempt(kind):
    """The async client sends its first attempt before the retry loop starts (no retry state for calls that
    succeed): that attempt's time still counts. A 0.3 s first attempt plus a 0.8 s wait passes a 1 s budget,
    so there is no second attempt."""
    policy = RetryPolicy(max_attempts=3, initial_wait=0.8, max_wait=0.8, jitter=0.0, max_elapsed=1.0)

    def slow_503() -> Reply:
        time.sleep(0.3)
        return Reply(503, json={"error": {"code": 503, "status": "UNAVAILABLE"}})

    script = Script(slow_503, Reply(json={"name": "sessions/1"}))
    slept, sleep = _recording_sleep(kind)
    with pytest.raises(JulesServerError):
        call(kind, script, "get_session", "1", client_kwargs={"retry_policy": policy, "sleep": sleep})
    assert slept == []
    assert len(script.sent) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failed_first_attempt_is_logged_and_retried_like_any_other(kind, caplog):
    """The first attempt's failure goes through the same policy: one warning per retry, then success."""
    script = Script(Reply(503), Reply(503), Reply(json={"name": "sessions/1"}))
    slept, sleep = _recording_sleep(kind)
    with caplog.at_level("WARNING", logger="airflow_provider_jules.client"):
        result = call(kind, script, "get_session", "1", client_kwargs={"sleep": sleep})
    assert result["id"] == "1"
    assert len(script.sent) == 3
    assert len(slept) == 2
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert [m.split("; ")[1].split(" in ")[0] for m in retries] == ["retry 1 of 3", "retry 2 of 3"]
