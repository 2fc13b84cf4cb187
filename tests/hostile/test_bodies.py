"""Items 4 and 6: every malformed body is a typed error (or tolerated field by field), and a paging loop
is noticed. Nothing raises KeyError, TypeError, AttributeError or RecursionError."""

from __future__ import annotations

import pytest

from airflow_provider_jules.client import JulesRateLimitError, JulesServerError
from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client.errors import JulesError, JulesInvalidResponseError
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
    JulesListSourcesOperator,
    JulesSendMessageOperator,
)
from airflow_provider_jules.results import build_result
from tests.hostile.helpers import KINDS, SESSION, call, context, pushed, timed
from tests.hostile.server import Conn, json_reply

DEEP = b"[" * 200_000 + b"]" * 200_000
UNTYPED = (KeyError, TypeError, AttributeError, RecursionError)

# ------------------------------------------------------------------------------------- 4. bodies


@pytest.mark.parametrize("kind", KINDS)
def test_deeply_nested_json_on_200_is_a_typed_error(server, kind):
    server.always(json_reply(DEEP))
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1"))
    assert isinstance(exc, JulesInvalidResponseError), repr(exc)[:300]
    assert "nested too deeply" in str(exc)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "cls"), [(500, JulesServerError), (429, JulesRateLimitError)])
def test_deeply_nested_json_on_an_error_keeps_its_type_and_its_retry(server, kind, status, cls):
    server.always(json_reply(DEEP, status))
    policy = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002)
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1", client_kwargs={"retry_policy": policy}))
    assert isinstance(exc, cls), repr(exc)[:300]
    assert len(server.received) == 3  # still retried like any 5xx/429


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("body", [b"[]", b"null", b"5", b'"x"', b"[{}]"])
def test_a_body_that_is_not_an_object_is_a_typed_error(server, kind, body):
    server.always(json_reply(body))
    _, exc = timed(lambda: call(kind, server.url, "get_session", "1"))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "where an object was expected" in str(exc)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["get_session", "create_session"])
def test_a_session_without_id_or_name_is_a_typed_error(server, kind, method):
    server.always(json_reply({"state": "QUEUED", "name": "sessions/../x"}))
    args = ("1",) if method == "get_session" else ("Fix it",)
    _, exc = timed(lambda: call(kind, server.url, method, *args))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "without a usable 'name' or 'id'" in str(exc)


@pytest.mark.parametrize("kind", KINDS)
def test_a_null_list_is_empty_as_proto3_json_says(server, kind):
    server.always(json_reply({"sessions": None}))
    assert call(kind, server.url, "list_sessions") == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("list_activities", {"activities": 5}),
        ("list_sessions", {"sessions": {"a": 1}}),
        ("list_sources", {"sources": "x"}),
    ],
)
def test_a_list_field_that_is_not_a_list_is_a_typed_error(server, kind, method, body):
    server.always(json_reply(body))
    args = ("1",) if method == "list_activities" else ()
    _, exc = timed(lambda: call(kind, server.url, method, *args))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "not a list" in str(exc)


@pytest.mark.parametrize("kind", KINDS)
def test_listed_sessions_without_an_id_are_skipped(server, kind):
    server.always(json_reply({"sessions": [{"title": "no id"}, SESSION, 5]}))
    assert [s["id"] for s in call(kind, server.url, "list_sessions")] == ["1"]


@pytest.mark.parametrize(
    "operator",
    [
        lambda c: JulesSendMessageOperator(task_id="t", session_id="1", prompt="hi", jules_conn_id=c),
        lambda c: JulesApprovePlanOperator(task_id="t", session_id="1", jules_conn_id=c),
    ],
    ids=["send_message", "approve_plan"],
)
@pytest.mark.parametrize("reply", [{"state": "AWAITING_PLAN_APPROVAL"}, [SESSION], None])
def test_the_session_read_before_a_post_is_validated_before_it(server, conn, operator, reply):
    server.always(json_reply(b"null" if reply is None else __import__("json").dumps(reply).encode()))
    _, exc = timed(lambda: operator(conn).execute(context()))
    assert exc is not None and not isinstance(exc, UNTYPED), repr(exc)
    assert "INVALID_RESPONSE" in str(exc)
    assert [r.method for r in server.received] == ["GET"]  # the POST was never sent


@pytest.mark.parametrize(
    "outputs",
    [5, "x", [{"pullRequest": "x"}], [{"pullRequest": {"url": 5}}], [5, None, {"changeSet": 7}]],
)
def test_malformed_outputs_never_crash_after_the_session_was_created(server, conn, outputs):
    created = {**SESSION, "state": "QUEUED", "outputs": outputs, "url": "https://jules.google.com/session/1"}
    server.answer(json_reply(created))
    op = JulesCreateSessionOperator(
        task_id="t",
        prompt="Fix it",
        source="acme/web",
        starting_branch="main",
        wait_for_completion=False,
        jules_conn_id=conn,
    )
    ctx = context()
    result = op.execute(ctx)
    assert result["session_id"] == "1" and result["pull_request_url"] is None
    assert pushed(ctx)["pull_request_url"] is None
    assert [r.method for r in server.received] == ["POST"]


@pytest.mark.parametrize(
    "session",
    [
        {"outputs": 5},
        {"outputs": [{"pullRequest": "x"}, {"changeSet": "y"}]},
        {"outputs": [{"changeSet": {"gitPatch": 5}}, {"changeSet": {"gitPatch": {"unidiffPatch": 5}}}]},
        {"outputs": [{"pullRequest": {"url": ["x"], "title": 5, "description": {}}}]},
        {"state": 5, "title": ["x"], "url": {"a": 1}, "name": 7},
    ],
)
def test_the_result_builder_tolerates_malformed_members(session):
    activities = [
        5,
        {"planGenerated": "x"},
        {"artifacts": 5},
        {"artifacts": [{"changeSet": {"gitPatch": []}}]},
    ]
    result = build_result({"name": "sessions/1", "state": "COMPLETED", **session}, activities)
    assert result["pull_request_url"] is None
    assert isinstance(result["pull_requests"], list)


# ------------------------------------------------------------------------------------- 6. pagination


@pytest.mark.parametrize("kind", KINDS)
def test_a_repeated_page_token_is_a_typed_error(server, kind):
    server.always(json_reply({"sources": [{"name": "sources/github/a/b"}], "nextPageToken": "same"}))
    _, exc = timed(lambda: call(kind, server.url, "list_sources"))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "paging loop" in str(exc)
    assert len(server.received) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_an_oversize_page_token_is_refused_not_sent_back(server, kind):
    server.always(json_reply({"sessions": [SESSION], "nextPageToken": "t" * 5000}))
    _, exc = timed(lambda: call(kind, server.url, "list_sessions"))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "nextPageToken of 5000 characters" in str(exc)
    assert len(server.received) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_page_cap_is_an_error_not_a_silent_truncation(server, kind, monkeypatch):
    monkeypatch.setattr(core, "MAX_PAGES", 3)
    pages = iter(range(100))

    def answer(conn: Conn) -> None:
        json_reply({"sessions": [SESSION], "nextPageToken": f"p{next(pages)}"})(conn)

    server.always(answer)
    _, exc = timed(lambda: call(kind, server.url, "list_sessions"))
    assert isinstance(exc, JulesInvalidResponseError), exc
    assert "after 3 pages (the page cap)" in str(exc)
    assert len(server.received) == 3


def test_list_sources_operator_fails_on_a_paging_loop_instead_of_expanding_copies(server, conn):
    server.always(json_reply({"sources": [{"name": "sources/github/a/b"}], "nextPageToken": "same"}))
    _, exc = timed(lambda: JulesListSourcesOperator(task_id="t", jules_conn_id=conn).execute(context()))
    assert isinstance(exc, JulesError) and "paging loop" in str(exc), exc
