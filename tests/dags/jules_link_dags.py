"""DAGs of the safe-links tests (issue #22 item 5), run with dag.test() against the simulator.

``sim:pr_host=HOST`` makes the simulator open its pull request on HOST (docs/simulator.rst): a look-alike of
github.com, or a GitHub Enterprise host that the connection ``jules_ghe`` adds with its extra
``pull_request_hosts`` (the test sets that connection).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
LINKS_ASSET = Asset("jules://tests/links")
GHE_HOST = "ghe.example.com"
GHE_CONN_ID = "jules_ghe"
#: case -> the host of the simulated pull request
LOOK_ALIKES = {
    "cyrillic": "g\u0456thub.com",  # a Cyrillic i (U+0456) for the Latin one
    "punycode": "xn--gthub-n2e.com",  # the same host, as a browser sends it
    "suffix": "github.com.evil.example",
}

for mode in ("deferrable", "sync"):
    for case, host in {**LOOK_ALIKES, "ghe": GHE_HOST}.items():
        with DAG(f"jules_links_{case}_{mode}", schedule=None, start_date=START, catchup=False) as dag:
            JulesCreateSessionOperator(
                task_id="create",
                prompt=f"Fix the flaky tests sim:pr_host={host}",
                source="bobalover/boba",
                deferrable=mode == "deferrable",
                poll_interval=0.05,
                outlets=[LINKS_ASSET],
                jules_conn_id=GHE_CONN_ID if case == "ghe" else "jules_default",
            )
        globals()[dag.dag_id] = dag
