"""System tests on a production-shaped Airflow (issue #21 item 2): PostgreSQL as the metadata DB, the
CeleryExecutor with Redis as the broker, two ``celery worker``, two schedulers, two triggerers, the API server
and the DAG processor, each its own process on 127.0.0.1 (``stack_pg.py``, ``harness.py``). The simulator
runs in a thread of this process; every session is counted from its request log and its sessions, never
from the tests' own bookkeeping.

* a mapped fan-out of 20 deferrable Jules tasks in a pool of 5 slots with ``include_deferred``: every task
  succeeds with a session of its own, and at no moment are more than 5 of the run's sessions in flight
  (from each session's create time to its completion, on the simulator's clock);
* the Celery worker running a non-deferrable Jules task (``deferrable=False``, it polls in the worker) is
  SIGKILLed, its whole process group: the scheduler fails the try once its heartbeat is older than
  ``[scheduler] task_instance_heartbeat_timeout``; the retry runs on the other worker and adopts the
  session (one ``create_session`` for the run);
* one scheduler and one triggerer (the one polling the sessions) are SIGKILLed while 5 Jules tasks are
  deferred: the other triggerer takes the triggers over, the other scheduler runs the resumed tasks; every
  task succeeds, no session is created twice, and every activity of each session is in its task's log;
* one ``on_user_feedback="ask"`` task and one ``review="hitl"`` task, their forms (Required Actions) answered
  through the public REST API, the forms and the answers in PostgreSQL: each task waits without a worker slot
  (``awaiting_input`` on Airflow >= 3.3, ``deferred`` before), the answer reaches Jules once, the approved
  change completes the session.

Without PostgreSQL, Redis or the ``system`` extra a local run skips with the command that installs them;
under CI (``CI=true``) the tests fail instead.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.system.harness import (
    SYSTEM_BUNDLE,
    AirflowStack,
    Sim,
    activity_lines,
    airflow_at_least,
    get_json,
    poll,
    say,
    try_json,
)
from tests.system.harness import (
    simulator as run_simulator,
)
from tests.system.stack_pg import production_stack, require_production_stack, worker_ready

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

FANOUT_DAG = "jules_pg_pool_fanout"  # tests/system/dags/jules_production_dags.py
FANOUT, POOL, POOL_SLOTS = 20, "jules_pg_sessions", 5
WORKER_DAG = "jules_system_worker_kill"  # tests/system/dags/jules_system_dags.py
HA_DAG, HA_TASKS = "jules_system_fanout", 5  # tests/system/dags/jules_system_dags.py (FANOUT)
HITL_DAG = "jules_pg_hitl"  # tests/system/dags/jules_production_dags.py
HITL_ANSWER = "Yes, update the docs too."
WORKERS = ("celery-worker-1", "celery-worker-2")
COMPONENTS = [
    "api-server",
    "dag-processor",
    "scheduler",
    "scheduler-2",
    "triggerer",
    "triggerer-2",
    *WORKERS,
]
#: Simulated seconds per real second. A session of sim:steps=8 (about 180 simulated seconds) lasts about 7 s
#: in the fan-out (the pool's waves overlap for long), about 90 s while a worker is killed, then seconds.
FANOUT_SPEED, SLOW, FAST = 25.0, 2.0, 30.0
#: [scheduler] task_instance_heartbeat_timeout: a running task whose heartbeat is older is failed (retried).
HEARTBEAT_TIMEOUT = 12
#: [triggerer] and [scheduler] health check thresholds: a job whose heartbeat is older is dead to the others.
TRIGGERER_THRESHOLD, SCHEDULER_THRESHOLD = 6, 10
#: Figures for the report (printed by each test).
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def requirements() -> None:
    require_production_stack()  # before the simulator and the stack: skip (locally) or fail (CI) at once


@pytest.fixture(scope="module")
def simulator() -> Iterator[Sim]:
    with run_simulator(speed=FANOUT_SPEED) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(simulator: Sim) -> Iterator[AirflowStack]:
    extra = {
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_THRESHOLD),
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": str(SCHEDULER_THRESHOLD),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    }
    FIGURES["stack_began"] = time.monotonic()
    with production_stack(simulator.sim, COMPONENTS, [SYSTEM_BUNDLE], extra) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Iterator[httpx.Client]:
    with stack.api() as api, stack.logs_on_failure():
        stack.wait_healthy(api)
        for dag_id in (FANOUT_DAG, WORKER_DAG, HA_DAG, HITL_DAG):
            stack.unpause(api, dag_id, SYSTEM_BUNDLE[0])
        pool = {
            "name": POOL,
            "slots": POOL_SLOTS,
            "description": "Jules sessions at once",
            "include_deferred": True,
        }
        response = api.post("/api/v2/pools", json=pool)
        assert response.status_code in (200, 201), response.text
        assert response.json()["include_deferred"] is True, response.text
        FIGURES["stack_start_s"] = time.monotonic() - FIGURES["stack_began"]
        say(f"production stack ready {FIGURES['stack_start_s']:.1f} s after the start of PostgreSQL")
        yield api


def run_sessions(sim: Sim, run_id: str) -> list[Any]:
    """The simulator's sessions created for a run (their titles name the run)."""
    with sim.sim.state.engine.lock:
        return [s for s in sim.sim.state.engine.sessions.values() if f" run {run_id}" in s.title]


def run_creates(sim: Sim, run_id: str) -> list[dict[str, Any]]:
    """The successful create_session requests of a run, from the simulator's request log."""
    return [
        r
        for r in sim.sim.requests("create_session")
        if r["status"] == 200 and f" run {run_id}" in str((r.get("json") or {}).get("title", ""))
    ]


def peak_in_flight(spans: list[tuple[int, int]]) -> int:
    """Most spans (start, end) open at one instant; a span ending at t is closed before one starting at t."""
    events = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_peak_in_flight_counts_overlaps() -> None:
    assert peak_in_flight([]) == 0
    assert peak_in_flight([(0, 10), (10, 20), (20, 30)]) == 1  # back to back: never two at once
    assert peak_in_flight([(0, 10), (5, 20), (6, 7), (8, 30)]) == 3


def test_mapped_fanout_in_a_pool_with_deferred_tasks(
    stack: AirflowStack, api: httpx.Client, simulator: Sim
) -> None:
    sim = simulator
    sim.sim.set_speed(FANOUT_SPEED)
    began = time.monotonic()
    run_id = stack.trigger_run(api, FANOUT_DAG)
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        run = stack.wait_run(api, FANOUT_DAG, run_id, timeout=600, interval=1)
        body = get_json(api, f"/api/v2/dags/{FANOUT_DAG}/dagRuns/{run_id}/taskInstances?limit=100")
        states = {ti["map_index"]: ti["state"] for ti in body["task_instances"]}
        assert run["state"] == "success", states
        assert states == dict.fromkeys(range(FANOUT), "success"), states
        assert {ti["pool"] for ti in body["task_instances"]} == {POOL}
        duration = time.monotonic() - began

        # One session per task, from the simulator: its request log and its sessions.
        assert len(run_creates(sim, run_id)) == FANOUT, sim.sim.stats()
        sessions = run_sessions(sim, run_id)
        by_index: dict[int, Any] = {}
        for session in sessions:
            index = int(session.title.split(".session[", 1)[1].split("]", 1)[0])
            assert index not in by_index, (index, session.title, by_index)
            by_index[index] = session
        assert sorted(by_index) == list(range(FANOUT)), sorted(by_index)
        for index, session in by_index.items():
            assert session.state == "COMPLETED", (index, session.state)
            assert f"task {index}:" in session.prompt, (index, session.prompt)
            xcom = get_json(
                api,
                f"/api/v2/dags/{FANOUT_DAG}/dagRuns/{run_id}/taskInstances/session/xcomEntries/return_value"
                f"?map_index={index}",
            )["value"]
            xcom = json.loads(xcom) if isinstance(xcom, str) else xcom  # older APIs: the JSON text
            assert isinstance(xcom, dict) and xcom["session_id"] == session.id, (index, xcom)
            assert xcom["outcome"] == "completed", (index, xcom)

        # The pool: never more than POOL_SLOTS sessions between their creation and their completion (the
        # simulator's clock; a completed session's update time is its completion).
        spans = [(s.create_us, s.update_us) for s in sessions]
        peak = peak_in_flight(spans)
        assert peak <= POOL_SLOTS, sorted(spans)
        assert peak >= 2, sorted(spans)  # the tasks did run side by side: the limit was the pool's
    FIGURES.update(fanout_s=duration, pool_peak=peak)
    print(
        f"\n[system test] PostgreSQL + Celery: {FANOUT} mapped deferrable tasks in a pool of {POOL_SLOTS} "
        f"(include_deferred) succeeded in {duration:.1f} s; {FANOUT} sessions created; at most {peak} in "
        f"flight at once (simulator)"
    )


def worker_of(stack: AirflowStack, pid: int) -> str | None:
    """The Celery worker component whose process tree holds ``pid``."""
    for name in WORKERS:
        proc = stack.procs.get(name)
        if proc is None:
            continue
        with contextlib.suppress(psutil.Error):
            tree = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            if pid in tree:
                return name
    return None


def test_celery_worker_sigkill_retry_adopts_session_on_the_other_worker(
    stack: AirflowStack, api: httpx.Client, simulator: Sim
) -> None:
    sim = simulator
    sim.sim.set_speed(SLOW)
    task = "polling_session"
    run_id = stack.trigger_run(api, WORKER_DAG)
    ti_path = f"/api/v2/dags/{WORKER_DAG}/dagRuns/{run_id}/taskInstances/{task}"
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        # 1. The task runs in a Celery worker, has created its session and polls it.
        def polling() -> tuple[str, int] | None:
            sessions = run_sessions(sim, run_id)
            ti = try_json(api, ti_path)
            if not sessions or not ti or ti["state"] != "running" or not ti.get("pid"):
                return None
            sid = sessions[0].id
            gets = [r for r in sim.sim.requests("get_session") if r["path"] == f"/v1alpha/sessions/{sid}"]
            return (sid, int(ti["pid"])) if len(gets) >= 2 else None

        sid, pid = poll("the task to poll its session in a worker", polling, 180, check=stack.check_alive)
        victim = worker_of(stack, pid)
        assert victim is not None, (pid, "not in the process tree of any Celery worker we started")
        [other] = [name for name in WORKERS if name != victim]

        # 2. SIGKILL to the worker's whole process tree (its process group, and the task runner's own group):
        #    the worker, its pool, the supervisor and the task process, as if the machine were lost.
        say(f"SIGKILL to {victim} (pid {stack.procs[victim].pid}), which runs the task process {pid}")
        sent = stack.kill(victim, signal.SIGKILL)
        sent_wall = time.time() - (time.monotonic() - sent)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

        # 3. The scheduler fails the try (heartbeat timeout); the retry runs on the other worker.
        def retry_running() -> int | None:
            ti = try_json(api, ti_path)
            if ti and ti["try_number"] == 2 and ti["state"] == "running" and ti.get("pid"):
                return int(ti["pid"])
            return None

        pid2 = poll(
            "the retry to run",
            retry_running,
            HEARTBEAT_TIMEOUT * 5 + 60,
            interval=0.25,
            check=stack.check_alive,
        )
        retry_running_s = time.monotonic() - sent
        assert worker_of(stack, pid2) == other, (pid2, other)

        # 4. The retry's first poll of the session (every poll after the kill is the retry's).
        def adopted() -> float | None:
            times = [
                r["time"]
                for r in sim.sim.requests("get_session")
                if r["path"] == f"/v1alpha/sessions/{sid}" and r["time"] > sent_wall
            ]
            return min(times) - sent_wall if times else None

        adopt_s = poll("the retry to poll the session", adopted, 60, interval=0.25, check=stack.check_alive)
        sim.sim.set_speed(FAST)
        run = stack.wait_run(api, WORKER_DAG, run_id)
        assert run["state"] == "success", stack.task_instances(api, WORKER_DAG, run_id)

        # 5. One session for the run (the simulator's log); the retry adopted it and returned its result.
        assert len(run_creates(sim, run_id)) == 1, run_creates(sim, run_id)
        assert [s.id for s in run_sessions(sim, run_id)] == [sid]
        result = stack.result(api, WORKER_DAG, run_id, task)
        assert result["session_id"] == sid and result["outcome"] == "completed", result
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        states = {t["try_number"]: t["state"] for t in tries}
        assert states[2] == "success" and states[1] in ("failed", "up_for_retry"), states
        log2 = stack.log_text(api, WORKER_DAG, run_id, task, 2)
        assert f"Adopting session {sid}" in log2, log2[-3000:]
        total = time.monotonic() - sent

        # The killed worker comes back for whatever runs next on the stack.
        stack.start(victim)
        worker_ready(stack, victim)
    FIGURES.update(retry_running_s=retry_running_s, adopt_s=adopt_s)
    print(
        f"\n[system test] SIGKILL of {victim}: the retry ran on {other} {retry_running_s:.1f} s after the "
        f"kill (heartbeat timeout {HEARTBEAT_TIMEOUT} s), polled the adopted session {sid} {adopt_s:.1f} s "
        f"after it, and succeeded {total:.1f} s after it; sessions created for the run: 1"
    )


def test_scheduler_and_triggerer_sigkill_mid_run(
    stack: AirflowStack, api: httpx.Client, simulator: Sim
) -> None:
    sim = simulator
    sim.sim.set_speed(SLOW)
    run_id = stack.trigger_run(api, HA_DAG)
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        # 1. Every task deferred; its trigger polls its session from a triggerer.
        def all_deferred() -> dict[str, int | None] | None:
            holders = stack.trigger_holders(HA_DAG, run_id)
            held = len(holders) == HA_TASKS and None not in holders.values()
            return holders if held and len(run_sessions(sim, run_id)) == HA_TASKS else None

        holders = poll(
            f"{HA_TASKS} deferred tasks held by triggerers", all_deferred, 240, check=stack.check_alive
        )
        by_task = {s.title.split(".", 1)[1].split(" ", 1)[0]: s.id for s in run_sessions(sim, run_id)}
        sids = set(by_task.values())

        # 2. The triggerer polling the simulator (its process tree holds connections to it), and a scheduler.
        def polling_triggerer() -> str | None:
            for name in ("triggerer", "triggerer-2"):
                if name in stack.procs and stack.connections_to(name, sim.sim.port):
                    return name
            return None

        victim = poll("a triggerer polling the sessions", polling_triggerer, 60, interval=0.2)
        [survivor] = [name for name in ("triggerer", "triggerer-2") if name != victim]
        jobs = sorted({job for job in holders.values() if job is not None})
        say(f"SIGKILL to scheduler and {victim}; the triggers are held by triggerer jobs {jobs}")
        sent = stack.kill(victim, signal.SIGKILL)
        stack.kill("scheduler", signal.SIGKILL)
        sent_wall = time.time() - (time.monotonic() - sent)

        # 3. The surviving triggerer polls every session again (any poll after the kill is the survivor's).
        def all_resumed() -> dict[str, float] | None:
            gets = sim.sim.requests("get_session")
            times = {
                sid: min(
                    [
                        r["time"]
                        for r in gets
                        if r["path"] == f"/v1alpha/sessions/{sid}" and r["time"] > sent_wall
                    ],
                    default=None,
                )
                for sid in sids
            }
            if None in times.values():
                return None
            return {sid: float(when) - sent_wall for sid, when in times.items() if when is not None}

        resumed = poll(
            f"{survivor} to poll every session",
            all_resumed,
            TRIGGERER_THRESHOLD * 5 + 90,
            interval=0.25,
            check=stack.check_alive,
        )
        # The triggers the victim held now have another holder (read from the DB) and were polled again.
        moved = {task for task, job in stack.trigger_holders(HA_DAG, run_id).items() if job != holders[task]}
        assert moved, (holders, stack.trigger_holders(HA_DAG, run_id))
        takeover = max(resumed[by_task[task]] for task in moved)
        assert stack.connections_to(survivor, sim.sim.port), survivor
        sim.sim.set_speed(FAST)

        # 4. scheduler-2 runs the resumed tasks on the Celery workers: every task succeeds in its first try.
        run = stack.wait_run(api, HA_DAG, run_id, timeout=300)
        tis = stack.task_instances(api, HA_DAG, run_id)
        assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
        assert {k: v["state"] for k, v in tis.items()} == {f"session_{i}": "success" for i in range(HA_TASKS)}
        finished = time.monotonic() - sent

        # 5. No duplicate session (the simulator's log); each task's result is its own session, and every
        #    activity line of that session is in the task's log.
        assert len(run_creates(sim, run_id)) == HA_TASKS, run_creates(sim, run_id)
        assert sorted(s.id for s in run_sessions(sim, run_id)) == sorted(by_task.values())
        assert sorted(by_task) == [f"session_{i}" for i in range(HA_TASKS)], by_task
        for task, sid in by_task.items():
            result = stack.result(api, HA_DAG, run_id, task)
            assert result["session_id"] == sid and result["outcome"] == "completed", (task, result)
            log = stack.log_text(api, HA_DAG, run_id, task, 1)
            lines = activity_lines(sim.sim, sid)
            assert len(lines) >= 10, lines
            missing = [line for line in lines if json.dumps(line)[1:-1] not in log]
            assert not missing, (task, missing)

        # Both come back for whatever runs next on the stack.
        stack.start(victim)
        stack.start("scheduler")
    FIGURES.update(triggerer_takeover_s=takeover, ha_finished_s=finished)
    print(
        f"\n[system test] SIGKILL of a scheduler and {victim} with {HA_TASKS} deferred tasks: {survivor} "
        f"polled the {len(moved)} sessions it took over again {takeover:.1f} s after the kill (threshold "
        f"{TRIGGERER_THRESHOLD} s); scheduler-2 ran the tasks to success {finished:.1f} s after it; "
        f"sessions created: {HA_TASKS}, no activity missing from the logs"
    )


def test_hitl_forms_answered_through_the_rest_api_on_postgres(
    stack: AirflowStack, api: httpx.Client, simulator: Sim
) -> None:
    sim = simulator
    sim.sim.set_speed(FAST)
    began = time.monotonic()
    run_id = stack.trigger_run(api, HITL_DAG)
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        # 1. Jules's question (task "ask"): answered through the public API, once.
        question, asked_in = stack.waiting_form(api, HITL_DAG, run_id, "ask", "the question form")
        asked_s = time.monotonic() - began
        assert "Question 1: should I also update the docs?" in question["body"], question["body"]
        assert "Send answer" in question["options"], question
        response = stack.answer_form(api, HITL_DAG, run_id, "ask", ["Send answer"], {"message": HITL_ANSWER})
        assert response.status_code == 200, response.text
        again = stack.answer_form(api, HITL_DAG, run_id, "ask", ["Send answer"], {"message": "x"})
        assert again.status_code == 409, again.text  # one answer per open form

        # 2. The change review (task "review"): approved through the public API.
        review, reviewed_in = stack.waiting_form(api, HITL_DAG, run_id, "review", "the change-review form")
        reviewed_s = time.monotonic() - began
        assert "Approve" in review["options"], review
        request = get_json(
            api, f"/api/v2/dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/review/xcomEntries/jules_request"
        )["value"]
        assert "Review round 1 of at most 3" in str(request), request
        response = stack.answer_form(api, HITL_DAG, run_id, "review", ["Approve"], {"message": ""})
        assert response.status_code == 200, response.text

        run = stack.wait_run(api, HITL_DAG, run_id, timeout=180)
        tis = stack.task_instances(api, HITL_DAG, run_id)
        assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
        took = time.monotonic() - began

        # 3. The forms and their answers are PostgreSQL rows (one HITL detail per task instance).
        rows = stack.query(
            "SELECT ti.task_id, h.chosen_options, h.responded_at FROM hitl_detail h "
            "JOIN task_instance ti ON ti.id = h.ti_id WHERE ti.dag_id = ? AND ti.run_id = ?",
            HITL_DAG,
            run_id,
        )
        chosen = {str(task): (json.loads(c) if isinstance(c, str) else c) for task, c, _ in rows}
        assert chosen == {"ask": ["Send answer"], "review": ["Approve"]}, rows
        assert all(responded is not None for _, _, responded in rows), rows

        # 4. From the simulator: two sessions, both completed; the answer sent once, no change requested.
        sessions = {s.title.split(".", 1)[1].split(" ", 1)[0]: s for s in run_sessions(sim, run_id)}
        assert sorted(sessions) == ["ask", "review"], sorted(sessions)
        assert len(run_creates(sim, run_id)) == 2, run_creates(sim, run_id)
        assert {task: s.state for task, s in sessions.items()} == {"ask": "COMPLETED", "review": "COMPLETED"}
        sent = {
            task: [r["json"] for r in sim.sim.requests("send_message") if s.id in r["path"]]
            for task, s in sessions.items()
        }
        assert sent == {"ask": [{"prompt": HITL_ANSWER}], "review": []}, sent
        asked = stack.result(api, HITL_DAG, run_id, "ask")
        assert asked["outcome"] == "completed" and asked["session_id"] == sessions["ask"].id, asked
        reviewed = stack.result(api, HITL_DAG, run_id, "review")
        assert reviewed["outcome"] == "completed" and reviewed["session_id"] == sessions["review"].id
        assert [(r["round"], r["decision"]) for r in reviewed["review"]] == [(1, "approved")], reviewed
        expected = "awaiting_input" if airflow_at_least(3, 3) else "deferred"
        assert (asked_in, reviewed_in) == (expected, expected), (asked_in, reviewed_in)
        for task in ("ask", "review"):
            tries = get_json(api, f"/api/v2/dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/{task}/tries")
            assert [t["try_number"] for t in tries["task_instances"]] == [1], (task, tries)
    FIGURES.update(hitl_question_s=asked_s, hitl_review_s=reviewed_s, hitl_run_s=took)
    print(
        f"\n[system test] HITL on PostgreSQL + Celery: the question form open {asked_s:.1f} s after the "
        f"trigger, the review form {reviewed_s:.1f} s; both waited in {expected}; answered through the REST "
        f"API; the run succeeded {took:.1f} s after the trigger; 2 sessions created, 1 answer sent to Jules"
    )
