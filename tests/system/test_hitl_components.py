"""System test: a person answers a Jules question and reviews the change through Airflow's public REST API
(as the Required Actions page does), on real Airflow components in separate processes (issue #11).

The same four components as tests/system/test_quickstart_components.py (api-server, scheduler, dag-processor,
triggerer; SQLite, LocalExecutor), with one DAG written to a temporary DAGs folder: ``on_user_feedback="ask"``
and ``review="hitl"``. The test answers the question, then, while the change-review form is open, restarts the
triggerer, then approves. It checks that the task held no worker slot while the person was thinking (state
``awaiting_input`` on Airflow >= 3.3, ``deferred`` on 3.1/3.2), that the form survived the restart, and that
nothing was sent to Jules twice. Runs on Airflow 3.1 and 3.3.
"""

from __future__ import annotations

import secrets
import signal
import textwrap
import time
from collections.abc import Iterator

import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig
from tests.system.harness import (
    HITL_WAITING_STATES,
    LOCAL_COMPONENTS,
    AirflowStack,
    airflow_at_least,
    airflow_stack,
    get_json,
    poll,
)

pytestmark = pytest.mark.system

DAG_ID = "jules_people_in_the_loop"
TASK = "update_client"
ANSWER = "Yes, update the docs too."
DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False) as dag:
    JulesCreateSessionOperator(
        task_id="{TASK}",
        prompt="Update the client sim:scenario=user_feedback",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=1,
        on_user_feedback="ask",
        review="hitl",
    )
'''


@pytest.fixture(scope="module")
def hitl_sim() -> Iterator[JulesSimulator]:
    sim = JulesSimulator(SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=10.0, seed=5))
    with sim:
        yield sim


@pytest.fixture(scope="module")
def hitl_stack(hitl_sim: JulesSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dags = tmp_path_factory.mktemp("hitl-dags")
    (dags / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG_FILE))
    extra = {
        # A restarted triggerer takes over the triggers of the stopped one quickly.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    }
    with airflow_stack(hitl_sim, LOCAL_COMPONENTS, [("hitl-dags", dags)], extra) as stack:
        yield stack


def restart_triggerer(stack: AirflowStack) -> tuple[int, int]:
    """Stop the triggerer we started (SIGTERM; the harness waits, bounded, for it and its children), then
    start a new one."""
    old = stack.procs["triggerer"].pid
    stack.kill("triggerer", signal.SIGTERM)
    stack.start("triggerer")
    return old, stack.procs["triggerer"].pid


def test_a_question_and_a_change_review_answered_through_the_rest_api(
    hitl_stack: AirflowStack, hitl_sim: JulesSimulator
) -> None:
    stack, sim = hitl_stack, hitl_sim
    started = time.monotonic()
    with stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"), stack.api() as api:
        stack.wait_healthy(api)
        stack.unpause(api, DAG_ID, "hitl-dags")
        run_id = stack.trigger_run(api, DAG_ID)
        ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}"

        # 1. Jules's question on the Required Actions page; answered through the public API.
        question, asked_in = stack.waiting_form(api, DAG_ID, run_id, TASK, "the question form")
        assert question["options"] == ["Approve", "Request changes", "Send answer", "Reject"], question
        assert "Question 1: should I also update the docs?" in question["body"], question["body"]
        response = stack.answer_form(api, DAG_ID, run_id, TASK, ["Send answer"], {"message": ANSWER})
        assert response.status_code == 200, response.text
        second = stack.answer_form(api, DAG_ID, run_id, TASK, ["Send answer"], {"message": "x"})
        assert second.status_code == 409, second.text  # one answer per open form

        # 2. The change review (the same form, opened again with its first text; the current request is in
        #    the jules_request XCom). While it is open, the triggerer is restarted.
        _, reviewed_in = stack.waiting_form(api, DAG_ID, run_id, TASK, "the change-review form")
        request = get_json(api, f"{ti_path}/xcomEntries/jules_request")["value"]
        assert "Review round 1 of at most 3" in str(request), request
        old_pid, new_pid = restart_triggerer(stack)
        time.sleep(3)
        form_after, state_after = poll(
            "the form after the restart",
            lambda: stack.open_form(api, DAG_ID, run_id, TASK),
            timeout=60,
            check=stack.check_alive,
        )
        assert state_after in HITL_WAITING_STATES and form_after["response_received"] is False
        response = stack.answer_form(api, DAG_ID, run_id, TASK, ["Approve"], {"message": ""})
        assert response.status_code == 200, response.text

        run = stack.wait_run(api, DAG_ID, run_id, timeout=180)
        took = time.monotonic() - started
        states_seen = [asked_in, reviewed_in]
        print(f"\n[system test] run {run['state']} {took:.1f} s after start; forms waited in {states_seen}")
        print(f"[system test] triggerer restarted: pid {old_pid} -> {new_pid}")
        assert run["state"] == "success", stack.task_instances(api, DAG_ID, run_id)
        result = stack.result(api, DAG_ID, run_id, TASK)
        assert result["outcome"] == "completed"
        assert [(r["round"], r["decision"]) for r in result["review"]] == [(1, "approved")], result["review"]
        # Nothing sent twice: one answer, no change request, one session.
        assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": ANSWER}]
        assert sim.sessions_created == 1
        expected = "awaiting_input" if airflow_at_least(3, 3) else "deferred"
        assert states_seen == [expected, expected], states_seen
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        assert [t["try_number"] for t in tries] == [1], tries  # no retry was needed
