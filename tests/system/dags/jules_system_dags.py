"""DAGs of the system tests (tests/system/test_failover.py); parsed by the real dag-processor only."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

#: Deferred tasks per run of ``jules_system_fanout`` (the failover test needs at least 5).
FANOUT = 5
SOURCE = "bobalover/boba"

with DAG(
    dag_id="jules_system_fanout",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=FANOUT,
    tags=["jules", "system-test"],
):
    for i in range(FANOUT):
        # sim:steps=8: about 180 simulated seconds of work; the test sets the simulator's speed.
        JulesCreateSessionOperator(
            task_id=f"session_{i}",
            prompt=f"System test task {i}: tidy module {i}. sim:steps=8",
            source=SOURCE,
            deferrable=True,
            poll_interval=1,
            timeout=timedelta(minutes=30),
        )

with DAG(
    dag_id="jules_system_worker_kill",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "system-test"],
):
    # Polls in the worker; the test SIGKILLs the task's process, the retry adopts the session.
    JulesCreateSessionOperator(
        task_id="polling_session",
        prompt="System test: polling in the worker. sim:steps=8",
        source=SOURCE,
        deferrable=False,
        poll_interval=1,
        timeout=timedelta(minutes=30),
        retries=1,
        retry_delay=timedelta(seconds=1),
    )

with DAG(
    dag_id="jules_system_sensor_reschedule",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "system-test"],
):
    # A real Airflow sensor in reschedule mode: the worker slot is free between pokes (issue #10).
    from airflow_provider_jules.sensors.jules import JulesSessionSensor

    start = JulesCreateSessionOperator(
        task_id="start_session",
        prompt="System test: followed by a sensor in reschedule mode. sim:steps=8",
        source=SOURCE,
        wait_for_completion=False,
    )
    wait = JulesSessionSensor(
        task_id="wait_in_reschedule_mode",
        session_id="{{ ti.xcom_pull(task_ids='start_session', key='session_id') }}",
        mode="reschedule",
        poke_interval=1,
        timeout=timedelta(minutes=10),
        # What docs/production.rst advises for a reschedule-mode sensor on Airflow <= 3.3.2: a retry, since
        # the scheduler can fail a poke on a late executor event of the previous poke (apache/airflow#71172).
        # A retry of this sensor only reads the session again.
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    start >> wait
