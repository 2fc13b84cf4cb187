"""Jules's screenshots (media artifacts, issue #22 item 4) against the simulator: written under
``artifacts_path`` with their exact bytes and listed in the result, counted as dropped without it, written
once across retries, and listed (never as base64) in the change review form.

A session with ``sim:media=2`` carries two "Frontend verification" activities, each with one PNG. The
change review case runs on Airflow >= 3.3 only (dag.test() answers forms there, see hitl_helpers.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator
from airflow_provider_jules.simulator.agent import SCREENSHOTS
from tests.faults.harness import FakeStore, FakeTI
from tests.integration.conftest import REPO, load_dag_module, run_dag
from tests.integration.hitl_helpers import HITL_TESTS, Responder, answer_during

PROMPT = "Restyle the settings page sim:media=2"
PNGS = [base64.b64decode(s) for s in SCREENSHOTS]


def create_op(**kwargs: Any) -> JulesCreateSessionOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.02)
    return JulesCreateSessionOperator(task_id="create", prompt=PROMPT, source="bobalover/boba", **kwargs)


def media_files(root: Path) -> list[Path]:
    """The media written under ``root``, oldest activity first (the order of the result's ``media``)."""
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".patch"]


def check_written(result: dict[str, Any], root: Path, folder: str) -> list[Path]:
    """The two screenshots are files under ``root/folder/<session id>-media/`` with their decoded bytes, and
    the result lists exactly them; nothing base64 is in the result."""
    sid = result["session_id"]
    entries = result["media"]
    assert [sorted(e) for e in entries] == [sorted(["activity_id", "mime_type", "path", "bytes"])] * 2
    assert result["media_dropped"] == 0
    files = [Path(e["path"].removeprefix("file://")) for e in entries]
    assert sorted(files) == sorted(media_files(root))
    for entry, path, png in zip(entries, files, PNGS, strict=True):
        assert path.read_bytes() == png and entry["bytes"] == len(png)
        assert entry["mime_type"] == "image/png"
        assert path.name == f"{entry['activity_id']}-0.png"
        assert path.parent == root / folder / f"{sid}-media"
    text = json.dumps(result)
    assert all(s not in text for s in SCREENSHOTS)
    return files


def test_two_media_artifacts_become_two_files_under_artifacts_path_with_dag_test(
    dags, sim, tmp_path, monkeypatch
):
    root = tmp_path / "jules"
    monkeypatch.setenv("AIRFLOW_VAR_JULES_MEDIA_ROOT", f"file://{root}")
    run = run_dag(dags.media_two_files)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    check_written(result, root, f"media_two_files/{run.run_id}/create".replace(":", "_"))


def test_without_artifacts_path_nothing_is_written_and_the_media_count_as_dropped(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative path written by mistake would land here
    result = create_op().execute({"ti": FakeTI("d_media_none", "r", "create")})
    assert result["outcome"] == "completed"
    assert (result["media"], result["media_dropped"]) == ([], 2)
    assert list(tmp_path.rglob("*")) == []
    assert all(s not in json.dumps(result) for s in SCREENSHOTS)


def test_a_retry_writes_the_same_files_once(sim, tmp_path):
    root = tmp_path / "jules"
    ti, store = FakeTI("d_media_retry", "manual__2026-01-01T00:00:00+00:00", "create"), FakeStore()
    first = create_op(artifacts_path=f"file://{root}").execute({"ti": ti, "task_state_store": store})
    folder = "d_media_retry/manual__2026-01-01T00_00_00+00_00/create"
    files = check_written(first, root, folder)
    written = {p: p.stat().st_mtime_ns for p in files}
    files[1].write_bytes(b"\x89PNG partial")  # an earlier attempt died while writing this one
    ti.try_number = 2
    second = create_op(artifacts_path=f"file://{root}").execute({"ti": ti, "task_state_store": store})
    assert second["session_id"] == first["session_id"]  # the retry adopted the session
    assert second["media"] == first["media"]
    check_written(second, root, folder)  # the same two files, no third one, the broken one rewritten
    assert files[0].stat().st_mtime_ns == written[files[0]]  # already complete: not written again


def test_the_change_review_form_lists_the_media_and_holds_no_base64(dags, sim, tmp_path, monkeypatch):
    root = tmp_path / "jules"
    monkeypatch.setenv("AIRFLOW_VAR_JULES_MEDIA_ROOT", f"file://{root}")
    responder = Responder("media_review", "create", [("Approve", "")])
    answer_during(monkeypatch, responder)
    run = run_dag(dags.media_review)
    assert run.task_states == {"create": "success"}
    result = run.xcom("create")
    files = check_written(result, root, f"media_review/{run.run_id}/create".replace(":", "_"))
    [form] = responder.forms
    assert "Screenshots and other media from Jules (2 kept)" in form["body"]
    for entry, path in zip(result["media"], files, strict=True):
        assert f"- `file://{path}` (image/png, {entry['bytes']:,} bytes)" in form["body"]
    assert "](file://" not in form["body"]  # an object storage path is not a browser link
    forms = json.dumps(responder.forms, default=str)
    assert all(s not in forms and s[:24] not in forms for s in SCREENSHOTS)


if not HITL_TESTS:  # Airflow < 3.3: dag.test() cannot answer a form (see the module docstring)
    del test_the_change_review_form_lists_the_media_and_holds_no_base64


@pytest.fixture
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_media_dags.py")
