"""System test: the quickstart DAG on real Airflow components, each in its own process (issue #6 item 3).

The Jules API simulator runs in a thread of this process on 127.0.0.1. Airflow gets a fresh AIRFLOW_HOME
(SQLite, ``airflow db migrate``) and four separate processes: ``api-server`` (127.0.0.1, a free port),
``scheduler --skip-serve-logs`` (LocalExecutor), ``dag-processor`` (only the example DAGs bundle) and
``triggerer --skip-serve-logs``. The test drives everything through the public REST API, as a user would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.harness import (
    EXAMPLE_BUNDLE,
    AirflowStack,
    Sim,
    airflow_stack,
    get_json,
    poll,
    try_json,
)
from tests.system.harness import (
    simulator as run_simulator,
)

pytestmark = pytest.mark.system

DAG_ID = "jules_quickstart"
CREATE_TASK = "fix_flaky_tests"
REVIEW_TASK = "review_pull_request"


@pytest.fixture(scope="module")
def simulator() -> Iterator[Sim]:
    # speed 10: a happy session lasts ~100 simulated seconds, ~10 s of real time: the task surely defers, and
    # the trigger polls several times (every JULES_EXAMPLE_POLL_INTERVAL=1 s) before the session completes.
    with run_simulator(speed=10.0) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(simulator: Sim) -> Iterator[AirflowStack]:
    components = ["api-server", "scheduler", "dag-processor", "triggerer"]
    with airflow_stack(simulator.sim, components, [EXAMPLE_BUNDLE]) as stack:
        yield stack


def test_quickstart_on_separate_components(stack: AirflowStack, simulator: Sim) -> None:
    sim = simulator.sim
    started = time.monotonic()
    with (
        stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"),
        stack.api() as api,
    ):
        # 1. All four components report healthy; 2. the dag-processor parsed the quickstart DAG from the
        #    example_dags bundle; unpause it.
        stack.wait_healthy(api)
        stack.unpause(api, DAG_ID, "example-dags")

        # 3. Trigger a run through the REST API and follow it to the end. Meanwhile record the task's states
        #    and, while it is DEFERRED, which processes hold a connection to the simulator.
        response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        ti_path = f"{run_path}/taskInstances/{CREATE_TASK}"
        states: list[str | None] = []
        trigger_conns: dict[int, int] = {}  # local port -> pid, in the triggerer's process tree

        def run_done() -> dict[str, Any] | None:
            ti = try_json(api, ti_path)
            state = ti.get("state") if ti else "<no answer>"
            if not states or states[-1] != state:
                states.append(state)
            if state == "deferred":
                trigger_conns.update(stack.connections_to("triggerer", sim.port))
            run = try_json(api, run_path)
            return dict(run) if run and run["state"] in ("success", "failed") else None

        run = poll("the DAG run to finish", run_done, timeout=180, interval=0.25, check=stack.check_alive)
        print(f"\n[system test] run {run['state']} {time.monotonic() - started:.1f} s after start; {states=}")
        tis = {ti["task_id"]: ti for ti in get_json(api, f"{run_path}/taskInstances")["task_instances"]}
        assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
        assert {k: v["state"] for k, v in tis.items()} == {CREATE_TASK: "success", REVIEW_TASK: "success"}

        # 4. The result in XCom: a completed session with a pull request.
        result = get_json(api, f"{ti_path}/xcomEntries/return_value")["value"]
        if isinstance(result, str):  # older API versions hand back the stored JSON text
            result = json.loads(result)
        session_id = result["session_id"]
        pr_url = result["pull_request_url"]
        assert result["outcome"] == "completed" and result["state"] == "COMPLETED", result
        assert isinstance(pr_url, str) and pr_url.startswith("https://github.com/bobalover/boba/pull/"), (
            result
        )
        assert result["url"] == f"https://jules.google.com/session/{session_id}"
        info = sim.session_info(session_id)  # the simulator's side: one session, PR mode, this PR
        assert sim.sessions_created == 1 and info["automationMode"] == "AUTO_CREATE_PR", info
        assert info["session"]["state"] == "COMPLETED", info["session"]
        assert pr_url in json.dumps(info["session"].get("outputs")), info["session"]
        review = get_json(api, f"{run_path}/taskInstances/{REVIEW_TASK}/xcomEntries/return_value")["value"]
        assert review in (pr_url, json.dumps(pr_url)), review

        # 5. DEFERRED: the task's log (try 1) has the task runner's "Pausing task as DEFERRED" and then the
        #    trigger's own lines, which the triggerer wrote to the attempt's .trigger.<job id> log file;
        #    the whole deferral stayed in try 1 (no retry used); and the API showed the state while it lasted.
        log_text = json.dumps(get_json(api, f"{ti_path}/logs/1")["content"])
        assert "Pausing task as DEFERRED" in log_text
        assert f"Following Jules session {session_id} (polling every 1.0 s)" in log_text
        assert ".log.trigger." in log_text  # the trigger log file is one of the log's sources
        assert log_text.index("Pausing task as DEFERRED") < log_text.index("Following Jules session")
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        assert [t["try_number"] for t in tries] == [1] and tries[0]["state"] == "success", tries
        assert "deferred" in states, states
        assert states.index("deferred") < states.index("success"), states

        # 6. The trigger ran in the triggerer: while the task was deferred a process of the triggerer's tree
        #    (not the worker: the scheduler's LocalExecutor runs those) held a connection to the simulator,
        #    and the simulator saw the session being polled (get + activities) on exactly that connection.
        session_path = f"/v1alpha/sessions/{session_id}"
        polls = simulator.clients.ports("GET", session_path)
        create_ports = simulator.clients.ports("POST", "/v1alpha/sessions")
        assert trigger_conns, "no triggerer connection to the simulator seen while the task was deferred"
        assert polls & set(trigger_conns), (polls, trigger_conns)
        assert not create_ports & set(trigger_conns), (create_ports, trigger_conns)  # created by the worker
        triggerer_tree = {stack.procs["triggerer"].pid, *trigger_conns.values()}
        assert tis[CREATE_TASK]["pid"] not in triggerer_tree, (tis[CREATE_TASK]["pid"], triggerer_tree)
        print(
            f"[system test] triggerer pid {stack.procs['triggerer'].pid}; its connections to the simulator "
            f"{trigger_conns} (local port: pid); session polled from ports {sorted(polls)}, created from "
            f"{sorted(create_ports)}; worker pid {tis[CREATE_TASK]['pid']}"
        )
        gets = [r for r in sim.requests("get_session") if r["path"] == session_path]
        activities = [r for r in sim.requests("list_activities") if r["path"].startswith(session_path)]
        assert len(gets) >= 3 and len(activities) >= 3, (len(gets), len(activities))
        assert all(r["status"] == 200 for r in sim.requests()), sim.stats()

        # 7. Extra links, as the UI gets them.
        links = get_json(api, f"{ti_path}/links")
        links = links.get("extra_links", links)
        assert links["Jules Session"] == f"https://jules.google.com/session/{session_id}", links
        assert links["Jules Pull Request"] == pr_url, links
        print(f"[system test] checks passed {time.monotonic() - started:.1f} s after start")
