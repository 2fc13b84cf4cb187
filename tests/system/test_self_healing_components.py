"""System test: ``JulesFixNotifier`` on real Airflow components, each in its own process (issue #20).

Three components from ``harness.py``: ``api-server``, ``scheduler`` (LocalExecutor: it runs the task's
worker) and ``dag-processor`` (only ``tests/system/dags``); no triggerer, nothing defers. The simulator runs
in a thread of this process. The DAG (``tests/system/dags/jules_self_healing_system.py``) has one task that
fails on purpose with ``retries=1``. The test checks, through the public REST API as the UI reads it:

* the run fails after two tries, and the notifier asked Jules once, after the second (last) try only;
* the failed task instance's "Jules Fix" extra link (the provider plugin's global link, resolved by the API
  server from the ``jules_fix`` XCom in the metadata DB) is that session's URL;
* the session's URL is in the log of try 2 and not in the log of try 1.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.system.harness import (
    SYSTEM_BUNDLE,
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

pytestmark = [pytest.mark.system, pytest.mark.timeout(420)]

DAG_ID = "jules_self_healing_system"  # tests/system/dags/jules_self_healing_system.py
TASK_ID = "load_orders"
COMPONENTS = ["api-server", "scheduler", "dag-processor"]
#: The health report's parts of those components (no triggerer here).
HEALTH = ("metadatabase", "scheduler", "dag_processor")
SESSION_URL = re.compile(r"^https://jules\.google\.com/session/([\w-]+)$")


@pytest.fixture(scope="module")
def simulator() -> Iterator[Sim]:
    with run_simulator(speed=1.0) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(simulator: Sim) -> Iterator[AirflowStack]:
    with airflow_stack(simulator.sim, COMPONENTS, [SYSTEM_BUNDLE]) as stack:
        yield stack


def _time(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_failed_task_links_its_jules_fix_after_the_last_try(stack: AirflowStack, simulator: Sim) -> None:
    sim = simulator.sim
    started = time.monotonic()
    with stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"), stack.api() as api:
        stack.wait_healthy(api, parts=HEALTH)
        stack.unpause(api, DAG_ID, SYSTEM_BUNDLE[0])
        run_id = stack.trigger_run(api, DAG_ID)
        run = stack.wait_run(api, DAG_ID, run_id, timeout=240)
        ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}"
        print(f"\n[system test] run {run['state']} {time.monotonic() - started:.1f} s after start")

        # 1. The run failed after both tries.
        assert run["state"] == "failed", stack.task_instances(api, DAG_ID, run_id)
        ti = get_json(api, ti_path)
        assert ti["state"] == "failed" and ti["try_number"] == 2, ti
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        assert [t["try_number"] for t in tries] == [1, 2] and tries[1]["state"] == "failed", tries
        # Try 1's history row: "up_for_retry" when it was archived, or "failed" (the try's own outcome).
        assert tries[0]["state"] in ("up_for_retry", "failed") and tries[0]["end_date"], tries

        # 2. The failure callback runs in the worker after the task instance is failed: the link appears
        #    once it has pushed the jules_fix XCom (bounded wait).
        def fix_link() -> str | None:
            body = try_json(api, f"{ti_path}/links")
            links = (body or {}).get("extra_links", body) or {}
            return links.get("Jules Fix") or None

        url = poll("the 'Jules Fix' link", fix_link, timeout=60, check=stack.check_alive)
        match = SESSION_URL.match(url)
        assert match, url
        session_id = match.group(1)

        # 3. The simulator: exactly one create, and a successful one, made after try 2 (its prompt says so).
        creates = sim.requests("create_session")
        assert [c["status"] for c in creates] == [200], [(c["status"], c["path"]) for c in creates]
        [create] = creates
        assert sim.sessions_created == 1, sim.stats()
        prompt, title = create["json"]["prompt"], create["json"]["title"]
        assert "Try number: 2" in prompt and "Try number: 1" not in prompt, prompt
        assert f"DAG id: {DAG_ID}" in prompt and f"Task id: {TASK_ID}" in prompt, prompt
        assert "Exception: ValueError: no rows in s3://bucket/orders.csv" in prompt, prompt
        assert create["json"]["sourceContext"]["source"] == "sources/github/myorg/myrepo", create["json"]
        assert create["time"] >= _time(tries[1]["start_date"]) >= _time(tries[0]["end_date"]), (create, tries)
        assert sim.session_info(session_id)["session"]["title"] == title

        # 4. The XCom behind the link, as the REST API reads it.
        fix = get_json(api, f"{ti_path}/xcomEntries/jules_fix")["value"]
        fix = json.loads(fix) if isinstance(fix, str) else fix  # older APIs: the stored JSON text
        assert title.startswith(f"[jules-fix {fix['signature']}] "), (title, fix)
        assert fix == {"session_id": session_id, "url": url, "signature": fix["signature"], "new": True}

        # 5. The logs: try 2 has the session's URL (the notifier's line); try 1 failed too, but not the
        #    last time, so it has the exception and no URL.
        line = f"Jules fix session {session_id} (opened, signature {fix['signature']}): {url}"

        def log_with_line() -> str | None:
            text = stack.log_text(api, DAG_ID, run_id, TASK_ID, 2)
            return text if line in text else None

        log_2 = poll("the notifier's line in the log of try 2", log_with_line, timeout=30)
        log_1 = stack.log_text(api, DAG_ID, run_id, TASK_ID, 1)
        assert url in log_2
        assert "no rows in s3://bucket/orders.csv" in log_1, log_1[-3000:]
        assert url not in log_1 and session_id not in log_1 and "Jules fix" not in log_1, log_1[-3000:]
        print(
            f"[system test] fix session {session_id} linked; checks passed "
            f"{time.monotonic() - started:.1f} s after start"
        )
