"""Integration fixtures: a migrated Airflow DB, the simulator, and a way to run DAGs with dag.test()."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def jules_simulator_config() -> SimulatorConfig:
    # Fast clock: a whole happy session lasts well under a second. Plans wait for approval 2 simulated
    # hours (18 s here), longer than any slow DAG run needs (6 s was too short for Airflow 3.1's dag.test()
    # on a loaded 2-core machine); tests that want the silent completion (Q15) jump the clock with
    # `advance_when_created`.
    return SimulatorConfig(api_key="sim-key-integration", speed=400.0, seed=7, approval_timeout=7200.0)


def _migrated_template(folder: Path) -> Path:
    """An SQLite metadata DB migrated by ``airflow db migrate``, made once in ``folder`` for the test run.

    Under pytest-xdist every worker asks for it: the first one (holding the lock) migrates, the others wait
    for it and find it made. It is migrated into a temporary file renamed at the end, so a migration that
    fails or is interrupted never leaves a half-made template behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "airflow.db"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, also if this process dies
        if not template.exists():
            partial = folder / f"airflow.db.{os.getpid()}.partial"
            env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{partial}"}
            airflow = Path(sys.executable).parent / "airflow"
            subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=env)
            os.replace(partial, template)
    return template


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> None:
    """This process's metadata DB (AIRFLOW_HOME, tests/conftest.py), migrated: a copy of the one DB migrated
    for the whole test run instead of an ``airflow db migrate`` per process (issue #21).

    The template lives in pytest's base temporary folder, which every xdist worker shares (each worker's
    own ``tmp_path_factory`` folder is a subfolder of it) and pytest empties at the start of each run.
    The copy goes through SQLite's backup API, into the file Airflow's engine already points at.
    """
    from airflow.configuration import conf

    url = conf.get("database", "sql_alchemy_conn")
    assert url.startswith("sqlite:///"), f"the tests' metadata DB is SQLite, not {url}"
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # <basetemp>/popen-gw0 and so on: the parent is the run's own base folder
    template = _migrated_template(shared / "airflow-db-template")
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as target,
    ):
        source.backup(target)


@pytest.fixture
def failure_callbacks_get_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1's dag.test() runs a task in-process and calls its failure callbacks without
    ``context["exception"]`` (its real worker, ``task_runner.main``, sets it; 3.3's in-process path does
    too). This gives 3.1's in-process path the same one line (as ``make demo-self-healing`` does), so the
    tests see what a worker sees on every version. It changes nothing where the exception is already set."""
    from airflow.sdk.execution_time import task_runner

    real = task_runner.finalize

    def finalize(ti: Any, state: Any, context: Any, log: Any, error: Any = None) -> Any:
        context.setdefault("exception", error)
        return real(ti, state, context, log, error)

    monkeypatch.setattr(task_runner, "finalize", finalize)  # dag.test() imports it when it runs a task


@pytest.fixture
def sim(jules_simulator: JulesSimulator, monkeypatch: pytest.MonkeyPatch) -> JulesSimulator:
    monkeypatch.setenv("AIRFLOW_CONN_JULES_DEFAULT", jules_simulator.conn_json)
    return jules_simulator


@contextlib.contextmanager
def when_simulator(
    condition: Callable[[], bool], action: Callable[[], None], *, within: float = 60.0
) -> Iterator[None]:
    """Run ``action`` once ``condition`` holds, from a helper thread, while the block runs (bounded)."""
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + within
        while not stop.is_set() and time.monotonic() < deadline:
            if condition():
                action()
                return
            stop.wait(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def advance_when_created(
    sim: JulesSimulator, seconds: float, *, within: float = 60.0
) -> contextlib.AbstractContextManager[None]:
    """Jump the simulator's clock by ``seconds`` as soon as a session exists."""
    return when_simulator(lambda: sim.sessions_created > 0, lambda: sim.advance(seconds), within=within)


def complete_after_reads(
    sim: JulesSimulator, reads: int, *, within: float = 120.0
) -> contextlib.AbstractContextManager[None]:
    """Force the (only) session COMPLETED once it was read ``reads`` times: a sensor then pokes a number
    of times that does not depend on the machine's speed."""

    def complete() -> None:
        sim.force_state(sim.requests("get_session")[0]["path"].rsplit("/", 1)[-1], "COMPLETED")

    return when_simulator(lambda: len(sim.requests("get_session")) >= reads, complete, within=within)


def load_dag_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_dags_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, key=key, map_index=map_index
                )
                .one_or_none()
            )
            # The raw JSON value: XComModel.deserialize_value would json-decode a numeric string into an int.
            return None if row is None else row.value

    def xcom_keys(self, task_id: str) -> set[str]:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=self.dag_id, run_id=self.run_id, task_id=task_id)
            return {row.key for row in rows}


def run_dag(dag: Any) -> DagRunResult:
    """Run a DAG with dag.test() (triggers run in-process) and read back its states."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dag_run = dag.test()
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id).all()
        states = {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): (
                str(getattr(ti.state, "value", ti.state)) if ti.state is not None else None
            )
            for ti in tis
        }
    return DagRunResult(
        dag.dag_id, dag_run.run_id, str(getattr(dag_run.state, "value", dag_run.state)), states
    )


@pytest.fixture(scope="session")
def test_dags(airflow_db: None) -> Iterator[Any]:
    yield load_dag_module(REPO / "tests" / "dags" / "jules_test_dags.py")
