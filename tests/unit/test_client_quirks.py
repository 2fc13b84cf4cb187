"""Each quirk of reference/jules-api.md section 6 that a client meets, one test named for it."""

from __future__ import annotations

import json

import pytest

from airflow_provider_jules.client import JulesConfigError, JulesNotFoundError
from airflow_provider_jules.client import _core as core
from airflow_provider_jules.client.models import (
    activity_kind,
    normalize_session,
    parse_state,
    session_id,
    source_name,
)
from tests.fakes import Reply, Script, call

SID = "14550388554331055113"


def test_q1_session_name_without_prefix_and_mismatched_id():
    session = normalize_session({"name": "1234567", "id": "abc123", "state": "QUEUED"})
    assert (session["name"], session["id"]) == ("sessions/1234567", "1234567")
    assert normalize_session({"id": "abc123"})["name"] == "sessions/abc123"


@pytest.mark.parametrize("value", ["123", "sessions/123", " sessions/123 "])
def test_q1_session_ids_accepted_in_both_forms(value):
    assert session_id(value) == "123"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q2_activity_names_without_sessions_prefix(kind):
    activity = {"name": "1234567/activities/act1", "originator": "system", "description": "Session started"}
    result = call(kind, Script(Reply(json={"activities": [activity]})), "list_activities", "1234567")
    assert result[0]["id"] == "act1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sources/github/o/r", "sources/github/o/r"),
        ("github/o/r", "sources/github/o/r"),
        ("o/r", "sources/github/o/r"),
        ("sources/github-myorg-myrepo", "sources/github-myorg-myrepo"),
    ],
)
def test_q3_source_names_in_every_form(value, expected):
    assert source_name(value) == expected


@pytest.mark.parametrize(
    "bad",
    ["../etc", "o/r/../../x", "sessions/1/../2", "o/r?x=1", "o r", "", "a/b/c/d", "o/r#frag", "%2e%2e/x"],
)
def test_ids_are_validated_so_no_input_reaches_another_path(bad):
    with pytest.raises(JulesConfigError):
        source_name(bad) if "sessions" not in bad else session_id(bad)
    with pytest.raises(JulesConfigError):
        session_id(bad)


def test_ids_are_url_encoded_in_paths():
    assert core.get_source("sources/github/my.org/re_po-1").path == "/v1alpha/sources/github/my.org/re_po-1"
    assert core.get_activity(SID, "1/activities/ab-c_1").path == f"/v1alpha/sessions/{SID}/activities/ab-c_1"


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("body", [b"", b"{}"])
def test_q8_approve_plan_accepts_empty_or_object_reply(kind, body):
    assert call(kind, Script(Reply(body=body)), "approve_plan", SID) is None


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q8_approve_plan_partial_session_reply_is_ignored(kind):
    assert (
        call(
            kind, Script(Reply(json={"name": f"sessions/{SID}", "state": "IN_PROGRESS"})), "approve_plan", SID
        )
        is None
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("method", ["send_message", "delete_session"])
def test_q9_zero_length_reply_bodies(kind, method):
    args = (SID, "hi") if method == "send_message" else (SID,)
    assert call(kind, Script(Reply(body=b"")), method, *args) is None


def test_q10_create_body_is_always_valid_json():
    request = core.create_session(
        "Create a boba app!", source="bobalover/boba", automation_mode="AUTO_CREATE_PR", title="Boba App"
    )
    assert json.loads(core.encode_body(request) or b"") == request.body


def test_q12_page_tokens_are_opaque():
    request = core.next_page(core.list_sources(), {"nextPageToken": "eyJvZmZzZXQiOjEwfQ=="})
    assert request is not None and request.params["pageToken"] == "eyJvZmZzZXQiOjEwfQ=="


def test_q13_activity_without_union_member_is_kept():
    assert (
        activity_kind({"name": "s/activities/a", "description": "Session started", "originator": "system"})
        == ""
    )


def test_unknown_activity_kind_is_kept_not_raised():
    assert activity_kind({"id": "a", "environmentPrepared": {"seconds": 3}}) == "environmentPrepared"


def test_unknown_state_values_are_kept():
    assert parse_state("COMPLETED_UNKNOWN") == "COMPLETED_UNKNOWN"
    assert parse_state(None) == "STATE_UNSPECIFIED"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q20_omitted_defaults_do_not_break_parsing(kind):
    sparse = {"name": f"sessions/{SID}"}  # no id, no state, no outputs
    result = call(kind, Script(Reply(json=sparse)), "get_session", SID)
    assert result == {"name": f"sessions/{SID}", "id": SID, "state": "STATE_UNSPECIFIED"}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q25_ids_larger_than_int64_stay_strings(kind):
    result = call(kind, Script(Reply(body=b'{"name": "sessions/14550388554331055113"}')), "get_session", SID)
    assert result["id"] == "14550388554331055113" and isinstance(result["id"], str)
    assert int(result["id"]) > 2**63 - 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q18_404_on_activities_of_new_session_is_retried(kind):
    not_found = Reply(404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": "not found"}})
    script = Script(not_found, not_found, Reply(json={"activities": []}))
    assert call(kind, script, "list_activities", SID, new_session=True) == []
    assert len(script.sent) == 3


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q18_404_on_activities_of_old_session_is_not_retried(kind):
    not_found = Reply(404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": "not found"}})
    script = Script(not_found)
    with pytest.raises(JulesNotFoundError):
        call(kind, script, "list_activities", SID)
    assert len(script.sent) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_q18_sessions_created_by_the_client_are_new_for_activities(kind):
    """The client remembers what it created, so the 404 grace applies without the caller saying so."""
    from tests.fakes import async_client, sync_client

    not_found = Reply(404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": "not found"}})
    script = Script(Reply(json={"name": f"sessions/{SID}"}), not_found, Reply(json={"activities": []}))
    if kind == "sync":
        client = sync_client(script)
        client.create_session("x")
        assert list(client.list_activities(SID)) == []
    else:
        import asyncio

        async def run():
            async with async_client(script) as client:
                await client.create_session("x")
                return [a async for a in client.list_activities(SID)]

        assert asyncio.run(run()) == []
    assert len(script.sent) == 3
