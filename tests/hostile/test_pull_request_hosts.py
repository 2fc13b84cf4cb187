"""Issue #22 item 5 through a real hook and operator: a server that answers a look-alike pull request link,
and a connection whose extra ``pull_request_hosts`` adds a GitHub Enterprise host."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_jules.operators.jules import JulesGetSessionOperator
from tests.hostile.conftest import KEY
from tests.hostile.helpers import SESSION, context, pushed
from tests.hostile.server import json_reply

GHE_URL = "https://ghe.example.com/acme/web/pull/7"


def _answer(server, pr_url: str) -> None:
    session = {
        **SESSION,
        "state": "COMPLETED",
        "url": "https://jules.google.com/session/1",
        "outputs": [{"pullRequest": {"url": pr_url, "title": "Fix it"}}],
    }
    server.always(json_reply(session))
    server.answer(json_reply(session), json_reply({}))


def _ghe_conn(monkeypatch, server, hosts: object) -> str:
    extra = {"max_attempts": 1, "pull_request_hosts": hosts}
    payload = {"conn_type": "jules", "password": KEY, "host": server.url, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_HOSTILE_GHE", json.dumps(payload))
    return "hostile_ghe"


@pytest.mark.parametrize("hosts", ["ghe.example.com", ["GHE.example.com", "git.corp.example"]])
def test_a_host_the_connection_adds_is_kept_in_the_result_and_the_xcom(server, monkeypatch, hosts):
    _answer(server, GHE_URL)
    ctx = context()
    conn = _ghe_conn(monkeypatch, server, hosts)
    result = JulesGetSessionOperator(task_id="t", session_id="1", jules_conn_id=conn).execute(ctx)
    assert result["pull_request_url"] == GHE_URL and result["pull_requests"][0]["url"] == GHE_URL
    assert pushed(ctx)["pull_request_url"] == GHE_URL


def test_without_the_extra_the_same_host_is_dropped(server, conn, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_jules.results")
    _answer(server, GHE_URL)
    ctx = context()
    result = JulesGetSessionOperator(task_id="t", session_id="1", jules_conn_id=conn).execute(ctx)
    assert result["pull_request_url"] is None and pushed(ctx)["pull_request_url"] is None
    warning = "Ignoring the pull request URL on host 'ghe.example.com': its host is not github.com."
    assert warning in caplog.text


@pytest.mark.parametrize(
    "pr_url",
    [
        "https://g\u0456thub.com/acme/web/pull/7",
        "https://xn--gthub-n2e.com/acme/web/pull/7",
        "https://github.com.evil.example/acme/web/pull/7",
        "https://ghe.example.com.evil.example/acme/web/pull/7",
        "https://github.com@ghe.example.com.evil.example/acme/web/pull/7",
    ],
)
def test_a_look_alike_is_dropped_even_with_an_added_host(server, monkeypatch, pr_url, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_jules.results")
    _answer(server, pr_url)
    ctx = context()
    conn = _ghe_conn(monkeypatch, server, "ghe.example.com")
    result = JulesGetSessionOperator(task_id="t", session_id="1", jules_conn_id=conn).execute(ctx)
    assert result["pull_request_url"] is None and pushed(ctx)["pull_request_url"] is None
    assert result["url"] == "https://jules.google.com/session/1"
    assert "Ignoring the pull request URL on host" in caplog.text and "://" not in caplog.text


def test_a_bad_extra_fails_the_task_before_any_request(server, monkeypatch):
    from airflow_provider_jules._compat import AirflowFailException

    conn = _ghe_conn(monkeypatch, server, "https://ghe.example.com")
    with pytest.raises(AirflowFailException, match="pull_request_hosts"):
        JulesGetSessionOperator(task_id="t", session_id="1", jules_conn_id=conn).execute(context())
    assert server.received == []
