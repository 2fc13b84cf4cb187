"""on_user_feedback="ask": Jules's questions answered on the Required Actions page, with dag.test().

Runs on Airflow >= 3.3 only: Airflow 3.1's dag.test() cannot answer a human-in-the-loop task (see
tests/integration/hitl_helpers.py); the 3.1 path (a deferral to HITLTrigger) is pinned in
tests/unit/test_review.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import REPO, load_dag_module, run_dag
from tests.integration.hitl_helpers import HITL_TESTS, Responder, activity_kinds, answer_during


@pytest.fixture
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_hitl_dags.py")


def test_a_question_is_answered_and_the_session_completes(dags, sim, monkeypatch):
    dag = dags.hitl_ask_one
    responder = Responder("hitl_ask_one", "create", [("Send answer", "Yes, update the docs too.")])
    answer_during(monkeypatch, responder)
    run = run_dag(dag)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert result["outcome"] == "completed" and result["review"] == []
    sent = sim.requests("send_message")
    assert [r["json"] for r in sent] == [{"prompt": "Yes, update the docs too."}]
    [form] = responder.forms
    assert form["subject"] == "Jules asks: Question 1: should I also update the docs?"
    assert "Question 1: should I also update the docs?" in form["body"]
    assert form["options"] == ["Send answer"] and list(form["params"]) == ["message"]
    assert "Question 1" in form["request"]


def test_two_questions_are_each_asked_once_and_answered_once(dags, sim, monkeypatch):
    dag = dags.hitl_ask_two
    responder = Responder(
        "hitl_ask_two", "create", [("Send answer", "First answer"), ("Send answer", "Second")]
    )
    answer_during(monkeypatch, responder)
    run = run_dag(dag)
    assert run.task_states == {"create": "success"}
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == ["First answer", "Second"]
    assert len(responder.forms) == 2
    # Airflow keeps the first form's text; the current question is in the jules_request XCom (and the log).
    assert "Question 1" in responder.forms[1]["body"]
    assert "Question 2" in responder.forms[1]["request"]
    kinds = activity_kinds(sim, run.xcom("create")["session_id"])
    assert kinds.count("agentMessaged") == 2 and kinds.count("userMessaged") == 2


def test_a_question_nobody_answers_fails_with_the_question(dags, sim, monkeypatch, capfd):
    dag = dags.hitl_ask_timeout
    responder = Responder("hitl_ask_timeout", "create", [None])
    answer_during(monkeypatch, responder)
    run = run_dag(dag)
    assert run.task_states == {"create": "failed"}
    assert responder.swept == 1
    assert sim.requests("send_message") == []
    assert not sim.requests("archive_session") and not sim.requests("delete_session")
    out = "".join(capfd.readouterr())
    assert (
        "ended with outcome 'awaiting_user_feedback': no one answered Jules's question before the question "
        "timeout. Jules asks: Question 1: should I also update the docs?"
    ) in out


if not HITL_TESTS:  # Airflow < 3.3: these cases do not exist there (see the module docstring)
    for _name in [n for n in list(globals()) if n.startswith("test_")]:
        del globals()[_name]
