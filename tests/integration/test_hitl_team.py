"""Reviews in a team (issue #22): assigned reviewers on every form, notifiers called once per form, a decision
on review timeout, and subjects that tell the requests apart; with dag.test() and Airflow's HITL models.

Runs on Airflow >= 3.3 only: Airflow 3.1's dag.test() cannot answer (or time out) a human-in-the-loop task
(see tests/integration/hitl_helpers.py). The same behaviour is pinned without Airflow's runtime, on 3.1 and
3.3, in tests/unit/test_review_team.py, and on real components through the REST API in
tests/system/test_hitl_assigned.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.dags.jules_hitl_dags import NOTIFICATIONS_ENV, TEAM
from tests.integration.conftest import REPO, load_dag_module, run_dag
from tests.integration.hitl_helpers import HITL_TESTS, Responder, answer_during

QUESTION = "Question 1: should I also update the docs?"


@pytest.fixture
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_hitl_dags.py")


@pytest.fixture
def notifications(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "notifications.jsonl"
    monkeypatch.setenv(NOTIFICATIONS_ENV, str(path))
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _form_url(dag_id: str, run_id: str) -> str:
    # [api] base_url is not set in these tests: Airflow's own fallback (as for a task instance's log URL).
    return f"http://localhost:8080/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/create/required_actions"


def _title(dag_id: str, run_id: str) -> str:
    return f"Airflow {dag_id}.create run {run_id}"


# ------------------------------------------------------------------------------------ assigned and notified
def test_every_form_carries_the_assigned_users_and_each_notifier_is_called_once_per_form(
    dags, sim, monkeypatch, notifications
):
    responder = Responder("hitl_team", "create", [("Send answer", "Yes."), ("Approve", "")], reviewer="rita")
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_team)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert [(r["decision"], r["reviewer"]) for r in result["review"]] == [("approved", "rita")]

    # Both forms (the question, then the change review) carry the assigned users, as Airflow stores them.
    assert len(responder.forms) == 2
    assert [form["assigned_users"] for form in responder.forms] == [TEAM, TEAM]

    # One notification per form, in order, each with its own subject, kind, round and both links.
    sent = _read(notifications)
    url, title = _form_url("hitl_team", run.run_id), _title("hitl_team", run.run_id)
    session_url = result["url"]
    assert [n["jules_form"]["kind"] for n in sent] == ["question", "change"]
    question, change = (n["jules_form"] for n in sent)
    assert question["subject"] == f"Jules asks: {QUESTION}"
    assert change["subject"] == f"Review Jules's change (round 1 of 3): {title}"
    assert (question["round"], change["round"], change["max_rounds"]) == (None, 1, 3)
    for form in (question, change):
        assert form["form_url"] == url and form["session_url"] == session_url
        assert form["session_id"] == result["session_id"] and form["assigned_users"] == TEAM
    assert change["pull_request_url"] == result["pull_request_url"]
    # A notifier written for a HITLOperator: {{ task.subject }} renders the open form's subject.
    assert [n["message"] for n in sent] == [
        f"Jules asks: {QUESTION} | question None | {url} | {session_url}",
        f"Review Jules's change (round 1 of 3): {title} | change 1 | {url} | {session_url}",
    ]
    assert [n["task_subject"] for n in sent] == [question["subject"], change["subject"]]
    # The API key reaches no notifier.
    assert sim.api_key not in notifications.read_text()


def test_a_notifier_that_raises_is_logged_and_changes_nothing_else(
    dags, sim, monkeypatch, notifications, capfd
):
    responder = Responder(
        "hitl_team_broken_notifier", "create", [("Send answer", "Yes."), ("Approve", "")], reviewer="rita"
    )
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_team_broken_notifier)
    # The same run as with working notifiers: both forms opened and answered, the answer sent, approved.
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert [(r["round"], r["decision"], r["reviewer"]) for r in result["review"]] == [(1, "approved", "rita")]
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == ["Yes."]
    assert len(responder.forms) == 2 and all(f["answered"] for f in responder.forms)
    assert [form["assigned_users"] for form in responder.forms] == [[TEAM[0]], [TEAM[0]]]
    # The notifier after the broken one was still called once per form.
    assert [n["jules_form"]["kind"] for n in _read(notifications)] == ["question", "change"]
    out = "".join(capfd.readouterr())
    assert out.count("Notifier BrokenNotifier failed for the form") == 2
    assert "the chat service is down" in out


def test_task_jules_takes_assigned_users_and_a_single_notifier(dags, sim, monkeypatch, notifications):
    responder = Responder("hitl_task_decorator_team", "create", [("Approve", "")], reviewer="sam")
    answer_during(monkeypatch, responder)
    run = run_dag(dags.decorated_team_dag)
    assert run.task_states == {"create": "success"}
    [form] = responder.forms
    assert form["assigned_users"] == TEAM
    title = _title("hitl_task_decorator_team", run.run_id)
    assert form["subject"] == f"Review Jules's change (round 1 of 3): {title}"
    [sent] = _read(notifications)
    assert sent["jules_form"]["subject"] == form["subject"]
    assert sent["jules_form"]["form_url"] == _form_url("hitl_task_decorator_team", run.run_id)


# ------------------------------------------------------------------------------------------ subjects
def test_the_subjects_say_what_is_asked_and_about_what(dags, sim, monkeypatch):
    responder = Responder("hitl_review", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review)
    [change] = responder.forms
    assert change["subject"] == f"Review Jules's change (round 1 of 3): {_title('hitl_review', run.run_id)}"

    responder = Responder("hitl_plan", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_plan)
    [plan] = responder.forms
    assert plan["subject"] == f"Approve Jules's plan: {_title('hitl_plan', run.run_id)}"


# ------------------------------------------------------------------------------------ on_review_timeout
def _nobody_answers(dags: Any, monkeypatch: pytest.MonkeyPatch, dag_id: str) -> Any:
    """Run the DAG while nobody answers its one form: the scheduler's sweep times it out."""
    responder = Responder(dag_id, "create", [None])
    answer_during(monkeypatch, responder)
    run = run_dag(getattr(dags, dag_id))
    assert responder.swept == 1 and len(responder.forms) == 1
    return run


def test_a_change_review_timeout_fails_the_task_by_default_and_keeps_the_session(
    dags, sim, monkeypatch, capfd
):
    run = _nobody_answers(dags, monkeypatch, "hitl_review_timeout_fail")
    assert run.task_states == {"create": "failed"}
    assert not sim.requests("archive_session") and not sim.requests("delete_session")
    assert "no one answered review round 1 before the review timeout" in "".join(capfd.readouterr())


def test_on_review_timeout_approve_approves_the_change_and_records_it_as_timed_out(dags, sim, monkeypatch):
    run = _nobody_answers(dags, monkeypatch, "hitl_review_timeout_approve")
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert result["outcome"] == "completed"
    assert result["review"] == [
        {
            "round": 1,
            "decision": "approved",
            "reviewer": None,
            "feedback": None,
            "pull_request_url": result["pull_request_url"],
            "timed_out": True,
        }
    ]
    assert sim.requests("send_message") == [] and not sim.requests("archive_session")


def test_on_review_timeout_reject_follows_on_reject_and_fails_the_task(dags, sim, monkeypatch, capfd):
    run = _nobody_answers(dags, monkeypatch, "hitl_review_timeout_reject")
    assert run.task_states == {"create": "failed"}
    # on_reject="keep": the session is neither archived nor deleted.
    assert not sim.requests("archive_session") and not sim.requests("delete_session")
    out = "".join(capfd.readouterr())
    assert 'on_review_timeout="reject" (no one answered in time) rejected Jules\'s change' in out


def test_on_review_timeout_reject_with_skip_deletes_and_records_the_round(dags, sim, monkeypatch):
    run = _nobody_answers(dags, monkeypatch, "hitl_review_timeout_reject_skip")
    assert run.task_states == {"create": "skipped"}
    assert len(sim.requests("delete_session")) == 1
    [entry] = run.xcom("create")["review"]
    assert (entry["decision"], entry["reviewer"], entry["timed_out"]) == ("rejected", None, True)


def test_on_review_timeout_approve_approves_the_plan(dags, sim, monkeypatch):
    run = _nobody_answers(dags, monkeypatch, "hitl_plan_timeout_approve")
    assert run.task_states == {"create": "success"}
    assert len(sim.requests("approve_plan")) == 1
    assert run.xcom("create")["outcome"] == "completed"


def test_on_review_timeout_reject_rejects_the_plan(dags, sim, monkeypatch):
    run = _nobody_answers(dags, monkeypatch, "hitl_plan_timeout_reject")
    assert run.task_states == {"create": "failed"}
    assert not sim.requests("approve_plan")
    assert len(sim.requests("delete_session")) == 1


if not HITL_TESTS:  # Airflow < 3.3: these cases do not exist there (see the module docstring)
    for _name in [n for n in list(globals()) if n.startswith("test_")]:
        del globals()[_name]
