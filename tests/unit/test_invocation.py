"""The rules of one managed-agent call (airflow_provider_jules/invocation.py), without common-ai: the
failure classes, the prompt, the checked request and the answer's text. End to end:
tests/integration/test_managed_agent.py.
"""

from __future__ import annotations

import json
import math

import pytest

from airflow_provider_jules.client.errors import (
    JulesAuthError,
    JulesConfigError,
    JulesInvalidArgumentError,
    JulesInvalidResponseError,
    JulesNotFoundError,
    JulesQuotaExhaustedError,
    JulesRateLimitError,
    JulesServerError,
    JulesTransportError,
    error_from_response,
)
from airflow_provider_jules.failures import JulesSessionError
from airflow_provider_jules.invocation import (
    Ask,
    Failure,
    JulesInvocationTimeout,
    JulesPromptError,
    Settings,
    answer_text,
    classify,
    prompt_text,
)

SETTINGS = Settings()


def _api_error(cls, status: int = 400, **kwargs):
    return cls("message", http_status=status, **kwargs)


def _bad_request(field: str | None) -> JulesInvalidArgumentError:
    violation = {"description": "Session prompt is required."} | ({"field": field} if field else {})
    body = {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "Session prompt is required.",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
            ],
        }
    }
    error = error_from_response(400, json.dumps(body).encode())
    assert isinstance(error, JulesInvalidArgumentError)
    return error


# ------------------------------------------------------------------------------------------ the classes
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # the request as phrased cannot be done: the calling model may rephrase (no failover)
        (JulesPromptError("The prompt is empty"), Failure.REJECTED),
        (_bad_request("session.prompt"), Failure.REJECTED),
        (_bad_request("prompt"), Failure.REJECTED),
        (
            JulesSessionError("failed", "Jules encountered an error", session_id="1", url=None),
            Failure.REJECTED,
        ),
        # nothing on the agent's side recovers it: key, repository, quota, settings
        (_api_error(JulesAuthError, 401), Failure.TERMINAL),
        (_api_error(JulesAuthError, 403), Failure.TERMINAL),
        (_api_error(JulesNotFoundError, 404), Failure.TERMINAL),
        (_api_error(JulesQuotaExhaustedError), Failure.TERMINAL),
        (_bad_request("session.source_context.github_repo_context"), Failure.TERMINAL),
        (_bad_request(None), Failure.TERMINAL),
        (JulesConfigError("Unknown Jules vendor options"), Failure.TERMINAL),
        (JulesSessionError("plan_not_approved", "no approval", session_id="1", url=None), Failure.TERMINAL),
        # time may fix it: propagated unchanged
        (_api_error(JulesRateLimitError, 429), Failure.TRANSIENT),
        (_api_error(JulesServerError, 503), Failure.TRANSIENT),
        (JulesTransportError("reset", reached_server=True), Failure.TRANSIENT),
        (JulesInvocationTimeout("late", session_id="1", url=None), Failure.TRANSIENT),
        (_api_error(JulesInvalidResponseError, 200), Failure.TRANSIENT),
        (ConnectionResetError(), Failure.TRANSIENT),
    ],
    ids=lambda v: v.value if isinstance(v, Failure) else type(v).__name__,
)
def test_each_failure_has_its_class(error, expected):
    assert classify(error) is expected


def test_the_timeout_is_a_timeout_error():
    assert isinstance(JulesInvocationTimeout("late", session_id="1", url=None), TimeoutError)


# ------------------------------------------------------------------------------------------ the prompt
def test_a_prompt_is_sent_as_it_is():
    assert prompt_text("Fix the flaky test", None) == "Fix the flaky test"


def test_one_message_is_its_text():
    message = {"role": "user", "content": [{"type": "text", "text": "Fix"}, {"type": "text", "text": "it"}]}
    assert prompt_text(None, [message]) == "Fix\nit"


def test_several_messages_start_a_session_with_the_transcript():
    messages = [
        {"role": "user", "content": "Add a cache"},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": "An LRU cache"},
    ]
    assert prompt_text(None, messages) == "user: Add a cache\n\nassistant: Which one?\n\nuser: An LRU cache"
    # A continued session already holds the earlier turns: only the last message is sent.
    assert prompt_text(None, messages, continuing=True) == "An LRU cache"


@pytest.mark.parametrize(
    ("prompt", "messages", "fragment"),
    [
        ("   ", None, "The prompt is empty"),
        (None, [{"role": "user", "content": ""}], "The prompt is empty"),
        (None, [{"role": "user", "content": [{"type": "image_url", "url": "x"}]}], "not a 'image_url' part"),
        (None, ["hello"], "must be a dict"),
        (None, [{"role": "user", "content": 3}], "content must be text"),
    ],
)
def test_a_prompt_jules_cannot_take_is_rejected(prompt, messages, fragment):
    with pytest.raises(JulesPromptError, match=fragment) as caught:
        prompt_text(prompt, messages)
    assert classify(caught.value) is Failure.REJECTED


# ------------------------------------------------------------------------------------------ the request
def _ask(agent: object = "acme/web", **kwargs) -> Ask:
    fields: dict = {"prompt": "Fix it", "messages": None, "session": None, "timeout": None}
    fields.update(kwargs)
    fields.setdefault("vendor_options", {})
    return Ask.check(agent, settings=fields.pop("settings", SETTINGS), **fields)


def test_the_agent_names_the_repository_and_the_settings_fill_the_rest():
    settings = Settings(invoke_timeout=120.0, poll_interval=5.0, on_give_up="delete")
    assert _ask("acme/web", settings=settings) == Ask(
        source="sources/github/acme/web",
        prompt="Fix it",
        timeout=120.0,
        automation_mode="AUTO_CREATE_PR",
        poll_interval=5.0,
        on_give_up="delete",
    )


def test_the_request_and_its_vendor_options_win_over_the_settings():
    options = {
        "starting_branch": " develop ",
        "title": "Cache",
        "automation_mode": "AUTOMATION_MODE_UNSPECIFIED",
        "poll_interval": 1,
        "on_give_up": "keep",
    }
    ask = _ask("sources/github/acme/web", session="sessions/123", timeout=30, vendor_options=options)
    assert (ask.source, ask.session_id, ask.timeout) == ("sources/github/acme/web", "123", 30.0)
    assert (ask.starting_branch, ask.title, ask.automation_mode) == (
        "develop",
        "Cache",
        "AUTOMATION_MODE_UNSPECIFIED",
    )
    assert (ask.poll_interval, ask.on_give_up) == (1.0, "keep")


@pytest.mark.parametrize("key", ["source", "jules_conn_id", "base_url", "api_key", "agent"])
def test_options_that_would_re_target_the_call_are_refused(key):
    with pytest.raises(JulesConfigError, match="would re-target the call") as caught:
        _ask(vendor_options={key: "elsewhere"})
    assert classify(caught.value) is Failure.TERMINAL


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"vendor_options": {"model": "x"}}, r"Unknown Jules vendor options \['model'\]"),
        ({"vendor_options": {"automation_mode": "MANUAL"}}, "automation_mode must be one of"),
        ({"vendor_options": {"on_give_up": "pause"}}, "on_give_up must be one of"),
        ({"vendor_options": {"starting_branch": " "}}, "starting_branch must be a branch name"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"session": "sessions/1/../2"}, "not a valid Jules session id"),
    ],
)
def test_a_bad_request_is_refused_before_any_call(kwargs, fragment):
    with pytest.raises(JulesConfigError, match=fragment):
        _ask(**kwargs)


def test_an_agent_that_is_not_a_repository_is_refused():
    with pytest.raises(JulesConfigError, match="malformed"):
        _ask("acme/web/extra/segments")


def test_the_settings_are_checked():
    with pytest.raises(JulesConfigError, match="on_give_up"):
        Settings.check(invoke_timeout=60, poll_interval=5, on_give_up="pause")
    with pytest.raises(JulesConfigError, match="poll_interval"):
        Settings.check(invoke_timeout=60, poll_interval=0, on_give_up="keep")


# ------------------------------------------------------------------------------------------ the answer
def _result(outcome: str, *, pr: str | None = None, files: list[str] | None = None) -> dict:
    change_set = {"files_changed": files} if files is not None else None
    return {"outcome": outcome, "pull_request_url": pr, "change_set": change_set}


def _message(text: str) -> dict:
    return {"agentMessaged": {"agentMessage": text}, "originator": "agent"}


def test_a_completed_answer_names_the_pull_request_and_the_files():
    result = _result("completed", pr="https://github.com/acme/web/pull/7", files=["a.py", "b.py"])
    assert answer_text(result, []).splitlines() == [
        "Jules completed the task.",
        "Pull request: https://github.com/acme/web/pull/7",
        "Files changed: a.py, b.py",
    ]


def test_jules_last_message_of_the_round_is_the_answer():
    activities = [_message("Which cache?"), {"userMessaged": {"userMessage": "LRU"}}, _message("Done: LRU.")]
    assert answer_text(_result("completed"), activities) == "Done: LRU."


def test_a_question_is_the_answer_text():
    assert (
        answer_text(_result("awaiting_user_feedback"), [_message("Which cache?")])
        == "Jules asks: Which cache?"
    )


def test_no_change_says_so():
    assert answer_text(_result("completed_without_changes"), []) == (
        "Jules completed the session without changing any file."
    )


def test_a_long_list_of_files_is_cut():
    files = [f"f{i}.py" for i in range(25)]
    text = answer_text(_result("completed", files=files), [])
    assert text.endswith("f19.py and 5 more") and "f20.py" not in text
