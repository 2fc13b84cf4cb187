"""The provider is discoverable, its info is valid, and importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_jules.get_provider_info import get_provider_info


def test_provider_info_validates_against_airflow_schema():
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


def test_package_name_equals_distribution_name():
    from packaging.utils import canonicalize_name

    assert get_provider_info()["package-name"] == canonicalize_name(
        distribution("airflow-provider-jules").metadata["Name"]
    )


def test_entry_point_is_registered():
    eps = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_jules")
    ]
    assert [ep.load()() for ep in eps] == [get_provider_info()]


def test_connection_form_relabels_key_and_url():
    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://jules.googleapis.com"
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login", "extra"}
    from airflow_provider_jules.hooks.jules import JulesHook

    assert conn_type["hook-name"] == JulesHook.hook_name
    assert conn_type["connection-type"] == JulesHook.conn_type


def test_every_declared_module_and_class_imports():
    import importlib
    import importlib.util

    from airflow_provider_jules._compat import AirflowOptionalProviderFeatureException

    # The managed-agent hook needs the extra common-ai (Python >= 3.11); without it, it raises Airflow's
    # "optional feature" exception, which provider discovery skips.
    optional = {"airflow_provider_jules.hooks.managed_agent": "airflow.providers.common.ai"}
    info = get_provider_info()
    for group in ("hooks", "operators", "sensors", "triggers"):
        for item in info.get(group, []):
            for module in item["python-modules"]:
                if module in optional and importlib.util.find_spec(optional[module]) is None:
                    with pytest.raises(AirflowOptionalProviderFeatureException, match="common-ai"):
                        importlib.import_module(module)
                    continue
                importlib.import_module(module)
    for path in info.get("extra-links", []):
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


HTTP_LIBS = {"requests", "httpx", "tenacity", "urllib3", "aiohttp"}


@pytest.mark.parametrize(
    "code",
    [
        "import airflow_provider_jules",
        "from airflow_provider_jules.get_provider_info import get_provider_info; get_provider_info()",
        "import airflow_provider_jules.client",
    ],
)
def test_package_root_and_provider_info_pull_in_no_http_library(code):
    assert not (_modules_after(code) & HTTP_LIBS)


def test_a_dag_file_with_the_session_event_trigger_adds_no_http_library_to_the_sdk():
    """DAG files are parsed all the time: the event trigger's module (imported by a DAG file for its
    AssetWatcher) loads no HTTP library beyond what airflow.sdk has, nor the hook or the async client."""
    sdk = _modules_after("from airflow.sdk import Asset, AssetWatcher")
    added = _modules_after(
        "from airflow.sdk import Asset, AssetWatcher\nimport airflow_provider_jules.triggers.events"
    )
    added -= sdk
    assert not added & HTTP_LIBS, sorted(added)
    assert not added & {"airflow_provider_jules.hooks.jules", "airflow_provider_jules.client.aio"}, sorted(
        added
    )


def _airflow_cli_json(*args: str) -> list[dict[str, str]]:
    from pathlib import Path

    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), *args, "-o", "json"], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout[out.stdout.index("[{") :])


def test_airflow_providers_list_shows_the_provider():
    rows = _airflow_cli_json("providers", "list")
    assert {"package_name": "airflow-provider-jules", "version": "0.1.0"}.items() <= next(
        r for r in rows if r["package_name"] == "airflow-provider-jules"
    ).items()


def test_airflow_providers_hooks_shows_the_jules_connection_type():
    rows = _airflow_cli_json("providers", "hooks")
    (row,) = [r for r in rows if r["connection_type"] == "jules"]
    assert row["class"] == "airflow_provider_jules.hooks.jules.JulesHook"
    assert row["hook_name"] == "Jules" and row["conn_id_attribute_name"] == "jules_conn_id"


def test_connection_form_fields_are_api_key_and_base_url():
    import airflow

    from airflow_provider_jules.hooks.jules import JulesHook

    expected = {"password": "API Key", "host": "Base URL"}
    # Airflow 3.1 asks the hook (when its UI has wtforms); 3.2+ reads get_provider_info() without the hook.
    assert JulesHook.get_ui_field_behaviour()["relabeling"] == expected
    if tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (3, 2):
        from airflow.providers_manager import ProvidersManager

        behaviour = ProvidersManager().field_behaviours["jules"]
        assert behaviour["relabeling"] == expected
        assert set(behaviour["hidden_fields"]) == {"schema", "port", "login", "extra"}


_GLOBAL_LINKS = """
import json
from airflow import plugins_manager as pm
if hasattr(pm, "get_global_operator_extra_links"):  # Airflow 3.2+
    links, errors = pm.get_global_operator_extra_links(), pm.get_import_errors()
else:  # Airflow 3.1
    pm.initialize_extra_operators_links_plugins()
    links, errors = pm.global_operator_extra_links, pm.import_errors
print(json.dumps({"links": [type(link).__qualname__ + ":" + link.name for link in links], "errors": errors}))
"""


@pytest.mark.parametrize("lazy_discover_providers", ["True", "False"])
def test_the_plugin_gives_the_global_jules_fix_link_whatever_provider_discovery(
    lazy_discover_providers, tmp_path
):
    """The API server resolves "Jules Fix" only when Airflow's plugins manager has the link. The plugin is an
    ``airflow.plugins`` entry point: a provider info ``plugins`` entry loads only with
    ``[core] lazy_discover_providers = False`` (True by default), and both together register it twice."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__CORE__LAZY")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS=lazy_discover_providers)
    # Not from the checkout: its airflow_provider_jules.egg-info (of the editable install) would be a second
    # distribution of the package on sys.path, and Airflow 3.3 reports the plugin's second entry point.
    out = subprocess.run(
        [sys.executable, "-c", _GLOBAL_LINKS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    # Other providers' plugins are not ours to judge: with lazy_discover_providers=False the test dependencies
    # that ship their plugins both ways register them twice and Airflow says so: the OpenLineage provider
    # (the extra openlineage) its "OpenLineageProviderPlugin", the common AI provider (the extra common-ai)
    # its "hitl_review" and "ai_model_panel". Any other error, ours above all, fails the test.
    others = {"OpenLineageProviderPlugin", "hitl_review", "ai_model_panel"}
    errors = {name: error for name, error in found["errors"].items() if name not in others}
    assert (found["links"], errors) == (["JulesFixLink:Jules Fix"], {})
    assert "plugins" not in get_provider_info()
    (ep,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("airflow_provider_jules")]
    assert (ep.name, ep.value) == ("jules", "airflow_provider_jules.plugins.jules:JulesPlugin")
