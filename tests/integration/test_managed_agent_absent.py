"""The provider without the common AI provider (issue #23: the extra ``common-ai`` is optional).

A subprocess hides the managed-agent contract (an import hook on ``airflow.providers.common.ai``'s modules,
so the test runs whether or not common-ai is installed, e.g. on Python 3.10 where common-ai 1.0 cannot be;
only the package's provider info stays importable, which Airflow's provider discovery loads when the
distribution is installed) and uses the provider against the simulator; importing the managed-agent hook
then says which extra to install. And where common-ai is installed, nothing but that hook imports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HIDE_COMMON_AI = """
import sys

VISIBLE = ("airflow.providers.common.ai", "airflow.providers.common.ai.get_provider_info")

class HideCommonAI:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("airflow.providers.common.ai.") and name not in VISIBLE:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideCommonAI())
"""

WITHOUT_COMMON_AI = """
import os
from airflow_provider_jules.simulator import SimulatorConfig, run_simulator

with run_simulator(SimulatorConfig(api_key="sim-key", speed=400.0)) as sim:
    os.environ["AIRFLOW_CONN_JULES_DEFAULT"] = sim.conn_json
    from airflow_provider_jules.get_provider_info import get_provider_info
    from airflow_provider_jules.hooks.jules import JulesHook
    from airflow_provider_jules.operators.jules import JulesCreateSessionOperator
    from airflow_provider_jules.invocation import classify

    hook = JulesHook()
    session = hook.create_session("Add a cache", source="bobalover/boba", starting_branch="main")
    state = hook.get_session(session["id"])["state"]
    try:
        import airflow_provider_jules.hooks.managed_agent
    except Exception as exc:
        error = (type(exc).__name__, str(exc))
    else:
        error = None
    print("RESULT " + json.dumps({
        "hooks": get_provider_info()["hooks"][0]["python-modules"],
        "state": state,
        "error": error,
        "common_ai_loaded": sorted(m for m in sys.modules if m.startswith("airflow.providers.common.ai.")
                                  and m not in VISIBLE),
    }))
"""


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_without_common_ai_the_provider_works_and_the_managed_agent_hook_names_the_extra():
    found = _run(HIDE_COMMON_AI + "import json, sys\n" + WITHOUT_COMMON_AI)
    assert found["state"]  # the hook created and read a session
    assert "airflow_provider_jules.hooks.managed_agent" in found["hooks"]
    name, message = found["error"]
    assert name == "AirflowOptionalProviderFeatureException"
    assert "pip install 'airflow-provider-jules[common-ai]'" in message
    assert found["common_ai_loaded"] == []


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nimport sys, json; print('RESULT ' + json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return set(json.loads(line.removeprefix("RESULT ")))


def _common_ai(modules: set[str]) -> set[str]:
    """The common AI provider's modules, but for its provider info (Airflow's discovery loads that)."""
    discovery = {"airflow.providers.common.ai", "airflow.providers.common.ai.get_provider_info"}
    return {m for m in modules if m.startswith("airflow.providers.common.ai")} - discovery


def test_only_the_managed_agent_hook_imports_common_ai_and_it_stays_cheap():
    everything_else = _modules_after(
        "import airflow_provider_jules.operators.jules, airflow_provider_jules.sensors.jules, "
        "airflow_provider_jules.decorators.jules, airflow_provider_jules.hooks.jules, "
        "airflow_provider_jules.invocation"
    )
    assert _common_ai(everything_else) == set()
    try:
        import airflow.providers.common.ai.managed_agents.base  # noqa: F401
    except ImportError:
        return  # common-ai is not installed here (Python 3.10): the test above covers this case
    with_the_hook = _modules_after("import airflow_provider_jules.hooks.managed_agent")
    added = with_the_hook - _modules_after("import airflow_provider_jules.hooks.jules")
    assert "airflow.providers.common.ai.managed_agents.base" in added
    # The contract's promise (its guarded import stays cheap): no pydantic-ai, and no HTTP library.
    heavy = {m.split(".")[0] for m in added} & {"pydantic_ai", "requests", "httpx", "tenacity", "urllib3"}
    assert heavy == set()
