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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig, run_simulator

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
        """SIGTERM every component (each stops its own children), wait bounded, then SIGKILL its group."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[system test] {name} (pid {proc.pid}) ignored SIGTERM; killing its process group")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.dump_logs()
            raise

    def dump_logs(self) -> None:
        for name in self.procs:
            print(f"\n===== tail of {name} ({self.log_path(name)}) =====\n{tail(self.log_path(name))}")


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


@pytest.fixture(scope="module")
def simulator() -> Iterator[JulesSimulator]:
    # speed 20: a happy session takes ~100 simulated seconds, so ~5 s of real time, long enough to defer.
    with run_simulator(SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=20.0, seed=3)) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(simulator: JulesSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home")
    port = free_port()
    env = component_env(home, port, simulator)
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


def test_quickstart_on_separate_components(stack: AirflowStack, simulator: JulesSimulator) -> None:
    with stack.logs_on_failure(), httpx.Client(base_url=stack.base_url, timeout=10, trust_env=False) as api:
        t0 = time.monotonic()

        def health() -> dict[str, Any] | None:
            with contextlib.suppress(httpx.TransportError):
                r = api.get("/api/v2/monitor/health")
                if r.status_code == 200:
                    body = r.json()
                    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                    if all((body.get(p) or {}).get("status") == "healthy" for p in parts):
                        return body
            return None

        print("health", poll("a healthy API", health, 90, check=stack.check_alive), time.monotonic() - t0)

        def dag() -> dict[str, Any] | None:
            r = api.get(f"/api/v2/dags/{DAG_ID}")
            return r.json() if r.status_code == 200 else None

        print("dag", poll("the DAG to be parsed", dag, 90, check=stack.check_alive), time.monotonic() - t0)
        r = api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
        assert r.status_code == 200, r.text
        r = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
        assert r.status_code == 200, r.text
        run_id = r.json()["dag_run_id"]
        run_url = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        seen = []

        def finished() -> dict[str, Any] | None:
            ti = api.get(f"{run_url}/taskInstances/{CREATE_TASK}").json()
            if not seen or seen[-1] != ti.get("state"):
                seen.append(ti.get("state"))
            body = api.get(run_url).json()
            return body if body["state"] in ("success", "failed") else None

        print(
            "run",
            poll("the run", finished, 180, interval=0.25, check=stack.check_alive),
            time.monotonic() - t0,
        )
        print(seen)
        for path in (
            f"{run_url}/taskInstances/{CREATE_TASK}/tries",
            f"{run_url}/taskInstances/{CREATE_TASK}/logs/1",
            f"{run_url}/taskInstances/{CREATE_TASK}/links",
            f"{run_url}/taskInstances/{CREATE_TASK}/xcomEntries/return_value",
            f"{run_url}/taskInstances/{CREATE_TASK}/xcomEntries",
        ):
            print(path, api.get(path, headers={"Accept": "application/json"}).text[:6000])
        print(simulator.stats())
        stack.dump_logs()
        import subprocess as sp

        print(sp.run(["find", str(stack.home / "logs")], capture_output=True, text=True).stdout)
