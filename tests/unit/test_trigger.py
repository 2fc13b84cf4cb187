"""JulesSessionTrigger: serialization, every event status, transient errors, deadlines, restarts, on_kill."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_jules.client.errors import JulesNotFoundError, JulesServerError
from airflow_provider_jules.triggers.jules import JulesSessionTrigger
from tests.fakes import FakeHook

SID = "14550388554331055113"
CLASSPATH = "airflow_provider_jules.triggers.jules.JulesSessionTrigger"


def act(i: int, kind: str = "progressUpdated", originator: str = "agent", **payload: Any) -> dict[str, Any]:
    body = payload or {"title": f"step {i}"}
    return {
        "name": f"sessions/{SID}/activities/{i:032x}",
        "id": f"{i:032x}",
        "createTime": f"2026-01-01T00:00:{i:02d}.000001Z",
        "originator": originator,
        kind: body,
    }


@pytest.fixture
def hook(monkeypatch):
    import airflow_provider_jules.hooks.jules as hooks

    FakeHook.instances = []
    FakeHook.polls = []
    monkeypatch.setattr(hooks, "JulesHook", FakeHook)
    return FakeHook


def session(state: str, update: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"name": f"sessions/{SID}", "id": SID, "state": state, "updateTime": update}


def run(trigger: JulesSessionTrigger, timeout: float = 10) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))


def make(**kwargs: Any) -> JulesSessionTrigger:
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.setdefault("end_time", time.time() + 30)
    return JulesSessionTrigger(session_id=SID, **kwargs)


def test_serialize_is_plain_json_and_round_trips():
    trigger = JulesSessionTrigger(
        session_id=SID,
        jules_conn_id="my_jules",
        poll_interval=5,
        end_time=1_900_000_000.5,
        stall_timeout=600,
        target_states=["AWAITING_PLAN_APPROVAL"],
        stop_on_feedback=False,
        cursor="2026-01-01T00:00:01.000001Z",
        last_progress_at=1_800_000_000.0,
        settle_after="2026-01-01T00:00:00Z",
        max_poll_errors=3,
        on_kill_action="delete",
        new_session_until=1_800_000_100.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "session_id": SID,
        "jules_conn_id": "my_jules",
        "poll_interval": 5.0,
        "end_time": 1_900_000_000.5,
        "stall_timeout": 600,
        "target_states": ["AWAITING_PLAN_APPROVAL"],
        "stop_on_feedback": False,
        "cursor": "2026-01-01T00:00:01.000001Z",
        "last_progress_at": 1_800_000_000.0,
        "settle_after": "2026-01-01T00:00:00Z",
        "max_poll_errors": 3,
        "on_kill_action": "delete",
        "new_session_until": 1_800_000_100.0,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert JulesSessionTrigger(**kwargs).serialize() == (classpath, kwargs)


# The serialized kwargs of triggers as release 0.1.0 wrote them (captured from its code, key order included):
# the triggerer stores them in the DB, and a task deferred by that release must resume on this code.
STORED_BY_0_1_0 = {
    "defaults": (
        '{"session_id": "14550388554331055113", "jules_conn_id": "jules_default", "poll_interval": 30.0, '
        '"end_time": null, "stall_timeout": null, "target_states": ["COMPLETED"], "stop_on_feedback": true, '
        '"cursor": null, "last_progress_at": null, "settle_after": null, "max_poll_errors": 5, '
        '"on_kill_action": "keep", "new_session_until": null}'
    ),
    "every_field": (
        '{"session_id": "14550388554331055113", "jules_conn_id": "jules_prod", "poll_interval": 10.0, '
        '"end_time": 1893456000.25, "stall_timeout": 900.0, "target_states": ["AWAITING_PLAN_APPROVAL", '
        '"COMPLETED"], "stop_on_feedback": false, "cursor": "2026-03-01T12:00:00.123456Z", '
        '"last_progress_at": 1893450000.0, "settle_after": "2026-03-01T11:59:59Z", "max_poll_errors": 7, '
        '"on_kill_action": "archive", "new_session_until": 1893450120.0}'
    ),
}


def test_the_serialized_form_is_pinned():
    """The exact kwargs (keys, values, their JSON types and order) of a trigger built with its defaults."""
    classpath, kwargs = JulesSessionTrigger(session_id=SID).serialize()
    assert classpath == CLASSPATH
    assert json.dumps(kwargs) == STORED_BY_0_1_0["defaults"]


@pytest.mark.parametrize("form", sorted(STORED_BY_0_1_0))
def test_a_trigger_stored_by_the_previous_release_serializes_identically(form):
    stored = json.loads(STORED_BY_0_1_0[form])
    classpath, kwargs = JulesSessionTrigger(**stored).serialize()
    assert classpath == CLASSPATH
    assert json.dumps(kwargs) == STORED_BY_0_1_0[form]


@pytest.mark.parametrize("form", sorted(STORED_BY_0_1_0))
def test_a_trigger_survives_airflows_own_storage(form):
    """Through Airflow's Trigger row (its kwargs serialization) and back, as a triggerer restart does."""
    from airflow.models.trigger import Trigger

    stored = json.loads(STORED_BY_0_1_0[form])
    row = Trigger.from_object(JulesSessionTrigger(**stored))
    assert row.classpath == CLASSPATH
    assert row.kwargs == stored
    assert json.dumps(JulesSessionTrigger(**row.kwargs).serialize()[1]) == STORED_BY_0_1_0[form]


def test_reaching_a_target_state_yields_one_target_event_and_streams_activities(hook, capfd):
    plan = {"plan": {"id": "p", "steps": [{"id": "s", "title": "Do it"}]}}
    hook.polls = [
        (session("PLANNING"), [act(1, "planGenerated", **plan)]),
        (session("IN_PROGRESS"), [act(2, "planApproved", "user", planId="p"), act(3)]),
        (session("COMPLETED"), [act(4, "sessionCompleted", __empty=True)]),
    ]
    events = run(make())
    assert [(e["status"], e["state"], e["cursor"]) for e in events] == [
        ("target", "COMPLETED", "2026-01-01T00:00:04.000001Z")
    ]
    log = "".join(capfd.readouterr())
    assert "[Jules] Plan generated (1 step): 1. Do it" in log
    assert "[Jules] Progress: step 3" in log
    (instance,) = hook.instances
    assert instance.closed  # one client for the trigger's life, closed at the end
    lists = [c[1] for c in instance.calls if c[0] == "list"]
    assert lists == [None, "2026-01-01T00:00:01.000001Z", "2026-01-01T00:00:03.000001Z"]  # incremental


def test_failed_session_yields_terminal_event(hook):
    hook.polls = [(session("FAILED"), [act(1, "sessionFailed", reason="boom")])]
    assert [e["status"] for e in run(make())] == ["terminal"]


def test_question_yields_needs_input_with_the_question_id(hook):
    hook.polls = [(session("AWAITING_USER_FEEDBACK"), [act(7, "agentMessaged", agentMessage="Which DB?")])]
    (event,) = run(make())
    assert (event["status"], event["question_activity_id"]) == ("needs_input", f"{7:032x}")


def test_question_is_not_an_end_when_waiting_for_an_answer(hook):
    hook.polls = [(session("AWAITING_USER_FEEDBACK"), []), (session("COMPLETED"), [])]
    assert [e["status"] for e in run(make(stop_on_feedback=False))] == ["target"]


def test_unknown_state_keeps_polling(hook):
    hook.polls = [
        (session("AWAITING_SOMETHING"), [act(1, "environmentPrepared", x=1)]),
        (session("COMPLETED"), []),
    ]
    assert [e["status"] for e in run(make())] == ["target"]


def test_transient_errors_are_tolerated_and_never_a_session_failure(hook):
    boom = JulesServerError("unavailable", http_status=503)
    hook.polls = [(boom, []), (boom, []), (session("COMPLETED"), [])]
    assert [e["status"] for e in run(make(max_poll_errors=3))] == ["target"]


def test_exhausted_error_budget_yields_error_event(hook):
    boom = JulesServerError("unavailable", http_status=503)
    hook.polls = [(boom, [])] * 3 + [(session("COMPLETED"), [])]
    (event,) = run(make(max_poll_errors=3))
    assert (event["status"], event["reason"]) == ("error", "polling_errors")
    assert "3 times in a row" in event["message"]


def test_fatal_error_ends_at_once(hook):
    hook.polls = [(JulesNotFoundError("gone", http_status=404), [])]
    (event,) = run(make())
    assert (event["status"], event["reason"]) == ("error", "api_error")


def test_deadline_yields_timeout(hook):
    hook.polls = [(session("IN_PROGRESS"), [])]
    (event,) = run(make(end_time=time.time() + 0.05, poll_interval=0.01))
    assert (event["status"], event["reason"]) == ("timeout", "deadline")


def test_deadline_already_past_when_recreated_ends_at_first_poll(hook):
    hook.polls = [(session("IN_PROGRESS"), [])]
    (event,) = run(make(end_time=time.time() - 1))
    assert (event["status"], event["reason"]) == ("timeout", "deadline")
    assert len([c for c in hook.instances[0].calls if c[0] == "get"]) == 1


def test_no_progress_for_stall_timeout_yields_timeout_stall(hook):
    hook.polls = [(session("IN_PROGRESS"), [])]
    (event,) = run(make(stall_timeout=0.05, poll_interval=0.01))
    assert (event["status"], event["reason"]) == ("timeout", "stall")
    assert "stalled" in event["message"]


def test_activity_resets_the_stall_clock(hook):
    hook.polls = [(session("IN_PROGRESS"), [act(i)]) for i in range(1, 6)] + [(session("COMPLETED"), [])]
    assert [e["status"] for e in run(make(stall_timeout=5, poll_interval=0.001))] == ["target"]


def test_recreated_trigger_resumes_with_same_deadline_and_cursor(hook):
    """A trigger rebuilt from its serialized kwargs (another triggerer) continues where the kwargs say."""
    end = time.time() + 0.2
    first = make(end_time=end, cursor="2026-01-01T00:00:02.000001Z", last_progress_at=time.time())
    _, kwargs = first.serialize()
    hook.polls = [(session("IN_PROGRESS"), [act(3)])]
    (event,) = run(JulesSessionTrigger(**kwargs))
    assert (event["status"], event["reason"], event["end_time"]) == ("timeout", "deadline", end)
    lists = [c[1] for c in hook.instances[0].calls if c[0] == "list"]
    assert lists[0] == "2026-01-01T00:00:02.000001Z"
    assert event["cursor"] == "2026-01-01T00:00:03.000001Z"


def test_settle_ignores_the_state_from_before_our_message(hook):
    old = "2026-01-01T00:00:00Z"
    hook.polls = [
        (session("COMPLETED", old), [act(1, "userMessaged", "user", userMessage="more")]),
        (session("IN_PROGRESS", "2026-01-01T00:01:00Z"), []),
        (session("COMPLETED", "2026-01-01T00:02:00Z"), []),
    ]
    (event,) = run(make(settle_after=old))
    assert event["status"] == "target"
    assert len([c for c in hook.instances[0].calls if c[0] == "get"]) == 3


@pytest.mark.parametrize(("action", "call"), [("archive", "archive"), ("delete", "delete"), ("keep", None)])
def test_on_kill_stops_the_session_as_told(hook, action, call):
    asyncio.run(make(on_kill_action=action).on_kill())
    calls = [c for h in hook.instances for c in h.calls]
    assert calls == ([(call, SID)] if call else [])
    assert all(h.closed for h in hook.instances)


def test_cleanup_does_not_touch_the_session(hook):
    asyncio.run(make(on_kill_action="delete").cleanup())
    assert hook.instances == []


def test_bad_on_kill_action_is_refused():
    with pytest.raises(ValueError, match="on_kill_action"):
        JulesSessionTrigger(session_id=SID, on_kill_action="cancel")


def test_q18_404_on_activities_of_an_existing_session_is_transient(hook):
    """The session was just read, so a 404 on its activities is eventual consistency, not a fatal error."""
    gone = JulesNotFoundError("not found", http_status=404, path=f"/v1alpha/sessions/{SID}/activities")
    hook.polls = [(session("IN_PROGRESS"), gone), (session("IN_PROGRESS"), gone), (session("COMPLETED"), [])]
    assert [e["status"] for e in run(make(max_poll_errors=3))] == ["target"]


def test_404_on_the_session_itself_is_fatal(hook):
    hook.polls = [(JulesNotFoundError("gone", http_status=404, path=f"/v1alpha/sessions/{SID}"), [])]
    assert [(e["status"], e["reason"]) for e in run(make())] == [("error", "api_error")]
