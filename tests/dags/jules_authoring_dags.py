"""DAGs for the Airflow-native authoring features (issue #10), run with dag.test() against the simulator:
the sensor in its three modes, ``@task.jules``, prompt files, a templated connection, ``on_no_changes``,
asset-event extras, and the clear-versus-retry rule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator
from airflow_provider_jules.sensors.jules import JulesSessionSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")
SESSION_ID = "{{ ti.xcom_pull(task_ids='create', key='session_id') }}"
FAST = {"poll_interval": 0.05}
PR_ASSET = Asset("jules://tests/pull-request")

#: case -> (prompt of the followed session, sensor kwargs)
SENSOR_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "target": ("Fix the flaky tests", {}),
    "terminal": ("Upgrade the build sim:scenario=failure", {}),
    "soft_timeout": ("Tidy the imports sim:scenario=stuck", {"timeout": 1.5, "soft_fail": True}),
    "hard_timeout": ("Tidy the imports sim:scenario=stuck", {"timeout": 1.5}),
    # The test completes the session after the sensor's fifth read (whatever the machine's speed).
    "backoff": (
        "Tidy the imports sim:scenario=stuck",
        {"timeout": 120, "poke_interval": 1, "exponential_backoff": True},
    ),
}
SENSOR_MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}

for mode, mode_kwargs in SENSOR_MODES.items():
    for case, (prompt, sensor_kwargs) in SENSOR_CASES.items():
        with DAG(f"jules_sensor_{case}_{mode}", schedule=None, start_date=START, catchup=False) as dag:
            create = JulesCreateSessionOperator(
                task_id="create", prompt=prompt, source="bobalover/boba", wait_for_completion=False
            )
            wait = JulesSessionSensor(
                task_id="wait",
                session_id=SESSION_ID,
                **{"poke_interval": 0.05, **mode_kwargs, **sensor_kwargs},
            )
            create >> wait
        globals()[dag.dag_id] = dag


# @task.jules over three mapped inputs, with a templated source.
with DAG(
    "jules_decorator_expand",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"repository": "bobalover/boba"},
) as jules_decorator_expand:

    @task
    def open_issues() -> list[dict[str, Any]]:
        return [{"number": n, "title": f"Flaky test number {n}"} for n in (11, 12, 13)]

    @task.jules(source="{{ params.repository }}", deferrable=True, **FAST)
    def fix(issue: dict[str, Any]) -> str:
        return f"Fix issue #{issue['number']}: {issue['title']}"

    fix.expand(issue=open_issues())


with DAG("jules_decorator_bad_prompt", schedule=None, start_date=START, catchup=False) as dag:

    @task.jules(source="bobalover/boba", deferrable=True, retries=2, **FAST)
    def empty() -> str:
        return "   "

    @task.jules(source="bobalover/boba", deferrable=True, **FAST)
    def not_a_string() -> Any:
        return {"prompt": "Fix it"}

    empty()
    not_a_string()
jules_decorator_bad_prompt = dag


# A prompt in a Markdown file next to this DAG file, rendered with Jinja; and inline text that merely ends
# like a file name.
with DAG(
    "jules_prompt_file",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"repository": "bobalover/boba", "test_dir": "tests/integration"},
) as jules_prompt_file:
    JulesCreateSessionOperator(
        task_id="from_file", prompt="prompts/fix_flaky.md", source="{{ params.repository }}", **FAST
    )
    JulesCreateSessionOperator(
        task_id="inline", prompt="Update the install steps in README.md", source="bobalover/boba", **FAST
    )

with DAG("jules_prompt_file_missing", schedule=None, start_date=START, catchup=False) as dag:
    JulesCreateSessionOperator(
        task_id="missing", prompt="prompts/missing.md", source="bobalover/boba", **FAST
    )
jules_prompt_file_missing = dag


# The connection id is templated: a param picks the Jules account.
with DAG(
    "jules_templated_conn",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"account": "jules_second_account"},
) as jules_templated_conn:
    JulesCreateSessionOperator(
        task_id="create",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        jules_conn_id="{{ params.account }}",
        deferrable=True,
        **FAST,
    )


# on_no_changes: what a session that changed nothing does to the task (and its downstream review task).
for policy in ("succeed", "skip", "fail"):
    with DAG(f"jules_no_changes_{policy}", schedule=None, start_date=START, catchup=False) as dag:
        create = JulesCreateSessionOperator(
            task_id="create",
            prompt="Check the retry logic sim:scenario=no_changes",
            source="bobalover/boba",
            on_no_changes=policy,
            retries=1,
            retry_delay=timedelta(seconds=0),
            deferrable=True,
            **FAST,
        )

        @task
        def review(result: dict[str, Any]) -> str:
            return str(result["outcome"])

        review(create.output)
    globals()[dag.dag_id] = dag


# Asset events that say which session and pull request produced them.
with DAG("jules_outlets", schedule=None, start_date=START, catchup=False) as jules_outlets:
    JulesCreateSessionOperator(
        task_id="create",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        outlets=[PR_ASSET],
        deferrable=True,
        **FAST,
    )


# Clear versus retry: the create task, in the worker; the retry case fails its first try after creating.
with DAG("jules_clear", schedule=None, start_date=START, catchup=False) as jules_clear:
    JulesCreateSessionOperator(
        task_id="create", prompt="Fix the flaky tests", source="bobalover/boba", **FAST
    )

with DAG("jules_retry", schedule=None, start_date=START, catchup=False) as jules_retry:
    JulesCreateSessionOperator(
        task_id="create",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        jules_conn_id="jules_one_attempt",
        max_poll_errors=1,
        retries=1,
        retry_delay=timedelta(seconds=0),
        **FAST,
    )
