"""System tests: Jules waits survive the loss of an Airflow component (issue #13 items 1 and 2).

Real components, each in its own process (see ``harness.py``): api-server, scheduler (LocalExecutor),
dag-processor (only ``tests/system/dags``) and one or two ``airflow triggerer``. The simulator runs in a
thread of this process. Every scenario runs its own DAG run on the shared stack:

* a triggerer holding N deferred Jules tasks is SIGKILLed (its whole process group) / SIGTERMed; a standby
  triggerer takes the triggers over once the holder's heartbeat is older than
  ``[triggerer] triggerer_health_check_threshold`` (set low here);
* the scheduler is restarted while the tasks are deferred, and their triggers fire while it is down;
* the process of a task polling in the worker (``deferrable=False``) is SIGKILLed; the retry adopts the
  session instead of creating a second one.

Each asserts: every task succeeds with its own session's result, the simulator saw exactly one session
per task, and (failover) every activity line of each session is in the task's log.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.system.harness import (
    SYSTEM_BUNDLE,
    AirflowStack,
    Sim,
    activity_lines,
    airflow_stack,
    get_json,
    poll,
    say,
    try_json,
)
from tests.system.harness import (
    simulator as run_simulator,
)

# The first scenario also pays for the stack's start-up.
pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

FANOUT_DAG = "jules_system_fanout"
WORKER_DAG = "jules_system_worker_kill"
SENSOR_DAG = "jules_system_sensor_reschedule"
N = 5  # tests/system/dags/jules_system_dags.py FANOUT
#: Simulated seconds per real second while the component is lost (a session of sim:steps=8 then lasts about
#: 90 s, far longer than the takeover), and afterwards (the sessions finish in seconds).
SLOW, FAST = 2.0, 30.0
#: [triggerer] triggerer_health_check_threshold: a triggerer whose heartbeat is older is dead to the others.
THRESHOLD = 6
#: How long a stopped component gets between SIGTERM and SIGKILL (Kubernetes' default grace period).
GRACE_S = 30.0
#: The triggerer job id of each triggerer component (by component name).
JOBS: dict[str, int] = {}


@pytest.fixture(scope="module")
def simulator() -> Iterator[Sim]:
    with run_simulator(speed=SLOW) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(simulator: Sim) -> Iterator[AirflowStack]:
    extra = {
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(THRESHOLD),
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__CORE__PARALLELISM": str(N + 1),
    }
    components = ["api-server", "scheduler", "dag-processor", "triggerer"]
    with airflow_stack(simulator.sim, components, [SYSTEM_BUNDLE], extra) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Iterator[httpx.Client]:
    with stack.api() as api, stack.logs_on_failure():
        stack.wait_healthy(api)
        [(job_id, _)] = stack.triggerer_jobs()
        JOBS["triggerer"] = job_id
        for dag_id in (FANOUT_DAG, WORKER_DAG, SENSOR_DAG):
            stack.unpause(api, dag_id, "system-dags")
        yield api


@pytest.fixture(autouse=True)
def slow_simulator(simulator: Sim) -> None:
    simulator.sim.set_speed(SLOW)


@pytest.fixture(autouse=True)
def a_scheduler(stack: AirflowStack) -> None:
    """Every test starts with a scheduler, even when an earlier test failed between stopping one and
    starting the next (one failure must not take the module's other tests with it)."""
    if "scheduler" not in stack.procs:
        stack.start("scheduler")


def start_triggerer(stack: AirflowStack) -> str:
    """Start one more triggerer; wait until it runs (its job row exists); returns its component name."""
    known = {job_id for job_id, _ in stack.triggerer_jobs()}
    name = f"triggerer-{len(known) + 1}"
    stack.start(name)

    def new_job() -> int | None:
        fresh = [
            job_id for job_id, state in stack.triggerer_jobs() if job_id not in known and state == "running"
        ]
        return fresh[0] if fresh else None

    JOBS[name] = poll(f"{name} to start", new_job, timeout=90, interval=0.25, check=stack.check_alive)
    return name


def sessions_of_run(sim: Sim, run_id: str) -> dict[str, str]:
    """{task_id: session id} of the sessions created for a run (the title names the task and the run)."""
    found: dict[str, str] = {}
    with sim.sim.state.engine.lock:
        for sid, session in sim.sim.state.engine.sessions.items():
            for task in (f"session_{i}" for i in range(N)):
                if f".{task} run {run_id}" in session.title:
                    found[task] = sid
    return found


def check_fanout_run(stack: AirflowStack, api: httpx.Client, sim: Sim, run_id: str, created0: int) -> None:
    """The run succeeded; one session per task, each task's result is its own completed session; try 1."""
    run = stack.wait_run(api, FANOUT_DAG, run_id)
    tis = stack.task_instances(api, FANOUT_DAG, run_id)
    assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
    assert {k: v["state"] for k, v in tis.items()} == {f"session_{i}": "success" for i in range(N)}
    assert sim.sim.sessions_created - created0 == N, sim.sim.stats()
    sids = sessions_of_run(sim, run_id)
    assert len(sids) == N and len(set(sids.values())) == N, sids
    for task, sid in sids.items():
        result = stack.result(api, FANOUT_DAG, run_id, task)
        assert result["session_id"] == sid and result["outcome"] == "completed", (task, result)
        assert result["state"] == "COMPLETED", result
        info = sim.sim.session_info(sid)
        assert info["session"]["state"] == "COMPLETED" and not info["session"].get("archived"), info
        assert f"task {task.split('_')[1]}:" in info["session"]["prompt"], (task, info["session"]["prompt"])
        tries = get_json(api, f"/api/v2/dags/{FANOUT_DAG}/dagRuns/{run_id}/taskInstances/{task}/tries")
        assert [t["try_number"] for t in tries["task_instances"]] == [1], tries  # no retry used


def failover(stack: AirflowStack, api: httpx.Client, sim: Sim, sig: signal.Signals) -> tuple[float, float]:
    """N deferred tasks on one triggerer; a standby starts; ``sig`` to the holder; the standby takes over."""
    [holder] = [name for name in stack.procs if name.startswith("triggerer")]
    created0 = sim.sim.sessions_created
    run_id = stack.trigger_run(api, FANOUT_DAG)
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        # 1. Every task deferred, every trigger held by the one running triggerer (read from the DB).
        def all_held() -> dict[str, int | None] | None:
            holders = stack.trigger_holders(FANOUT_DAG, run_id)
            return holders if len(holders) == N and set(holders.values()) == {JOBS[holder]} else None

        poll(f"{N} deferred tasks held by {holder}", all_held, 180, check=stack.check_alive)
        sids = sessions_of_run(sim, run_id)
        assert len(sids) == N, sids

        # 2. A standby triggerer, running (heartbeating) and holding nothing.
        standby = start_triggerer(stack)
        assert set(stack.trigger_holders(FANOUT_DAG, run_id).values()) == {JOBS[holder]}

        # 3. The signal. Every connection seen so far belongs to the holder or to the workers that created
        #    the sessions; a poll from any other connection after the signal is the standby's.
        before = {port for _, _, port, _ in list(sim.clients.seen)}
        sent = stack.kill(holder, sig)
        since_heartbeat = stack.heartbeat_age(JOBS[holder], sent)  # the holder's last sign of life

        # 4. The standby polls every session again; the DB shows it holding the triggers.
        held_by_standby: set[str] = set()

        def all_resumed() -> dict[str, float] | None:
            for task, job in stack.trigger_holders(FANOUT_DAG, run_id).items():
                if job == JOBS[standby]:
                    held_by_standby.add(task)
            times = {
                task: sim.clients.first_after("GET", f"/v1alpha/sessions/{sid}", sent, before)
                for task, sid in sids.items()
            }
            return {k: v for k, v in times.items() if v is not None} if None not in times.values() else None

        resumed = poll(
            "the standby triggerer to poll every session",
            all_resumed,
            timeout=THRESHOLD * 5 + 60,
            interval=0.2,
            check=stack.check_alive,
        )
        takeover = max(resumed.values()) - sent
        say(
            f"{sig.name} of {holder}: {standby} polled all {N} sessions again after "
            f"{min(resumed.values()) - sent:.1f}-{takeover:.1f} s (threshold {THRESHOLD} s, heartbeat 1 s); "
            f"held by it in the DB: {sorted(held_by_standby)}; the holder's last heartbeat was "
            f"{since_heartbeat:.1f} s before the signal"
        )
        assert held_by_standby == set(sids), held_by_standby  # the session polls were the standby's
        sim.sim.set_speed(FAST)

        # 5. Every task succeeds with its own session; no extra session; the whole wait stayed in try 1.
        check_fanout_run(stack, api, sim, run_id, created0)

        # 6. Every activity line of each session is in its task's log (the holder's and the standby's
        #    trigger log files are both sources of the log; what the holder logged but lost, the standby
        #    logs again: it resumes from the cursor in the trigger's kwargs).
        for task, sid in sids.items():
            log = stack.log_text(api, FANOUT_DAG, run_id, task, 1)
            lines = activity_lines(sim.sim, sid)
            assert len(lines) >= 10, lines
            missing = [line for line in lines if json.dumps(line)[1:-1] not in log]
            assert not missing, (task, missing)
            assert f"Following Jules session {sid}" in log
    return takeover, since_heartbeat


def test_triggerer_sigkill_standby_takes_over(stack: AirflowStack, api: httpx.Client, simulator: Sim) -> None:
    takeover, since_heartbeat = failover(stack, api, simulator, signal.SIGKILL)
    print(f"\n[system test] SIGKILL failover: last trigger running again {takeover:.1f} s after the kill")
    # The standby adopted the triggers only once the dead holder's heartbeat was THRESHOLD old: a takeover
    # by the health check, not a resume by the holder. Counted from that heartbeat (under load it may be
    # older than the 1 s heartbeat interval when the kill lands), with 0.5 s for the clocks' resolution.
    assert takeover + since_heartbeat >= THRESHOLD - 0.5, (takeover, since_heartbeat)


def test_triggerer_sigterm_standby_takes_over(stack: AirflowStack, api: httpx.Client, simulator: Sim) -> None:
    takeover, _ = failover(stack, api, simulator, signal.SIGTERM)
    print(f"\n[system test] SIGTERM failover: last trigger running again {takeover:.1f} s after the signal")


def test_scheduler_restart_while_deferred(stack: AirflowStack, api: httpx.Client, simulator: Sim) -> None:
    sim = simulator
    created0 = sim.sim.sessions_created
    run_id = stack.trigger_run(api, FANOUT_DAG)
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        poll(
            f"{N} deferred tasks",
            lambda: True if len(stack.trigger_holders(FANOUT_DAG, run_id)) == N else None,
            180,
            check=stack.check_alive,
        )
        began = time.monotonic()
        # As a process manager stops it: SIGTERM, and SIGKILL after a grace period (Kubernetes' default,
        # 30 s). Airflow 3.1.8's scheduler once stayed up more than 60 s after SIGTERM on a loaded machine,
        # its LocalExecutor "waiting for running tasks to finish" that had all finished.
        stopped, killed = stack.terminate("scheduler", grace=GRACE_S)
        # While no scheduler runs, the sessions complete and every trigger fires: the triggerer hands the
        # task instances back (state scheduled); only a scheduler can run them.
        sim.sim.set_speed(FAST)
        path = f"/api/v2/dags/{FANOUT_DAG}/dagRuns/{run_id}/taskInstances"

        def all_fired() -> dict[str, str] | None:
            body = try_json(api, path)
            states = {ti["task_id"]: ti["state"] for ti in (body or {}).get("task_instances", [])}
            return states if len(states) == N and "deferred" not in states.values() else None

        states = poll("every trigger to fire", all_fired, 120, interval=0.25, check=stack.check_alive)
        assert set(states.values()) <= {"scheduled", "queued"}, states
        stack.start("scheduler")
        check_fanout_run(stack, api, sim, run_id, created0)
    print(
        f"\n[system test] scheduler stopped {stopped:.1f} s after SIGTERM"
        f"{' (SIGKILL needed)' if killed else ''}; "
        f"the {N} triggers fired while it "
        f"was down ({states}); the restarted scheduler ran them to success "
        f"{time.monotonic() - began:.1f} s after the SIGTERM"
    )


def test_worker_kill_retry_adopts_session(stack: AirflowStack, api: httpx.Client, simulator: Sim) -> None:
    sim = simulator
    task = "polling_session"
    created0 = sim.sim.sessions_created
    run_id = stack.trigger_run(api, WORKER_DAG)
    ti_path = f"/api/v2/dags/{WORKER_DAG}/dagRuns/{run_id}/taskInstances/{task}"
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):
        # 1. The task runs in a worker, has created its session and polls it.
        def polling() -> tuple[str, int] | None:
            with sim.sim.state.engine.lock:
                sids = [s.id for s in sim.sim.state.engine.sessions.values() if f"run {run_id}" in s.title]
            ti = try_json(api, ti_path)
            if not sids or not ti or ti["state"] != "running" or not ti.get("pid"):
                return None
            gets = [r for r in sim.sim.requests("get_session") if r["path"] == f"/v1alpha/sessions/{sids[0]}"]
            return (sids[0], int(ti["pid"])) if len(gets) >= 2 else None

        sid, pid = poll("the task to poll its session in the worker", polling, 180, check=stack.check_alive)
        # Only a process of our own: the task's process descends from the scheduler we started.
        scheduler_tree = {
            p.pid for p in psutil.Process(stack.procs["scheduler"].pid).children(recursive=True)
        }
        assert pid in scheduler_tree, (pid, scheduler_tree)
        victim = psutil.Process(pid)
        say(f"SIGKILL to the task process {pid}: {' '.join(victim.cmdline())[:200]}")
        began = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)

        # 2. The retry starts; the session goes on and completes.
        def retrying() -> int | None:
            ti = try_json(api, ti_path)
            return 2 if ti and ti["try_number"] == 2 and ti["state"] in ("running", "success") else None

        poll("the retry to start", retrying, 120, interval=0.25, check=stack.check_alive)
        retry_started = time.monotonic() - began
        sim.sim.set_speed(FAST)
        run = stack.wait_run(api, WORKER_DAG, run_id)
        assert run["state"] == "success", stack.task_instances(api, WORKER_DAG, run_id)

        # 3. One session: the retry adopted the first attempt's session and returned its result.
        assert sim.sim.sessions_created - created0 == 1, sim.sim.stats()
        result = stack.result(api, WORKER_DAG, run_id, task)
        assert result["session_id"] == sid and result["outcome"] == "completed", result
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        states = {t["try_number"]: t["state"] for t in tries}
        assert states[2] == "success" and states[1] in ("failed", "up_for_retry"), states
        log2 = stack.log_text(api, WORKER_DAG, run_id, task, 2)
        assert f"Adopting session {sid}" in log2, log2[-3000:]
    print(
        f"\n[system test] worker kill: the retry started {retry_started:.1f} s after the SIGKILL, adopted "
        f"session {sid} and succeeded {time.monotonic() - began:.1f} s after the kill; sessions created: 1"
    )


def test_sensor_in_reschedule_mode_on_real_components(
    stack: AirflowStack, api: httpx.Client, simulator: Sim
) -> None:
    """JulesSessionSensor(mode="reschedule") on the real scheduler: the task is up_for_reschedule (no worker
    slot) between pokes, stays in its first try, and returns the result dict as its XCom."""
    sim = simulator
    sim.sim.set_speed(FAST)
    task = "wait_in_reschedule_mode"
    run_id = stack.trigger_run(api, SENSOR_DAG)
    ti_path = f"/api/v2/dags/{SENSOR_DAG}/dagRuns/{run_id}/taskInstances/{task}"
    states: list[str] = []
    with stack.logs_on_failure(lambda: f"simulator: {sim.sim.stats()}"):

        def finished() -> dict[str, object] | None:
            ti = try_json(api, ti_path)
            state = str(ti.get("state")) if ti else "<no answer>"
            if not states or states[-1] != state:
                states.append(state)
            run = try_json(api, f"/api/v2/dags/{SENSOR_DAG}/dagRuns/{run_id}")
            return dict(run) if run and run["state"] in ("success", "failed") else None

        run = poll("the sensor's run to finish", finished, 240, interval=0.2, check=stack.check_alive)
        assert run["state"] == "success", (stack.task_instances(api, SENSOR_DAG, run_id), states)
        assert "up_for_reschedule" in states, states
        result = stack.result(api, SENSOR_DAG, run_id, task)
        assert result["outcome"] == "completed" and result["state"] == "COMPLETED", result
        tries = {t["try_number"]: t["state"] for t in get_json(api, f"{ti_path}/tries")["task_instances"]}
        if task in stack.state_mismatches(SENSOR_DAG, run_id):
            # Airflow's race, not the sensor's (apache/airflow#71172, open; seen on 3.1.8 under load): the
            # executor's late "success" for one poke reached the scheduler after the next poke had started,
            # and the scheduler failed that try as "state changed externally". Only then is a second try
            # allowed, and it must have finished the work (the DAG gives the sensor one retry for this).
            # (Airflow 3.1.8 keeps no history row of a try it failed this way: try 1 may be missing.) The
            # poke that was running may also finish the work before the retry is scheduled: the run then
            # ends in try 1 (seen once in CI on 3.1.8).
            last = max(tries)
            assert last in (1, 2) and tries[last] == "success", tries
            assert last == 1 or tries.get(1) in (None, "failed", "up_for_retry"), tries
            print(f"\n[system test] reschedule sensor: #71172 hit; work finished in try {last}")
        else:
            assert list(tries) == [1], tries
    print(f"\n[system test] reschedule-mode sensor: states {states}")
