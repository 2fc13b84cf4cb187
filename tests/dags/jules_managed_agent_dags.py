"""A ``@task.agent`` of the common AI provider that hands coding work to Jules (issue #23), run with
dag.test() against the simulator by tests/integration/test_managed_agent.py. Needs common-ai (Python >= 3.11).

The model is pydantic-ai's ``TestModel`` (connection extra ``{"model": "test"}``): it calls every tool of
its toolsets once, then answers with what they returned, so the task's output is Jules's answer.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.ai.toolsets import ManagedAgentToolset
from airflow.sdk import DAG, task

from airflow_provider_jules.hooks.managed_agent import JulesManagedAgentHook

START = pendulum.datetime(2025, 1, 1, tz="UTC")

with DAG("jules_task_agent", schedule=None, start_date=START, catchup=False) as dag:
    jules = ManagedAgentToolset(
        JulesManagedAgentHook("jules_default", poll_interval=0.05).agent("bobalover/boba"),
        tool_name="ask_jules",
        description="Jules, a coding agent: changes the bobalover/boba repository and opens a pull request.",
        timeout=60,
    )

    @task.agent(llm_conn_id="llm_test", toolsets=[jules])
    def fix() -> str:
        return "Fix the flaky test in tests/test_add.py."

    fix()
