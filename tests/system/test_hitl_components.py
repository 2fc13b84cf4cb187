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

import contextlib
import json
import secrets
import signal
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig
from tests.system.harness import (
    COMPONENTS,
    AirflowStack,
    airflow_stack,
    get_json,
    poll,
    try_json,
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
#: What a task may be in while its form waits for a person: never "running" (no worker slot is held).
WAITING_STATES = {"awaiting_input", "deferred"}


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
    with airflow_stack(hitl_sim, list(COMPONENTS), [("hitl-dags", dags)], extra) as stack:
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
    with (
        stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"),
        httpx.Client(base_url=stack.base_url, timeout=15, trust_env=False) as api,
    ):

        def healthy() -> dict[str, Any] | None:
            with contextlib.suppress(httpx.TransportError, ValueError):
                body = api.get("/api/v2/monitor/health").json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((body.get(part) or {}).get("status") == "healthy" for part in parts):
                    return dict(body)
            return None

        poll("all components healthy", healthy, timeout=120, check=stack.check_alive)
        response = api.get("/auth/token")
        assert response.status_code in (200, 201), response.text
        api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

        def parsed() -> dict[str, Any] | None:
            response = api.get(f"/api/v2/dags/{DAG_ID}")
            return dict(response.json()) if response.status_code == 200 else None

        poll(f"DAG {DAG_ID} to be parsed", parsed, timeout=120, check=stack.check_alive)
        assert api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
        response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        ti_path = f"{run_path}/taskInstances/{TASK}"
        answer_path = f"{ti_path}/-1/hitlDetails"

        def open_form() -> tuple[dict[str, Any], str] | None:
            """The task's form while it waits for an answer, and the task's state at that moment."""
            details = try_json(api, f"{run_path}/hitlDetails")
            ti = try_json(api, ti_path)
            if not details or not ti:
                return None
            pending = [d for d in details.get("hitl_details", []) if not d.get("response_received")]
            if pending and ti.get("state") in (WAITING_STATES | {"running", "scheduled", "queued"}):
                return pending[0], str(ti["state"])
            return None

        def waiting_form(what: str) -> dict[str, Any]:
            form, state = poll(what, open_form, timeout=180, interval=0.5, check=stack.check_alive)
            # The form is written just before the task parks: give the state a moment to settle, then it
            # must be a waiting state (no worker slot held while the person thinks).
            for _ in range(40):
                if state in WAITING_STATES:
                    break
                time.sleep(0.25)
                state = str((try_json(api, ti_path) or {}).get("state"))
            assert state in WAITING_STATES, state
            states_seen.append(state)
            # A person reads the form before answering. (An answer within a fraction of a second of the task
            # parking can race the executor's report of the parking workload on Airflow 3.3.2, which then
            # fails the task instance: an Airflow race, seen with any HITL task, not one of this provider.)
            time.sleep(3)
            return form

        states_seen: list[str] = []
        # 1. Jules's question on the Required Actions page; answered through the public API.
        question = waiting_form("the question form")
        assert question["options"] == ["Approve", "Request changes", "Send answer", "Reject"], question
        assert "Question 1: should I also update the docs?" in question["body"], question["body"]
        response = api.patch(
            answer_path, json={"chosen_options": ["Send answer"], "params_input": {"message": ANSWER}}
        )
        assert response.status_code == 200, response.text
        second = api.patch(
            answer_path, json={"chosen_options": ["Send answer"], "params_input": {"message": "x"}}
        )
        assert second.status_code == 409, second.text  # one answer per open form

        # 2. The change review (the same form, opened again with its first text; the current request is in
        #    the jules_request XCom). While it is open, the triggerer is restarted.
        waiting_form("the change-review form")
        request = get_json(api, f"{ti_path}/xcomEntries/jules_request")["value"]
        assert "Review round 1 of at most 3" in str(request), request
        old_pid, new_pid = restart_triggerer(stack)
        time.sleep(3)
        form_after, state_after = poll(
            "the form after the restart", open_form, timeout=60, check=stack.check_alive
        )
        assert state_after in WAITING_STATES and form_after["response_received"] is False
        response = api.patch(
            answer_path, json={"chosen_options": ["Approve"], "params_input": {"message": ""}}
        )
        assert response.status_code == 200, response.text

        def run_done() -> dict[str, Any] | None:
            run = try_json(api, run_path)
            return dict(run) if run and run["state"] in ("success", "failed") else None

        run = poll("the DAG run to finish", run_done, timeout=180, interval=0.5, check=stack.check_alive)
        took = time.monotonic() - started
        print(f"\n[system test] run {run['state']} {took:.1f} s after start; forms waited in {states_seen}")
        print(f"[system test] triggerer restarted: pid {old_pid} -> {new_pid}")
        assert run["state"] == "success", get_json(api, f"{run_path}/taskInstances")
        result = get_json(api, f"{ti_path}/xcomEntries/return_value")["value"]
        if isinstance(result, str):
            result = json.loads(result)
        assert result["outcome"] == "completed"
        assert [(r["round"], r["decision"]) for r in result["review"]] == [(1, "approved")], result["review"]
        # Nothing sent twice: one answer, no change request, one session.
        assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": ANSWER}]
        assert sim.sessions_created == 1
        expected = "awaiting_input" if _airflow_at_least(3, 3) else "deferred"
        assert states_seen == [expected, expected], states_seen
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        assert [t["try_number"] for t in tries] == [1], tries  # no retry was needed


def _airflow_at_least(major: int, minor: int) -> bool:
    import airflow

    return tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (major, minor)
