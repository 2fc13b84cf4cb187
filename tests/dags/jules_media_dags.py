"""DAGs whose Jules session attaches two screenshots (``sim:media=2``), run with dag.test() against the
simulator by tests/integration/test_media.py. ``artifacts_path`` is read from the Airflow variable
``jules_media_root`` (the test sets ``AIRFLOW_VAR_JULES_MEDIA_ROOT`` to a temporary ``file://`` folder)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
PROMPT = "Restyle the settings page sim:media=2"
ROOT = "{{ var.value.jules_media_root }}"


def media_dag(dag_id: str, **review: object) -> DAG:
    """A DAG of one session that attaches two screenshots, its media written under ``ROOT``."""
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        JulesCreateSessionOperator(
            task_id="create",
            prompt=PROMPT,
            source="bobalover/boba",
            deferrable=True,
            poll_interval=0.05,
            artifacts_path=ROOT,
            **review,
        )
    return dag


media_two_files = media_dag("media_two_files")
media_review = media_dag("media_review", review="hitl")
