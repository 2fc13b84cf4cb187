"""``make demo`` and ``make demo-self-healing``: an example DAG end to end through Airflow, on the bundled
Jules simulator.

It makes a throw-away AIRFLOW_HOME, migrates its DB, starts the simulator on 127.0.0.1 at a demo clock speed,
runs the DAG with ``dag.test()`` in a child process and prints a summary. No API key and no network needed.
(Not a DAG file: the DAG processor skips it through ``.airflowignore``.)

* ``run_demo.py`` (``make demo``): ``jules_quickstart``. The task defers; its trigger follows the session and
  streams Jules's progress; the summary shows the outcome and the pull request.
* ``run_demo.py --self-healing`` (``make demo-self-healing``): ``jules_self_healing``. A task fails on
  purpose; its ``JulesFixNotifier`` opens a Jules fix session; the demo prints the failure and the session,
  follows the session with ``JulesHook().get_session()`` until it completes (bounded), and prints the pull
  request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT = "DEMO-RESULT "
SAY = "DEMO: "  # a line the child prints for the demo's reader, shown as it is
# How long the self-healing demo follows the fix session (real seconds; the simulator's clock runs fast).
FOLLOW_SECONDS = float(os.environ.get("JULES_DEMO_FOLLOW_SECONDS", "120"))


# ----------------------------------------------------------------------------------- in the child process
def load_dag(file_name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(file_name).stem, HERE / file_name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        return row.value if row is not None else None


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def report(outcome: dict[str, Any]) -> None:
    print(RESULT + json.dumps(outcome), flush=True)


def child_quickstart() -> int:
    dag_run = load_dag("jules_quickstart.py").test()
    state = state_of(dag_run)
    report({"state": state, "result": xcom("jules_quickstart", dag_run.run_id, "fix_flaky_tests")})
    return 0 if state == "success" else 1


def give_failure_callbacks_the_exception() -> None:
    """Airflow 3.1's ``dag.test()`` runs each task in-process and calls its failure callbacks without
    ``context["exception"]``; its workers (``task_runner.main``) and 3.3's ``dag.test()`` set it. The demo
    gives 3.1's in-process run that same line, so it shows on every version what a deployed worker does.
    Where the exception is already set (3.3), nothing changes."""
    from airflow.sdk.execution_time import task_runner

    real = task_runner.finalize

    def finalize(ti: Any, state: Any, context: Any, log: Any, error: Any = None) -> Any:
        context.setdefault("exception", error)
        return real(ti, state, context, log, error)

    task_runner.finalize = finalize  # dag.test() imports it from here each time it runs a task


def child_self_healing() -> int:
    """Run the failing DAG, read the failure and its ``jules_fix`` XCom, follow the fix session."""
    give_failure_callbacks_the_exception()
    dag = load_dag("jules_self_healing.py")
    dag_run = dag.test()
    states = task_states(dag.dag_id, dag_run.run_id)
    failed = sorted(t for t, s in states.items() if s == "failed")
    fixes = {t: xcom(dag.dag_id, dag_run.run_id, t, "jules_fix") for t in failed}
    outcome: dict[str, Any] = {"state": state_of(dag_run), "tasks": states, "fixes": fixes}
    sessions = {}
    for task_id, fix in fixes.items():
        if fix:
            print(f"{SAY}{task_id} failed; following Jules fix session {fix['session_id']} ...", flush=True)
            sessions[task_id] = follow(fix["session_id"])
    outcome["sessions"] = sessions
    report(outcome)
    return 0


def follow(session_id: str) -> dict[str, Any]:
    """Poll the session until it completes or fails, at most FOLLOW_SECONDS: its state, what Jules was told
    about the exception, and the pull request."""
    from airflow_provider_jules.client.models import TERMINAL_STATES
    from airflow_provider_jules.diffs import change_sets, last_patch, patch_files
    from airflow_provider_jules.hooks.jules import JulesHook
    from airflow_provider_jules.links.urls import pull_request_url

    hook = JulesHook()
    deadline = time.monotonic() + FOLLOW_SECONDS
    seen = None
    while True:
        session = hook.get_session(session_id)
        if session.get("state") != seen:
            seen = session.get("state")
            print(f"{SAY}  session {session_id}: {seen}", flush=True)
        if seen in TERMINAL_STATES or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    told = [
        line[2:] for line in str(session.get("prompt", "")).splitlines() if line.startswith("- Exception: ")
    ]
    patch, _ = last_patch(change_sets(session, []))
    return {
        "state": seen,
        "title": session.get("title"),
        "exception": told[0].removeprefix("Exception: ") if told else None,
        "pull_request_url": pull_request_url(session),
        "files_changed": patch_files(patch) if patch else [],
    }


CHILDREN: dict[str, Callable[[], int]] = {"quickstart": child_quickstart, "self-healing": child_self_healing}


# ---------------------------------------------------------------------------------- in the demo's process
@dataclass(frozen=True)
class Demo:
    """One demo: the DAG it runs (in the child ``name``), the log lines it shows, how it sums up."""

    name: str
    dag_id: str
    shown: tuple[str, ...]
    summary: Callable[[dict[str, Any] | None, float], int]


def quickstart_summary(outcome: dict[str, Any] | None, started: float) -> int:
    if not outcome or outcome["state"] != "success" or not outcome["result"]:
        print(f"\nThe demo run failed (DAG run state: {outcome and outcome['state']}).", flush=True)
        return 1
    result = outcome["result"]
    files = (result.get("change_set") or {}).get("files_changed") or []
    print(
        "\nSummary\n"
        f"  outcome        {result['outcome']}\n"
        f"  session        {result['url']}\n"
        f"  pull request   {result['pull_request_url']}\n"
        f"  files changed  {', '.join(files) or '-'}\n"
        f"  took           {time.monotonic() - started:.1f} s (DB migration included)",
        flush=True,
    )
    return 0


def self_healing_summary(outcome: dict[str, Any] | None, started: float) -> int:
    """Exit 0 when the failure was reported to Jules and the fix session produced a pull request."""
    failed = [t for t, s in (outcome or {}).get("tasks", {}).items() if s == "failed"]
    if not outcome or not failed:
        print(f"\nThe demo run went wrong: no failed task (outcome: {outcome}).", flush=True)
        return 1
    code = 0
    print(f"\nSummary (DAG run state: {outcome['state']}, as intended)", flush=True)
    for task_id in failed:
        fix = outcome["fixes"].get(task_id)
        session = outcome["sessions"].get(task_id) or {}
        pr = session.get("pull_request_url")
        print(f"  failed task    {task_id}", flush=True)
        if not fix:
            print("  fix session    none (see the task log above)", flush=True)
            code = 1
            continue
        print(
            f"  exception      {session.get('exception') or '-'} (as Jules was told)\n"
            f"  fix session    {fix['session_id']} ({'new' if fix['new'] else 'reused'}): {fix['url']}\n"
            f"  session title  {session.get('title')}\n"
            f"  session state  {session.get('state')}\n"
            f"  pull request   {pr or '- (none yet)'}\n"
            f"  files changed  {', '.join(session.get('files_changed') or []) or '-'}",
            flush=True,
        )
        code = code if pr else 1
    print(f"  took           {time.monotonic() - started:.1f} s (DB migration included)", flush=True)
    return code


DEMOS = {
    "quickstart": Demo(
        "quickstart",
        "jules_quickstart",
        ("[Jules]", "Jules session", "Following Jules session", "running trigger in line", "Jules opened"),
        quickstart_summary,
    ),
    "self-healing": Demo(
        "self-healing",
        "jules_self_healing",
        ("Jules fix", "KeyError", "Task failed with exception", SAY),
        self_healing_summary,
    ),
}


def main(name: str = "quickstart") -> int:
    home = tempfile.mkdtemp(prefix="jules-demo-airflow-")
    try:
        return run(DEMOS[name], home)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the throw-away Airflow home: nothing left behind


def run(demo: Demo, home: str) -> int:
    from airflow_provider_jules.simulator import SimulatorConfig, run_simulator

    started = time.monotonic()
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE),
        "JULES_EXAMPLE_POLL_INTERVAL": os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "2"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    airflow = Path(sys.executable).parent / "airflow"
    print(f"Airflow home: {home}\nMigrating the Airflow DB ...", flush=True)
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    speed = float(os.environ.get("JULES_DEMO_SPEED", "10"))
    with run_simulator(SimulatorConfig(api_key="demo-key-not-secret", speed=speed)) as sim:
        env["AIRFLOW_CONN_JULES_DEFAULT"] = sim.conn_json
        print(f"Jules simulator on {sim.url} (clock x{speed:g}); running DAG {demo.dag_id} ...\n", flush=True)
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", demo.name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        outcome = None
        for line in proc.stdout:
            if line.startswith(RESULT):
                outcome = json.loads(line[len(RESULT) :])
            elif line.startswith(SAY):
                print("  " + line[len(SAY) :].rstrip(), flush=True)
            elif any(marker in line for marker in demo.shown):
                print("  " + _short(line), flush=True)
        proc.wait(timeout=300)
    return demo.summary(outcome, started)


def _short(line: str) -> str:
    """Drop structlog's timestamp/level prefix and logger suffix for a readable stream."""
    text = line.rstrip()
    if "] " in text and text[:4].isdigit():
        text = text.split("] ", 1)[1]
    if " [" in text:
        text = text.rsplit(" [", 1)[0]
    return text.strip()


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.exit(CHILDREN[sys.argv[sys.argv.index("--child") + 1]]())
    sys.exit(main("self-healing" if "--self-healing" in sys.argv else "quickstart"))
