"""OpenLineage (docs "Lineage"): the dataset names, the facets, the operator's method, and no OpenLineage
import where a DAG only imports the provider. The end-to-end event: tests/integration/test_lineage.py; an
environment without the extra: tests/packaging/test_installed_wheel.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest

from airflow_provider_jules.lineage import DatasetName, pull_request, repository, session_lineage
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator
from tests.fakes import FakeHook, install_hook

SID = "14550388554331055113"
PR = "https://github.com/acme/web/pull/7"
SCHEMA = Path(__file__).resolve().parents[2] / "airflow_provider_jules/lineage/JulesSessionRunFacet.json"


def result(**changes: Any) -> dict[str, Any]:
    """A result dict (airflow_provider_jules.results) of a session that opened a pull request."""
    base: dict[str, Any] = {
        "session_id": SID,
        "url": f"https://jules.google.com/session/{SID}",
        "state": "COMPLETED",
        "outcome": "completed",
        "pull_requests": [{"url": PR, "title": "Fix the flaky test", "head_ref": "jules-fix"}],
        "pull_request_url": PR,
        "change_set": {"base_commit_id": "abc123", "files_changed": ["src/a.py", "tests/test_a.py"]},
    }
    return {**base, **changes}


def session(source: str = "sources/github/acme/web", branch: str | None = "main") -> dict[str, Any]:
    context: dict[str, Any] = {"source": source}
    if branch is not None:
        context["githubRepoContext"] = {"startingBranch": branch}
    return {
        "id": SID,
        "state": "COMPLETED",
        "url": f"https://jules.google.com/session/{SID}",
        "sourceContext": context,
    }


# ------------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("source", "branch", "expected"),
    [
        ("acme/web", "main", ("https://github.com", "acme/web/tree/main")),
        ("sources/github/acme/web", "main", ("https://github.com", "acme/web/tree/main")),
        ("github/acme/web", "feature/login", ("https://github.com", "acme/web/tree/feature/login")),
        ("acme/web", None, ("https://github.com", "acme/web")),
        ("acme/web", "  ", ("https://github.com", "acme/web")),
        ("sources/github-acme-web", "main", ("jules", "sources/github-acme-web/tree/main")),
    ],
)
def test_a_repository_at_a_branch_is_named_by_its_github_page(source, branch, expected):
    name = repository(source, branch)
    assert (name.namespace, name.name) == expected
    if expected[0] == "https://github.com":
        assert name.uri == "https://github.com/" + expected[1]


@pytest.mark.parametrize("source", [None, "", "not a/source/with spaces", 42])
def test_what_names_no_source_has_no_dataset(source):
    assert repository(source, "main") is None


def test_a_pull_request_is_named_by_its_url_on_its_own_host():
    assert pull_request(PR) == DatasetName("https://github.com", "acme/web/pull/7")
    assert pull_request(PR).uri == PR
    enterprise = pull_request("https://git.example.com/acme/web/pull/12")
    assert enterprise == DatasetName("https://git.example.com", "acme/web/pull/12")
    assert pull_request(None) is None


# ------------------------------------------------------------------------------ what was read and written
def test_the_input_is_the_repository_and_branch_and_the_output_the_pull_request():
    lineage = session_lineage(result(), session(), source="other/repo", starting_branch="dev")
    # The session's own sourceContext wins over the task's arguments (an adopted session names its own).
    assert lineage.input == DatasetName("https://github.com", "acme/web/tree/main")
    assert lineage.output == DatasetName("https://github.com", "acme/web/pull/7")
    assert (lineage.base_commit, lineage.pull_request_title) == ("abc123", "Fix the flaky test")
    assert lineage.session == {
        "sessionId": SID,
        "url": f"https://jules.google.com/session/{SID}",
        "state": "COMPLETED",
        "outcome": "completed",
        "pullRequestUrl": PR,
        "filesChanged": ["src/a.py", "tests/test_a.py"],
    }


def test_without_a_session_context_the_tasks_source_and_branch_name_the_input():
    lineage = session_lineage(result(), {"id": SID}, source="acme/api", starting_branch="release")
    assert lineage.input == DatasetName("https://github.com", "acme/api/tree/release")


def test_a_patch_without_a_pull_request_outputs_the_branch_it_is_for():
    lineage = session_lineage(result(pull_requests=[], pull_request_url=None), session())
    assert lineage.output == lineage.input == DatasetName("https://github.com", "acme/web/tree/main")
    assert lineage.pull_request_title is None


def test_a_failed_session_outputs_no_partial_patch():
    failed = result(outcome="failed", state="FAILED", pull_requests=[], pull_request_url=None)
    assert session_lineage(failed, session()).output is None


def test_a_session_that_changed_nothing_has_no_output():
    done = result(
        outcome="completed_without_changes", pull_requests=[], pull_request_url=None, change_set=None
    )
    lineage = session_lineage(done, session())
    assert (lineage.input is not None, lineage.output) == (True, None)
    assert lineage.session["filesChanged"] == [] and lineage.session["outcome"] == "completed_without_changes"


def test_a_wait_that_ended_without_a_result_still_names_the_session():
    lineage = session_lineage(None, {**session(), "state": "IN_PROGRESS"})
    assert lineage.session["sessionId"] == SID and lineage.session["state"] == "IN_PROGRESS"
    assert lineage.session["outcome"] is None and lineage.output is None


def test_before_any_session_only_the_tasks_repository_is_known():
    lineage = session_lineage(None, None, source="acme/web", starting_branch=None)
    assert (lineage.input, lineage.output, lineage.session) == (
        DatasetName("https://github.com", "acme/web"),
        None,
        {},
    )


# ------------------------------------------------------------------------------------------- the facets
def _event_parts(lineage: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    return {
        "inputs": [Serde.to_dict(d) for d in lineage.inputs],
        "outputs": [Serde.to_dict(d) for d in lineage.outputs],
        "run": {k: Serde.to_dict(v) for k, v in lineage.run_facets.items()},
        "job": lineage.job_facets,
    }


def test_the_operator_lineage_carries_datasets_and_the_session_facets():
    from airflow_provider_jules.lineage.facets import SCHEMA_URL, operator_lineage

    parts = _event_parts(operator_lineage(session_lineage(result(), session())))
    (read,), (written,) = parts["inputs"], parts["outputs"]
    assert (read["namespace"], read["name"]) == ("https://github.com", "acme/web/tree/main")
    assert read["facets"]["version"]["datasetVersion"] == "abc123"
    assert (written["namespace"], written["name"]) == ("https://github.com", "acme/web/pull/7")
    assert written["facets"]["documentation"]["description"] == "Fix the flaky test"
    jules = parts["run"]["julesSession"]
    assert jules["_schemaURL"] == SCHEMA_URL
    assert (jules["sessionId"], jules["pullRequestUrl"], jules["filesChanged"]) == (
        SID,
        PR,
        ["src/a.py", "tests/test_a.py"],
    )
    assert parts["run"]["externalQuery"]["externalQueryId"] == SID
    assert parts["run"]["externalQuery"]["source"] == "jules"
    assert parts["job"] == {}  # the job's facets are Airflow's own (jobType, ownership, ...)


def test_the_session_facet_matches_its_published_schema():
    from airflow_provider_jules.lineage.facets import SCHEMA_URL, operator_lineage

    schema = json.loads(SCHEMA.read_text())
    assert SCHEMA_URL.endswith("/" + "/".join(SCHEMA.parts[-3:]) + "#/$defs/JulesSessionRunFacet")
    own = schema["$defs"]["JulesSessionRunFacet"]["allOf"][1]  # the part after OpenLineage's RunFacet
    for lineage in (session_lineage(result(), session()), session_lineage(None, session())):
        facet = _event_parts(operator_lineage(lineage))["run"]["julesSession"]
        fields = {k: v for k, v in facet.items() if not k.startswith("_")}  # a None field is left out
        jsonschema.validate(fields, own)
        assert set(fields) <= set(own["properties"])
    # Every field of the class is documented, and nothing more.
    assert set(lineage.session) == set(own["properties"])


def test_no_session_means_no_run_facets():
    from airflow_provider_jules.lineage.facets import operator_lineage

    parts = _event_parts(operator_lineage(session_lineage(None, None, source="acme/web")))
    assert parts["run"] == {} and parts["outputs"] == []
    assert parts["inputs"][0]["name"] == "acme/web"


# --------------------------------------------------------------------------------------- the operator
def _context() -> dict[str, Any]:
    return {"ti": mock.MagicMock(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1)}


def test_the_operator_reports_the_session_it_followed(monkeypatch):
    pr = {"pullRequest": {"url": PR, "title": "Fix it"}}
    hook = FakeHook(
        states=["IN_PROGRESS", "COMPLETED"],
        session={
            "outputs": [pr],
            "sourceContext": {
                "source": "sources/github/acme/web",
                "githubRepoContext": {"startingBranch": "develop"},
            },
        },
    )
    install_hook(monkeypatch, hook)
    op = JulesCreateSessionOperator(
        task_id="t", prompt="Fix it", source="acme/web", deferrable=False, poll_interval=0.01
    )
    returned = op.execute(_context())
    parts = _event_parts(op.get_openlineage_facets_on_complete(mock.MagicMock()))
    assert [(d["namespace"], d["name"]) for d in parts["inputs"]] == [
        ("https://github.com", "acme/web/tree/develop")
    ]
    assert [d["name"] for d in parts["outputs"]] == ["acme/web/pull/7"]
    assert parts["run"]["julesSession"]["sessionId"] == returned["session_id"] == SID
    assert parts["run"]["julesSession"]["outcome"] == returned["outcome"] == "completed"


def test_a_failed_session_is_reported_too(monkeypatch):
    """The OpenLineage provider asks on_complete for a failed task's facets too (its default on failure)."""
    hook = FakeHook(states=["FAILED"], session={"sourceContext": {"source": "sources/github/acme/web"}})
    install_hook(monkeypatch, hook)
    op = JulesCreateSessionOperator(
        task_id="t", prompt="Fix it", source="acme/web", deferrable=False, poll_interval=0.01
    )
    with pytest.raises(Exception, match="failed"):
        op.execute(_context())
    parts = _event_parts(op.get_openlineage_facets_on_complete(mock.MagicMock()))
    assert parts["run"]["julesSession"]["outcome"] == "failed"
    assert parts["outputs"] == [] and parts["inputs"][0]["name"] == "acme/web"


def test_a_task_that_does_not_wait_reports_the_session_it_started(monkeypatch):
    install_hook(monkeypatch, FakeHook(states=["QUEUED"]))
    op = JulesCreateSessionOperator(
        task_id="t", prompt="Fix it", source="acme/web", wait_for_completion=False
    )
    op.execute(_context())
    parts = _event_parts(op.get_openlineage_facets_on_complete(mock.MagicMock()))
    assert parts["run"]["julesSession"]["outcome"] == "running"
    assert parts["outputs"] == []


# ------------------------------------------------------------------------------------------- import cost
def test_a_dag_that_uses_the_provider_never_imports_openlineage():
    """Installed (the test environment has it) and still not imported: a DAG parse pays nothing for it.

    Airflow's own provider discovery (Airflow 3.3 runs it on ``import airflow.sdk``) reads every installed
    provider's ``get_provider_info``, the OpenLineage provider's too: that is the baseline, not ours."""
    assert importlib.util.find_spec("airflow.providers.openlineage") is not None
    code = (
        "import sys, json; import airflow.sdk; before = set(sys.modules);"
        "import airflow_provider_jules.operators.jules, airflow_provider_jules.decorators.jules;"
        "import airflow_provider_jules.sensors.jules, airflow_provider_jules.notifications.jules;"
        "from airflow.sdk import DAG;"
        "from airflow_provider_jules.operators.jules import JulesCreateSessionOperator as Op;"
        "Op(task_id='t', prompt='Fix it', source='acme/web', dag=DAG('d', schedule=None));"
        "lineage = ('openlineage', 'airflow.providers.openlineage', 'airflow_provider_jules.lineage');"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith(lineage))));"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added, client = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert added == []
    assert client == []  # the OpenLineage client itself is not loaded at all
