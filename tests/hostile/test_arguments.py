"""Items 5 and 7: arguments and the API key are checked before any request; every error names the
argument and the fix, and never shows the key."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from airflow_provider_jules.client import JulesConfigError
from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client import validation as _validation
from airflow_provider_jules.hooks.jules import JulesHook
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator, JulesSendMessageOperator
from tests.hostile.conftest import KEY
from tests.hostile.helpers import KINDS, call, client, context, timed

# ------------------------------------------------------------------------------------- 5. arguments

BAD_ARGUMENTS = [
    ({"timeout": math.inf}, "timeout"),
    ({"timeout": 1e15}, "timeout"),
    ({"timeout": timedelta(days=30)}, "timeout"),
    ({"timeout": math.nan}, "timeout"),
    ({"poll_interval": math.inf}, "poll_interval"),
    ({"stall_timeout": -math.inf}, "stall_timeout"),
    ({"inline_patch_limit": True}, "inline_patch_limit"),
    ({"inline_patch_limit": 1.5}, "inline_patch_limit"),
    ({"max_poll_errors": True}, "max_poll_errors"),
    ({"title": 123}, "title"),
    ({"require_plan_approval": "false"}, "require_plan_approval"),
    ({"auto_create_pr": "yes"}, "auto_create_pr"),
    ({"adopt_existing_session": 1}, "adopt_existing_session"),
    ({"wait_for_completion": "false"}, "wait_for_completion"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_ARGUMENTS, ids=[f"{n}={v!r}" for v, n in BAD_ARGUMENTS])
def test_bad_operator_arguments_fail_before_any_request(server, conn, kwargs, name):
    op = JulesCreateSessionOperator(
        task_id="t", prompt="Fix it", source="acme/web", jules_conn_id=conn, deferrable=False, **kwargs
    )
    _, exc = timed(lambda: op.execute(context()))
    assert exc is not None and type(exc).__name__ == "AirflowFailException", repr(exc)
    assert name in str(exc)
    assert server.received == []


def test_bad_wait_arguments_of_send_message_fail_before_the_message(server, conn):
    op = JulesSendMessageOperator(
        task_id="t", session_id="1", prompt="hi", jules_conn_id=conn, wait_for_completion=True, timeout=1e300
    )
    _, exc = timed(lambda: op.execute(context()))
    assert exc is not None and "timeout" in str(exc) and "7 days" in str(exc), exc
    assert server.received == []


@pytest.mark.parametrize("value", ["false", 0, 1, "True"])
def test_require_plan_approval_must_be_a_bool_in_the_request_builder(value):
    with pytest.raises(JulesConfigError, match="require_plan_approval"):
        core.create_session("x", require_plan_approval=value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("timeout", [math.inf, math.nan, 1e15, 0, -1, True])
def test_client_timeout_must_be_finite_and_bounded(server, kind, timeout):
    with pytest.raises(JulesConfigError, match="timeout"):
        client(kind, server.url, timeout=timeout)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"timeout": "inf"}, "timeout"),
        ({"max_attempts": "1e9"}, "max_attempts"),
        ({"max_response_bytes": "nan"}, "max_response_bytes"),
        ({"max_response_bytes": 10}, "max_response_bytes"),
        ({"proxy": "socks5://x:1"}, "proxy"),
    ],
)
def test_bad_connection_extras_name_the_extra(monkeypatch, server, extra, name):
    payload = {"conn_type": "jules", "password": KEY, "host": server.url, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BAD_EXTRA", json.dumps(payload))
    with pytest.raises(JulesConfigError, match=name):
        JulesHook("bad_extra").client  # noqa: B018


def test_validation_helpers_refuse_bools_and_infinities():
    assert _validation.duration("x", timedelta(minutes=2)) == 120.0
    assert _validation.duration("x", None, allow_none=True) is None
    assert _validation.integer("n", 0) == 0
    for bad in (True, 1.0, "1"):
        with pytest.raises(JulesConfigError, match="n must be an integer"):
            _validation.integer("n", bad)
    with pytest.raises(JulesConfigError, match="x must be a positive number"):
        _validation.duration("x", True)
    with pytest.raises(JulesConfigError, match=r"<= 604800 \(7 days\)"):
        _validation.duration("x", 604801)


# ------------------------------------------------------------------------------------- 7. one key rule

BAD_KEYS = ["ключ-abc123", "abc\x7fdef", "abc\tdef", "abc def", "abc\x00def", "abc\u00a0def", "abc\u2028def"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", BAD_KEYS, ids=[repr(k) for k in BAD_KEYS])
def test_the_same_key_rule_for_both_clients_before_any_request(server, kind, key):
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs={"api_key": key}))
    assert isinstance(exc, JulesConfigError), repr(exc)
    assert "printable ASCII without spaces" in str(exc)
    for text in (str(exc), repr(exc)):
        assert key not in text and key.strip() not in text
    assert server.received == []


@pytest.mark.parametrize("kind", KINDS)
def test_surrounding_whitespace_of_a_pasted_key_is_dropped(server, kind):
    from tests.hostile.helpers import SESSION
    from tests.hostile.server import json_reply

    server.always(json_reply(SESSION))
    call(kind, server.url, "get_session", "1", client_kwargs={"api_key": f"  {KEY}\n"})
    assert server.received[0].headers["x-goog-api-key"] == KEY
