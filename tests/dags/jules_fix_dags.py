"""DAGs whose tasks fail on purpose, with JulesFixNotifier as their failure callback (issue #20 tests)."""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, task

from airflow_provider_jules.notifications.jules import JulesFixNotifier

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
SOURCE = "myorg/myrepo"
BUDGET = float(os.environ.get("JULES_FIX_TEST_BUDGET", "15"))


def load_rows(path: str) -> list[str]:
    raise ValueError(f"no rows in {path}")


def parse_config(raw: dict[str, str]) -> str:
    return raw["region"]


def notifier(**kwargs: object) -> JulesFixNotifier:
    return JulesFixNotifier(**{"source": SOURCE, "time_budget": BUDGET, **kwargs})  # type: ignore[arg-type]


def fix_dag(dag_id: str, *, on: str = "tasks", retries: int = 0, **notifier_kwargs: object) -> DAG:
    """A DAG whose failures call the notifier: from every task (``on="tasks"``), from the DAG
    (``"dag"``) or both."""
    task_args: dict[str, object] = {"retries": retries, "retry_delay": datetime.timedelta(seconds=0)}
    if on in ("tasks", "both"):
        task_args["on_failure_callback"] = notifier(**notifier_kwargs)
    return DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        default_args=task_args,
        on_failure_callback=notifier(**notifier_kwargs) if on in ("dag", "both") else None,
    )


def failing_dag(dag_id: str, **notifier_kwargs: object) -> DAG:
    with fix_dag(dag_id, **notifier_kwargs) as dag:

        @task
        def extract() -> None:
            load_rows("s3://bucket/orders.csv")

        extract()
    return dag


# One failure: ValueError raised in load_rows() of this file.
jules_fix_value_error = failing_dag("jules_fix_value_error")
# Extra instructions from a prompt file next to this file, rendered with Jinja.
jules_fix_prompt_file = failing_dag("jules_fix_prompt_file", prompt="prompts/fix_instructions.md")


def three_failures(dag_id: str, **notifier_kwargs: object) -> DAG:
    """Three different failures in one run, each from its own frame (three independent tasks)."""
    with fix_dag(dag_id, **notifier_kwargs) as dag:

        @task
        def rows() -> None:
            load_rows("orders.csv")

        @task
        def config() -> None:
            parse_config({})

        @task
        def divide() -> float:
            return 1 / 0

        rows()
        config()
        divide()
    return dag


jules_fix_three = three_failures("jules_fix_three")
# The same three failures under a daily cap of two.
jules_fix_capped = three_failures("jules_fix_capped", max_sessions_per_day=2)

# A connection password in the exception message.
with fix_dag("jules_fix_secret", redact_patterns=[r"acct-\d{6}"]) as jules_fix_secret:

    @task
    def login() -> None:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection("warehouse_db")
        raise PermissionError(
            f"login refused for postgresql://{conn.login}:{conn.password}@db.internal:5432/dw "
            f"(password {conn.password}, account acct-123456)"
        )

    login()

# The API answers after 40 s (a fault of the test): the notifier gives up after its 3 s.
with fix_dag("jules_fix_slow", time_budget=3) as jules_fix_slow:

    @task
    def slow() -> None:
        load_rows("slow.csv")

    slow()

# A task that succeeds: the notifier is never called.
with fix_dag("jules_fix_success") as jules_fix_success:

    @task
    def fine() -> int:
        return 1

    fine()

# Retries: the failure callback runs after the last try only.
with fix_dag("jules_fix_retries", retries=2) as jules_fix_retries:

    @task
    def flaky() -> None:
        load_rows("flaky.csv")

    flaky()

# No source and no git bundle: a warning, nothing opened.
with fix_dag("jules_fix_no_source", source=None) as jules_fix_no_source:

    @task
    def orphan() -> None:
        load_rows("orphan.csv")

    orphan()

# A DAG-level callback: it runs without an exception.
with fix_dag("jules_fix_dag_level", on="dag") as jules_fix_dag_level:

    @task
    def broken() -> None:
        parse_config({})

    broken()

# The notifier on the tasks and on the DAG: the DAG-level call (no exception) reuses the task's session.
with fix_dag("jules_fix_both", on="both") as jules_fix_both:

    @task
    def twice() -> None:
        parse_config({})

    twice()
