"""Figure 4, latency: from the simulator marking a session COMPLETED to the Airflow task reaching success.

A real deferrable run: ``dag.test()`` of a DAG file (written to a temporary dags folder) with a
``JulesCreateSessionOperator(deferrable=True, poll_interval=P)`` against the simulator in its own process
(speed 1, so its clock is the wall clock). The session runs the ``stuck`` scenario (IN_PROGRESS, no end);
once the trigger has polled it twice, this process waits a chosen phase of the poll interval after the last
poll and forces ``COMPLETED`` through ``POST /_simulator/sessions/{id}/state``. The latency is the task
instance's ``end_date`` minus the session's ``updateTime`` (the moment it became COMPLETED). Phases near
0 are the worst case (the trigger has just polled and sleeps a whole interval).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._common import OUT_DIR, SimulatorProcess, log, machine, route_count, verdict, write_json

DAG_FILE = '''
"""Latency probe of the Jules provider benchmarks (written by benchmarks/bench_latency.py)."""
import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

with DAG("jules_bench_latency", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
         catchup=False) as dag:
    JulesCreateSessionOperator(
        task_id="create",
        prompt="Latency probe {{ run_id }} sim:scenario=stuck",
        source="myorg/myrepo",
        deferrable=True,
        poll_interval=__POLL__,
        on_timeout="keep",
    )
'''

RUNNER = """
import importlib.util, json, sys
import pendulum
spec = importlib.util.spec_from_file_location("jules_bench_latency_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
for i in range(int(sys.argv[2])):
    print("RUN-START %d" % i, flush=True)
    dr = module.dag.test(logical_date=pendulum.datetime(2025, 1, 1, tz="UTC").add(days=i))
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=module.dag.dag_id, run_id=dr.run_id).one()
        out = {"i": i, "state": str(getattr(ti.state, "value", ti.state)),
               "end_date": ti.end_date.timestamp() if ti.end_date else None,
               "dag_run_state": str(getattr(dr.state, "value", dr.state))}
    print("RUN-RESULT " + json.dumps(out), flush=True)
"""


def _parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _airflow_env(home: Path, dags: Path, conn_json: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* airflow_provider_jules.*",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [
                    {
                        "name": "bench-dags",
                        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(dags), "refresh_interval": 0},
                    }
                ]
            ),
            "AIRFLOW_CONN_JULES_DEFAULT": conn_json,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def _completer(
    sim: SimulatorProcess,
    phases: list[float],
    poll: float,
    marks: list[dict[str, Any]],
    stop: threading.Event,
) -> None:
    """For each run: find its new session, let the trigger poll it twice, then force COMPLETED at a phase."""
    known: set[str] = set()
    for phase in phases:
        sid = None
        for _ in range(6000):  # bounded: 6000 x 20 ms = 120 s
            if stop.is_set():
                return
            sessions = sim.get("/v1alpha/sessions?pageSize=5").get("sessions", [])
            fresh = [s["id"] for s in sessions if s["id"] not in known]
            if fresh:
                sid = fresh[0]
                known.add(sid)
                break
            time.sleep(0.02)
        if sid is None:
            return
        # The operator polls once before deferring; wait for two more polls (the trigger's), then the phase.
        base = route_count(sim.stats(), "get_session")
        last, last_t = base, time.time()
        for _ in range(int(10 * (poll + 5) / 0.01)):  # bounded
            if stop.is_set():
                return
            count = route_count(sim.stats(), "get_session")
            if count != last:
                last, last_t = count, time.time()
            if count - base >= 3:
                break
            time.sleep(0.01)
        time.sleep(max(0.0, last_t + phase * poll - time.time()))
        forced_at = time.time()
        session = sim.post(f"/_simulator/sessions/{sid}/state", {"state": "COMPLETED"})
        marks.append(
            {
                "session_id": sid,
                "phase": phase,
                "forced_at": forced_at,
                "update_time": _parse_ts(session["updateTime"]),
            }
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_latency")
    p.add_argument("--poll-interval", type=float, default=2.0)
    p.add_argument("--phases", default="0.02,0.5,0.95", help="when to complete, as fractions of the interval")
    args = p.parse_args(argv)
    phases = [float(x) for x in args.phases.split(",") if x]
    root = OUT_DIR / "latency"
    home, dags = root / "airflow-home", root / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    dag_path = dags / "jules_bench_latency.py"
    dag_path.write_text(DAG_FILE.replace("__POLL__", repr(args.poll_interval)))
    airflow = Path(sys.executable).parent / "airflow"

    with SimulatorProcess(speed=1.0, scenario="stuck") as sim:
        env = _airflow_env(home, dags, sim.conn_json)
        t = time.monotonic()
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        log(f"airflow db migrate: {time.monotonic() - t:.1f} s")
        marks: list[dict[str, Any]] = []
        stop = threading.Event()
        worker = threading.Thread(
            target=_completer, args=(sim, phases, args.poll_interval, marks, stop), daemon=True
        )
        worker.start()
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, str(dag_path), str(len(phases))],
            env=env,
            capture_output=True,
            text=True,
            timeout=120 + 30 * len(phases),
        )
        stop.set()
        worker.join(10)
        (root / "dag_test.stdout").write_text(proc.stdout)
        (root / "dag_test.stderr").write_text(proc.stderr)
    runs = [
        json.loads(ln.split(" ", 1)[1]) for ln in proc.stdout.splitlines() if ln.startswith("RUN-RESULT ")
    ]
    samples = []
    for run, mark in zip(runs, marks, strict=False):
        latency = (run["end_date"] or float("nan")) - mark["update_time"]
        samples.append(
            {
                **mark,
                **run,
                "latency_s": round(latency, 3),
                "latency_intervals": round(latency / args.poll_interval, 3),
                "clock_skew_s": round(mark["update_time"] - mark["forced_at"], 4),
            }
        )
    ok = (
        len(samples) == len(phases)
        and all(s["state"] == "success" for s in samples)
        and all(s["latency_s"] <= args.poll_interval + 1.0 for s in samples)
    )
    worst = max((s["latency_s"] for s in samples), default=float("nan"))
    line = (
        f"latency: poll_interval={args.poll_interval:g} s, COMPLETED -> task success: "
        + " ".join(
            f"phase {s['phase']:g}: {s['latency_s']:.2f} s ({s['latency_intervals']:.2f}x)" for s in samples
        )
        + f"; worst={worst:.2f} s = {worst / args.poll_interval:.2f} poll intervals"
        + f" target<=1 interval + 1 s ({args.poll_interval + 1:g} s) {verdict(ok)}"
    )
    if len(samples) != len(phases):
        line += (
            f" (only {len(samples)} of {len(phases)} runs measured; see .tmp/bench/latency/dag_test.stderr)"
        )
    summary = {"ok": ok, "line": line, "worst_s": worst}
    write_json("latency.json", {"machine": machine(), "samples": samples, "summary": summary})
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
