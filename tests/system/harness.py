"""Shared harness of the system tests: real Airflow components, each in its own process, on 127.0.0.1.

* :func:`airflow_stack` makes a throw-away ``AIRFLOW_HOME`` (SQLite, ``airflow db migrate``), starts the
  components asked for, yields an :class:`AirflowStack`, then stops every process it started (by PID, with
  their children) and removes the home.
* :class:`AirflowStack` starts, stops and kills single components (process group: ``airflow triggerer``
  runs its triggers in a child process), reads the metadata DB (read-only: SQLite, or PostgreSQL when the
  stack has a ``dsn``, see ``stack_pg.py``) and drives the REST API.
* :func:`poll` waits for a condition, bounded in time and in count: no test sleeps longer than needed.

The Jules API simulator runs in a thread of the test process (see :func:`simulator`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: Base command of each component kind; ``triggerer-2`` is a second ``triggerer``.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],  # --port is added at start
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    # CeleryExecutor (tests/system/stack_pg.py); --celery-hostname and --pid are added at start (per name).
    "celery-worker": ["celery", "worker", "--skip-serve-logs", "--without-gossip", "--without-mingle"],
}
#: The four components of a LocalExecutor stack (no Celery worker: the scheduler runs the tasks).
LOCAL_COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer"]
EXAMPLE_BUNDLE = ("example-dags", REPO / "example_dags")
SYSTEM_BUNDLE = ("system-dags", REPO / "tests" / "system" / "dags")
#: What a task may be in while its HITL form waits for a person: never "running" (no worker slot is held).
HITL_WAITING_STATES = {"awaiting_input", "deferred"}
#: What Airflow 3.1's trigger runner logs when two triggers' Task SDK calls read each other's replies and it
#: dies (apache/airflow#64620, "Observed in 3.1.8"; fixed in later releases). The triggerer then exits 0.
TRIGGERER_BUG = "Response read out of order"
#: Seconds a person takes to read a form before answering (see AirflowStack.waiting_form).
PERSON_READS_S = 3.0

T = TypeVar("T")


def say(message: str) -> None:
    print(f"[system test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def airflow_at_least(major: int, minor: int) -> bool:
    """The installed Airflow is ``major.minor`` or newer."""
    import airflow

    return tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (major, minor)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.5,
    check: Callable[[], None] = lambda: None,
) -> T:
    """Call ``probe`` until it returns something other than None; bounded in time and in count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        check()
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


#: Log lines worth reading first when a system test fails (errors, tracebacks, a component's own exit).
PROBLEM = re.compile(r"Traceback|ERROR|\[error|Error:|died|Exiting|state mismatch|changed externally|Killed")


def problems(path: Path, limit: int = 40) -> str:
    """The last ``limit`` lines of ``path`` that report a problem, each with the line after it (the CI log
    keeps only the head and the tail of a failing run, so these are printed last)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    hits = [i for i, line in enumerate(lines) if PROBLEM.search(line)][-limit:]
    return "\n".join(" | ".join(lines[i : i + 2])[:400] for i in hits) or "<none>"


def try_json(api: httpx.Client, path: str) -> Any:
    """GET for polling: None on a transient failure (the poll retries, bounded)."""
    with contextlib.suppress(httpx.TransportError, ValueError):
        response = api.get(path, headers={"Accept": "application/json"})
        if response.status_code == 200:
            return response.json()
    return None


def get_json(api: httpx.Client, path: str) -> Any:
    response = api.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:2000]}"
    return response.json()


# ------------------------------------------------------------------------------------------- simulator
class ClientPorts:
    """ASGI middleware around the simulator app: every request's method, path, client port and time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int, float]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("client"):
            self.seen.append((scope["method"], scope["path"], int(scope["client"][1]), time.monotonic()))
        await self.app(scope, receive, send)

    def ports(self, method: str, path_part: str) -> set[int]:
        return {port for m, path, port, _ in list(self.seen) if m == method and path_part in path}

    def first_after(
        self, method: str, exact_path: str, after: float, exclude_ports: set[int] | None = None
    ) -> float | None:
        """Monotonic time of the first ``method exact_path`` request at or after ``after`` (None: none
        yet), not counting requests from ``exclude_ports``."""
        skip = exclude_ports or set()
        times = [
            t
            for m, path, port, t in list(self.seen)
            if m == method and path == exact_path and t >= after and port not in skip
        ]
        return min(times) if times else None


@dataclass
class Sim:
    sim: JulesSimulator
    clients: ClientPorts


@contextlib.contextmanager
def simulator(speed: float, seed: int = 3) -> Iterator[Sim]:
    """A simulator on 127.0.0.1 in a thread of this process, with :class:`ClientPorts` around its app."""
    sim = JulesSimulator(SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=speed, seed=seed))
    clients = ClientPorts(sim.app)
    sim.app = clients
    with sim:
        yield Sim(sim, clients)


def activity_lines(sim: JulesSimulator, session_id: str) -> list[str]:
    """The log line (``format_activity``) of every activity the simulator holds for a session."""
    from airflow_provider_jules.results import format_activity

    listing = sim.state.engine.list_activities(session_id, 1000, "", "")
    lines = [format_activity(a) for a in listing.get("activities", [])]
    return [line for line in lines if line]


# ------------------------------------------------------------------------------------------- Airflow
@dataclass
class AirflowStack:
    home: Path
    port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Components stopped or killed on purpose (their logs are still dumped on failure).
    gone: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: libpq DSN of a PostgreSQL metadata DB (None: the SQLite file in ``home``).
    dsn: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.out"

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start component ``name`` (``kind`` or ``kind-<suffix>``, e.g. ``triggerer-2``)."""
        kind = next(k for k in COMPONENTS if name == k or name.startswith(k + "-"))
        args = [str(BIN / "airflow"), *COMPONENTS[kind]]
        if kind == "api-server":
            args += ["--port", str(self.port)]
        if kind == "celery-worker":  # two workers on one machine: their own Celery names and PID files
            args += ["--celery-hostname", f"{name}@127.0.0.1", "--pid", str(self.home / f"{name}.pid")]
        assert name not in self.procs, f"{name} is already running"
        self.gone.pop(name, None)
        with open(self.log_path(name), "ab") as out:
            # A session (and process group) of its own: killing the group reaches the component's
            # children, and a Ctrl-C in the terminal reaches pytest, which then stops us in order.
            self.procs[name] = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.procs[name]

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        for name in [n for n in dead if n.startswith("triggerer") and self._upstream_triggerer_crash(n)]:
            # A process manager restarts a triggerer that exited; so does the stack, for this bug only.
            told = (
                f"{name} exited ({dead.pop(name)}): its trigger runner died of apache/airflow#64620 "
                f"({TRIGGERER_BUG!r}, Airflow 3.1); restarting it, as a process manager would"
            )
            say(told)
            warnings.warn(told, UserWarning, stacklevel=2)  # in pytest's warnings summary, also on success
            self.gone[f"{name}-crashed-{len(self.gone)}"] = self.procs.pop(name)
            self.start(name)
        if dead:
            raise AssertionError(f"Airflow component(s) exited early: {dead}")

    def _upstream_triggerer_crash(self, name: str) -> bool:
        """Whether triggerer ``name`` died of Airflow's own apache/airflow#64620 (on Airflow < 3.2 only, and
        at most once per stack: a second crash fails the test)."""
        if airflow_at_least(3, 2) or any("-crashed-" in gone for gone in self.gone):
            return False
        try:
            return TRIGGERER_BUG in self.log_path(name).read_text(errors="replace")
        except OSError:
            return False

    def kill(self, name: str, sig: signal.Signals, timeout: float = 60.0) -> float:
        """Send ``sig`` to a component and wait (bounded) until it and its children are gone.

        SIGKILL goes to the whole process group and to every process of the component's tree (a crash of
        the machine or container: nothing gets to clean up; since Airflow 3.3 a worker's task runner has a
        process group of its own). Any other signal goes to the main process only, as a process manager
        sends it; the component must stop its children itself. Returns the monotonic time the signal was
        sent.
        """
        proc = self.procs.pop(name)
        self.gone[name] = proc
        tree: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        sent = time.monotonic()
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the pid
            for member in tree:  # ours: the component and its descendants, found before the signal
                with contextlib.suppress(psutil.Error):
                    member.kill()
        else:
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        _, alive = psutil.wait_procs(tree, timeout=max(0.1, sent + timeout - time.monotonic()))
        assert proc.returncode is not None and not alive, (
            f"{name} (pid {proc.pid}) still running {timeout:.0f} s after {sig.name}: "
            f"{[p.pid for p in alive]} {proc.returncode=}"
        )
        return sent

    def terminate(self, name: str, grace: float) -> tuple[float, bool]:
        """Stop a component as a process manager does (systemd, Kubernetes): SIGTERM, then SIGKILL of its
        whole tree if it is still running after ``grace`` seconds. Returns (seconds until it was gone,
        whether the SIGKILL was needed)."""
        proc = self.procs[name]
        tree: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        _, alive = psutil.wait_procs(tree, timeout=max(0.1, began + grace - time.monotonic()))
        if proc.returncode is None or alive:
            say(
                f"{name} (pid {proc.pid}) still running {grace:.0f} s after SIGTERM; "
                "SIGKILL, as a process manager does"
            )
            self.procs[name] = proc  # kill() takes it from procs again
            self.kill(name, signal.SIGKILL)
            return time.monotonic() - began, True
        self.procs.pop(name)
        self.gone[name] = proc
        return time.monotonic() - began, False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every component (each stops its own children), wait bounded, then SIGKILL what is left.

        Only our own processes, by PID: the components we started and the children they had at this moment.
        """
        began = time.monotonic()
        children: list[psutil.Process] = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.Error):
                children += psutil.Process(proc.pid).children(recursive=True)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = began + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s; killing it")
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        for child in alive:
            say(f"killing leftover child process {child.pid}")
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=5)
        # A component a test signalled that did not go (the test failed on it): ours, so gone it goes.
        for name, proc in list(self.gone.items()):
            if proc.poll() is None:
                say(f"{name} (pid {proc.pid}) was signalled earlier and still runs; SIGKILL to its tree")
                self.procs[name] = proc
                self.kill(name, signal.SIGKILL, timeout=10)
        self.gone.update(self.procs)
        self.procs.clear()
        say(f"components stopped in {time.monotonic() - began:.1f} s")

    @contextlib.contextmanager
    def logs_on_failure(self, *extra: Callable[[], str]) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.dump_logs()
            for describe in extra:
                print(describe())
            raise

    def connections_to(self, name: str, port: int) -> dict[int, int]:
        """{local port: pid} of the TCP connections to ``port`` held by component ``name`` or its children."""
        found: dict[int, int] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.procs[name].pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    conns = getattr(proc, "net_connections", None) or proc.connections
                    for conn in conns(kind="tcp"):
                        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                            found[conn.laddr.port] = proc.pid
        return found

    def dump_logs(self) -> None:
        task_logs = sorted((self.home / "logs").glob("dag_id=*/run_id=*/task_id=*/*.log*"))
        names = [*self.procs, *(name for name in self.gone if "-crashed-" not in name)]  # (same log file)
        for path in [*(self.log_path(name) for name in names), *task_logs]:
            print(f"\n===== tail of {path} =====\n{tail(path)}")
        for name in names:  # last: the part of a long failure report that CI's log keeps
            print(f"\n===== problems reported by {name} =====\n{problems(self.log_path(name))}")

    # ------------------------------------------------------------------ metadata DB (read-only)
    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the metadata DB (read-only; Airflow's components write it). ``?`` marks the parameters."""
        if self.dsn is not None:
            import psycopg2  # the `system` extra

            with contextlib.closing(psycopg2.connect(self.dsn)) as pg:
                pg.set_session(readonly=True, autocommit=True)
                with pg.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), params)
                    return list(cur.fetchall())
        uri = f"file:{self.home / 'airflow.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return list(db.execute(sql, params).fetchall())

    def heartbeat_age(self, job_id: int, at: float) -> float:
        """Seconds from a job's last heartbeat (in the DB) to the monotonic instant ``at``."""
        [(stamp,)] = self.query("SELECT latest_heartbeat FROM job WHERE id = ?", job_id)
        beat = datetime.datetime.fromisoformat(str(stamp))
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=datetime.timezone.utc)  # Airflow stores UTC
        wall_at = time.time() - (time.monotonic() - at)
        return wall_at - beat.timestamp()

    def triggerer_jobs(self) -> list[tuple[int, str]]:
        """(id, state) of the triggerer jobs, oldest first."""
        rows = self.query("SELECT id, state FROM job WHERE job_type = 'TriggererJob' ORDER BY id")
        return [(int(i), str(s)) for i, s in rows]

    def trigger_holders(self, dag_id: str, run_id: str) -> dict[str, int | None]:
        """{task_id: job id of the triggerer holding its trigger (None: unassigned)}, deferred tasks only."""
        rows = self.query(
            "SELECT ti.task_id, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.state = 'deferred'",
            dag_id,
            run_id,
        )
        return {str(task): (None if job is None else int(job)) for task, job in rows}

    # ------------------------------------------------------------------ REST API
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=15, trust_env=False)

    def wait_healthy(
        self,
        api: httpx.Client,
        timeout: float = 120,
        parts: tuple[str, ...] = ("metadatabase", "scheduler", "triggerer", "dag_processor"),
        login: tuple[str, str] | None = None,
    ) -> None:
        """The ``parts`` of the health report healthy (by default all four component kinds: each heartbeats
        into the DB, the API reads them); then a token (``login``: as that user, with all-admins off)."""

        def healthy() -> dict[str, Any] | None:
            with contextlib.suppress(httpx.TransportError, ValueError):
                body = api.get("/api/v2/monitor/health").json()
                if all((body.get(part) or {}).get("status") == "healthy" for part in parts):
                    return dict(body)
            return None

        poll("all components healthy", healthy, timeout=timeout, check=self.check_alive)
        if login is not None:
            self.log_in(api, *login)
            return
        # SIMPLE_AUTH_MANAGER_ALL_ADMINS: a token without credentials (Airflow 3.1 needs it on every call).
        response = api.get("/auth/token")
        assert response.status_code in (200, 201), response.text
        api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def log_in(self, api: httpx.Client, username: str, password: str) -> None:
        """A token for one user of the simple auth manager (all-admins off), on every call of ``api``."""
        response = api.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code in (200, 201), f"log in as {username}: {response.status_code}"
        api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def unpause(self, api: httpx.Client, dag_id: str, bundle: str, timeout: float = 120) -> None:
        def parsed() -> dict[str, Any] | None:
            response = api.get(f"/api/v2/dags/{dag_id}")
            assert response.status_code in (200, 404), f"{response.status_code} {response.text[:2000]}"
            return dict(response.json()) if response.status_code == 200 else None

        dag = poll(f"DAG {dag_id} to be parsed", parsed, timeout=timeout, check=self.check_alive)
        assert dag["bundle_name"] == bundle, dag
        response = api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200 and response.json()["is_paused"] is False, response.text

    def trigger_run(self, api: httpx.Client, dag_id: str) -> str:
        response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})
        assert response.status_code == 200, response.text
        return str(response.json()["dag_run_id"])

    def wait_run(
        self, api: httpx.Client, dag_id: str, run_id: str, timeout: float = 240, interval: float = 0.5
    ) -> dict[str, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"

        def done() -> dict[str, Any] | None:
            run = try_json(api, path)
            return dict(run) if run and run["state"] in ("success", "failed") else None

        return poll(f"run {run_id} of {dag_id} to finish", done, timeout, interval, check=self.check_alive)

    def task_instances(self, api: httpx.Client, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        body = get_json(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def state_mismatches(self, dag_id: str, run_id: str) -> set[str]:
        """Task ids the scheduler failed as "state changed externally" in this run: Airflow's own audit row
        (``log.event = 'state mismatch'``), written when it handles an executor's event for a workload of the
        same try after the task instance moved on (apache/airflow#71172, #72716)."""
        rows = self.query(
            "SELECT task_id FROM log WHERE event = 'state mismatch' AND dag_id = ? AND run_id = ?",
            dag_id,
            run_id,
        )
        return {str(task) for (task,) in rows}

    def result(self, api: httpx.Client, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        value = get_json(api, path)["value"]
        return dict(json.loads(value) if isinstance(value, str) else value)  # older APIs: the JSON text

    def log_text(self, api: httpx.Client, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        return json.dumps(get_json(api, path)["content"])

    # ------------------------------------------------------------------ HITL forms (Required Actions)
    def open_form(
        self, api: httpx.Client, dag_id: str, run_id: str, task_id: str
    ) -> tuple[dict[str, Any], str] | None:
        """The task's form while it waits for an answer, and the task's state at that moment (None: no
        unanswered form of that task yet)."""
        run_path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        details = try_json(api, f"{run_path}/hitlDetails")
        ti = try_json(api, f"{run_path}/taskInstances/{task_id}")
        if not details or not ti:
            return None
        pending = [
            d
            for d in details.get("hitl_details", [])
            if not d.get("response_received") and (d.get("task_instance") or {}).get("task_id") == task_id
        ]
        if pending and ti.get("state") in (HITL_WAITING_STATES | {"running", "scheduled", "queued"}):
            return pending[0], str(ti["state"])
        return None

    def waiting_form(
        self, api: httpx.Client, dag_id: str, run_id: str, task_id: str, what: str, timeout: float = 180
    ) -> tuple[dict[str, Any], str]:
        """Wait (bounded) for the task's form, then for the task to wait in a state that holds no worker slot
        (``awaiting_input`` on Airflow >= 3.3, ``deferred`` before); then give a person's reading time.

        Returns the form and that state. The pause matters: an answer within about a second of the form
        opening races the task's parking on Airflow 3.3.2 (tests/system/test_hitl_fast_answer.py).
        """
        form, state = poll(
            what, lambda: self.open_form(api, dag_id, run_id, task_id), timeout, check=self.check_alive
        )
        ti_path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        # The form is written just before the task parks: give the state a moment to settle.
        for _ in range(40):
            if state in HITL_WAITING_STATES:
                break
            time.sleep(0.25)
            state = str((try_json(api, ti_path) or {}).get("state"))
        assert state in HITL_WAITING_STATES, (task_id, state)
        time.sleep(PERSON_READS_S)
        return form, state

    def answer_form(
        self,
        api: httpx.Client,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen: list[str],
        params_input: dict[str, Any] | None = None,
        map_index: int = -1,
    ) -> httpx.Response:
        """PATCH the task's form as the Required Actions page does (the caller checks the status)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return api.patch(path, json={"chosen_options": chosen, "params_input": params_input or {}})


def component_env(
    home: Path, port: int, sim: JulesSimulator, bundles: list[tuple[str, Path]], extra: dict[str, str]
) -> dict[str, str]:
    """The children's environment, built explicitly: nothing Airflow-related is inherited from pytest."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = str(BIN.parent)
    bundle_list = [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 5},
        }
        for name, path in bundles
    ]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(bundles[0][1]),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundle_list),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
            "AIRFLOW__API__WORKERS": "1",
            # One secret for every component, so the tokens the scheduler issues are valid at the API.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_JULES_DEFAULT": sim.conn_json,
            "JULES_EXAMPLE_POLL_INTERVAL": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def airflow_stack(
    sim: JulesSimulator,
    components: list[str],
    bundles: list[tuple[str, Path]],
    extra_env: dict[str, str] | None = None,
    dsn: str | None = None,
) -> Iterator[AirflowStack]:
    """A migrated throw-away AIRFLOW_HOME and the given components; everything stopped and removed after.

    The metadata DB is SQLite in the home, unless ``extra_env`` names another one
    (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``) and ``dsn`` says how to read it.
    """
    home = Path(tempfile.mkdtemp(prefix="jules-system-airflow-home-"))
    try:
        port = free_port()
        env = component_env(home, port, sim, bundles, extra_env or {})
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, cwd=home, capture_output=True, timeout=180
        )
        assert migrate.returncode == 0, migrate.stdout.decode()[-3000:] + migrate.stderr.decode()[-3000:]
        stack = AirflowStack(home, port, env, dsn=dsn)
        try:
            for name in components:
                stack.start(name)
            yield stack
        finally:
            stack.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
