"""review="hitl" and review_plan="hitl": the change and the plan reviewed on the Required Actions page.

Runs on Airflow >= 3.3 only: Airflow 3.1's dag.test() cannot answer a human-in-the-loop task (see
tests/integration/hitl_helpers.py); the 3.1 path (a deferral to HITLTrigger) is pinned in
tests/unit/test_review.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import REPO, load_dag_module, run_dag
from tests.integration.hitl_helpers import HITL_TESTS, Responder, activity_kinds, answer_during


@pytest.fixture
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_hitl_dags.py")


def _session(session_id: str) -> dict[str, Any]:
    from airflow_provider_jules.hooks.jules import JulesHook

    return JulesHook().get_session(session_id)


def test_approve_ends_the_task_with_the_result_and_one_round(dags, sim, monkeypatch):
    responder = Responder("hitl_review", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert result["outcome"] == "completed"
    assert result["review"] == [
        {
            "round": 1,
            "decision": "approved",
            "reviewer": "alice",
            "feedback": None,
            "pull_request_url": result["pull_request_url"],
        }
    ]
    [form] = responder.forms
    assert form["options"] == ["Approve", "Request changes", "Reject"]
    assert result["pull_request_url"] in form["body"]
    assert "Review round 1 of at most 3" in form["body"] and "```diff" in form["body"]
    for path in result["change_set"]["files_changed"]:
        assert f"`{path}`" in form["body"]
    assert sim.requests("send_message") == []


def test_request_changes_then_approve_reviews_the_second_change(dags, sim, monkeypatch):
    responder = Responder(
        "hitl_review", "create", [("Request changes", "Please also document it."), ("Approve", "")]
    )
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": "Please also document it."}]
    assert [(r["round"], r["decision"], r["feedback"]) for r in result["review"]] == [
        (1, "changes_requested", "Please also document it."),
        (2, "approved", None),
    ]
    # The second round reviewed the new change (the follow-up file of Jules's second round, Q16).
    assert any(p.startswith("docs/follow_up_") for p in result["change_set"]["files_changed"])
    assert len(responder.forms) == 2
    assert "Review round 2 of at most 3" in responder.forms[1]["request"]
    assert "docs/follow_up_" in responder.forms[1]["request"]
    # The API key is in no form, no request XCom and no review record.
    assert sim.api_key not in json.dumps(responder.forms, default=str) + json.dumps(result)
    kinds = activity_kinds(sim, result["session_id"])
    assert kinds.count("sessionCompleted") == 2 and kinds.count("userMessaged") == 1


def test_reject_archives_the_session_and_fails_the_task(dags, sim, monkeypatch):
    responder = Responder("hitl_review_archive", "create", [("Reject", "Wrong approach.")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review_archive)
    assert run.task_states == {"create": "failed"}
    assert len(sim.requests("archive_session")) == 1 and not sim.requests("delete_session")
    assert _session(run.xcom("create", key="session_id")).get("archived") is True
    assert sim.requests("send_message") == []


def test_reject_with_skip_deletes_the_session_and_skips(dags, sim, monkeypatch):
    responder = Responder("hitl_review_skip", "create", [("Reject", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review_skip)
    assert run.task_states == {"create": "skipped"}
    assert len(sim.requests("delete_session")) == 1
    assert run.xcom("create")["review"][0]["decision"] == "rejected"


def test_max_review_rounds_exhausted_fails_without_sending_the_last_feedback(dags, sim, monkeypatch, capfd):
    responder = Responder(
        "hitl_review_rounds",
        "create",
        [("Request changes", "More tests."), ("Request changes", "Even more.")],
    )
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review_rounds)
    assert run.task_states == {"create": "failed"}
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == ["More tests."]
    assert "review round 2 asked for changes, and max_review_rounds=2 is reached" in "".join(
        capfd.readouterr()
    )


def test_plan_approve_then_the_session_completes(dags, sim, monkeypatch):
    responder = Responder("hitl_plan", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_plan)
    assert run.task_states == {"create": "success"}
    assert run.xcom("create")["outcome"] == "completed"
    assert len(sim.requests("approve_plan")) == 1
    [form] = responder.forms
    assert form["options"] == ["Approve", "Reject"] and form["params"] == {}
    assert "1. **Explore the repository" in form["body"]


def test_plan_reject_deletes_the_session_and_fails(dags, sim, monkeypatch):
    responder = Responder("hitl_plan", "create", [("Reject", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_plan)
    assert run.task_states == {"create": "failed"}
    assert not sim.requests("approve_plan")
    assert len(sim.requests("delete_session")) == 1


def test_a_question_then_a_change_review_in_one_task_share_one_form(dags, sim, monkeypatch):
    responder = Responder("hitl_ask_and_review", "create", [("Send answer", "Yes."), ("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_ask_and_review)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == ["Yes."]
    assert [(r["round"], r["decision"]) for r in result["review"]] == [(1, "approved")]
    # One form per task instance: its options cover both steps; the second request is in the XCom.
    assert responder.forms[0]["options"] == ["Approve", "Request changes", "Send answer", "Reject"]
    assert responder.forms[1]["options"] == responder.forms[0]["options"]
    assert "Jules asks" in responder.forms[1]["body"] and "Review round 1" in responder.forms[1]["request"]


def test_review_without_deferral_polls_in_the_worker_and_still_waits_for_the_person(dags, sim, monkeypatch):
    responder = Responder("hitl_review_sync", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.hitl_review_sync)
    assert run.task_states == {"create": "success"}
    assert run.xcom("create")["review"][0]["decision"] == "approved"
    assert len(responder.forms) == 1


def test_task_jules_takes_the_review_arguments(dags, sim, monkeypatch):
    responder = Responder(
        "hitl_task_decorator", "create", [("Request changes", "Add a test."), ("Approve", "")]
    )
    answer_during(monkeypatch, responder)
    run = run_dag(dags.decorated_dag)
    assert run.task_states == {"create": "success"}
    assert [r["decision"] for r in run.xcom("create")["review"]] == ["changes_requested", "approved"]
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == ["Add a test."]


def test_a_follow_up_message_with_review_reviews_the_new_change(dags, sim, monkeypatch):
    responder = Responder("hitl_send_message_review", "follow_up", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.follow_up_dag)
    assert run.task_states == {"create": "success", "follow_up": "success"}
    result = run.xcom("follow_up")
    assert [r["json"]["prompt"] for r in sim.requests("send_message")] == [
        "Please also add a regression test."
    ]
    assert [(r["round"], r["decision"]) for r in result["review"]] == [(1, "approved")]
    # The change reviewed is the one after the follow-up (Jules's second round, Q16).
    assert "docs/follow_up_" in responder.forms[0]["body"]


if not HITL_TESTS:  # Airflow < 3.3: these cases do not exist there (see the module docstring)
    for _name in [n for n in list(globals()) if n.startswith("test_")]:
        del globals()[_name]
