"""A scheduled batch coding job: every night, ask Jules to fix the flaky tests in every repository.

``JulesListSourcesOperator`` lists the connected repositories, and a ``@task.jules`` task mapped over them
with ``.expand()`` creates one session per repository (dynamic task mapping). The prompt lives in a Markdown
file next to this DAG (``prompts/fix_flaky_tests.md``), rendered with Jinja: the mapped ``source`` and the
DAG's params are in its context.
An Airflow pool caps how many sessions run at once (Jules allows 3, 15 or 60 concurrent sessions depending
on the plan); with ``include_deferred`` deferred tasks hold their pool slot, so the cap holds while the
triggerer waits. A report task summarises every outcome.

Create the pool once: ``airflow pools set jules_sessions 3 "Jules concurrent sessions" --include-deferred``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task
from airflow.sdk.definitions.param import Param

from airflow_provider_jules.operators.jules import JulesListSourcesOperator

JULES_POOL = "jules_sessions"

with DAG(
    dag_id="jules_nightly_batch",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["jules", "example"],
    params={
        # AIP-160 filter of the sources API, e.g.
        # "name=sources/github/acme/web OR name=sources/github/acme/api"
        "source_filter": Param("", type="string"),
        # Appended to the prompt file of every session.
        "extra_instructions": Param("", type="string"),
    },
) as dag:
    # [START howto_operator_jules_list_sources]
    repositories = JulesListSourcesOperator(task_id="list_repositories", filter="{{ params.source_filter }}")
    # [END howto_operator_jules_list_sources]

    # [START howto_jules_batch_expand]
    @task.jules(
        pool=JULES_POOL,
        deferrable=True,
        poll_interval=float(os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "60")),
        timeout=timedelta(hours=3),
        stall_timeout=timedelta(minutes=45),
        on_user_feedback="reply",
        auto_reply="Use your best judgement and keep the change minimal.",
        on_no_changes="succeed",
        retries=1,
    )
    def fix_flaky_tests(source: str) -> str:
        """The prompt: a Markdown file next to this DAG, rendered with ``source`` and the params."""
        return "prompts/fix_flaky_tests.md"

    fix_flaky = fix_flaky_tests.expand(source=repositories.output)
    # [END howto_jules_batch_expand]

    @task(trigger_rule="all_done")
    def report(**context: Any) -> dict[str, Any]:
        """Summarise every repository's outcome, successes and failures alike."""
        ti = context["ti"]
        sources = ti.xcom_pull(task_ids="list_repositories") or []
        results = ti.xcom_pull(task_ids="fix_flaky_tests", map_indexes=list(range(len(sources)))) or []
        if not isinstance(results, list):
            results = [results]
        rows = []
        padded = list(results) + [None] * (len(sources) - len(results))
        for source, result in zip(sources, padded, strict=True):
            outcome = result["outcome"] if isinstance(result, dict) else "failed (see the task log)"
            pr = result.get("pull_request_url") if isinstance(result, dict) else None
            rows.append({"source": source, "outcome": outcome, "pull_request_url": pr})
            print(f"{source:45} {outcome:28} {pr or '-'}")
        opened = sum(1 for r in rows if r["pull_request_url"])
        print(f"{len(rows)} repositories, {opened} pull request(s) opened")
        return {"repositories": len(rows), "pull_requests": opened, "rows": rows}

    fix_flaky >> report()
