"""Items 8-10: no proxy for loopback and one proxy rule for both clients; test_connection and exceptions
never carry the key; links and URLs only to the hosts they claim."""

from __future__ import annotations

import logging
from unittest import mock

import pytest

from airflow_provider_jules.client import JulesAPIError, JulesTransportError
from airflow_provider_jules.hooks.jules import JulesHook
from airflow_provider_jules.links.jules import JulesPullRequestLink, JulesSessionLink
from airflow_provider_jules.operators.jules import JulesGetSessionOperator
from airflow_provider_jules.results import build_result, check_pull_request_url, check_session_url
from tests.hostile.conftest import KEY
from tests.hostile.helpers import KINDS, SESSION, call, context, pushed, timed
from tests.hostile.server import json_reply, reset

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

# ------------------------------------------------------------------------------------- 8. proxies


def _env_proxy(monkeypatch, url):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARS:
        monkeypatch.setenv(name, url)


@pytest.mark.parametrize("kind", KINDS)
def test_a_loopback_base_url_never_goes_through_a_proxy(server, proxy, monkeypatch, kind):
    _env_proxy(monkeypatch, proxy.url)
    server.always(json_reply(SESSION))
    assert call(kind, server.url, "get_session", "1")["id"] == "1"
    assert proxy.received == []
    assert server.received[0].headers["x-goog-api-key"] == KEY


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["extra", "environment"])
def test_both_clients_use_the_proxy_the_same_way_for_the_real_api(proxy, monkeypatch, kind, how):
    kwargs = {}
    if how == "extra":
        kwargs["proxy"] = proxy.url
        for name in PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
    else:
        _env_proxy(monkeypatch, proxy.url)
    _, exc = timed(lambda: call(kind, "https://jules.example.test", "get_session", "1", client_kwargs=kwargs))
    assert isinstance(exc, JulesTransportError), exc  # the stand-in proxy refuses the tunnel
    assert [(r.method, r.target) for r in proxy.received] == [("CONNECT", "jules.example.test:443")]
    assert KEY not in repr(proxy.received)  # https: the key only ever travels inside the tunnel


# ------------------------------------------------------------------------------------- 9. key hygiene


def test_test_connection_masks_a_key_the_server_echoes(server, conn):
    server.always(
        json_reply(
            {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": f"API key {KEY} not valid"}}, 401
        )
    )
    ok, message = JulesHook(conn).test_connection()
    assert ok is False
    assert KEY not in message and "API key *** not valid" in message


def test_test_connection_masks_a_key_echoed_in_an_html_page(server, conn):
    server.always(json_reply(f"<html>bad key {KEY}</html>".encode(), 403))
    ok, message = JulesHook(conn).test_connection()
    assert ok is False and KEY not in message and "***" in message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("answer", ["reset", "api_error"])
def test_exceptions_carry_no_chained_context(server, kind, answer):
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": f"echo {KEY}"}}
    server.always(reset() if answer == "reset" else json_reply(body, 400))
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1"))
    assert isinstance(exc, (JulesTransportError, JulesAPIError)), exc
    seen, node = [], exc
    while node is not None and len(seen) < 10:
        seen.append(node)
        node = node.__cause__ or node.__context__
    assert seen == [exc], [type(e).__name__ for e in seen]  # nothing chained, so no request (headers) kept
    assert KEY not in str(exc) and KEY not in repr(exc)


# ------------------------------------------------------------------------------------- 10. links and URLs


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://jules.google.com/session/1", True),
        ("https://jules.google.com:443/task/1", True),
        ("https://jules.google.com@evil.example/", False),
        ("https://user@jules.google.com/session/1", False),
        ("https://jules.google.com.evil.example/session/1", False),
        ("https://evil.example/https://jules.google.com/", False),
        ("http://jules.google.com/session/1", False),
        ("https://jules.google.com:8443/session/1", False),
        ("javascript:alert(1)//https://jules.google.com/", False),
        ("https://jules.google.com\\@evil.example/", False),
        ("https://jules.google.com/ session", False),
        ("", False),
        (5, False),
    ],
)
def test_the_session_link_only_for_jules_google_com(url, ok):
    assert (check_session_url(url)[0] == url) is ok


@pytest.mark.parametrize("hosts", [(), ("ghe.example.com",)])
@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://github.com/acme/web/pull/7", True),
        ("javascript:alert(document.cookie)", False),
        ("http://github.com/acme/web/pull/7", False),
        ("https://u:p@github.com/acme/web/pull/7", False),
        ("https://github.com@evil.example/", False),
        ("https:///acme", False),
        ("data:text/html,<script>", False),
        ("https://github.com/a\nSet-Cookie: x", False),
    ],
)
def test_the_pull_request_link_only_for_https_without_userinfo(url, ok, hosts):
    assert (check_pull_request_url(url, hosts)[0] == url) is ok


def test_a_github_enterprise_pull_request_link_only_when_the_connection_adds_its_host():
    # Issue #22: Jules opens pull requests on github.com; another host is kept only when it is added.
    url = "https://ghe.example.com/acme/web/pull/7"
    assert check_pull_request_url(url)[0] is None
    assert check_pull_request_url(url, ("ghe.example.com",))[0] == url


def test_a_failing_url_is_none_in_the_result_and_the_log_says_why(caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_jules.results")
    session = {
        **SESSION,
        "state": "COMPLETED",
        "url": "https://jules.google.com@evil.example/",
        "outputs": [{"pullRequest": {"url": "javascript:alert(1)", "title": "PR"}}],
    }
    result = build_result(session, [])
    assert result["url"] is None
    assert result["pull_request_url"] is None and result["pull_requests"][0]["url"] is None
    assert result["pull_requests"][0]["title"] == "PR"  # the rest of the PR is kept
    assert "Ignoring the session URL" in caplog.text and "user information" in caplog.text
    assert "Ignoring the pull request URL" in caplog.text and "not 'https'" in caplog.text


def test_xcom_carries_none_for_urls_that_fail_the_check(server, conn):
    session = {
        **SESSION,
        "url": "https://jules.google.com@evil.example/",
        "outputs": [{"pullRequest": {"url": "javascript:alert(1)"}}],
    }
    server.always(json_reply(session))
    server.answer(json_reply(session), json_reply({}))
    ctx = context()
    result = JulesGetSessionOperator(task_id="t", session_id="1", jules_conn_id=conn).execute(ctx)
    assert (result["url"], result["pull_request_url"]) == (None, None)
    xcom = pushed(ctx)
    assert (xcom["session_url"], xcom["pull_request_url"]) == (None, None)


@pytest.mark.parametrize(
    ("link", "stored", "shown"),
    [
        (JulesSessionLink(), "https://jules.google.com/session/1", "https://jules.google.com/session/1"),
        (JulesSessionLink(), "https://jules.google.com@evil.example/", ""),
        (JulesSessionLink(), "https://evil.example/session/1", ""),
        (JulesPullRequestLink(), "https://github.com/a/b/pull/1", "https://github.com/a/b/pull/1"),
        (JulesPullRequestLink(), "https://u@github.com/a/b/pull/1", ""),
        (JulesPullRequestLink(), None, ""),
    ],
)
def test_extra_links_apply_the_same_checks(link, stored, shown):
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=stored):
        assert link.get_link(mock.MagicMock(), ti_key=mock.MagicMock()) == shown
