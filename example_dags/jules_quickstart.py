"""Quickstart: ask Jules for one change and hand its pull request to the next task.

Runs as is on the bundled simulator (``make demo``) and against the real Jules API once the ``jules_default``
connection holds your API key (see README). The repository must be connected to Jules (install the Jules
GitHub app); list yours with ``JulesListSourcesOperator`` or ``JulesHook().list_sources()``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

with DAG(
    dag_id="jules_quickstart",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
    params={"repository": os.environ.get("JULES_EXAMPLE_REPOSITORY", "bobalover/boba")},
) as dag:
    # [START howto_operator_jules_create_session]
    fix_tests = JulesCreateSessionOperator(
        task_id="fix_flaky_tests",
        prompt="Find the flaky tests in this repository and make them deterministic.",
        source="{{ params.repository }}",
        auto_create_pr=True,  # Jules opens a pull request with its change
        deferrable=True,  # the worker slot is free while Jules works
        poll_interval=float(os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "15")),
        timeout=timedelta(hours=2),
    )
    # [END howto_operator_jules_create_session]

    # [START howto_jules_use_result]
    @task
    def review_pull_request(result: dict[str, Any]) -> str:
        """A downstream task receives the result dict: PR URL, files changed, plan, outcome."""
        files = (result["change_set"] or {}).get("files_changed", [])
        print(f"Jules opened {result['pull_request_url']} touching {len(files)} file(s): {', '.join(files)}")
        return str(result["pull_request_url"])

    review_pull_request(fix_tests.output)
    # [END howto_jules_use_result]
