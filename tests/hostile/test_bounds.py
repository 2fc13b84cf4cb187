"""Items 1-3 of the hardening issue: bounded memory, bounded time per attempt and per poll, an honest
retry budget. Each test runs against the hostile server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from airflow_provider_jules.client import JulesRateLimitError, JulesServerError, JulesTransportError
from airflow_provider_jules.client._core import DEFAULT_MAX_RESPONSE_BYTES
from airflow_provider_jules.client.retry import RetryPolicy
from tests.hostile.helpers import ERR_429, KINDS, SESSION, call, client, timed
from tests.hostile.server import (
    drip,
    endless_chunked,
    gzip_bomb,
    html_error,
    huge_json,
    json_reply,
)

MB = 1024 * 1024

# ------------------------------------------------------------------------------------- 1. size cap


def test_default_cap_is_ten_mebibytes(server):
    assert DEFAULT_MAX_RESPONSE_BYTES == 10 * MB
    assert client("sync", server.url).max_response_bytes == 10 * MB


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(lambda: huge_json(200 * MB), id="200MB-json"),
        pytest.param(lambda: gzip_bomb(100 * MB), id="gzip-1000x"),
        pytest.param(lambda: endless_chunked(), id="endless-chunked"),
    ],
)
def test_a_body_over_the_cap_is_a_typed_error_read_no_further(server, kind, behaviour):
    server.always(behaviour())
    took, exc = timed(
        lambda: call(kind, server.url, "get_session", "1", client_kwargs={"max_response_bytes": MB})
    )
    assert isinstance(exc, JulesTransportError), exc
    assert "exceeded 1048576 bytes" in str(exc) and "max_response_bytes" in str(exc)
    assert exc.reached_server is True  # a create cut short is ambiguous: reconciled, never re-sent
    assert took < 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_huge_error_page_gives_a_short_typed_error_quickly(server, kind):
    server.always(html_error(100 * MB))
    took, exc = timed(lambda: call(kind, server.url, "get_session", "1"))
    assert isinstance(exc, JulesServerError), exc
    assert "502 Bad Gateway" in str(exc)
    assert len(str(exc)) < 1000
    assert took < 5


def test_peak_memory_stays_bounded_while_the_server_sends_hundreds_of_megabytes(server):
    """A child process meets a 200 MB JSON body, a 200 MB gzip bomb, an endless stream and a 100 MB error
    page on both clients; its peak RSS (ru_maxrss) stays under 300 MB."""
    server.answer(*[huge_json(200 * MB), gzip_bomb(200 * MB), endless_chunked(), html_error(100 * MB)] * 2)
    script = textwrap.dedent(
        f"""
        import asyncio, json, resource
        from airflow_provider_jules.client.aio import AsyncJulesClient
        from airflow_provider_jules.client.retry import NO_RETRY
        from airflow_provider_jules.client.sync import JulesClient
        from airflow_provider_jules.client.errors import JulesError

        outcomes = []
        sync = JulesClient("k-1234", {server.url!r}, retry_policy=NO_RETRY)
        for _ in range(4):
            try:
                sync.get_session("1")
            except JulesError as exc:
                outcomes.append(type(exc).__name__)

        async def main():
            async with AsyncJulesClient("k-1234", {server.url!r}, retry_policy=NO_RETRY) as aio:
                for _ in range(4):
                    try:
                        await aio.get_session("1")
                    except JulesError as exc:
                        outcomes.append(type(exc).__name__)

        asyncio.run(main())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"outcomes": outcomes, "maxrss_kb": peak}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcomes"] == ["JulesTransportError"] * 3 + ["JulesServerError"] + (
        ["JulesTransportError"] * 3 + ["JulesServerError"]
    )
    assert report["maxrss_kb"] < 300 * 1024, report


# ------------------------------------------------------------------------------- 2. deadline per attempt


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_drip_body_ends_at_the_attempt_deadline(server, kind):
    body = json.dumps({**SESSION, "pad": "z" * 200}).encode()  # ~13 s at one byte per 0.05 s
    server.always(drip(body, 0.05))
    took, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs={"timeout": 1}))
    assert isinstance(exc, JulesTransportError), exc
    assert "within 1 s" in str(exc)
    assert 0.9 <= took < 2.5


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_drip_of_the_headers_ends_at_the_attempt_deadline(server, kind):
    """The status line and headers, one byte every 0.05 s (each read is quick: only the attempt's total
    deadline can stop it; the sync client cuts the socket with a watchdog)."""
    server.always(drip(b"{}", 0.05, headers_too=True))
    took, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs={"timeout": 1}))
    assert isinstance(exc, JulesTransportError) and "within 1 s" in str(exc), exc
    assert exc.reached_server and exc.__context__ is None and exc.__cause__ is None
    assert took < 2.5


def test_the_trigger_times_out_on_time_while_a_poll_is_in_flight(server, conn):
    """A poll that the server drips for ~13 s is cut at the trigger's absolute deadline: the timeout event
    comes within one poll_interval plus a second of it."""
    from airflow_provider_jules.triggers.jules import JulesSessionTrigger

    body = json.dumps({**SESSION, "pad": "z" * 200}).encode()
    server.always(drip(body, 0.05))
    end_time = time.time() + 1.0
    trigger = JulesSessionTrigger(session_id="1", jules_conn_id=conn, poll_interval=0.5, end_time=end_time)

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(asyncio.wait_for(first_event(), 30))
    arrived = time.time()
    assert payload["status"] == "timeout" and payload["reason"] == "deadline", payload
    assert arrived <= end_time + 0.5 + 1.0


# ------------------------------------------------------------------------------- 3. retry budget


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_sleeps_never_add_up_past_the_budget(server, kind):
    server.always(json_reply(ERR_429, 429, {"Retry-After": "299"}))
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)

    async def asleep(seconds):
        sleeps.append(seconds)

    kwargs = {"retry_policy": RetryPolicy(), "sleep": sleep if kind == "sync" else asleep}
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs=kwargs))
    assert isinstance(exc, JulesRateLimitError), exc
    assert sleeps == [299.0, 299.0]  # a third 299 s sleep would pass the 600 s budget: not taken
    assert sum(sleeps) <= RetryPolicy().max_elapsed
    assert len(server.received) == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [429, 503])
def test_429_and_5xx_share_the_retry_after_cap(server, kind, status):
    body = {"error": {"code": status, "message": "later", "status": "UNAVAILABLE"}}
    server.always(json_reply(body, status, {"Retry-After": "10000"}))
    sleeps: list[float] = []

    async def asleep(seconds):
        sleeps.append(seconds)

    kwargs = {"retry_policy": RetryPolicy(), "sleep": sleeps.append if kind == "sync" else asleep}
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs=kwargs))
    assert isinstance(exc, (JulesRateLimitError, JulesServerError)), exc
    assert (sleeps, len(server.received)) == ([], 1)  # more than max_retry_after (300 s): given up at once


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_a_normal_compressed_body_still_decodes(server, kind, encoding):
    import zlib

    body = json.dumps({**SESSION, "title": "t" * 300_000}).encode()
    wbits = {"gzip": 31, "deflate": 15, "deflate-raw": -15}[encoding]
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = compressor.compress(body) + compressor.flush()
    header = "gzip" if encoding == "gzip" else "deflate"
    server.always(json_reply(packed, 200, {"Content-Encoding": header}))
    session = call(kind, server.url, "get_session", "1")
    assert session["title"] == "t" * 300_000
    assert server.received[0].headers["accept-encoding"] == "gzip, deflate"


def test_the_sync_watchdog_fires_at_the_deadline_and_its_thread_ends_when_idle(monkeypatch):
    import time

    from airflow_provider_jules.client import sync

    reaper = sync._Reaper()
    monkeypatch.setattr(sync._Reaper, "IDLE_SECONDS", 0.3)
    monkeypatch.setattr(sync, "_REAPER", reaper)
    late, on_time = sync._Watchdog(0.1), sync._Watchdog(5)
    with late:
        with on_time:
            pass  # ends before its deadline: never fired
        deadline = time.monotonic() + 3
        while not late.fired and time.monotonic() < deadline:
            time.sleep(0.02)
    assert late.fired and not on_time.fired
    assert reaper.thread is not None
    reaper.thread.join(3)
    assert not reaper.thread.is_alive()
