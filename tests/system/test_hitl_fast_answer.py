"""Reproducer (issue #21 item 4): an answer to a Required Actions form given the moment the form opens.

Airflow's own ``HITLOperator`` (apache-airflow-providers-standard), no Jules: a DAG run of TRIES independent
HITL tasks, each answered through the public REST API (``PATCH .../hitlDetails``) as soon as its form row is
in the metadata DB (read every 20 ms; 0.02-1.2 s after the form's creation), where a person takes seconds.
On SQLite and on PostgreSQL, with the LocalExecutor (the executor the race was seen with).

Each task ends in one of three ways, read from the metadata DB:

* ``success``: the answer resumed the task;
* ``failed-state-mismatch``: failed, with a "state mismatch" row in the ``log`` table: the scheduler handled
  the executor's "success" event of the workload that parked (3.3) or deferred (3.1) the task after it had
  re-queued the resumed task (same try number), and failed it as "state changed externally";
* ``stranded``: the task stays in ``awaiting_input`` with its answer recorded; nothing resumes it (seen on
  both databases: the answer and the parking crossed, and the parking did not see the answer).

The race is not deterministic. Measured on Airflow 3.3.2 (these 2-core machines, 5 runs of 4 tasks per
database): answered one after the other, SQLite lost 2, 0 and 3 tasks of 4, PostgreSQL 2, 1 and 2 (one run of
the 6 lost none); answered together (as now), SQLite lost 4 and 2 (2 stranded, 4 failed), PostgreSQL 4 and 3
(2 stranded, 5 failed). In all, 23 of 40 tasks lost, 9 of the 10 runs lost at least one. So on an affected
version the test triggers up to ROUNDS runs and stops at the first that loses a task.

On Airflow 3.1.8 the wait is a deferral: ``HITLTrigger`` reads the answer from the DB and fires. No task
ever stranded (0 of 24), but the trigger can fire (the task back to ``scheduled``) before the scheduler has
handled the deferring workload's exit, which then fails the task as a state mismatch: in 3 runs of 4 per
database, SQLite lost 0, 4 and 0 tasks, PostgreSQL 0, 0 and 2 (6 of 24; 2 of the 6 runs lost any).

The test documents what the installed Airflow does and fails when that changes (then update
docs/production.rst and this file): on Airflow 3.3 immediate answers lose tasks, stranded or failed (up to
ROUNDS runs until one does); on 3.1 and 3.2 one run, in which a task may fail as a state mismatch (too rare
to require) but none strands.
"""

from __future__ import annotations

import contextlib
import datetime
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.system.harness import (
    LOCAL_COMPONENTS,
    PERSON_READS_S,
    AirflowStack,
    airflow_at_least,
    airflow_stack,
    poll,
    say,
)
from tests.system.harness import (
    simulator as run_simulator,
)
from tests.system.stack_pg import production_stack

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

DAG_ID = "hitl_fast_answer"
BUNDLE = "hitl-fast-answer"
TRIES = 4
#: Runs of TRIES tasks at most on an affected version, until one loses a task.
ROUNDS = 3
#: A task in awaiting_input with its answer recorded for this long is stranded (a resume takes < 1 s).
STRANDED_AFTER_S = 10.0
DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.hitl import HITLOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False,
         max_active_tasks={TRIES}, max_active_runs={ROUNDS}):
    for i in range({TRIES}):
        HITLOperator(task_id=f"form_{{i}}", subject=f"Form {{i}}", options=["OK", "Stop"], retries=0)
'''

#: The same DAG with the provider's own wait (``open_form``: on 3.1/3.2 a deferral to ``JulesHITLTrigger``).
JULES_DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG, BaseOperator
from airflow_provider_jules.review.forms import Form, open_form

class AskAtOnce(BaseOperator):
    def execute(self, context):
        form = Form(subject=self.task_id, body="Answer me", options=["OK", "Stop"], params={{}})
        open_form(self, context, form, method_name="resume", kwargs={{}}, timeout_seconds=600,
                  poke_interval=0.2)

    def resume(self, context, event=None):
        assert event and event["chosen_options"] == ["OK"], event
        return event["chosen_options"]

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False,
         max_active_tasks={TRIES}, max_active_runs={ROUNDS}):
    for i in range({TRIES}):
        AskAtOnce(task_id=f"form_{{i}}", retries=0)
'''
#: Runs of TRIES immediately answered forms of the provider's own wait (Airflow 3.1/3.2).
GUARDED_ROUNDS = 2


@contextlib.contextmanager
def hitl_stack(db: str, dags: Path) -> Iterator[AirflowStack]:
    extra = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": str(TRIES)}
    with run_simulator(speed=1.0) as sim:  # unused by the DAG; the harness gives every stack one
        if db == "postgresql":
            with production_stack(sim.sim, LOCAL_COMPONENTS, [(BUNDLE, dags)], extra) as stack:
                yield stack
        else:
            with airflow_stack(sim.sim, LOCAL_COMPONENTS, [(BUNDLE, dags)], extra) as stack:
                yield stack


def forms(stack: AirflowStack, run_id: str) -> dict[str, datetime.datetime]:
    """{task_id: the form's creation time} of the run's HITL forms, from the metadata DB."""
    rows = stack.query(
        "SELECT ti.task_id, h.created_at FROM hitl_detail h JOIN task_instance ti ON ti.id = h.ti_id "
        "WHERE ti.dag_id = ? AND ti.run_id = ?",
        DAG_ID,
        run_id,
    )
    return {str(task): _utc(stamp) for task, stamp in rows}


def _utc(stamp: object) -> datetime.datetime:
    when = stamp if isinstance(stamp, datetime.datetime) else datetime.datetime.fromisoformat(str(stamp))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def answer_at_once(stack: AirflowStack, api: httpx.Client, run_id: str) -> dict[str, float]:
    """Answer every form the moment its row is in the DB (read every 20 ms; the PATCHes of forms that open
    together go out together). {task_id: seconds from the form's creation to the answer's acceptance}."""
    answered: dict[str, float] = {}

    def answer(task: str, created: datetime.datetime) -> None:
        response = stack.answer_form(api, DAG_ID, run_id, task, ["OK"])
        assert response.status_code == 200, (task, response.status_code, response.text)
        answered[task] = datetime.datetime.now(datetime.timezone.utc).timestamp() - created.timestamp()

    def all_answered() -> bool | None:
        new = {task: created for task, created in forms(stack, run_id).items() if task not in answered}
        if new:
            with ThreadPoolExecutor(len(new)) as pool:
                list(pool.map(answer, new, new.values()))  # list(): an assertion in a thread fails here
        return True if len(answered) == TRIES else None

    what = f"{TRIES} forms to open (answered at once)"
    poll(what, all_answered, 120, interval=0.02, check=stack.check_alive)
    return answered


def outcomes(stack: AirflowStack, run_id: str) -> dict[str, str]:
    """{task_id: success | failed | failed-state-mismatch | stranded}, once every task has one (bounded)."""
    parked_since: dict[str, float] = {}

    def settled() -> dict[str, str] | None:
        rows = stack.query(
            "SELECT ti.task_id, ti.state, h.responded_at FROM task_instance ti "
            "LEFT JOIN hitl_detail h ON h.ti_id = ti.id WHERE ti.dag_id = ? AND ti.run_id = ?",
            DAG_ID,
            run_id,
        )
        mismatches = stack.state_mismatches(DAG_ID, run_id)
        found: dict[str, str] = {}
        now = time.monotonic()
        for task, state, responded in rows:
            task = str(task)
            if state == "awaiting_input" and responded is not None:
                since = parked_since.setdefault(task, now)
                if now - since >= STRANDED_AFTER_S:
                    found[task] = "stranded"
            else:
                parked_since.pop(task, None)
                if state == "failed":
                    found[task] = "failed-state-mismatch" if task in mismatches else "failed"
                elif state == "success":
                    found[task] = "success"
        return found if len(found) == TRIES else None

    return poll("every task to succeed, fail or strand", settled, 120, interval=0.5, check=stack.check_alive)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_an_answer_the_moment_the_form_opens(db: str, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG_FILE))
    affected = airflow_at_least(3, 3)
    began = time.monotonic()
    rounds: list[tuple[dict[str, float], dict[str, str]]] = []
    with hitl_stack(db, dags) as stack, stack.logs_on_failure(), stack.api() as api:
        stack.wait_healthy(api)
        stack.unpause(api, DAG_ID, BUNDLE)
        ready = time.monotonic() - began
        # The race is not deterministic (see the module's docstring): on an affected version, up to ROUNDS
        # runs until one loses a task.
        for _ in range(ROUNDS if affected else 1):
            run_id = stack.trigger_run(api, DAG_ID)
            answered = answer_at_once(stack, api, run_id)
            rounds.append((answered, outcomes(stack, run_id)))
            if any(end != "success" for end in rounds[-1][1].values()):
                break
    for answered, ends in rounds:
        counts = {kind: sorted(ends.values()).count(kind) for kind in sorted(set(ends.values()))}
        delays = sorted(round(s, 2) for s in answered.values())
        say(f"{db}: answers {delays} s after the forms opened; outcomes {counts} ({ends})")
    say(f"{db}: stack ready in {ready:.0f} s; {len(rounds)} run(s); {time.monotonic() - began:.0f} s in all")
    for answered, _ in rounds:  # the answers came within about a second, before a person could read the form
        delays = sorted(answered.values())
        assert delays[len(delays) // 2] < 1.0 and delays[-1] < PERSON_READS_S, delays
    ends = rounds[-1][1]
    if affected:
        # Airflow 3.3 parks the task in awaiting_input; an immediate answer loses tasks (issue #21 item 4).
        lost = [task for task, end in ends.items() if end != "success"]
        assert lost, f"{db}: {len(rounds)} runs of {TRIES} immediate answers lost no task: update the docs"
        assert all(ends[t] in ("stranded", "failed-state-mismatch") for t in lost), ends
    else:
        # Airflow 3.1/3.2: HITLOperator defers to HITLTrigger, which reads the answer whenever it came: no
        # task strands. The trigger can fire (the task back to scheduled) before the scheduler has handled
        # the deferring workload's exit, which then fails the task as a state mismatch: sometimes, on SQLite
        # (see the docstring), so a loss is allowed, of that kind only.
        assert all(end in ("success", "failed-state-mismatch") for end in ends.values()), ends


@pytest.mark.skipif(
    airflow_at_least(3, 3),
    reason="Airflow >= 3.3: the provider parks the task in awaiting_input (no trigger to settle); "
    "test_an_answer_the_moment_the_form_opens documents what an immediate answer does there",
)
def test_the_providers_wait_settles_an_immediate_answer(tmp_path: Path) -> None:
    """The guard (issue #21 item 4): the provider's own form wait on Airflow 3.1/3.2 is a deferral to
    ``JulesHITLTrigger``, which resumes the task no earlier than settle_seconds() after the form opened, and
    so makes the state-mismatch loss that immediate answers cause to Airflow's own HITLOperator rare (the
    comparison is in docs/people_in_the_loop.rst)."""
    from airflow_provider_jules.triggers.hitl import settle_seconds

    settle = settle_seconds()  # 10 s: the stack runs with Airflow's default [workers] min_heartbeat_interval

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(textwrap.dedent(JULES_DAG_FILE))
    with hitl_stack("sqlite", dags) as stack, stack.logs_on_failure(), stack.api() as api:
        stack.wait_healthy(api)
        stack.unpause(api, DAG_ID, BUNDLE)
        lost = 0
        for _ in range(GUARDED_ROUNDS):
            run_id = stack.trigger_run(api, DAG_ID)
            answered = answer_at_once(stack, api, run_id)
            opened = forms(stack, run_id)
            ends = outcomes(stack, run_id)
            finished = {  # seconds from each form's opening to its task's end (after the resume)
                str(task): _utc(end).timestamp() - opened[str(task)].timestamp()
                for task, end in stack.query(
                    "SELECT task_id, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?",
                    DAG_ID,
                    run_id,
                )
            }
            say(
                f"guarded: answers {sorted(round(s, 2) for s in answered.values())} s after the forms "
                f"opened; tasks ended {sorted(round(s, 1) for s in finished.values())} s after; "
                f"outcomes {ends}"
            )
            assert sorted(answered.values())[len(answered) // 2] < 1.0, answered  # an immediate answer
            # Each task was resumed (and so ended) only once its form had been open settle s: the hold.
            assert all(seconds >= settle for seconds in finished.values()), finished
            # The hold makes the race rare, not impossible: on a loaded machine the scheduler can take
            # longer than the margin to handle the deferring workload's exit (one task of four, once, in
            # a run of this test). So a loss is allowed, of that kind only, as for HITLOperator; no strand.
            assert set(ends.values()) <= {"success", "failed-state-mismatch"}, ends
            lost += sum(end != "success" for end in ends.values())
        say(f"guarded: {lost} of {GUARDED_ROUNDS * TRIES} tasks lost")
