"""Every outcome end to end with dag.test() against the simulator, deferrable and in the worker."""

from __future__ import annotations

import pytest

from tests.integration.conftest import advance_when_created, run_dag

MODES = ["deferrable", "sync"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_completed_returns_result_and_pushes_pr_url(test_dags, sim, mode, capfd):
    run = run_dag(getattr(test_dags, f"jules_completed_{mode}"))
    assert (run.state, run.task_states) == ("success", {"create": "success"})
    result = run.xcom("create")
    assert result["outcome"] == "completed"
    assert result["state"] == "COMPLETED"
    assert result["pull_request_url"].startswith("https://github.com/bobalover/boba/pull/")
    assert run.xcom("create", "pull_request_url") == result["pull_request_url"]
    assert run.xcom("create", "session_id") == result["session_id"]
    assert run.xcom("create", "session_url") == f"https://jules.google.com/session/{result['session_id']}"
    assert result["change_set"]["files_changed"] and result["change_set"]["patch"].startswith("diff --git")
    assert result["plan"]["steps"][0]["index"] == 0
    assert sim.sessions_created == 1
    log = capfd.readouterr()
    # Jules's progress streamed into the task log, one readable line per activity.
    assert "[Jules] Plan generated" in log.out + log.err
    assert "[Jules] Session completed with a patch touching" in log.out + log.err
    # Only the trigger logs "Following Jules session": the deferrable task really deferred, the other did not.
    assert ("Following Jules session" in log.out + log.err) is (mode == "deferrable")


def test_completed_without_changes_succeeds_with_no_pr(test_dags, sim, mode):
    run = run_dag(getattr(test_dags, f"jules_completed_without_changes_{mode}"))
    assert run.state == "success"
    result = run.xcom("create")
    assert (result["outcome"], result["pull_request_url"], result["change_set"]) == (
        "completed_without_changes",
        None,
        None,
    )


def _failed_with(run, capfd, outcome: str) -> str:
    assert (run.state, run.task_states) == ("failed", {"create": "failed"})
    assert run.xcom("create") is None  # no return value for a failing outcome
    assert run.xcom("create", "session_id")  # but the session id was pushed right after create
    text = "".join(capfd.readouterr())
    assert f"ended with outcome '{outcome}'" in text
    return text


def test_plan_not_approved_silent_completion_fails(test_dags, sim, mode, capfd):
    with advance_when_created(sim, 9000):  # nobody approves: after the approval timeout, COMPLETED
        run = run_dag(getattr(test_dags, f"jules_plan_not_approved_{mode}"))
    text = _failed_with(run, capfd, "plan_not_approved")
    assert "quirk Q15" in text


def test_agent_question_fails_with_the_question(test_dags, sim, mode, capfd):
    run = run_dag(getattr(test_dags, f"jules_awaiting_user_feedback_{mode}"))
    text = _failed_with(run, capfd, "awaiting_user_feedback")
    assert "Jules asks: Question 1: should I also update the docs?" in text


def test_reply_answers_each_question_once_and_completes(test_dags, sim, mode):
    run = run_dag(getattr(test_dags, f"jules_reply_{mode}"))
    assert run.state == "success"
    assert run.xcom("create")["outcome"] == "completed"
    sent = sim.requests("send_message")
    assert [r["json"] for r in sent] == [{"prompt": "Yes, please update the docs too."}] * 2


def test_failed_session_fails_with_reason(test_dags, sim, mode, capfd):
    run = run_dag(getattr(test_dags, f"jules_failed_{mode}"))
    text = _failed_with(run, capfd, "failed")
    assert "Jules encountered an error when working on the task." in text


def test_stalled_session_times_out_and_is_archived(test_dags, sim, mode, capfd):
    run = run_dag(getattr(test_dags, f"jules_stalled_{mode}"))
    text = _failed_with(run, capfd, "timed_out")
    assert "stalled: no new activity and no state change" in text
    sid = run.xcom("create", "session_id")
    assert [r["path"] for r in sim.requests("archive_session")] == [f"/v1alpha/sessions/{sid}:archive"]


def test_deadline_times_out_and_deletes_as_configured(test_dags, sim, mode, capfd):
    run = run_dag(getattr(test_dags, f"jules_deadline_{mode}"))
    text = _failed_with(run, capfd, "timed_out")
    assert "did not finish before the timeout" in text
    sid = run.xcom("create", "session_id")
    assert [r["path"] for r in sim.requests("delete_session")] == [f"/v1alpha/sessions/{sid}"]


def test_unknown_states_and_kinds_do_not_break_the_wait(test_dags, sim, mode):
    run = run_dag(getattr(test_dags, f"jules_unknown_state_{mode}"))
    assert run.state == "success"
    assert run.xcom("create")["outcome"] == "completed"


def test_plan_review_flow_create_sensor_approve(test_dags, sim, mode):
    run = run_dag(getattr(test_dags, f"jules_plan_review_{mode}"))
    assert run.task_states == {"create": "success", "wait_plan": "success", "approve": "success"}
    plan_result = run.xcom("wait_plan")
    assert plan_result["outcome"] == "awaiting_plan_approval"
    assert len(plan_result["plan"]["steps"]) >= 3
    assert run.xcom("approve")["outcome"] == "completed"
    assert len(sim.requests("approve_plan")) == 1
    assert sim.sessions_created == 1


def test_q25_session_ids_reach_downstream_tasks_as_strings(test_dags, sim):
    run = run_dag(test_dags.jules_id_types)
    assert run.task_states == {"create": "success", "id_types": "success"}
    assert run.xcom("id_types") == {"pulled": "str", "in_result": "str"}
    assert int(run.xcom("create", "session_id")) > 2**63 - 1 or len(run.xcom("create", "session_id")) == 20
