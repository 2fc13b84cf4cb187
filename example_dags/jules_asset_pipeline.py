"""Pipeline dependencies: when Jules opens a PR, update an Asset; a second DAG is scheduled on that Asset.

"When the schema changes upstream, have Jules update the client library, then run the release DAG": the first
DAG asks Jules for the change; the Jules task has the asset as its outlet, so its asset event carries
``extra`` = ``{session_id, url, outcome, pull_request_url, files_changed}``. The second DAG runs for each such
event and reads the pull request from ``triggering_asset_events``, without pulling any XCom. A session that
changed nothing skips (``on_no_changes="skip"``), so it emits no event and starts no release.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

CLIENT_LIBRARY_PR = Asset("jules://client-library/pull-request")

with DAG(
    dag_id="jules_update_client_library",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
) as update_dag:
    # [START howto_jules_asset_event]
    JulesCreateSessionOperator(
        task_id="update_client",
        prompt="The upstream API schema changed: regenerate the client library and update its tests.",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=float(os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "30")),
        on_no_changes="skip",
        outlets=[CLIENT_LIBRARY_PR],
    )
    # [END howto_jules_asset_event]

with DAG(
    dag_id="jules_release_client_library",
    schedule=[CLIENT_LIBRARY_PR],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
) as release_dag:
    # [START howto_jules_asset_consumer]
    @task
    def release(**context: Any) -> list[str]:
        events = context["triggering_asset_events"][CLIENT_LIBRARY_PR]
        urls = [str(e.extra["pull_request_url"]) for e in events if e.extra.get("pull_request_url")]
        for event in events:
            files = ", ".join(event.extra.get("files_changed") or [])
            print(f"Jules session {event.extra.get('session_id')} changed: {files}")
        for url in urls:
            print(f"Releasing the client library once {url} is merged")
        return urls

    # [END howto_jules_asset_consumer]

    release()
