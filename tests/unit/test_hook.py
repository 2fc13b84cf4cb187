"""JulesHook: connection -> clients, validation before any request, test_connection, no key leaks."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_jules.client import JulesConfigError
from airflow_provider_jules.client._core import validate_base_url
from airflow_provider_jules.hooks.jules import JulesHook

KEY = "leak-canary-7f3a9c2e51d84b6a"


def _conn(monkeypatch, conn_id="jules_default", **fields):
    payload = {"conn_type": "jules", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def test_hook_builds_client_from_connection(monkeypatch):
    _conn(monkeypatch, password=KEY, host="http://127.0.0.1:9", extra={"timeout": "12"})
    client = JulesHook().get_conn()
    assert client.base_url == "http://127.0.0.1:9"
    assert client.timeout == 12.0


def test_default_base_url_is_the_google_api(monkeypatch):
    _conn(monkeypatch, password=KEY)
    assert JulesHook().client.base_url == "https://jules.googleapis.com"


def test_connection_uri_with_encoded_host(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_JULES_URI", f"jules://:{KEY}@http%3A%2F%2F127.0.0.1%3A8765")
    assert JulesHook("jules_uri").client.base_url == "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://jules.googleapis.com", True),
        ("https://jules.googleapis.com/v1alpha/", True),
        ("jules.googleapis.com", True),
        ("http://127.0.0.1:8765", True),
        ("http://localhost:8765", True),
        ("http://[::1]:8765", True),
        ("http://jules.googleapis.com", False),
        ("http://10.0.0.5:8765", False),
        ("ftp://x", False),
        ("https://user:pw@jules.googleapis.com", False),
    ],
)
def test_base_url_https_required_except_loopback(url, ok):
    if ok:
        assert validate_base_url(url).startswith(("https://", "http://"))
    else:
        with pytest.raises(JulesConfigError):
            validate_base_url(url)


def test_missing_api_key_fails_before_any_request(monkeypatch):
    _conn(monkeypatch, host="http://127.0.0.1:9")
    with pytest.raises(JulesConfigError, match="password field"):
        JulesHook().client  # noqa: B018


def test_unknown_connection_id_names_the_fix():
    with pytest.raises(JulesConfigError, match="AIRFLOW_CONN_NO_SUCH_CONN"):
        JulesHook("no_such_conn").client  # noqa: B018


def test_bad_timeout_extra_names_the_field(monkeypatch):
    _conn(monkeypatch, password=KEY, extra={"timeout": "soon"})
    with pytest.raises(JulesConfigError, match="timeout"):
        JulesHook().client  # noqa: B018


def test_test_connection_reports_failure_without_the_key(monkeypatch):
    # Port 9 (discard) on loopback refuses connections: a real transport error, no request reaches anything.
    _conn(monkeypatch, password=KEY, host="http://127.0.0.1:9", extra={"max_attempts": 1})
    ok, message = JulesHook().test_connection()
    assert ok is False
    assert "GET /v1alpha/sources" in message
    assert KEY not in message


def test_repr_hides_the_key(monkeypatch):
    _conn(monkeypatch, password=KEY, host="http://127.0.0.1:9")
    hook = JulesHook()
    assert KEY not in repr(hook) and KEY not in repr(hook.client)


def test_key_never_in_logs_or_exceptions_on_errors(monkeypatch, caplog):
    """Every failure path: refused connection with retries (logged), API errors, config errors."""
    from tests.fakes import Reply, Script, sync_client

    caplog.set_level(logging.DEBUG)
    _conn(monkeypatch, password=KEY, host="http://127.0.0.1:9", extra={"max_attempts": 2})
    texts = []
    try:
        JulesHook().get_session("1")
    except Exception as exc:
        texts.append(repr(exc) + str(exc))
    script = Script(
        Reply(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad key"}}),
        Reply(503, body=b"<html>" + KEY.encode()[:0] + b"</html>"),
        Reply(503, body=b""),
        Reply(503, body=b""),
        Reply(503, body=b""),
    )
    client = sync_client(script)
    client._api_key = KEY  # the key the fake server receives
    for fn in (lambda: client.get_session("1"), lambda: client.get_session("1")):
        try:
            fn()
        except Exception as exc:
            texts.append(repr(exc) + str(exc))
    assert len(texts) == 3
    assert all(s.headers["x-goog-api-key"] == KEY for s in script.sent)
    for text in [*texts, caplog.text]:
        assert KEY not in text
    assert "retry" in caplog.text  # the retries were logged, without the key
