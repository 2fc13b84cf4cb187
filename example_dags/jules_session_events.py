"""Event-driven: run a DAG whenever a Jules session, started anywhere, opens a pull request.

Teams start Jules sessions outside Airflow too: in the web app, as scheduled tasks in Jules, from GitHub. An
``AssetWatcher`` with a ``JulesSessionEventTrigger`` watches the account's sessions on one repository from the
triggerer; each session that completes with a pull request becomes one asset event, whose ``extra["payload"]``
holds ``{session_id, url, title, source, state, outcome, pull_request_url, update_time}``. The DAG below is
scheduled on that asset: "run the integration suite on Jules's pull request". Events that arrive while a run
is being scheduled share one run, so the task handles every event of its run.

AssetWatcher and BaseEventTrigger exist on every Airflow version the provider supports (3.1 and later). The
watcher runs while the DAG is unpaused; see docs/events.rst for what is reported after a triggerer restart.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_jules.triggers.events import JulesSessionEventTrigger

# [START howto_trigger_jules_session_events]
JULES_PULL_REQUESTS = Asset(
    "jules://bobalover/boba/pull-requests",
    watchers=[
        AssetWatcher(
            name="jules_sessions_on_boba",
            trigger=JulesSessionEventTrigger(
                source="bobalover/boba",  # every argument is optional: all repositories without it
                poll_interval=float(os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "60")),
            ),
        )
    ],
)
# [END howto_trigger_jules_session_events]

with DAG(
    dag_id="jules_pull_request_checks",
    schedule=[JULES_PULL_REQUESTS],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
) as dag:
    # [START howto_jules_session_event_consumer]
    @task
    def integration_suite(**context: Any) -> list[dict[str, Any]]:
        checked = []
        for event in context["triggering_asset_events"][JULES_PULL_REQUESTS]:
            payload = event.extra.get("payload") or {}
            print(
                f"Jules session {payload.get('session_id')} ({payload.get('title')}) opened "
                f"{payload.get('pull_request_url')}: running the integration suite on it"
            )
            checked.append(
                {"session_id": payload.get("session_id"), "pull_request_url": payload.get("pull_request_url")}
            )
        return checked

    # [END howto_jules_session_event_consumer]

    integration_suite()
