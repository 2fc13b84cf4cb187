"""JulesFixNotifier's parts without a server (issue #20): the failure signature and title, the redaction, the
prompt, what is read from a callback context, the argument checks, and that the notifier never raises."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.fixes import text
from airflow_provider_jules.fixes.report import (
    Bundle,
    CodeRoot,
    FailureReport,
    Frame,
    code_root,
    innermost_frame,
    read_bundle,
    read_failure,
    read_log_tail,
)
from airflow_provider_jules.notifications.jules import JulesFixNotifier


def report(**changes: Any) -> FailureReport:
    fields: dict[str, Any] = {
        "dag_id": "etl",
        "task_id": "load",
        "run_id": "manual__1",
        "try_number": 2,
        "operator": "PythonOperator",
        "exception_type": "ValueError",
        "message": "no rows",
        "traceback": "Traceback ...\nValueError: no rows\n",
        "frame": Frame("dags/etl.py", "load_rows", 17),
        "dag_file": "dags/etl.py",
        "log_tail": "",
        "log_note": "no local log file",
        "bundle": Bundle(),
    }
    fields.update(changes)
    return FailureReport(**fields)


# ------------------------------------------------------------------------------------ signature and title
def test_the_signature_ignores_what_changes_between_runs_of_the_same_bug() -> None:
    base = text.signature(report())
    same = [
        report(run_id="scheduled__2", try_number=5, message="no rows in other.csv"),
        report(frame=Frame("dags/etl.py", "load_rows", 99)),  # a line moved by an unrelated edit
        report(traceback="other text", log_tail="other log", operator="BashOperator"),
    ]
    assert {text.signature(r) for r in same} == {base}
    different = [
        report(dag_id="etl2"),
        report(task_id="load2"),
        report(exception_type="KeyError"),
        report(frame=Frame("dags/etl.py", "parse", 17)),
        report(frame=Frame("dags/other.py", "load_rows", 17)),
        report(frame=None),
    ]
    assert len({text.signature(r) for r in different} | {base}) == len(different) + 1
    assert len(base) == 16 and int(base, 16) >= 0


def test_the_title_carries_the_signature_first_and_is_bounded() -> None:
    sig = text.signature(report())
    title = text.title(report(), sig)
    assert title == f"[jules-fix {sig}] Fix etl.load: ValueError"
    assert text.signature_of(title) == sig
    long = text.title(report(dag_id="d" * 300), sig)
    assert len(long) <= 200 and text.signature_of(long) == sig
    assert text.title(report(exception_type=""), sig).endswith("Fix etl.load: failure")
    for other in ("Fix etl.load", f"x [jules-fix {sig}]", "[jules-fix XYZ] a", None, 12):
        assert text.signature_of(other) is None


# ------------------------------------------------------------------------------------------- redaction
def test_redaction_masks_airflow_secrets_url_credentials_and_patterns() -> None:
    from airflow.sdk.log import mask_secret  # type: ignore[attr-defined]

    mask_secret("hunter2-very-secret")
    redact = text.Redactor(text.compile_patterns([r"acct-\d+"]))
    out = redact(
        "pw hunter2-very-secret; url https://bob:tok3n@github.com/a/b.git and postgresql://u:p@h/db; "
        "ssh://deploy@host/x; account acct-42; plain https://example.com/a@b"
    )
    assert "hunter2-very-secret" not in out and "tok3n" not in out and "acct-42" not in out
    assert "https://***@github.com/a/b.git" in out and "postgresql://***@h/db" in out
    assert "ssh://***@host/x" in out and "account ***" in out
    assert "https://example.com/a@b" in out  # an @ in the path is not credentials


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("acct-.*", "must be a list"),
        ([""], "non-empty string"),
        (["(unclosed"], "not a valid regular expression"),
        ([3], "non-empty string"),
    ],
)
def test_bad_redact_patterns_are_refused_when_the_dag_is_parsed(patterns: Any, message: str) -> None:
    with pytest.raises(JulesConfigError, match=message):
        JulesFixNotifier(source="myorg/myrepo", redact_patterns=patterns)


# ---------------------------------------------------------------------------------------------- prompt
def test_the_prompt_says_what_failed_where_and_how() -> None:
    r = report(log_tail="line 1\nline 2", bundle=Bundle("myorg/myrepo", "main", "abc123"))
    prompt = text.prompt(r, "0123456789abcdef", "Keep the fix inside dags/.")
    for needed in (
        "- DAG id: etl",
        "- Task id: load",
        "- Run id: manual__1",
        "- Try number: 2",
        "- Operator: PythonOperator",
        "- DAG file: dags/etl.py",
        "- DAG bundle commit: abc123",
        "- Exception: ValueError: no rows",
        "- Innermost frame in the DAG's code: dags/etl.py, function load_rows, line 17",
        "- Failure signature: 0123456789abcdef",
        "ValueError: no rows\n```",
        "line 1\nline 2",
        "## Instructions from the DAG's owners\nKeep the fix inside dags/.",
    ):
        assert needed in prompt, needed


def test_without_an_exception_or_log_the_prompt_says_why() -> None:
    prompt = text.prompt(report(exception_type="", traceback="", frame=None), "0" * 16, None)
    assert "- Exception: not available (this callback ran in Airflow's DAG processor" in prompt
    assert "Not available: no local log file" in prompt
    assert "## Traceback" not in prompt and "Instructions" not in prompt


# -------------------------------------------------------------------------------------- from the context
def _raise_here() -> None:
    raise KeyError("region")


def test_the_innermost_frame_is_the_deepest_one_in_the_dags_own_code(tmp_path: Path) -> None:
    try:
        json.loads("{", object_hook=lambda d: d)  # a frame in the standard library ...
    except ValueError as exc:
        assert innermost_frame(exc, CodeRoot(Path(__file__).parents[2])) is not None  # this test's frame
        assert innermost_frame(exc, CodeRoot(tmp_path)) is None  # nothing under an unrelated root
    try:
        _raise_here()
    except KeyError as exc:
        frame = innermost_frame(exc, CodeRoot(Path(__file__).parents[2]))
    assert frame is not None and frame.file == "tests/unit/test_fix_notifier.py"
    assert frame.function == "_raise_here"


@pytest.mark.parametrize(
    ("url", "repository"),
    [
        ("https://github.com/myorg/myrepo.git", "myorg/myrepo"),
        ("https://x-access-token:ghp_secret@github.com/myorg/myrepo", "myorg/myrepo"),
        ("git@github.com:myorg/my.repo.git", "myorg/my.repo"),
        ("https://gitlab.com/myorg/myrepo.git", None),
        (None, None),
    ],
)
def test_a_git_bundle_gives_its_github_repository_never_its_credentials(
    url: str | None, repository: str | None
) -> None:
    bundle = SimpleNamespace(repo_url=url, tracking_ref="main", version="abc123", subdir="dags/")
    found = read_bundle(SimpleNamespace(bundle_instance=bundle))
    assert found.repository == repository
    assert found.commit == "abc123" and found.subdir == "dags"
    assert found.branch == ("main" if repository else None)
    assert "secret" not in repr(found)


def test_in_a_git_bundle_checkout_without_git_the_subdir_is_the_prefix() -> None:
    import tempfile

    # In the system temp folder: pytest's own tmp_path may sit inside this repository's git work tree.
    with tempfile.TemporaryDirectory() as folder:
        _check_bundle_checkout(Path(folder))


def _check_bundle_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "versions" / "abc123" / "dags"  # GitDagBundle.path: the checkout's subdir
    (checkout / "etl").mkdir(parents=True)
    dag_file = checkout / "etl" / "orders.py"
    dag_file.write_text("")
    bundle = SimpleNamespace(
        repo_url=None, tracking_ref="refs/heads/main", version="abc", subdir="dags", path=checkout
    )
    ti = SimpleNamespace(bundle_instance=bundle)

    root = code_root(str(dag_file), ti, read_bundle(ti))

    assert root is not None and root.relative(dag_file) == "dags/etl/orders.py"
    assert read_bundle(ti).branch is None  # no GitHub repository: no branch either


def test_the_log_tail_is_the_last_lines_of_the_tries_local_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path))
    ti = SimpleNamespace(dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=2)
    assert read_log_tail(ti, 5)[0] == ""
    assert "no local log file" in read_log_tail(ti, 5)[1]
    path = tmp_path / "dag_id=etl" / "run_id=r1" / "task_id=load" / "attempt=2.log"
    path.parent.mkdir(parents=True)
    records = [{"timestamp": f"t{i}", "level": "info", "event": f"step {i}"} for i in range(10)]
    path.write_text("\n".join([*(json.dumps(r) for r in records), "a plain line"]) + "\n")

    tail, note = read_log_tail(ti, 3)

    assert tail == "t8 INFO step 8\nt9 INFO step 9\na plain line" and note == ""
    assert read_log_tail(ti, 0) == ("", "log_tail_lines=0")


def test_a_callback_without_an_exception_reads_what_there_is() -> None:
    task = SimpleNamespace(task_type="BashOperator", operator_name="BashOperator")
    ti = SimpleNamespace(dag_id="etl", task_id="load", run_id="r1", try_number=1, task=task)
    dag = SimpleNamespace(dag_id="etl", fileloc=__file__, relative_fileloc="unit/test_fix_notifier.py")

    found = read_failure({"ti": ti, "dag": dag, "reason": "task_failure"}, log_tail_lines=50)

    assert (found.dag_id, found.task_id, found.run_id, found.try_number) == ("etl", "load", "r1", 1)
    assert found.exception_type == "" and found.frame is None and found.traceback == ""
    assert found.operator == "BashOperator"
    assert found.dag_file == "tests/unit/test_fix_notifier.py"  # relative to the git work tree
    assert found.log_tail == "" and "outside the task's worker" in found.log_note


def test_a_context_missing_everything_still_gives_a_report() -> None:
    found = read_failure({"dag": None, "run_id": "r9"}, log_tail_lines=10)
    assert found.run_id == "r9" and found.dag_id == "" and found.exception_type == ""


# ------------------------------------------------------------------------------------------- the notifier
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "not a repo!"}, "source"),
        ({"source": 5}, "source must be a string"),
        ({"max_sessions_per_day": -1}, "max_sessions_per_day"),
        ({"max_sessions_per_day": True}, "max_sessions_per_day"),
        ({"time_budget": 0}, "time_budget"),
        ({"time_budget": 600}, "time_budget"),
        ({"dedup_window": "7d"}, "dedup_window"),
        ({"auto_create_pr": "false"}, "auto_create_pr"),
        ({"log_tail_lines": 10_000}, "log_tail_lines"),
        ({"jules_conn_id": " "}, "jules_conn_id"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(JulesConfigError, match=message):
        JulesFixNotifier(**{"source": "myorg/myrepo", **kwargs})


def test_a_templated_source_is_checked_when_rendered_not_at_parse() -> None:
    notifier = JulesFixNotifier(source="{{ var.value.repo }}")
    assert notifier.source == "{{ var.value.repo }}"
    assert list(notifier.template_fields) == ["source", "starting_branch", "prompt", "jules_conn_id"]


def test_the_notifier_never_raises_and_renders_a_copy(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    notifier = JulesFixNotifier(source="{{ params.repo }}", jules_conn_id="jules_{{ params.env }}")
    seen: list[tuple[str, str]] = []

    def notify(self: JulesFixNotifier, context: Any) -> None:
        seen.append((self.source or "", self.jules_conn_id))
        raise RuntimeError("the API is down")

    monkeypatch.setattr(JulesFixNotifier, "notify", notify)
    context = {"params": {"repo": "myorg/myrepo", "env": "prod"}, "dag": None}

    assert notifier(context) is None  # no exception reaches Airflow's callback chain
    assert seen == [("myorg/myrepo", "jules_prod")]
    assert notifier.source == "{{ params.repo }}"  # the shared object keeps its templates for the next task
    assert "no fix session was requested: RuntimeError: the API is down" in "".join(capfd.readouterr())


def test_the_provider_ships_the_notifier_and_the_global_link() -> None:
    from airflow_provider_jules.get_provider_info import get_provider_info
    from airflow_provider_jules.links.jules import JulesFixLink
    from airflow_provider_jules.plugins.jules import JulesPlugin

    info = get_provider_info()
    assert info["notifications"] == ["airflow_provider_jules.notifications.jules.JulesFixNotifier"]
    assert "plugins" not in info  # an entry point instead (tests/unit/test_packaging.py loads it)
    assert [type(link) for link in JulesPlugin.global_operator_extra_links] == [JulesFixLink]
    assert JulesFixLink.name == "Jules Fix"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            {"url": "https://jules.google.com/session/123", "session_id": "123"},
            "https://jules.google.com/session/123",
        ),
        ({"url": "https://evil.example/session/123"}, ""),  # only a Jules web-app link is shown
        ({"url": None}, ""),
        ("not a dict", ""),
        (None, ""),
        (RuntimeError("database is locked"), ""),  # never fails the API server's links call
    ],
)
def test_the_jules_fix_link_shows_only_a_checked_session_url(
    monkeypatch: pytest.MonkeyPatch, stored: Any, expected: str
) -> None:
    from airflow_provider_jules.links import jules as links

    def stored_xcom(ti_key: Any, key: str) -> Any:
        assert key == "jules_fix"
        if isinstance(stored, Exception):
            raise stored
        return stored

    monkeypatch.setattr(links, "_stored_xcom", stored_xcom)
    assert links.JulesFixLink().get_link(None, ti_key=SimpleNamespace()) == expected


def test_the_documented_cluster_policy_adds_the_notifier_once_and_keeps_other_callbacks() -> None:
    """The ``task_policy`` of docs/self_healing.rst, run as written."""
    import datetime

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    doc = (Path(__file__).parents[2] / "docs" / "self_healing.rst").read_text()
    lines = []
    for line in doc.split("   # airflow_local_settings.py\n", 1)[1].splitlines():
        if line and not line.startswith("   "):
            break  # the end of the code block
        lines.append(line[3:])
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "airflow_local_settings.py", "exec"), namespace)  # noqa: S102
    task_policy = namespace["task_policy"]

    def alert(context: Any) -> None: ...

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    with DAG("policy_on", schedule=None, start_date=start):
        plain = EmptyOperator(task_id="plain")
        alerted = EmptyOperator(task_id="alerted", on_failure_callback=alert)
    with DAG("policy_off", schedule=None, start_date=start, tags=["no-jules-fix"]):
        opted_out = EmptyOperator(task_id="opted_out")

    for task in (plain, alerted, opted_out, plain, alerted):  # twice: a DAG file parsed again
        task_policy(task)

    assert plain.on_failure_callback == [namespace["JULES_FIX"]]
    assert alerted.on_failure_callback == [alert, namespace["JULES_FIX"]]
    assert not opted_out.on_failure_callback


def test_a_prompt_that_only_ends_like_a_file_is_text_and_a_missing_file_is_left_out(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import datetime

    from airflow.sdk import DAG

    (tmp_path / "fix.md").write_text("Owner: {{ dag.dag_id }}")
    dag = DAG("d", schedule=None, start_date=datetime.datetime(2026, 1, 1), template_searchpath=str(tmp_path))

    def rendered(prompt: str) -> Any:
        notifier = JulesFixNotifier(source="myorg/myrepo", prompt=prompt)
        notifier.render_template_fields({"dag": dag})
        return notifier.prompt

    assert rendered("fix.md") == "Owner: d"
    assert rendered("Fix it for {{ dag.dag_id }} and update README.md") == "Fix it for d and update README.md"
    assert rendered("missing.md") is None
    assert "prompt file 'missing.md' could not be read" in "".join(capfd.readouterr())
