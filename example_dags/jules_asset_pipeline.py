"""Pipeline dependencies: when Jules opens a PR, update an Asset; a second DAG is scheduled on that Asset.

"When the schema changes upstream, have Jules update the client library, then run the release DAG": the first
DAG asks Jules for the change and records an asset event whose ``extra`` carries the pull request URL; the
second DAG runs for each such event and reads the URL from it.
"""

from __future__ import annotations

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
    update = JulesCreateSessionOperator(
        task_id="update_client",
        prompt="The upstream API schema changed: regenerate the client library and update its tests.",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=30,
    )

    # [START howto_jules_asset_event]
    @task(outlets=[CLIENT_LIBRARY_PR])
    def publish_pull_request(result: dict[str, Any], **context: Any) -> str | None:
        url = result["pull_request_url"]
        if url:
            context["outlet_events"][CLIENT_LIBRARY_PR].extra = {
                "pull_request_url": url,
                "session_id": result["session_id"],
            }
        return url

    # [END howto_jules_asset_event]
    publish_pull_request(update.output)

with DAG(
    dag_id="jules_release_client_library",
    schedule=[CLIENT_LIBRARY_PR],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
) as release_dag:

    @task
    def release(**context: Any) -> list[str]:
        events = context["triggering_asset_events"][CLIENT_LIBRARY_PR]
        urls = [str(e.extra.get("pull_request_url")) for e in events if e.extra.get("pull_request_url")]
        for url in urls:
            print(f"Releasing the client library once {url} is merged")
        return urls

    release()
