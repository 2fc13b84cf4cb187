"""Take the screenshots of docs/people_in_the_loop.rst: a question, a change review and a plan review on the
Required Actions page, against the bundled simulator and real Airflow components on 127.0.0.1.

    .venv/bin/python docs/images/screenshots.py /path/to/dir/with/node_modules/playwright-core

Needs headless Chromium (/usr/bin/chromium) and ``npm i playwright-core`` in the given directory. Starts its
own components (from tests/system) in a temporary AIRFLOW_HOME and stops them, by PID, at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig  # noqa: E402
from tests.system.test_quickstart_components import (  # noqa: E402
    BIN,
    COMPONENTS,
    AirflowStack,
    component_env,
    free_port,
    poll,
    try_json,
)

DAGS = '''
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
'''


def main(node_dir: str) -> None:
    out = Path(__file__).resolve().parent
    home = Path(tempfile.mkdtemp(prefix="jules-shots-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "people.py").write_text(textwrap.dedent(DAGS))
    sim = JulesSimulator(
        SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=20.0, seed=11, approval_timeout=None)
    )
    with sim:
        port = free_port()
        env = component_env(home, port, sim)
        bundle = {"name": "docs", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
        bundle["kwargs"] = {"path": str(dags), "refresh_interval": 5}  # type: ignore[assignment]
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([bundle])
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, cwd=home, check=True, capture_output=True)
        stack = AirflowStack(home, port, env)
        try:
            for name in COMPONENTS:
                stack.start(name)
            with httpx.Client(base_url=stack.base_url, timeout=15, trust_env=False) as api:
                poll("the API", lambda: try_json(api, "/api/v2/monitor/health"), 120)
                api.headers["Authorization"] = f"Bearer {api.get('/auth/token').json()['access_token']}"
                runs = {}
                for dag_id in ("jules_question", "jules_change_review", "jules_plan_review"):
                    poll(dag_id, lambda d=dag_id: try_json(api, f"/api/v2/dags/{d}"), 120)
                    api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
                    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}).json()
                    runs[dag_id] = run["dag_run_id"]
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
                shots.append("required_actions_page=/required_actions")
                node_env = {**os.environ, "NODE_PATH": str(Path(node_dir) / "node_modules")}
                script = Path(node_dir) / "screenshots.mjs"
                shutil.copy(out / "screenshots.mjs", script)
                subprocess.run(
                    ["node", str(script), stack.base_url, str(out), *shots], env=node_env, check=True, timeout=300
                )
        finally:
            stack.stop()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
