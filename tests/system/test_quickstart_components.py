"""System test: the quickstart DAG on real Airflow components, each in its own process (issue #6 item 3).

The Jules API simulator runs in a thread of this process on 127.0.0.1. Airflow gets a fresh AIRFLOW_HOME
(SQLite, ``airflow db migrate``) and four separate processes: ``api-server`` (127.0.0.1, a free port),
``scheduler --skip-serve-logs`` (LocalExecutor), ``dag-processor`` (only the example DAGs bundle) and
``triggerer --skip-serve-logs``. The test drives everything through the public REST API, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAG_ID = "jules_quickstart"
CREATE_TASK = "fix_flaky_tests"
REVIEW_TASK = "review_pull_request"
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],  # --port is added at start
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}

T = TypeVar("T")


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


@dataclass
class AirflowStack:
    home: Path
    port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.out"

    def start(self, name: str) -> None:
        args = [str(BIN / "airflow"), *COMPONENTS[name]]
        if name == "api-server":
            args += ["--port", str(self.port)]
        with open(self.log_path(name), "wb") as out:
            # A session of its own: a Ctrl-C in the terminal reaches pytest, which then stops us in order.
            self.procs[name] = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow component(s) exited early: {dead}")

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
                print(
                    f"[system test] {name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s; killing it"
                )
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        for child in alive:
            print(f"[system test] killing leftover child process {child.pid}")
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=5)
        print(f"[system test] components stopped in {time.monotonic() - began:.1f} s")

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
        task_logs = sorted((self.home / "logs").glob("dag_id=*/run_id=*/task_id=*/*.log"))
        for path in [*(self.log_path(name) for name in self.procs), *task_logs]:
            print(f"\n===== tail of {path} =====\n{tail(path)}")


def component_env(home: Path, port: int, sim: JulesSimulator) -> dict[str, str]:
    """The children's environment, built explicitly: nothing Airflow-related is inherited from pytest."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = str(BIN.parent)
    bundles = [
        {
            "name": "example-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO / "example_dags"), "refresh_interval": 5},
        }
    ]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
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
    return env


class ClientPorts:
    """ASGI middleware around the simulator app: the client (local) TCP port of every request, by path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("client"):
            self.seen.append((scope["method"], scope["path"], int(scope["client"][1])))
        await self.app(scope, receive, send)

    def ports(self, method: str, path_part: str) -> set[int]:
        return {port for m, path, port in list(self.seen) if m == method and path_part in path}


@dataclass
class Sim:
    sim: JulesSimulator
    clients: ClientPorts


@pytest.fixture(scope="module")
def simulator() -> Iterator[Sim]:
    # speed 10: a happy session lasts ~100 simulated seconds, ~10 s of real time: the task surely defers, and
    # the trigger polls several times (every JULES_EXAMPLE_POLL_INTERVAL=1 s) before the session completes.
    sim = JulesSimulator(SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=10.0, seed=3))
    clients = ClientPorts(sim.app)
    sim.app = clients
    with sim:
        yield Sim(sim, clients)


@pytest.fixture(scope="module")
def stack(simulator: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home")
    port = free_port()
    env = component_env(home, port, simulator.sim)
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, cwd=home, capture_output=True, timeout=180
    )
    assert migrate.returncode == 0, migrate.stdout.decode()[-3000:] + migrate.stderr.decode()[-3000:]
    stack = AirflowStack(home, port, env)
    try:
        for name in COMPONENTS:
            stack.start(name)
        yield stack
    finally:
        stack.stop()


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


def test_quickstart_on_separate_components(stack: AirflowStack, simulator: Sim) -> None:
    sim = simulator.sim
    started = time.monotonic()
    with (
        stack.logs_on_failure(lambda: f"simulator: {sim.stats()}"),
        httpx.Client(base_url=stack.base_url, timeout=15, trust_env=False) as api,
    ):
        # 1. All four components report healthy (each heartbeats into the DB; the API reads them).
        def healthy() -> dict[str, Any] | None:
            with contextlib.suppress(httpx.TransportError, ValueError):
                body = api.get("/api/v2/monitor/health").json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((body.get(part) or {}).get("status") == "healthy" for part in parts):
                    return dict(body)
            return None

        poll("all components healthy", healthy, timeout=90, check=stack.check_alive)
        # SIMPLE_AUTH_MANAGER_ALL_ADMINS: a token without credentials (Airflow 3.1 needs it on every call).
        response = api.get("/auth/token")
        assert response.status_code in (200, 201), response.text
        api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

        # 2. The dag-processor parsed the quickstart DAG from the example_dags bundle; unpause it.
        def parsed() -> dict[str, Any] | None:
            response = api.get(f"/api/v2/dags/{DAG_ID}")
            assert response.status_code in (200, 404), f"{response.status_code} {response.text[:2000]}"
            return dict(response.json()) if response.status_code == 200 else None

        dag = poll(f"DAG {DAG_ID} to be parsed", parsed, timeout=90, check=stack.check_alive)
        assert dag["bundle_name"] == "example-dags"
        response = api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert response.status_code == 200 and response.json()["is_paused"] is False, response.text

        # 3. Trigger a run through the REST API and follow it to the end. Meanwhile record the task's states
        #    and, while it is DEFERRED, which processes hold a connection to the simulator.
        response = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        ti_path = f"{run_path}/taskInstances/{CREATE_TASK}"
        states: list[str | None] = []
        trigger_conns: dict[int, int] = {}  # local port -> pid, in the triggerer's process tree

        def run_done() -> dict[str, Any] | None:
            ti = try_json(api, ti_path)
            state = ti.get("state") if ti else "<no answer>"
            if not states or states[-1] != state:
                states.append(state)
            if state == "deferred":
                trigger_conns.update(stack.connections_to("triggerer", sim.port))
            run = try_json(api, run_path)
            return dict(run) if run and run["state"] in ("success", "failed") else None

        run = poll("the DAG run to finish", run_done, timeout=180, interval=0.25, check=stack.check_alive)
        print(f"\n[system test] run {run['state']} {time.monotonic() - started:.1f} s after start; {states=}")
        tis = {ti["task_id"]: ti for ti in get_json(api, f"{run_path}/taskInstances")["task_instances"]}
        assert run["state"] == "success", {k: v["state"] for k, v in tis.items()}
        assert {k: v["state"] for k, v in tis.items()} == {CREATE_TASK: "success", REVIEW_TASK: "success"}

        # 4. The result in XCom: a completed session with a pull request.
        result = get_json(api, f"{ti_path}/xcomEntries/return_value")["value"]
        if isinstance(result, str):  # older API versions hand back the stored JSON text
            result = json.loads(result)
        session_id = result["session_id"]
        pr_url = result["pull_request_url"]
        assert result["outcome"] == "completed" and result["state"] == "COMPLETED", result
        assert isinstance(pr_url, str) and pr_url.startswith("https://github.com/bobalover/boba/pull/"), (
            result
        )
        assert result["url"] == f"https://jules.google.com/session/{session_id}"
        info = sim.session_info(session_id)  # the simulator's side: one session, PR mode, this PR
        assert sim.sessions_created == 1 and info["automationMode"] == "AUTO_CREATE_PR", info
        assert info["session"]["state"] == "COMPLETED", info["session"]
        assert pr_url in json.dumps(info["session"].get("outputs")), info["session"]
        review = get_json(api, f"{run_path}/taskInstances/{REVIEW_TASK}/xcomEntries/return_value")["value"]
        assert review in (pr_url, json.dumps(pr_url)), review

        # 5. DEFERRED: the task's log (try 1) has the task runner's "Pausing task as DEFERRED" and then the
        #    trigger's own lines, which the triggerer wrote to the attempt's .trigger.<job id> log file;
        #    the whole deferral stayed in try 1 (no retry used); and the API showed the state while it lasted.
        log_text = json.dumps(get_json(api, f"{ti_path}/logs/1")["content"])
        assert "Pausing task as DEFERRED" in log_text
        assert f"Following Jules session {session_id} (polling every 1.0 s)" in log_text
        assert ".log.trigger." in log_text  # the trigger log file is one of the log's sources
        assert log_text.index("Pausing task as DEFERRED") < log_text.index("Following Jules session")
        tries = get_json(api, f"{ti_path}/tries")["task_instances"]
        assert [t["try_number"] for t in tries] == [1] and tries[0]["state"] == "success", tries
        assert "deferred" in states, states
        assert states.index("deferred") < states.index("success"), states

        # 6. The trigger ran in the triggerer: while the task was deferred a process of the triggerer's tree
        #    (not the worker: the scheduler's LocalExecutor runs those) held a connection to the simulator,
        #    and the simulator saw the session being polled (get + activities) on exactly that connection.
        session_path = f"/v1alpha/sessions/{session_id}"
        polls = simulator.clients.ports("GET", session_path)
        create_ports = simulator.clients.ports("POST", "/v1alpha/sessions")
        assert trigger_conns, "no triggerer connection to the simulator seen while the task was deferred"
        assert polls & set(trigger_conns), (polls, trigger_conns)
        assert not create_ports & set(trigger_conns), (create_ports, trigger_conns)  # created by the worker
        triggerer_tree = {stack.procs["triggerer"].pid, *trigger_conns.values()}
        assert tis[CREATE_TASK]["pid"] not in triggerer_tree, (tis[CREATE_TASK]["pid"], triggerer_tree)
        print(
            f"[system test] triggerer pid {stack.procs['triggerer'].pid}; its connections to the simulator "
            f"{trigger_conns} (local port: pid); session polled from ports {sorted(polls)}, created from "
            f"{sorted(create_ports)}; worker pid {tis[CREATE_TASK]['pid']}"
        )
        gets = [r for r in sim.requests("get_session") if r["path"] == session_path]
        activities = [r for r in sim.requests("list_activities") if r["path"].startswith(session_path)]
        assert len(gets) >= 3 and len(activities) >= 3, (len(gets), len(activities))
        assert all(r["status"] == 200 for r in sim.requests()), sim.stats()

        # 7. Extra links, as the UI gets them.
        links = get_json(api, f"{ti_path}/links")
        links = links.get("extra_links", links)
        assert links["Jules Session"] == f"https://jules.google.com/session/{session_id}", links
        assert links["Jules Pull Request"] == pr_url, links
        print(f"[system test] checks passed {time.monotonic() - started:.1f} s after start")
