"""Take the screenshots of the docs against the bundled simulator and real Airflow components on 127.0.0.1.

    .venv/bin/python docs/images/screenshots.py /path/to/dir/with/node_modules/playwright-core [SET ...]

Sets (all by default):

* ``required_actions`` (docs/people_in_the_loop.rst): a question, a change review and a plan review on the
  Required Actions page, and the global list;
* ``self_healing`` (the self-healing pipelines docs): a task that failed after its retry, with the
  "Jules Fix" extra link ``JulesFixNotifier`` gave it, in the task instance's Details tab.

Needs headless Chromium (/usr/bin/chromium, or $CHROMIUM) and ``npm i playwright-core`` in the given
directory. Starts its own components with the system tests' harness (tests/system/harness.py) in a temporary
AIRFLOW_HOME and stops them, by PID, at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig  # noqa: E402
from tests.system.harness import COMPONENTS, AirflowStack, airflow_stack, poll, try_json  # noqa: E402

REQUIRED_ACTIONS_DAGS = """
import pendulum
from airflow.sdk import DAG
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
for dag_id, prompt, extra in [
    ("jules_question", "Update the API client to the v2 endpoints sim:scenario=user_feedback",
     {"on_user_feedback": "ask"}),
    ("jules_change_review", "Fix the flaky tests in the payments module", {"review": "hitl"}),
    ("jules_plan_review", "Add rate limiting to the public API endpoints",
     {"require_plan_approval": True, "review_plan": "hitl"}),
]:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        JulesCreateSessionOperator(
            task_id="jules", prompt=prompt, source="bobalover/boba", title=prompt.split(" sim:")[0],
            deferrable=True, poll_interval=1, **extra,
        )
    globals()[dag_id] = dag
"""

SELF_HEALING_DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from airflow_provider_jules.notifications.jules import JulesFixNotifier


def read_orders(path):
    raise ValueError(f"no rows in {path}")


with DAG(
    "orders_daily",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=1),
        "on_failure_callback": JulesFixNotifier(source="myorg/myrepo"),
    },
):

    @task
    def load_orders():
        read_orders("s3://bucket/orders.csv")

    load_orders()
"""

#: Shot specs for screenshots.mjs: ``name=path[=viewport height[=text to scroll into view]]``.
Shots = list[str]


def trigger(api: httpx.Client, dag_id: str) -> str:
    poll(dag_id, lambda: try_json(api, f"/api/v2/dags/{dag_id}"), 120)
    api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    return str(api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}).json()["dag_run_id"])


def required_actions(api: httpx.Client) -> Shots:
    runs = {d: trigger(api, d) for d in ("jules_question", "jules_change_review", "jules_plan_review")}
    for dag_id, run_id in runs.items():

        def form(d: str = dag_id, r: str = run_id) -> object:
            body = try_json(api, f"/api/v2/dags/{d}/dagRuns/{r}/hitlDetails") or {}
            return body.get("hitl_details") or None

        poll(f"the form of {dag_id}", form, 240, interval=1)
    time.sleep(3)
    shots = [
        f"{name}=/dags/{dag_id}/runs/{runs[dag_id]}/tasks/jules/required_actions={height}"
        for name, dag_id, height in (
            ("required_actions_question", "jules_question", 850),
            ("required_actions_change_review", "jules_change_review", 1750),
            ("required_actions_plan_review", "jules_plan_review", 750),
        )
    ]
    return [*shots, "required_actions_page=/required_actions"]


def self_healing(api: httpx.Client) -> Shots:
    """The failed task's Details tab once the API server resolves its "Jules Fix" link."""
    dag_id, task_id = "orders_daily", "load_orders"
    run_id = trigger(api, dag_id)
    ti_path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

    def linked() -> str | None:
        ti = try_json(api, ti_path) or {}
        links = (try_json(api, f"{ti_path}/links") or {}).get("extra_links") or {}
        return links.get("Jules Fix") if ti.get("state") == "failed" else None

    print(f"'Jules Fix' link: {poll('the Jules Fix link', linked, 240, interval=1)}")
    return [f"self_healing_fix_link=/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/details=900=Jules Fix"]


SETS: dict[str, tuple[str, Callable[[httpx.Client], Shots]]] = {
    "required_actions": (REQUIRED_ACTIONS_DAGS, required_actions),
    "self_healing": (SELF_HEALING_DAG, self_healing),
}


def main(node_dir: str, names: list[str]) -> None:
    out = Path(__file__).resolve().parent
    unknown = set(names) - set(SETS)
    assert not unknown, f"unknown screenshot set(s) {sorted(unknown)}; known: {sorted(SETS)}"
    sim = JulesSimulator(
        SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=20.0, seed=11, approval_timeout=None)
    )
    with tempfile.TemporaryDirectory(prefix="jules-shots-dags-") as dags_dir, sim:
        dags = Path(dags_dir)
        for name in names:
            (dags / f"{name}.py").write_text(textwrap.dedent(SETS[name][0]))
        stack: AirflowStack
        with airflow_stack(sim, list(COMPONENTS), [("docs", dags)]) as stack, stack.api() as api:
            stack.wait_healthy(api)
            shots = [shot for name in names for shot in SETS[name][1](api)]
            node_env = {**os.environ, "NODE_PATH": str(Path(node_dir) / "node_modules")}
            script = Path(node_dir) / "screenshots.mjs"
            shutil.copy(out / "screenshots.mjs", script)
            command = ["node", str(script), stack.base_url, str(out), *shots]
            subprocess.run(command, env=node_env, check=True, timeout=300)  # noqa: S603 - our own script


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or list(SETS))
