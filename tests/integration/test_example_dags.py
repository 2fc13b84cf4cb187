"""Every example DAG, run with dag.test() against the simulator."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.integration.conftest import REPO, load_dag_module, run_dag


@pytest.fixture
def examples(airflow_db: None, sim: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("JULES_EXAMPLE_POLL_INTERVAL", "0.05")

    def load(name: str) -> Any:
        return load_dag_module(REPO / "example_dags" / f"{name}.py")

    return load


def test_quickstart_hands_the_pr_url_downstream(examples, sim):
    module = examples("jules_quickstart")
    run = run_dag(module.dag)
    assert run.task_states == {"fix_flaky_tests": "success", "review_pull_request": "success"}
    result = run.xcom("fix_flaky_tests")
    assert result["outcome"] == "completed"
    assert run.xcom("review_pull_request") == result["pull_request_url"]
    assert result["pull_request_url"].startswith("https://github.com/bobalover/boba/pull/")


def test_nightly_batch_fans_out_under_a_pool_and_reports(examples, sim):
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("jules_sessions", 3, "Jules concurrent sessions", include_deferred=True)
    module = examples("jules_nightly_batch")
    from airflow_provider_jules.hooks.jules import JulesHook

    names = [s["name"] for s in JulesHook().list_sources()][:3]
    assert len(names) == 3
    run_conf = {
        "source_filter": " OR ".join(f"name={n}" for n in names),
        "extra_instructions": "Also run the linter.",
    }
    dag_run = module.dag.test(run_conf=run_conf)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from tests.integration.conftest import DagRunResult

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=module.dag.dag_id, run_id=dag_run.run_id).all()
        states = {(ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state)) for ti in tis}
        pools = {ti.task_id: ti.pool for ti in tis}
    run = DagRunResult(
        module.dag.dag_id, dag_run.run_id, str(getattr(dag_run.state, "value", dag_run.state)), {}
    )
    assert run.state == "success"
    assert {k: v for k, v in states.items() if k[0] == "fix_flaky_tests"} == {
        ("fix_flaky_tests", i): "success" for i in range(3)
    }
    assert pools["fix_flaky_tests"] == "jules_sessions"
    assert Pool.get_pool("jules_sessions").include_deferred is True
    assert run.xcom("list_repositories") == names
    report = run.xcom("report")
    assert report["repositories"] == 3 and report["pull_requests"] == 3
    assert [r["source"] for r in report["rows"]] == names
    assert {r["outcome"] for r in report["rows"]} == {"completed"}
    assert sim.sessions_created == 3
    # The prompt file, rendered for each repository with the mapped source and the run's params.
    prompts = [r["json"]["prompt"] for r in sim.requests("create_session")]
    assert {p.splitlines()[0] for p in prompts} == {
        f"Find the tests of `{n}` that fail intermittently and make them deterministic." for n in names
    }
    assert all("Also run the linter." in p and "{{" not in p for p in prompts)


def test_asset_pipeline_records_the_pr_url_in_the_asset_event(examples, sim):
    module = examples("jules_asset_pipeline")
    run = run_dag(module.update_dag)
    assert run.task_states == {"update_client": "success"}
    result = run.xcom("update_client")
    url = result["pull_request_url"]
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri="jules://client-library/pull-request").one()
        events = session.query(AssetEvent).filter_by(asset_id=asset.id).all()
        assert [e.extra["pull_request_url"] for e in events][-1] == url
        # The Jules task's own asset event says which session and change produced it.
        assert events[-1].extra == {
            "session_id": result["session_id"],
            "url": result["url"],
            "outcome": "completed",
            "pull_request_url": url,
            "files_changed": result["change_set"]["files_changed"],
        }
        queued = session.query(AssetDagRunQueue).filter_by(asset_id=asset.id).all()
        # The scheduler turns this queue entry into a run of the release DAG.
        assert "jules_release_client_library" in {q.target_dag_id for q in queued}
    assert module.release_dag.timetable.asset_condition is not None


def test_self_healing_opens_one_fix_session_for_the_failed_task(
    examples, sim, failure_callbacks_get_the_exception
):
    module = examples("jules_self_healing")
    run = run_dag(module.dag)
    assert run.state == "failed"
    assert run.task_states == {"extract_orders": "success", "transform_orders": "failed"}
    [create] = [r["json"] for r in sim.requests("create_session") if r["status"] == 200]
    assert create["title"].startswith("[jules-fix ")
    assert create["title"].endswith("] Fix jules_self_healing.transform_orders: KeyError")
    assert create["sourceContext"]["source"] == "sources/github/myorg/myrepo"
    assert create["automationMode"] == "AUTO_CREATE_PR"
    prompt = create["prompt"]
    assert "Exception: KeyError: 'amount_eur'" in prompt
    assert (
        "Innermost frame in the DAG's code: example_dags/jules_self_healing.py, function normalise" in prompt
    )
    assert "Keep the warehouse schema unchanged; adapt the transform to the new export." in prompt
    fix = run.xcom("transform_orders", "jules_fix")
    assert fix == {
        "session_id": fix["session_id"],
        "url": f"https://jules.google.com/session/{fix['session_id']}",
        "signature": create["title"].split()[1].rstrip("]"),
        "new": True,
    }
    assert run.xcom("extract_orders", "jules_fix") is None  # the task that succeeded links nothing


def _respond_once(dag_id: str, task_id: str, option: str) -> bool:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils import timezone
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id).all()
        for ti in tis:
            detail = session.get(HITLDetail, ti.id)
            if detail is None or detail.responded_at is not None:
                continue
            detail.responded_by = {"id": "reviewer", "name": "reviewer"}
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [option]
            detail.params_input = {}
            session.add(detail)
            if str(getattr(ti.state, "value", ti.state)) == "awaiting_input":  # Airflow >= 3.3: resume it
                from airflow.models.trigger import handle_event_submit
                from airflow.triggers.base import TriggerEvent

                handle_event_submit(
                    TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                )
            return True
    return False


def _airflow_at_least(major: int, minor: int) -> bool:
    import airflow

    return tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (major, minor)


# Airflow 3.1's dag.test() cannot answer a human-in-the-loop task (its in-process trigger gets no HITL
# detail from the test supervisor), so there the answered flows do not exist as cases; the flow around the
# review still runs everywhere, with the review task marked successful.
HITL_CASES = (
    [
        ("Approve", {"approve_plan": "success", "discard_rejected_session": "skipped"}),
        ("Reject", {"approve_plan": "skipped", "discard_rejected_session": "success"}),
    ]
    if _airflow_at_least(3, 3)
    else []
)


def test_plan_review_flow_with_the_review_marked_successful(examples, sim):
    module = examples("jules_plan_review")
    dag_run = module.composable_dag.test(mark_success_pattern="review_plan")
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter_by(dag_id="jules_plan_review_composable", run_id=dag_run.run_id)
            .all()
        )
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}
    assert states == {
        "propose_plan": "success",
        "wait_for_plan": "success",
        "plan_as_markdown": "success",
        "review_plan": "success",
        "approve_plan": "success",
        "discard_rejected_session": "skipped",
    }
    assert len(sim.requests("approve_plan")) == 1 and sim.sessions_created == 1


@pytest.mark.parametrize(("option", "expected"), HITL_CASES)
def _test_plan_review_with_a_human_approval(examples, sim, monkeypatch, option, expected):
    """The reviewer answers while dag.test() waits for the human-in-the-loop task.

    dag.test() polls for the answer with ``time.sleep(1)`` in the main thread; the answer is written from
    that same thread, between two of its polls (SQLite allows one writer: no second thread writes).
    """
    module = examples("jules_plan_review")
    real_sleep = time.sleep
    answered: list[bool] = []

    def sleep_and_answer(seconds: float) -> None:
        if not answered and threading.current_thread() is threading.main_thread():
            if _respond_once("jules_plan_review_composable", "review_plan", option):
                answered.append(True)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep_and_answer)
    run = run_dag(module.composable_dag)
    monkeypatch.setattr(time, "sleep", real_sleep)
    assert answered == [True]
    assert {k: run.task_states[k] for k in expected} == expected
    assert run.task_states["wait_for_plan"] == "success"
    plan_md = run.xcom("plan_as_markdown")
    assert plan_md.startswith("Jules's plan for") and "1. **" in plan_md
    if option == "Approve":
        assert run.xcom("approve_plan")["outcome"] == "completed"
        assert len(sim.requests("approve_plan")) == 1
    else:
        assert not sim.requests("approve_plan")
        assert len(sim.requests("delete_session")) == 1


@pytest.mark.parametrize(("option", "state"), [("Approve", "success"), ("Reject", "failed")])
def _test_plan_review_in_one_task(examples, sim, monkeypatch, option, state):
    """The one-task form: the plan on Required Actions, answered by a person (Airflow >= 3.3, see above)."""
    from tests.integration.hitl_helpers import Responder, answer_during

    module = examples("jules_plan_review")
    responder = Responder("jules_plan_review", "rate_limiting", [(option, "")])
    answer_during(monkeypatch, responder)
    run = run_dag(module.dag)
    assert run.task_states == {"rate_limiting": state}
    [form] = responder.forms
    assert form["options"] == ["Approve", "Reject"]
    assert "**Jules proposes this plan**" in form["body"] and "1. **" in form["body"]
    assert sim.sessions_created == 1
    if option == "Approve":
        assert run.xcom("rate_limiting")["outcome"] == "completed"
        assert len(sim.requests("approve_plan")) == 1 and not sim.requests("delete_session")
    else:
        assert not sim.requests("approve_plan")
        assert len(sim.requests("delete_session")) == 1


if HITL_CASES:  # Airflow >= 3.3 (see HITL_CASES)
    test_plan_review_with_a_human_approval = _test_plan_review_with_a_human_approval
    test_plan_review_in_one_task = _test_plan_review_in_one_task


def test_session_events_example_runs_with_no_event_and_reads_its_asset(examples, sim):
    """dag.test() runs the DAG without an asset event (the watcher runs in a triggerer only: see
    tests/system/test_session_events_components.py for the events); the task handles an empty list."""
    module = examples("jules_session_events")
    dag = module.dag
    run = run_dag(dag)
    assert run.task_states == {"integration_suite": "success"}
    assert run.xcom("integration_suite") == []
    assert dag.timetable.asset_condition is not None
