"""The review room without Airflow's runtime: forms, answers, rounds, the HITL wait on 3.1 and 3.3, and the
"HITL missing" error. Runs on Airflow 3.1 and 3.3 (the version gate is asserted for the running one)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import pytest

from airflow_provider_jules import history as hist
from airflow_provider_jules import review as rv
from airflow_provider_jules._compat import (
    AirflowException,
    AirflowFailException,
    TaskAwaitingInput,
    TaskDeferred,
)
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator, JulesSendMessageOperator
from airflow_provider_jules.review import ReviewOptions, ReviewState
from tests.fakes import FakeHook, install_hook

SID = "14550388554331055113"
PATCH = "".join(
    f"diff --git a/src/f{i}.py b/src/f{i}.py\n--- a/src/f{i}.py\n+++ b/src/f{i}.py\n@@ -1 +1 @@\n-old\n+new\n"
    for i in range(20)
)


def result(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session_id": SID,
        "title": "Fix the flaky tests",
        "url": f"https://jules.google.com/session/{SID}",
        "pull_request_url": "https://github.com/acme/web/pull/7",
        "plan": {"id": "p", "steps": [{"index": 0, "title": "Read", "description": None}]},
        "last_agent_message": None,
        "change_set": {
            "files_changed": [f"src/f{i}.py" for i in range(20)],
            "patch_bytes": len(PATCH),
            "patch": PATCH,
            "suggested_commit_message": "fix: flaky tests",
        },
    }
    base.update(overrides)
    return base


def act(kind: str, aid: str, **member: Any) -> dict[str, Any]:
    return {"id": aid, kind: member}


# ------------------------------------------------------------------------------------------ forms
@pytest.mark.parametrize(
    ("ask", "review", "plan", "expected"),
    [
        (True, False, False, ["Send answer"]),
        (False, True, False, ["Approve", "Request changes", "Reject"]),
        (False, False, True, ["Approve", "Reject"]),
        (True, True, True, ["Approve", "Request changes", "Send answer", "Reject"]),
    ],
)
def test_a_task_has_one_option_set_fixed_by_its_configuration(ask, review, plan, expected):
    assert rv.form_options(ask=ask, review=review, review_plan=plan) == expected


def test_the_message_field_exists_only_when_a_step_needs_text():
    assert rv.form_params(ask=False, review=False) == {}
    params = rv.form_params(ask=True, review=True)
    assert list(params) == ["message"]
    assert params["message"]["value"] is None  # optional: Approve and Reject need no text
    assert params["message"]["schema"]["type"] == ["string", "null"]
    assert "Send answer" in params["message"]["description"]
    assert "Request changes" in params["message"]["description"]


def test_the_change_form_shows_pr_files_size_summary_and_a_short_diff_excerpt():
    body = rv.change_markdown(result(), round_number=2, max_rounds=3)
    assert "Review round 2 of at most 3" in body
    assert "https://github.com/acme/web/pull/7" in body
    assert "Files changed (20)" in body and f"patch of {len(PATCH):,} bytes" in body
    assert "`src/f19.py`" in body and "> fix: flaky tests" in body
    excerpt = body.split("```diff\n", 1)[1].split("\n```", 1)[0]
    assert len(excerpt.splitlines()) == rv.DIFF_EXCERPT_LINES
    assert f"{len(PATCH.splitlines()) - rv.DIFF_EXCERPT_LINES} more lines" in body


def test_every_form_says_where_the_current_request_is_and_names_the_session():
    subject = rv.subject_for("plan", result())
    form = rv.build_form("**Jules asks**", result(), ["Send answer"], {}, subject=subject)
    assert form.subject == "Approve Jules's plan: Fix the flaky tests"
    marked = result(title="Fix the flaky tests [airflow-0123456789abcdef]")
    assert rv.subject_for("plan", marked) == "Approve Jules's plan: Fix the flaky tests"
    assert form.assigned_users == []
    assert form.body.startswith("**Jules asks**")
    assert "`jules_request` XCom" in form.body and result()["url"] in form.body


def test_the_question_form_quotes_the_question_and_shows_the_plan():
    body = rv.question_markdown(result(), "Which database?\nPostgres or MySQL?")
    assert "> Which database?\n> Postgres or MySQL?" in body
    assert "1. **Read**" in body


# ------------------------------------------------------------------------------------------ answers
def test_an_answer_names_the_option_the_message_and_the_reviewer():
    answer = rv.read_answer(
        {
            "chosen_options": ["Request changes"],
            "params_input": {"message": "  More tests. "},
            "responded_by_user": {"id": "7", "name": "alice"},
            "responded_at": datetime.now(timezone.utc),
        }
    )
    assert (answer.option, answer.message, answer.reviewer, answer.error) == (
        "Request changes",
        "More tests.",
        "alice",
        None,
    )


def test_a_timeout_event_is_an_error_that_says_timed_out():
    answer = rv.read_answer({"error": "no response", "error_type": "timeout"})
    assert answer.timed_out and answer.error == "no response" and answer.option is None
    assert rv.read_answer(None).error is not None and not rv.read_answer(None).timed_out


# ------------------------------------------------------------------------------------------ history
def test_change_requests_already_sent_are_read_from_the_session_history():
    history = [
        act("sessionCompleted", "c1"),
        act("userMessaged", "u1", userMessage="more"),
        act("agentMessaged", "q", agentMessage="?"),
        act("userMessaged", "u2", userMessage="yes"),
        act("sessionCompleted", "c2"),
    ]
    assert hist.completions_answered(history) == (1, False)
    assert hist.completions_answered([*history, act("userMessaged", "u3", userMessage="x")]) == (2, True)


def test_a_question_counts_as_answered_only_when_a_message_follows_it():
    history = [act("agentMessaged", "q1", agentMessage="?"), act("progressUpdated", "p")]
    assert not hist.question_answered(history, "q1")
    assert hist.question_answered([*history, act("userMessaged", "u", userMessage="y")], "q1")


def test_a_plan_is_pending_until_approved():
    assert hist.plan_pending([act("planGenerated", "p1")])
    assert not hist.plan_pending([act("planGenerated", "p1"), act("planApproved", "a1")])
    assert not hist.plan_pending([])


# ------------------------------------------------------------------------------------------ the wait
def test_open_form_writes_the_detail_then_waits_without_a_worker_slot(monkeypatch):
    written: list[dict[str, Any]] = []
    monkeypatch.setattr("airflow.sdk.execution_time.hitl.upsert_hitl_detail", lambda **kw: written.append(kw))
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None)
    ti = mock.MagicMock(id="0199-ti")
    users = [{"id": "rita", "name": "Rita"}, {"id": "sam", "name": "Sam"}]
    params = rv.form_params(ask=True, review=False)
    subject = rv.subject_for("question", result(), question="Which database?")
    form = rv.build_form("Q", result(), ["Send answer"], params, subject=subject, assigned_users=users)
    expected_kwargs = {"jules_state": {"step": "question", "rounds": []}}
    if TaskAwaitingInput is not None:  # Airflow >= 3.3: awaiting_input, no trigger
        with pytest.raises(TaskAwaitingInput) as parked:
            rv.open_form(
                op, {"task_instance": ti}, form, method_name="resume_from_person",
                kwargs=expected_kwargs, timeout_seconds=60,
            )  # fmt: skip
        assert parked.value.method_name == "resume_from_person"
        assert parked.value.kwargs == expected_kwargs
        assert parked.value.timeout.total_seconds() == 60
    else:  # Airflow 3.1 / 3.2: a deferral to the standard provider's HITLTrigger
        with pytest.raises(TaskDeferred) as deferred:
            rv.open_form(
                op, {"task_instance": ti}, form, method_name="resume_from_person",
                kwargs=expected_kwargs, timeout_seconds=60, poke_interval=0.5,
            )  # fmt: skip
        from airflow.providers.standard.triggers.hitl import HITLTrigger

        from airflow_provider_jules.triggers.hitl import JulesHITLTrigger, settle_seconds

        trigger = deferred.value.trigger
        assert isinstance(trigger, HITLTrigger) and isinstance(trigger, JulesHITLTrigger)
        assert deferred.value.method_name == "resume_from_person"
        assert deferred.value.kwargs == expected_kwargs
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_provider_jules.triggers.hitl.JulesHITLTrigger"
        assert kwargs["ti_id"] == "0199-ti" and kwargs["options"] == ["Send answer"]
        assert kwargs["poke_interval"] == 0.5 and kwargs["timeout_datetime"] is not None
        # An answer resumes the task no earlier than settle_seconds() (10 s with Airflow's defaults) after the
        # form opened (issue #21 item 4).
        settle = (kwargs["not_before"] - datetime.now(timezone.utc)).total_seconds()
        assert settle_seconds() == 10.0 and settle_seconds() - 2 < settle <= settle_seconds(), settle
    [detail] = written
    assert detail["ti_id"] == "0199-ti" and detail["options"] == ["Send answer"]
    assert detail["subject"] == "Jules asks: Which database?" and detail["defaults"] is None
    assert detail["assigned_users"] == users
    assert "sim-key" not in str(detail)


# ------------------------------------------------------------------------------------------ HITL missing
def _versions(missing: str | None = None, **known: str) -> Any:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as real

    def version(name: str) -> str:
        if name == missing:
            raise PackageNotFoundError(name)
        return known.get(name) or real(name)

    return version


def test_hitl_missing_names_the_package_and_version_to_install(monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", _versions(missing=rv.STANDARD_PROVIDER))
    message = rv.hitl_missing()
    assert message is not None
    assert "apache-airflow-providers-standard, which is not installed" in message
    assert 'pip install "apache-airflow-providers-standard>=1.21.0"' in message


def test_hitl_missing_reports_a_standard_provider_too_old(monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", _versions(**{rv.STANDARD_PROVIDER: "1.3.0"}))
    assert "apache-airflow-providers-standard >= 1.21.0; found 1.3.0" in str(rv.hitl_missing())


def test_hitl_is_available_in_this_installation():
    assert rv.hitl_missing() is None


@pytest.mark.parametrize(
    "kwargs",
    [{"on_user_feedback": "ask"}, {"review": "hitl"}, {"require_plan_approval": True, "review_plan": "hitl"}],
)
def test_ask_or_hitl_without_the_feature_fails_at_once_before_any_request(monkeypatch, kwargs):
    monkeypatch.setattr("importlib.metadata.version", _versions(missing=rv.STANDARD_PROVIDER))
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None, **kwargs)
    hook = mock.MagicMock()
    install_hook(monkeypatch, hook)
    with pytest.raises(AirflowFailException, match="apache-airflow-providers-standard"):
        op.execute({"ti": mock.MagicMock()})
    assert hook.mock_calls == []


def test_without_ask_or_hitl_nothing_checks_for_the_feature(monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", _versions(missing=rv.STANDARD_PROVIDER))
    op = JulesSendMessageOperator(task_id="t", session_id=SID, prompt="hello")
    # No error: the feature is needed only by "ask" and "hitl".
    options = ReviewOptions.check(
        on_user_feedback=op.on_user_feedback,
        wait_for_completion=op.wait_for_completion,
        require_plan_approval=op.require_plan_approval,
        question_timeout=op.question_timeout,
        review=op.review,
        review_timeout=op.review_timeout,
        plan_review_timeout=op.plan_review_timeout,
        review_plan=op.review_plan,
        on_reject=op.on_reject,
        on_reject_task=op.on_reject_task,
        max_review_rounds=op.max_review_rounds,
    )
    assert not options.person_steps


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"review": "yes"}, 'review must be None or "hitl"'),
        ({"review_plan": "hitl"}, "needs require_plan_approval=True"),
        ({"review": "hitl", "max_review_rounds": 0}, "max_review_rounds must be an integer >= 1 and <= 50"),
        ({"review": "hitl", "on_reject": "burn"}, "on_reject must be one of"),
        ({"review": "hitl", "on_reject_task": "ignore"}, "on_reject_task must be one of"),
        (
            {"on_user_feedback": "ask", "question_timeout": -1},
            "question_timeout must be a finite number of seconds > 0",
        ),
        ({"review": "hitl", "wait_for_completion": False}, "need wait_for_completion=True"),
    ],
)
def test_review_arguments_are_checked_before_any_request(monkeypatch, kwargs, error):
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None, **kwargs)
    hook = mock.MagicMock()
    install_hook(monkeypatch, hook)
    with pytest.raises(AirflowFailException, match=error.replace("(", r"\(").replace(")", r"\)")):
        op.execute({"ti": mock.MagicMock()})
    assert hook.mock_calls == []


def test_the_operators_module_does_not_import_the_standard_provider_at_parse_time():
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_jules.operators.jules, airflow_provider_jules.decorators.jules; "
        "bad = [m for m in sys.modules if m.startswith('airflow.providers.standard') and 'hitl' in m]; "
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ------------------------------------------------------------------------------------------ nothing twice
def review_hook() -> FakeHook:
    """A completed session with one change; a sent message shows up in its activities (as in Jules)."""
    return FakeHook(
        states=["COMPLETED"],
        session={"outputs": [{"pullRequest": {"url": "https://github.com/acme/web/pull/7"}}]},
        activities=[
            {"id": "c1", "createTime": "2026-01-01T00:00:01Z", "originator": "agent", "sessionCompleted": {}},
        ],
        update_time="2026-01-01T00:00:01Z",
        echo_messages=True,
    )


#: The trigger's event for a completed session with a change (the wait that precedes a change review).
COMPLETED_EVENT = {
    "status": "target",
    "session_id": SID,
    "state": "COMPLETED",
    "cursor": "2026-01-01T00:00:01Z",
    "end_time": 4102444800.0,
    "target_states": ["COMPLETED"],
    "stop_on_feedback": True,
}


def test_a_replayed_change_request_is_sent_once_and_the_wait_resumes_deferred_with_the_rounds(monkeypatch):
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None, review="hitl", deferrable=True)
    hook = review_hook()
    install_hook(monkeypatch, hook)
    event = COMPLETED_EVENT
    state = {"step": "change", "event": event, "round": 1, "rounds": [], "forms": 1}
    answer = {
        "chosen_options": ["Request changes"],
        "params_input": {"message": "Add a test."},
        "responded_by_user": {"id": "1", "name": "alice"},
        "responded_at": datetime.now(timezone.utc),
    }
    ctx = {"ti": mock.MagicMock(), "task_instance": mock.MagicMock()}
    deferrals = []
    for _ in range(2):  # the same resume twice: e.g. a worker that died after sending, before deferring
        with pytest.raises(TaskDeferred) as deferred:
            op.resume_from_person(ctx, event=answer, jules_state=state)
        deferrals.append(deferred.value)
    assert hook.sent == ["Add a test."]
    for deferral in deferrals:
        assert deferral.method_name == "execute_complete"
        kept = deferral.kwargs["jules_state"]
        assert [(r["round"], r["decision"], r["reviewer"]) for r in kept["rounds"]] == [
            (1, "changes_requested", "alice")
        ]
        # A triggerer restart re-creates the trigger from its serialized kwargs: the same wait.
        classpath, kwargs = deferral.trigger.serialize()
        from airflow_provider_jules.triggers.jules import JulesSessionTrigger

        assert JulesSessionTrigger(**kwargs).serialize() == (classpath, kwargs)
        assert kwargs["target_states"] == ["COMPLETED"] and kwargs["settle_after"] == "2026-01-01T00:00:01Z"
        assert "sim-key" not in json.dumps(kwargs) and "api_key" not in json.dumps(kwargs)


def test_a_session_that_keeps_showing_an_answered_change_ends_the_task_instead_of_looping(monkeypatch):
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None, review="hitl", deferrable=True)
    hook = review_hook()
    hook.activities.append(  # answered already, and every poll settles at once (a misbehaving API)
        {"id": "u0", "createTime": "2026-01-01T00:00:02Z", "userMessaged": {"userMessage": "x"}}
    )
    install_hook(monkeypatch, hook)
    event = {"status": "target", "session_id": SID, "state": "COMPLETED", "target_states": ["COMPLETED"]}
    with pytest.raises(AirflowException, match="kept showing a request that was already answered"):
        op.execute_complete({"ti": mock.MagicMock()}, event=event, jules_state={"rounds": [], "forms": 0})
    assert hook.sent == []


# ------------------------------------------------------------------------------------------ stored state
EVENT = {"status": "target", "session_id": SID, "state": "COMPLETED", "target_states": ["COMPLETED"]}
ROUND = {
    "round": 1,
    "decision": "changes_requested",
    "reviewer": "alice",
    "feedback": "x",
    "pull_request_url": None,
}


@pytest.mark.parametrize(
    "stored",
    [
        {"rounds": [], "forms": 0},
        {"rounds": [ROUND], "forms": 2, "plan_done": True, "idle": 1},
        {"rounds": [], "forms": 1, "step": "change", "event": EVENT, "round": 1},
        {"rounds": [], "forms": 1, "step": "question", "event": EVENT, "question_id": "q1"},
        {"forms": 3, "step": "plan", "event": EVENT},
    ],
)
def test_a_stored_review_state_is_read_and_written_back_as_the_same_json(stored):
    assert ReviewState.from_json(stored).to_json() == stored


def test_a_new_wait_keeps_the_rounds_forms_plan_and_idle_count_only():
    state = ReviewState.from_json(
        {
            "rounds": [ROUND],
            "forms": 2,
            "plan_done": True,
            "idle": 1,
            "step": "change",
            "event": EVENT,
            "round": 2,
        }
    )
    assert state.kept().to_json() == {"rounds": [ROUND], "forms": 2, "plan_done": True, "idle": 1}
    assert ReviewState(forms=None).kept().to_json() == {}
