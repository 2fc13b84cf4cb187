"""Tasks in flight when the provider is upgraded resume on the new code (issue #19 item 8).

``tests/stored_state/release-0.1.0.json`` holds what release 0.1.0 stored for a task at each step where it
parks (written by ``tests/stored_state/capture.py`` from that release's code): the trigger rows the
triggerer keeps in the DB (classpath and kwargs), the ``next_kwargs`` of the method Airflow resumes the task
in (``execute_complete`` and ``resume_from_person`` with ``jules_state``), the task state store and the
XComs. Each test hands one of them to the current code. The sessions they name lived in a simulator that is
gone: each test makes a session in the same state here and puts its id (and its activity ids) where the
stored ones were, and moves the stored absolute deadlines by the time since the capture.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stored_state.capture import COMMON, FEEDBACK, TASKS
from tests.stored_state.harness import (
    Json,
    Store,
    StoreTI,
    answer,
    catching_forms,
    context,
    first_event,
    park,
    trigger_from,
)

STORED = json.loads((Path(__file__).resolve().parents[1] / "stored_state" / "release-0.1.0.json").read_text())
SCENARIOS: dict[str, list[Json]] = STORED["scenarios"]
DEADLINES = ("end_time", "last_progress_at", "new_session_until")


def _stored(scenario: str, index: int) -> Json:
    return SCENARIOS[scenario][index]


def _sid(scenario: str) -> str:
    return str(_stored(scenario, 0)["xcom"]["session_id"])


def _moved(value: Any, shift: float) -> Any:
    if isinstance(value, dict):
        return {
            k: (v + shift if k in DEADLINES and isinstance(v, (int, float)) else _moved(v, shift))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_moved(v, shift) for v in value]
    return value


def rebind(stored: Any, scenario: str, new_sid: str, ids: dict[str, str] | None = None) -> Any:
    """The stored value with this test's session (and activity ids) in place of the captured ones."""
    text = json.dumps(stored).replace(_sid(scenario), new_sid)
    for old, new in (ids or {}).items():
        text = text.replace(old, new)
    return _moved(json.loads(text), time.time() - float(STORED["captured_at"]))


def operator(name: str) -> Any:
    from airflow_provider_jules.operators import jules as ops

    cls, kwargs = TASKS[name]
    return getattr(ops, cls)(task_id=name, **COMMON, **kwargs)


def session_in(sim: Any, prompt: str, states: set[str], **kwargs: Any) -> Json:
    """A new simulator session, once it is in one of ``states`` (bounded)."""
    from airflow_provider_jules.hooks.jules import JulesHook

    hook = JulesHook()
    session = hook.create_session(
        prompt, source="bobalover/boba", starting_branch="main", automation_mode="AUTO_CREATE_PR", **kwargs
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = hook.get_session(session["id"])
        if session["state"] in states:
            return session
        time.sleep(0.05)
    raise AssertionError(f"session {session['id']} never reached {states}: {session['state']}")


def last_question_id(sim: Any, sid: str) -> str:
    from airflow_provider_jules.hooks.jules import JulesHook

    asked = [a for a in JulesHook().list_activities(sid) if "agentMessaged" in a]
    return str(asked[-1]["id"])


# ------------------------------------------------------------------------------ what was stored
def test_the_fixtures_cover_every_step_that_parks_a_task():
    assert STORED["release"] == "0.1.0"
    assert {n: [s["method_name"] for s in steps] for n, steps in SCENARIOS.items()} == {
        "create": ["execute_complete"],
        "sensor": ["execute_complete"],
        "review": ["execute_complete", "resume_from_person", "execute_complete"],
        "ask": ["execute_complete", "resume_from_person", "execute_complete"],
        "plan": ["execute_complete", "resume_from_person"],
    }
    assert "sim-key" not in json.dumps(STORED)


@pytest.mark.parametrize(
    ("scenario", "index"),
    [(n, i) for n, steps in SCENARIOS.items() for i, s in enumerate(steps) if s["trigger"]],
)
def test_a_stored_trigger_row_rebuilds_and_serializes_the_same(scenario, index):
    """A triggerer running the new code re-creates each stored trigger from its DB row, unchanged."""
    classpath, kwargs = _stored(scenario, index)["trigger"]
    trigger = trigger_from((classpath, kwargs))
    assert trigger.serialize() == (classpath, kwargs)


# ------------------------------------------------------------------------------ resuming on the new code
def test_a_stored_trigger_follows_its_session_to_the_event_the_task_resumes_with(sim):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    classpath, kwargs = rebind(_stored("create", 0)["trigger"], "create", session["id"])
    event = first_event(trigger_from((classpath, kwargs)))
    assert (event["status"], event["session_id"], event["state"]) == ("target", session["id"], "COMPLETED")
    result = operator("create").execute_complete(context(StoreTI("create"), Store()), event=event)
    assert result["outcome"] == "completed" and result["session_id"] == session["id"]


def test_a_stored_event_resumes_the_operator_and_the_sensor(sim):
    from airflow_provider_jules.sensors.jules import JulesSessionSensor

    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    event = rebind(_stored("create", 0)["event"], "create", session["id"])
    ti = StoreTI("create")
    result = operator("create").execute_complete(context(ti, Store()), event=event)
    assert result["outcome"] == "completed" and result["pull_request_url"]
    assert result["session_id"] == session["id"]

    sensor = JulesSessionSensor(task_id="wait", session_id=session["id"], deferrable=True, poke_interval=0.05)
    _classpath, kwargs = _stored("sensor", 0)["trigger"]
    assert kwargs["session_id"] == _sid("create")  # the sensor followed the create task's session
    sensed = sensor.execute_complete(context(StoreTI("wait"), Store()), event=event)
    assert sensed["outcome"] == "completed" and sensed["session_id"] == session["id"]


def test_a_retry_adopts_the_session_in_the_stored_task_state_store(sim):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    store = Store(rebind(_stored("create", 0)["task_state_store"], "create", session["id"]))
    created = len(sim.requests("create_session"))
    ti = StoreTI("create", try_number=2)
    result = operator("create").execute(context(ti, store))  # completed: no deferral needed
    assert result["session_id"] == session["id"] and result["outcome"] == "completed"
    assert len(sim.requests("create_session")) == created  # adopted, not created again


def test_a_stored_change_form_resumes_with_approve(sim, monkeypatch):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    kwargs = rebind(_stored("review", 1)["kwargs"], "review", session["id"])
    with catching_forms(monkeypatch):
        result = operator("review").resume_from_person(
            context(StoreTI("review"), Store()), event=answer("Approve"), **kwargs
        )
    assert result["outcome"] == "completed" and result["session_id"] == session["id"]
    assert [(r["round"], r["decision"], r["reviewer"]) for r in result["review"]] == [
        (1, "approved", "alice")
    ]
    assert sim.requests("send_message") == []


def test_a_stored_change_form_resumes_with_a_change_request_as_the_release_did(sim, monkeypatch):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    kwargs = rebind(_stored("review", 1)["kwargs"], "review", session["id"])
    store = Store()
    with catching_forms(monkeypatch) as forms:
        parked = park(
            lambda: operator("review").resume_from_person(
                context(StoreTI("review"), store), event=answer("Request changes", "Add a test."), **kwargs
            ),
            forms,
        )
    assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": "Add a test."}]
    released = rebind(_stored("review", 2), "review", session["id"])
    # The same next step and the same state as the release stored (the PR URL is this session's own).
    assert parked.method_name == released["method_name"] == "execute_complete"
    assert _without_urls(parked.kwargs) == _without_urls(released["kwargs"])
    key = "jules_review_rounds"  # what the resume itself keeps in the task state store
    assert _without_urls(store.data[key]) == _without_urls(released["task_state_store"][key])
    assert parked.trigger is not None and parked.trigger[0] == released["trigger"][0]
    assert sorted(parked.trigger[1]) == sorted(released["trigger"][1])


def _without_urls(value: Any) -> Any:
    return json.loads(json.dumps(value).replace('"https://github.com/', '"PR:'), object_hook=_blank_pr)


def _blank_pr(d: Json) -> Json:
    return {k: ("PR" if k == "pull_request_url" else v) for k, v in d.items()}


def test_stored_review_rounds_resume_with_the_next_round_form(sim, monkeypatch):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    stored = rebind(_stored("review", 2), "review", session["id"])
    event = first_event(trigger_from(stored["trigger"]))
    with catching_forms(monkeypatch) as forms:
        parked = park(
            lambda: operator("review").execute_complete(
                context(StoreTI("review"), Store()), event=event, **stored["kwargs"]
            ),
            forms,
        )
    assert parked.method_name == "resume_from_person"
    assert parked.form is not None and parked.form["options"] == ["Approve", "Request changes", "Reject"]
    state = parked.kwargs["jules_state"]
    assert (state["step"], state["round"], state["forms"]) == ("change", 2, 2)
    assert state["rounds"] == stored["kwargs"]["jules_state"]["rounds"]


def test_a_stored_question_form_resumes_and_sends_the_answer_once(sim, monkeypatch):
    session = session_in(sim, FEEDBACK, {"AWAITING_USER_FEEDBACK"})
    old_question = _stored("ask", 1)["kwargs"]["jules_state"]["question_id"]
    ids = {old_question: last_question_id(sim, session["id"])}
    kwargs = rebind(_stored("ask", 1)["kwargs"], "ask", session["id"], ids)
    with catching_forms(monkeypatch) as forms:
        parked = park(
            lambda: operator("ask").resume_from_person(
                context(StoreTI("ask"), Store()), event=answer("Send answer", "Yes, please."), **kwargs
            ),
            forms,
        )
    assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": "Yes, please."}]
    released = _stored("ask", 2)
    assert parked.method_name == released["method_name"] == "execute_complete"
    assert parked.kwargs == released["kwargs"]
    assert parked.trigger is not None and sorted(parked.trigger[1]) == sorted(released["trigger"][1])


def test_a_stored_plan_form_resumes_with_approve(sim, monkeypatch):
    session = session_in(
        sim, "Add a health check endpoint", {"AWAITING_PLAN_APPROVAL"}, require_plan_approval=True
    )
    kwargs = rebind(_stored("plan", 1)["kwargs"], "plan", session["id"])
    with catching_forms(monkeypatch) as forms:
        parked = park(
            lambda: operator("plan").resume_from_person(
                context(StoreTI("plan"), Store()), event=answer("Approve"), **kwargs
            ),
            forms,
        )
    assert len(sim.requests("approve_plan")) == 1
    assert parked.method_name == "execute_complete"
    assert parked.kwargs is not None and parked.kwargs["jules_state"]["plan_done"] is True
    assert parked.trigger is not None and parked.trigger[1]["target_states"] == ["COMPLETED"]


def test_a_stored_question_state_resumes_when_the_session_completed_meanwhile(sim):
    session = session_in(sim, "Fix the flaky tests", {"COMPLETED"})
    stored = rebind(_stored("ask", 2), "ask", session["id"])
    event = first_event(trigger_from(stored["trigger"]))
    result = operator("ask").execute_complete(
        context(StoreTI("ask"), Store()), event=event, **stored["kwargs"]
    )
    assert result["outcome"] == "completed" and result["session_id"] == session["id"]
