"""Every endpoint, on both transports: the exact request sent and the parsed result."""

from __future__ import annotations

import pytest

from tests.fakes import API_KEY, Reply, Script, call

SESSION = {
    "name": "sessions/14550388554331055113",
    "id": "14550388554331055113",
    "prompt": "Fix the flaky tests",
    "state": "QUEUED",
}
ACTIVITY = {
    "name": "sessions/14550388554331055113/activities/02200cce44f746308651037e4a18caed",
    "id": "02200cce44f746308651037e4a18caed",
    "createTime": "2025-10-03T05:43:42.801654Z",
    "originator": "agent",
    "progressUpdated": {"title": "Ran bash command"},
}
SOURCE = {
    "name": "sources/github/acme/web",
    "id": "github/acme/web",
    "githubRepo": {"owner": "acme", "repo": "web"},
}
SID = "14550388554331055113"

# (client method, args, kwargs, reply, method, path, query, body, expected result)
ENDPOINTS = [
    pytest.param(
        "create_session",
        ("Fix the flaky tests",),
        {
            "source": "acme/web",
            "starting_branch": "main",
            "title": "t",
            "require_plan_approval": True,
            "automation_mode": "AUTO_CREATE_PR",
        },
        Reply(json=SESSION),
        "POST",
        "/v1alpha/sessions",
        {},
        {
            "prompt": "Fix the flaky tests",
            "sourceContext": {
                "source": "sources/github/acme/web",
                "githubRepoContext": {"startingBranch": "main"},
            },
            "title": "t",
            "requirePlanApproval": True,
            "automationMode": "AUTO_CREATE_PR",
        },
        SESSION,
        id="create_session",
    ),
    pytest.param(
        "get_session",
        (f"sessions/{SID}",),
        {},
        Reply(json=SESSION),
        "GET",
        f"/v1alpha/sessions/{SID}",
        {},
        None,
        SESSION,
        id="get_session",
    ),
    pytest.param(
        "list_sessions",
        (),
        {"page_size": 10, "archived": True},
        Reply(json={"sessions": [SESSION]}),
        "GET",
        "/v1alpha/sessions",
        {"pageSize": "10", "filter": "archived = true"},
        None,
        [SESSION],
        id="list_sessions",
    ),
    pytest.param(
        "delete_session",
        (SID,),
        {},
        Reply(body=b""),
        "DELETE",
        f"/v1alpha/sessions/{SID}",
        {},
        None,
        None,
        id="delete_session",
    ),
    pytest.param(
        "send_message",
        (SID, "Also fix the docs"),
        {},
        Reply(body=b""),
        "POST",
        f"/v1alpha/sessions/{SID}:sendMessage",
        {},
        {"prompt": "Also fix the docs"},
        None,
        id="send_message",
    ),
    pytest.param(
        "approve_plan",
        (SID,),
        {},
        Reply(json={}),
        "POST",
        f"/v1alpha/sessions/{SID}:approvePlan",
        {},
        {},
        None,
        id="approve_plan",
    ),
    pytest.param(
        "archive_session",
        (SID,),
        {},
        Reply(json={**SESSION, "state": "PAUSED", "archived": True}),
        "POST",
        f"/v1alpha/sessions/{SID}:archive",
        {},
        {},
        {**SESSION, "state": "PAUSED", "archived": True},
        id="archive_session",
    ),
    pytest.param(
        "unarchive_session",
        (SID,),
        {},
        Reply(json=SESSION),
        "POST",
        f"/v1alpha/sessions/{SID}:unarchive",
        {},
        {},
        SESSION,
        id="unarchive_session",
    ),
    pytest.param(
        "list_activities",
        (SID,),
        {"page_size": 100},
        Reply(json={"activities": [ACTIVITY]}),
        "GET",
        f"/v1alpha/sessions/{SID}/activities",
        {"pageSize": "100"},
        None,
        [ACTIVITY],
        id="list_activities",
    ),
    pytest.param(
        "get_activity",
        (SID, ACTIVITY["name"]),
        {},
        Reply(json=ACTIVITY),
        "GET",
        f"/v1alpha/sessions/{SID}/activities/02200cce44f746308651037e4a18caed",
        {},
        None,
        ACTIVITY,
        id="get_activity",
    ),
    pytest.param(
        "list_sources",
        (),
        {"filter": "name=sources/github/acme/web"},
        Reply(json={"sources": [SOURCE]}),
        "GET",
        "/v1alpha/sources",
        {"filter": "name=sources/github/acme/web"},
        None,
        [SOURCE],
        id="list_sources",
    ),
    pytest.param(
        "get_source",
        ("acme/web",),
        {},
        Reply(json=SOURCE),
        "GET",
        "/v1alpha/sources/github/acme/web",
        {},
        None,
        SOURCE,
        id="get_source",
    ),
]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("method", "args", "kwargs", "reply", "verb", "path", "query", "body", "expected"), ENDPOINTS
)
def test_endpoint_sends_exact_request_and_parses_result(
    kind, method, args, kwargs, reply, verb, path, query, body, expected
):
    script = Script(reply)
    result = call(kind, script, method, *args, **kwargs)
    assert result == expected
    (sent,) = script.sent
    assert (sent.method, sent.path, sent.query, sent.body) == (verb, path, query, body)
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert "authorization" not in sent.headers
    assert sent.headers["user-agent"].startswith("airflow-provider-jules/")
    assert sent.headers["accept"] == "application/json"
    assert ("content-type" in sent.headers) == (body is not None)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_list_methods_follow_next_page_token_until_absent(kind):
    script = Script(
        Reply(json={"sources": [SOURCE], "nextPageToken": "github/acme/api"}),
        Reply(json={"sources": [{**SOURCE, "name": "sources/github/acme/api"}], "nextPageToken": "tok2"}),
        Reply(json={}),  # empty list: the array key is omitted (proto3)
    )
    result = call(kind, script, "list_sources")
    assert [s["name"] for s in result] == ["sources/github/acme/web", "sources/github/acme/api"]
    assert [s.query.get("pageToken") for s in script.sent] == [None, "github/acme/api", "tok2"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_incremental_activities_send_create_time_filter(kind):
    script = Script(Reply(json={"activities": [ACTIVITY]}))
    result = call(kind, script, "list_activities", SID, created_after="2025-10-03T05:43:40.5Z")
    assert result == [ACTIVITY]
    assert script.sent[0].query == {"filter": 'create_time>"2025-10-03T05:43:40.500000Z"'}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_incremental_activities_fall_back_to_client_filter_when_server_rejects_filter(kind):
    older = {
        **ACTIVITY,
        "id": "a" * 32,
        "name": f"sessions/{SID}/activities/{'a' * 32}",
        "createTime": "2025-10-03T05:43:40Z",
    }
    rejected = Reply(
        400, json={"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad filter"}}
    )
    script = Script(rejected, Reply(json={"activities": [older, ACTIVITY]}))
    result = call(kind, script, "list_activities", SID, created_after="2025-10-03T05:43:41Z")
    assert result == [ACTIVITY]
    assert "filter" in script.sent[0].query and "filter" not in script.sent[1].query
