"""``make demo``: the quickstart DAG end to end through Airflow, on the bundled Jules simulator.

It makes a throw-away AIRFLOW_HOME, migrates its DB, starts the simulator on 127.0.0.1 at a demo clock speed,
runs ``jules_quickstart`` with ``dag.test()`` (the task defers; its trigger follows the session and streams
Jules's progress), and prints a summary. No API key and no network needed. (Not a DAG file: the DAG
processor skips it through ``.airflowignore``.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHOWN = ("[Jules]", "Jules session", "Following Jules session", "running trigger in line", "Jules opened")


def child() -> int:
    """Runs in a child process with the environment prepared by main(): the DAG itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("jules_quickstart", HERE / "jules_quickstart.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_run = module.dag.test()
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id="jules_quickstart",
                run_id=dag_run.run_id,
                task_id="fix_flaky_tests",
                key="return_value",
            )
            .one_or_none()
        )
        result = row.value if row is not None else None
    state = str(getattr(dag_run.state, "value", dag_run.state))
    print("DEMO-RESULT " + json.dumps({"state": state, "result": result}), flush=True)
    return 0 if state == "success" else 1


def main() -> int:
    home = tempfile.mkdtemp(prefix="jules-demo-airflow-")
    try:
        return demo(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the throw-away Airflow home: nothing left behind


def demo(home: str) -> int:
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
        print(
            f"Jules simulator on {sim.url} (clock x{speed:g}); running DAG jules_quickstart ...\n", flush=True
        )
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        outcome = None
        for line in proc.stdout:
            if line.startswith("DEMO-RESULT "):
                outcome = json.loads(line[len("DEMO-RESULT ") :])
            elif any(marker in line for marker in SHOWN):
                print("  " + _short(line), flush=True)
        proc.wait(timeout=300)
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


def _short(line: str) -> str:
    """Drop structlog's timestamp/level prefix and logger suffix for a readable stream."""
    text = line.rstrip()
    if "] " in text and text[:4].isdigit():
        text = text.split("] ", 1)[1]
    if " [" in text:
        text = text.rsplit(" [", 1)[0]
    return text.strip()


if __name__ == "__main__":
    sys.exit(child() if "--child" in sys.argv else main())
