"""DAGs of tests/system/test_production_stack.py (issue #21); parsed by the real dag-processor only.

``jules_pg_pool_fanout``: a mapped fan-out of FANOUT deferrable Jules tasks in the pool POOL, which the test
creates with POOL_SLOTS slots and ``include_deferred=True`` (a deferred task keeps its slot while Jules
works). The worker-kill scenario reuses ``jules_system_worker_kill`` (jules_system_dags.py).

``jules_pg_hitl``: one task asks the person Jules's question (``on_user_feedback="ask"``), one has its change
reviewed (``review="hitl"``); the test answers both forms through the REST API.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

FANOUT = 20
POOL = "jules_pg_sessions"
POOL_SLOTS = 5
SOURCE = "bobalover/boba"

with DAG(
    dag_id="jules_pg_pool_fanout",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=FANOUT,  # the pool is the only limit
    tags=["jules", "system-test"],
):
    # sim:steps=8: about 180 simulated seconds of work; the test sets the simulator's speed.
    JulesCreateSessionOperator.partial(
        task_id="session",
        source=SOURCE,
        deferrable=True,
        poll_interval=1,
        timeout=timedelta(minutes=30),
        pool=POOL,
    ).expand(prompt=[f"Production stack task {i}: tidy module {i}. sim:steps=8" for i in range(FANOUT)])

# HITL on PostgreSQL: a question answered on the Required Actions page (on_user_feedback="ask"; the
# simulator's user_feedback scenario asks one) and a change reviewed there (review="hitl").
with DAG(
    dag_id="jules_pg_hitl",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "system-test"],
):
    JulesCreateSessionOperator(
        task_id="ask",
        prompt="Update the client sim:scenario=user_feedback",
        source=SOURCE,
        deferrable=True,
        poll_interval=1,
        on_user_feedback="ask",
    )
    JulesCreateSessionOperator(
        task_id="review",
        prompt="Tidy the README",
        source=SOURCE,
        deferrable=True,
        poll_interval=1,
        review="hitl",
    )
