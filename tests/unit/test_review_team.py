"""Reviews in a team (issue #22) without Airflow's runtime, on Airflow 3.1 and 3.3: the checks of
``assigned_users``, ``notifiers`` and ``on_review_timeout``, the subjects, the form's URL, how notifiers are
called, and what a review timeout does. The same behaviour with dag.test() is in
tests/integration/test_hitl_team.py (Airflow >= 3.3), through the REST API in
tests/system/test_hitl_assigned.py; Airflow's own enforcement of assigned users is pinned at the end."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.bases.notifier import BaseNotifier

from airflow_provider_jules import review as rv
from airflow_provider_jules._compat import (
    AirflowFailException,
    AirflowSkipException,
    TaskAwaitingInput,
    TaskDeferred,
)
from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.decorators.jules import jules_task
from airflow_provider_jules.failures import JulesSessionError
from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
    JulesSendMessageOperator,
)
from airflow_provider_jules.options import hitl_users, notifier_list
from airflow_provider_jules.review.notify import call_notifiers, form_info, form_url
from tests.fakes import FakeHook, install_hook
from tests.unit.test_review import COMPLETED_EVENT, SID, review_hook
from tests.unit.test_review import result as review_result

#: How a task waits for a person: awaiting_input on Airflow >= 3.3, a deferral to HITLTrigger before.
WAIT = TaskAwaitingInput if TaskAwaitingInput is not None else TaskDeferred
RITA = {"id": "rita", "name": "Rita Reviewer"}
SAM = {"id": "sam", "name": "Sam"}


def result(**overrides: Any) -> dict[str, Any]:
    """test_review's result, its title with the task-instance marker (the subjects drop it)."""
    return review_result(**{"title": "Fix the flaky tests [airflow-0123456789abcdef]", **overrides})


# ------------------------------------------------------------------------------------------ assigned_users
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, []),
        ([], []),
        (RITA, [RITA]),
        ([RITA, SAM], [RITA, SAM]),
        ((RITA,), [RITA]),
        ({"id": "7", "name": "Ann", "email": "ann@example.com"}, [{"id": "7", "name": "Ann"}]),
    ],
)
def test_assigned_users_take_the_forms_of_hitl_operator(given, expected):
    assert hitl_users(given) == expected


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("rita", "assigned_users must be a user dict"),
        (["rita"], "assigned_users: user 1 must be a dict"),
        ([RITA, {"id": "sam"}], 'assigned_users: user 2 needs "name", a non-empty string'),
        ({"name": "Rita"}, 'assigned_users: user 1 needs "id", a non-empty string'),
        ({"id": 7, "name": "Ann"}, 'user 1 needs "id", a non-empty string'),
        ({"id": " ", "name": "Ann"}, 'user 1 needs "id", a non-empty string'),
    ],
)
def test_bad_assigned_users_are_a_clear_error_when_the_dag_is_parsed(given, error):
    with pytest.raises(JulesConfigError, match=error) as raised:
        JulesCreateSessionOperator(task_id="t", prompt="p", source=None, review="hitl", assigned_users=given)
    assert '{"id": "<user id in the auth manager>", "name": "<display name>"}' in str(raised.value)


@pytest.mark.parametrize(
    "operator", [JulesCreateSessionOperator, JulesSendMessageOperator, JulesApprovePlanOperator]
)
def test_every_operator_with_forms_takes_the_team_arguments(operator):
    kwargs: dict[str, Any] = {"prompt": "p", "source": None} if operator is JulesCreateSessionOperator else {}
    if operator is not JulesCreateSessionOperator:
        kwargs["session_id"] = SID
        if operator is JulesSendMessageOperator:
            kwargs["prompt"] = "p"
    notifier = Recording("x")
    op = operator(task_id="t", assigned_users=RITA, notifiers=notifier, on_review_timeout="approve", **kwargs)
    assert op.assigned_users == [RITA] and op.notifiers == [notifier] and op.on_review_timeout == "approve"


def test_task_jules_takes_the_team_arguments():
    from airflow.sdk import DAG

    with DAG("d", schedule=None):

        @jules_task(source="acme/web", review="hitl", assigned_users=[RITA, SAM], notifiers=[Recording("x")])
        def fix() -> str:
            return "Fix it"

        task = fix().operator
    assert task.assigned_users == [RITA, SAM] and len(task.notifiers) == 1


# ------------------------------------------------------------------------------------------ notifiers
class Recording(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.sent: list[tuple[str, dict[str, Any]]] = []  # shared with the copies the provider calls

    def notify(self, context: Any) -> None:
        self.sent.append((self.message, context["jules_form"]))


class Broken(BaseNotifier):
    def notify(self, context: Any) -> None:
        raise RuntimeError("the chat service is down")


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("slack", "notifiers must be an Airflow notifier"),
        ([Recording("x"), "slack"], "notifiers: item 2 must be an Airflow notifier"),
        (Recording, "not classes"),
        ([Recording], "not classes"),
    ],
)
def test_bad_notifiers_are_a_clear_error_when_the_dag_is_parsed(given, error):
    with pytest.raises(JulesConfigError, match=error):
        JulesCreateSessionOperator(task_id="t", prompt="p", source=None, review="hitl", notifiers=given)


def test_one_notifier_or_a_list_as_hitl_operator_takes_them():
    one = Recording("x")
    assert (
        notifier_list(None) == [] and notifier_list(one) == [one] and notifier_list([one, one]) == [one, one]
    )


def _context(map_index: int = -1) -> dict[str, Any]:
    ti = mock.MagicMock(dag_id="nightly", run_id="manual__2025-01-01T00:00:00+00:00", task_id="fix")
    ti.map_index = map_index
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id}


def test_the_form_url_is_the_task_instance_required_actions_page(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    run = "manual__2025-01-01T00%3A00%3A00%2B00%3A00"
    assert form_url(_context()) == f"http://localhost:8080/dags/nightly/runs/{run}/tasks/fix/required_actions"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/team/")
    assert form_url(_context(3)) == (
        f"https://airflow.example/team/dags/nightly/runs/{run}/tasks/fix/mapped/3/required_actions"
    )


def _form(subject: str = "Approve Jules's plan: Fix the flaky tests") -> rv.Form:
    return rv.build_form(
        "**Plan**", result(), ["Approve", "Reject"], {}, subject=subject, assigned_users=[RITA]
    )


def test_each_notifier_is_called_once_with_the_form_in_the_context_and_a_failure_is_only_logged(caplog):
    first, broken, last = (
        Recording("{{ task.subject }} -> {{ jules_form.form_url }}"),
        Broken(),
        Recording("b"),
    )
    task = JulesCreateSessionOperator(task_id="t", prompt="p", source=None)
    context = {**_context(), "task": task}
    form = _form()
    info = form_info(
        context, form, kind="plan", result=result(), round_number=None, max_rounds=3, timeout_seconds=480
    )
    log = logging.getLogger("jules-test")
    with caplog.at_level(logging.WARNING, logger="jules-test"):
        done = call_notifiers([first, broken, last], task, context, form, info, log)
    assert done == 2
    [(message, got)] = first.sent
    assert message == f"Approve Jules's plan: Fix the flaky tests -> {form_url(context)}"
    assert got == info and len(last.sent) == 1
    assert got["kind"] == "plan" and got["round"] is None and got["max_rounds"] is None
    assert got["session_url"] == result()["url"] and got["session_title"] == "Fix the flaky tests"
    assert got["assigned_users"] == [RITA] and got["options"] == ["Approve", "Reject"]
    assert got["timeout_at"] is not None
    # As on a HITLOperator: the task carries the open form's subject, body and options.
    assert (task.subject, task.body, task.options) == (form.subject, form.body, ["Approve", "Reject"])
    # The task's own context is left as it was (a notifier merges its fields into its copy).
    assert set(context) == {"ti", "task_instance", "run_id", "task"}
    assert "Notifier Broken failed for the form" in caplog.text and "the chat service is down" in caplog.text


def test_a_notifier_called_for_two_forms_in_one_process_renders_each_form_afresh():
    notifier = Recording("{{ jules_form.subject }}")
    task = JulesCreateSessionOperator(task_id="t", prompt="p", source=None)
    context, log = _context(), logging.getLogger("jules-test")
    for subject in ("Jules asks: Which database?", "Review Jules's change (round 1 of 3): Fix"):
        form = _form(subject)
        info = form_info(
            context, form, kind="x", result=result(), round_number=1, max_rounds=3, timeout_seconds=None
        )
        call_notifiers([notifier], task, context, form, info, log)
    assert [message for message, _ in notifier.sent] == [
        "Jules asks: Which database?",
        "Review Jules's change (round 1 of 3): Fix",
    ]
    assert notifier.message == "{{ jules_form.subject }}"  # the DAG's object is never rendered in place


def test_open_form_writes_the_users_then_notifies_then_waits(monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(
        "airflow.sdk.execution_time.hitl.upsert_hitl_detail",
        lambda **kw: order.append(f"write {kw['assigned_users']}"),
    )
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None)
    ti = mock.MagicMock(id="0199-ti")
    with pytest.raises(WAIT):
        try:
            rv.open_form(
                op, {"task_instance": ti}, _form(), method_name="resume_from_person", kwargs={},
                timeout_seconds=60, notify=lambda: order.append("notify"),
            )  # fmt: skip
        finally:
            order.append("wait")
    assert order == [f"write {[RITA]}", "notify", "wait"]


def test_without_assigned_users_the_form_is_written_for_anyone(monkeypatch):
    written: list[dict[str, Any]] = []
    monkeypatch.setattr("airflow.sdk.execution_time.hitl.upsert_hitl_detail", lambda **kw: written.append(kw))
    form = rv.build_form("Q", result(), ["Send answer"], {}, subject="Jules asks: ?")
    with pytest.raises(WAIT):
        rv.open_form(
            JulesCreateSessionOperator(task_id="t", prompt="p", source=None),
            {"task_instance": mock.MagicMock(id="x")}, form, method_name="m", kwargs={}, timeout_seconds=None,
        )  # fmt: skip
    assert written[0]["assigned_users"] is None


# ------------------------------------------------------------------------------------------ subjects
def test_the_subjects_say_what_is_asked_and_about_what():
    assert rv.subject_for("question", result(), question="Which database?") == "Jules asks: Which database?"
    asked = rv.subject_for("question", result(), question="\n  Which   database?\nPostgres or MySQL?")
    assert asked == "Jules asks: Which database? …"
    assert rv.subject_for("question", result(), question="  ") == "Jules asks: (no question text)"
    change = rv.subject_for("change", result(), round_number=2, max_rounds=3)
    assert change == "Review Jules's change (round 2 of 3): Fix the flaky tests"
    assert rv.subject_for("plan", result()) == "Approve Jules's plan: Fix the flaky tests"
    assert rv.subject_for("plan", result(title="")) == f"Approve Jules's plan: session {SID}"
    assert rv.subject_for("plan", result(title="Two\nlines")) == "Approve Jules's plan: Two lines"
    with pytest.raises(ValueError, match="no form subject"):
        rv.subject_for("other", result())


def test_a_long_subject_keeps_what_is_asked_and_ends_with_an_ellipsis():
    long = "x" * 500
    for step, kwargs in (("question", {"question": long}), ("change", {"round_number": 1, "max_rounds": 3})):
        subject = rv.subject_for(step, result(title=long), **kwargs)
        assert len(subject) == rv.SUBJECT_MAX_CHARS and subject.endswith("x…")
        assert subject.startswith(("Jules asks: x", "Review Jules's change (round 1 of 3): x"))


# ------------------------------------------------------------------------------------------ on_review_timeout
def test_on_review_timeout_is_checked_before_any_request(monkeypatch):
    op = JulesCreateSessionOperator(
        task_id="t", prompt="p", source=None, review="hitl", on_review_timeout="ok"
    )
    hook = mock.MagicMock()
    install_hook(monkeypatch, hook)
    with pytest.raises(AirflowFailException, match="on_review_timeout must be one of"):
        op.execute({"ti": mock.MagicMock()})
    assert hook.mock_calls == []


EVENT = COMPLETED_EVENT
TIMEOUT = {
    "error": "The Human-in-the-loop response timeout has passed without a response.",
    "error_type": "timeout",
}


def _timed_out_change(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> tuple[Any, FakeHook, Any]:
    """(resume, hook, ti): a change review of a completed session that nobody answered in time."""
    op = JulesCreateSessionOperator(task_id="t", prompt="p", source=None, review="hitl", **kwargs)
    hook = review_hook()
    install_hook(monkeypatch, hook)
    ti = mock.MagicMock()
    state = {"step": "change", "event": EVENT, "round": 1, "rounds": [], "forms": 1}

    def resume() -> Any:
        return op.resume_from_person({"ti": ti, "task_instance": ti}, event=dict(TIMEOUT), jules_state=state)

    return resume, hook, ti


def _cleanups(hook: FakeHook) -> list[str]:
    return [name for name, _ in hook.calls if name in ("archive_session", "delete_session")]


def test_a_timed_out_change_review_fails_by_default(monkeypatch):
    resume, hook, _ = _timed_out_change(monkeypatch)
    with pytest.raises(JulesSessionError, match="no one answered review round 1 before the review timeout"):
        resume()
    assert _cleanups(hook) == [] and hook.sent == []


def test_a_timed_out_change_review_approved_by_on_review_timeout(monkeypatch):
    resume, hook, _ = _timed_out_change(monkeypatch, on_review_timeout="approve")
    outcome = resume()
    assert outcome["outcome"] == "completed"
    assert outcome["review"] == [
        {
            "round": 1,
            "decision": "approved",
            "reviewer": None,
            "feedback": None,
            "pull_request_url": "https://github.com/acme/web/pull/7",
            "timed_out": True,
        }
    ]
    assert hook.sent == [] and _cleanups(hook) == []


def test_a_timed_out_change_review_rejected_by_on_review_timeout_follows_on_reject(monkeypatch):
    resume, hook, _ = _timed_out_change(monkeypatch, on_review_timeout="reject", on_reject="delete")
    with pytest.raises(AirflowFailException, match=r'on_review_timeout="reject" \(no one answered in time\)'):
        resume()
    assert _cleanups(hook) == ["delete_session"] and hook.sent == []


def test_a_timed_out_change_review_rejected_with_skip_pushes_the_timed_out_round(monkeypatch):
    resume, hook, ti = _timed_out_change(monkeypatch, on_review_timeout="reject", on_reject_task="skip")
    with pytest.raises(AirflowSkipException):
        resume()
    assert _cleanups(hook) == ["archive_session"]
    [pushed] = [c.kwargs["value"] for c in ti.xcom_push.call_args_list if c.kwargs["key"] == "return_value"]
    assert [(r["decision"], r["reviewer"], r["timed_out"]) for r in pushed["review"]] == [
        ("rejected", None, True)
    ]


def test_a_timed_out_plan_review_is_approved_or_rejected_as_on_review_timeout_says(monkeypatch):
    plan_event = {
        **EVENT,
        "state": "AWAITING_PLAN_APPROVAL",
        "target_states": ["COMPLETED", "AWAITING_PLAN_APPROVAL"],
    }
    state = {"step": "plan", "event": plan_event, "forms": 1}
    activities = [
        {"id": "p1", "createTime": "2026-01-01T00:00:01Z", "planGenerated": {"plan": {"steps": []}}}
    ]
    for decision, expected in (("approve", TaskDeferred), ("reject", AirflowFailException)):
        op = JulesCreateSessionOperator(
            task_id="t", prompt="p", source=None, require_plan_approval=True, review_plan="hitl",
            deferrable=True, on_review_timeout=decision, on_reject="delete",
        )  # fmt: skip
        hook = FakeHook(states=["AWAITING_PLAN_APPROVAL"], activities=activities)
        install_hook(monkeypatch, hook)
        ti = mock.MagicMock()
        with pytest.raises(expected):
            op.resume_from_person({"ti": ti, "task_instance": ti}, event=dict(TIMEOUT), jules_state=state)
        approved = ("approve_plan", SID) in hook.calls
        deleted = ("delete_session", SID) in hook.calls
        assert (approved, deleted) == (decision == "approve", decision == "reject"), (decision, hook.calls)


def test_a_person_s_answer_is_never_marked_timed_out(monkeypatch):
    op = JulesCreateSessionOperator(
        task_id="t", prompt="p", source=None, review="hitl", on_review_timeout="reject"
    )
    install_hook(monkeypatch, review_hook())
    ti = mock.MagicMock()
    answer = {
        "chosen_options": ["Approve"],
        "params_input": {"message": ""},
        "responded_by_user": {"id": "rita", "name": "Rita Reviewer"},
        "responded_at": datetime.now(timezone.utc),
    }
    state = {"step": "change", "event": EVENT, "round": 1, "rounds": [], "forms": 1}
    outcome = op.resume_from_person({"ti": ti, "task_instance": ti}, event=answer, jules_state=state)
    assert [(r["decision"], r["reviewer"], "timed_out" in r) for r in outcome["review"]] == [
        ("approved", "Rita Reviewer", False)
    ]


# ------------------------------------------------------------------------------------ Airflow's enforcement
@pytest.mark.parametrize("all_admins", [False, True])
def test_airflow_s_simple_auth_manager_lets_only_assigned_users_answer_unless_all_admins(
    monkeypatch, all_admins
):
    """What the docs say of Airflow 3.1 and 3.3 (the REST API's PATCH .../hitlDetails asks the auth manager's
    ``is_authorized_hitl_task`` when a form has assigned users, and answers 403 when it says no; the system
    test tests/system/test_hitl_assigned.py sees the 403): only an assigned user's id passes, except in the
    simple auth manager's all-admins mode, where everyone does."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", str(all_admins))
    manager = SimpleAuthManager()
    assigned = {"rita"}
    rita, sam = (
        SimpleAuthManagerUser(username="rita", role="admin"),
        SimpleAuthManagerUser(username="sam", role="admin"),
    )
    assert manager.is_authorized_hitl_task(assigned_users=assigned, user=rita) is True
    assert manager.is_authorized_hitl_task(assigned_users=assigned, user=sam) is all_admins


def test_airflow_s_rest_api_checks_assigned_users_before_recording_an_answer():
    """On both supported versions the public route refuses a user the auth manager does not authorize."""
    import inspect

    from airflow.api_fastapi.core_api.routes.public import hitl

    source = inspect.getsource(hitl.update_hitl_detail)
    check = source.index("is_authorized_hitl_task(assigned_users=assigned_user_ids, user=user)")
    assert source.index("HTTP_403_FORBIDDEN", check) < source.index(
        "hitl_detail_model.responded_by = hitl_user"
    )
