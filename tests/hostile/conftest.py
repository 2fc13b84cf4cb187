"""Fixtures of the hostile-server tests: one server per test on 127.0.0.1, stopped after it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.hostile.server import HostileServer

KEY = "hostile-canary-5b1f0e7d93a4"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    srv = HostileServer().start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def proxy() -> Iterator[HostileServer]:
    """A second server standing in for an HTTP proxy: it records what reaches it and answers 502."""
    from tests.hostile.server import json_reply

    srv = HostileServer().start()
    srv.always(json_reply({"error": {"code": 502, "message": "proxy", "status": "UNAVAILABLE"}}, 502))
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch, server: HostileServer) -> str:
    """An Airflow connection 'hostile' to the server (environment variable), with no retries."""
    payload = {"conn_type": "jules", "password": KEY, "host": server.url, "extra": {"max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_HOSTILE", json.dumps(payload))
    return "hostile"
