"""Take the docs' screenshots against the bundled simulator and real Airflow components on 127.0.0.1.

Usage, from the repository root, in the virtualenv that ``make`` builds (``make venv``)::

    .venv/bin/python docs/images/screenshots.py [--node-dir DIR] [--out DIR] [--list] [NAME ...]

``NAME`` is a set (the docs page a group of shots is for) or one shot; none takes every shot (``--list``
prints them). Each shot overwrites ``docs/images/<shot>.png`` (``--out`` writes elsewhere). Sets:

* ``required_actions`` (docs/people_in_the_loop.rst): a question, a change review and a plan review on the
  Required Actions page, the top of a change review that lists Jules's screenshots (written under the
  task's ``artifacts_path``), and the global list;
* ``self_healing`` (docs/self_healing.rst): a task that failed after its retry, with the "Jules Fix" extra
  link ``JulesFixNotifier`` gave it, in the task instance's Details tab.

What it needs besides the venv (checked before anything starts):

* headless Chromium at ``/usr/bin/chromium`` (``apt-get install -y chromium``), or its path in
  ``$CHROMIUM``;
* Node.js (``apt-get install -y nodejs npm``) and the ``playwright-core`` npm package, which drives that
  Chromium and downloads no browser of its own, in ``--node-dir`` (default ``.tmp/screenshots-node``)::

      npm install --prefix .tmp/screenshots-node playwright-core

It starts its own api-server, scheduler, dag-processor and triggerer with the system tests' harness
(tests/system/harness.py) in a temporary ``AIRFLOW_HOME``, runs the shots' DAGs (written to a temporary
bundle), stops the components by PID at the end, and has ``screenshots.mjs`` take the pictures.

Adding a shot: give its DAG a source in :data:`DAGS` (:func:`jules_dag` writes one for a Jules operator)
and append a :class:`Shot` to :data:`SHOTS`: its name (the PNG's), its set, the DAGs it runs, and a
``ready`` function that waits until the page shows what the picture is for and returns the page's path in
the Airflow UI. A Required Actions form is one :func:`form_shot` call. Then add the image to the docs page;
``tests/unit/test_docs_screenshots.py`` checks that every PNG here is a shot and that the DAGs parse.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from airflow_provider_jules.simulator import JulesSimulator, SimulatorConfig  # noqa: E402
from tests.system.harness import LOCAL_COMPONENTS, AirflowStack, airflow_stack, poll, say, try_json  # noqa: E402

IMAGES = Path(__file__).resolve().parent
DEFAULT_NODE_DIR = REPO / ".tmp" / "screenshots-node"
BUNDLE = "docs"
#: Where Chromium is unless ``$CHROMIUM`` says otherwise (screenshots.mjs reads the same variable).
DEFAULT_CHROMIUM = "/usr/bin/chromium"

# ------------------------------------------------------------------------------------------- the DAGs
_JULES_DAG = """\
import os

import pendulum
from airflow.sdk import DAG
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    JulesCreateSessionOperator(
        task_id="jules",
        prompt={prompt!r},
        source="bobalover/boba",
        title={title!r},
        deferrable=True,
        poll_interval=1,{kwargs}
    )
"""


class Code(str):
    """A Python expression that :func:`jules_dag` writes into the DAG as it is, not as a string literal
    (the DAG file imports ``os`` and ``pendulum``)."""

    def __repr__(self) -> str:
        return str(self)


#: ``artifacts_path`` of a shot that shows Jules's screenshots: a folder of the temporary ``AIRFLOW_HOME``
#: (removed with it), read when the DAG is parsed, in the components' environment.
ARTIFACTS_PATH = Code('"file://" + os.environ.get("AIRFLOW_HOME", ".") + "/artifacts"')


def jules_dag(dag_id: str, prompt: str, **operator_kwargs: Any) -> str:
    """The source of a DAG ``dag_id`` whose one task ``jules`` is a deferrable ``JulesCreateSessionOperator``.

    The session's title is the prompt without its simulator markers (``sim:...``, which choose what the
    simulated Jules does); ``operator_kwargs`` (literals, or :class:`Code`) go to the operator.
    """
    kwargs = "".join(f"\n        {key}={value!r}," for key, value in operator_kwargs.items())
    title = prompt.split(" sim:")[0]
    return _JULES_DAG.format(dag_id=dag_id, prompt=prompt, title=title, kwargs=kwargs)


_SELF_HEALING_DAG = """\
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from airflow_provider_jules.notifications.jules import JulesFixNotifier


def read_orders(path):
    raise ValueError(f"no rows in {path}")


with DAG(
    "orders_daily",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=1),
        "on_failure_callback": JulesFixNotifier(source="myorg/myrepo"),
    },
):

    @task
    def load_orders():
        read_orders("s3://bucket/orders.csv")

    load_orders()
"""

#: The source of each DAG a shot runs, by DAG id; each goes to a file of its own in the temporary bundle.
DAGS: dict[str, str] = {
    "jules_question": jules_dag(
        "jules_question",
        "Update the API client to the v2 endpoints sim:scenario=user_feedback",
        on_user_feedback="ask",
    ),
    "jules_change_review": jules_dag(
        "jules_change_review", "Fix the flaky tests in the payments module", review="hitl"
    ),
    "jules_media_review": jules_dag(
        "jules_media_review",
        "Restyle the checkout page sim:steps=6 sim:media=2",
        review="hitl",
        artifacts_path=ARTIFACTS_PATH,
        assigned_users=[{"id": "rita", "name": "Rita Reviewer"}, {"id": "sam", "name": "Sam"}],
    ),
    "jules_plan_review": jules_dag(
        "jules_plan_review",
        "Add rate limiting to the public API endpoints",
        require_plan_approval=True,
        review_plan="hitl",
    ),
    "orders_daily": _SELF_HEALING_DAG,
}


# ------------------------------------------------------------------------------------------- the shots
#: ``ready(stack, api, runs)``: waits (bounded) until the page shows what the shot is for, and returns the
#: page's path in the Airflow UI. ``runs`` is ``{dag_id: run_id}`` of the runs triggered for the shots.
Ready = Callable[[AirflowStack, httpx.Client, dict[str, str]], str]


@dataclass(frozen=True)
class Shot:
    #: The picture is ``<out>/<name>.png``.
    name: str
    #: The set it belongs to (the docs page it is for), a name the command line takes.
    group: str
    #: The DAGs (keys of :data:`DAGS`) it needs a run of: each is triggered once, before any shot is taken.
    dags: tuple[str, ...]
    ready: Ready
    #: The browser window's height in pixels (the picture is the whole page, at least that high).
    height: int = 1000
    #: A text to wait for and scroll into view before the picture is taken.
    scroll_to: str | None = None


def form_shot(name: str, group: str, dag_id: str, height: int, scroll_to: str | None = None) -> Shot:
    """The Required Actions tab of the task ``jules`` of a run of ``dag_id``, once its form waits for an
    answer (a DAG :func:`jules_dag` wrote)."""

    def ready(stack: AirflowStack, api: httpx.Client, runs: dict[str, str]) -> str:
        stack.waiting_form(api, dag_id, runs[dag_id], "jules", f"the form of {dag_id}", timeout=240)
        return f"/dags/{dag_id}/runs/{runs[dag_id]}/tasks/jules/required_actions"

    return Shot(name, group, (dag_id,), ready, height, scroll_to)


FORMS = ("jules_question", "jules_change_review", "jules_plan_review")


def all_forms_open(stack: AirflowStack, api: httpx.Client, runs: dict[str, str]) -> str:
    """The global Required Actions page, once the three forms wait there."""

    def every_form() -> bool | None:
        return all(stack.open_form(api, d, runs[d], "jules") for d in FORMS) or None

    poll("the three forms", every_form, 240, interval=1, check=stack.check_alive)
    return "/required_actions"


def fix_link(stack: AirflowStack, api: httpx.Client, runs: dict[str, str]) -> str:
    """The failed task's Details tab, once the API server resolves its "Jules Fix" extra link."""
    dag_id, task_id = "orders_daily", "load_orders"
    ti_path = f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances/{task_id}"

    def linked() -> str | None:
        ti = try_json(api, ti_path) or {}
        links = (try_json(api, f"{ti_path}/links") or {}).get("extra_links") or {}
        return links.get("Jules Fix") if ti.get("state") == "failed" else None

    say(f"'Jules Fix' link: {poll('the Jules Fix link', linked, 240, interval=1, check=stack.check_alive)}")
    return f"/dags/{dag_id}/runs/{runs[dag_id]}/tasks/{task_id}/details"


#: Every shot, taken in this order.
SHOTS: list[Shot] = [
    form_shot("required_actions_question", "required_actions", "jules_question", height=850),
    form_shot("required_actions_change_review", "required_actions", "jules_change_review", height=1750),
    form_shot("required_actions_plan_review", "required_actions", "jules_plan_review", height=750),
    form_shot(
        "required_actions_media_review",
        "required_actions",
        "jules_media_review",
        height=1000,
        scroll_to="Screenshots and other media from Jules (2 kept):",
    ),
    Shot("required_actions_page", "required_actions", FORMS, all_forms_open),
    Shot(
        "self_healing_fix_link",
        "self_healing",
        ("orders_daily",),
        fix_link,
        height=900,
        scroll_to="Jules Fix",
    ),
]


# ------------------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options; ``shots`` is the list of :class:`Shot` the names select (every shot without one)."""
    groups = list(dict.fromkeys(shot.group for shot in SHOTS))
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python docs/images/screenshots.py",
        description="Take the docs' screenshots against the simulator and real Airflow components.",
        epilog=f"Sets: {', '.join(groups)}. Shots: {', '.join(shot.name for shot in SHOTS)}.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="a set or a shot (default: every shot)")
    parser.add_argument(
        "--node-dir",
        type=Path,
        default=DEFAULT_NODE_DIR,
        metavar="DIR",
        help="the folder where `npm install --prefix DIR playwright-core` installed playwright-core "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=IMAGES, metavar="DIR", help="where the PNGs go (default: %(default)s)"
    )
    parser.add_argument("--list", action="store_true", help="print the shots and their sets, and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in groups and not any(s.name == name for s in SHOTS)]
    if unknown:
        parser.error(f"unknown set or shot {', '.join(unknown)}; see --list")
    wanted = set(args.names)
    args.shots = [s for s in SHOTS if not wanted or s.name in wanted or s.group in wanted]
    return args


def missing_tools(node_dir: Path) -> list[str]:
    """What the browser side lacks, each with the command that installs it (empty: nothing)."""
    missing = []
    chromium = os.environ.get("CHROMIUM", DEFAULT_CHROMIUM)
    if not os.access(chromium, os.X_OK):
        missing.append(f"Chromium at {chromium}: apt-get install -y chromium (or set $CHROMIUM to its path)")
    if shutil.which("node") is None:
        missing.append("Node.js: apt-get install -y nodejs npm")
    if not (node_dir / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append(f"playwright-core in {node_dir}: npm install --prefix {node_dir} playwright-core")
    return missing


def take(stack: AirflowStack, api: httpx.Client, shots: list[Shot], node_dir: Path, out: Path) -> None:
    """Trigger one run of each DAG the shots need, wait for each shot's page, then take the pictures."""
    runs: dict[str, str] = {}
    for dag_id in dict.fromkeys(d for shot in shots for d in shot.dags):
        stack.unpause(api, dag_id, BUNDLE)
        runs[dag_id] = stack.trigger_run(api, dag_id)
    specs = [
        {"name": s.name, "path": s.ready(stack, api, runs), "height": s.height, "text": s.scroll_to}
        for s in shots
    ]
    out.mkdir(parents=True, exist_ok=True)
    command = ["node", str(IMAGES / "screenshots.mjs"), stack.base_url, str(out), json.dumps(specs)]
    env = {**os.environ, "NODE_PATH": str(node_dir.resolve() / "node_modules")}
    subprocess.run(command, env=env, check=True, timeout=300)  # noqa: S603 - our own script


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for shot in args.shots:
            print(f"{shot.group:<20} {shot.name}")
        return 0
    missing = missing_tools(args.node_dir)
    if missing:
        print("Missing (see docs/images/screenshots.py's docstring):", *missing, sep="\n  ", file=sys.stderr)
        return 2
    shots: list[Shot] = args.shots
    sim = JulesSimulator(
        SimulatorConfig(api_key=f"sim-key-{secrets.token_hex(4)}", speed=20.0, seed=11, approval_timeout=None)
    )
    with tempfile.TemporaryDirectory(prefix="jules-shots-dags-") as dags_dir, sim:
        for dag_id in dict.fromkeys(d for shot in shots for d in shot.dags):
            (Path(dags_dir) / f"{dag_id}.py").write_text(DAGS[dag_id])
        with airflow_stack(sim, LOCAL_COMPONENTS, [(BUNDLE, Path(dags_dir))]) as stack, stack.api() as api:
            with stack.logs_on_failure():
                stack.wait_healthy(api)
                take(stack, api, shots, args.node_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
