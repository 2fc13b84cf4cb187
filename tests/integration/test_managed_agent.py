"""Jules through the common AI provider's own consumers (issue #23 item 2), against the simulator: a bound
agent (``hook.agent(...)``), the failover client, the managed-agent toolset under a pydantic-ai model, and a
``@task.agent`` run with dag.test(). Each of the contract's three failure classes through a consumer.

common-ai 1.0 needs Python >= 3.11: on 3.10 this module skips (tests/unit/test_managed_agent_absent.py covers
the provider without it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

pytest.importorskip(
    "airflow.providers.common.ai.managed_agents.base", reason="common-ai needs Python >= 3.11"
)

from airflow.providers.common.ai.exceptions import ManagedAgentInvocationError, ManagedAgentRejected
from airflow.providers.common.ai.managed_agents import (
    BoundManagedAgent,
    FailoverManagedAgentClient,
    ManagedAgentCapabilities,
    ManagedAgentRef,
    ManagedAgentRequest,
)

from airflow_provider_jules.client.errors import JulesRateLimitError, JulesServerError
from airflow_provider_jules.client.retry import RetryPolicy
from airflow_provider_jules.hooks.managed_agent import JulesManagedAgentHook
from airflow_provider_jules.invocation import Ask, Invocation, JulesInvocationTimeout
from tests.integration.conftest import REPO, load_dag_module, run_dag

SOURCE = "bobalover/boba"
FAST = {"poll_interval": 0.05}
QUESTION = "Question 1: should I also update the docs?"


def ask(prompt: str, **kwargs: Any) -> ManagedAgentRequest:
    kwargs.setdefault("timeout", 60)
    return ManagedAgentRequest(prompt=prompt, **kwargs)


def agent(conn_id: str = "jules_default", **kwargs: Any) -> BoundManagedAgent:
    return JulesManagedAgentHook(conn_id, **{**FAST, **kwargs}).agent(SOURCE)


@pytest.fixture
def standby(sim, monkeypatch):
    """A second connection to the same simulator: the failover group's standby."""
    monkeypatch.setenv("AIRFLOW_CONN_JULES_STANDBY", sim.conn_json)
    return agent("jules_standby")


@pytest.fixture
def revoked(sim, monkeypatch):
    """A connection whose API key the simulator refuses (401)."""
    conn = json.loads(sim.conn_json) | {"password": "revoked-key"}
    monkeypatch.setenv("AIRFLOW_CONN_JULES_REVOKED", json.dumps(conn))
    return agent("jules_revoked")


def statuses(sim: Any, route: str) -> list[int]:
    return [r["status"] for r in sim.requests(route)]


# ------------------------------------------------------------------------------------------ answers
def test_a_bound_agent_runs_a_prompt_to_the_final_message_and_the_pull_request(sim):
    bound = agent()
    assert bound.ref == ManagedAgentRef(platform="google.jules", name="sources/github/bobalover/boba")
    assert bound.capabilities == ManagedAgentCapabilities(sessions=True, trace=True)
    response = bound.invoke(ask("Add a CONTRIBUTING guide"))
    raw = response.raw
    assert (raw["outcome"], raw["state"]) == ("completed", "COMPLETED")
    pull_request = raw["pull_request_url"]
    assert pull_request.startswith("https://github.com/bobalover/boba/pull/")
    assert response.text.splitlines() == [
        "Jules completed the task.",
        f"Pull request: {pull_request}",
        "Files changed: " + ", ".join(raw["change_set"]["files_changed"]),
    ]
    assert response.session_id == raw["session_id"]
    assert response.trace_ref == f"sessions/{raw['session_id']}"
    assert (response.structured, response.usage) == (None, None)
    # The request Jules got: the prompt, on the repository's default branch, with a pull request.
    (create,) = sim.requests("create_session")
    assert create["json"] == {
        "prompt": "Add a CONTRIBUTING guide",
        "sourceContext": {
            "source": "sources/github/bobalover/boba",
            "githubRepoContext": {"startingBranch": "main"},
        },
        "automationMode": "AUTO_CREATE_PR",
    }


def test_session_id_continues_the_session_with_send_message(sim):
    bound = agent()
    first = bound.invoke(ask("Add an LRU cache"))
    second = bound.invoke(ask("Now document it", session_id=first.session_id))
    assert second.session_id == first.session_id
    assert [r["json"] for r in sim.requests("send_message")] == [{"prompt": "Now document it"}]
    assert len(sim.requests("create_session")) == 1
    # The follow-up round completed again: the same pull request, one more file in the cumulative change.
    assert second.raw["outcome"] == "completed"
    assert second.raw["pull_request_url"] == first.raw["pull_request_url"]
    files = set(second.raw["change_set"]["files_changed"])
    assert files > set(first.raw["change_set"]["files_changed"])


def test_a_question_is_an_answer_and_the_session_id_replies_to_it(sim):
    bound = agent()
    question = bound.invoke(ask("Refactor the parser sim:scenario=user_feedback"))
    assert question.text == f"Jules asks: {QUESTION}"
    assert question.raw["outcome"] == "awaiting_user_feedback"
    done = bound.invoke(ask("Yes, update the docs too.", session_id=question.session_id))
    assert done.raw["outcome"] == "completed"
    assert f"Pull request: {done.raw['pull_request_url']}" in done.text.splitlines()


def test_vendor_options_choose_the_branch_the_title_and_no_pull_request(sim):
    options = {"starting_branch": "main", "title": "Cache", "automation_mode": "AUTOMATION_MODE_UNSPECIFIED"}
    response = agent().invoke(ask("Add a cache", vendor_options=options))
    assert response.raw["pull_request_url"] is None and response.raw["change_set"]["patch"]
    assert "Pull request" not in response.text
    assert sim.requests("get_source") == []  # the branch was given: no lookup of the default one
    body = sim.requests("create_session")[0]["json"]
    assert (body["title"], body["automationMode"]) == ("Cache", "AUTOMATION_MODE_UNSPECIFIED")


def test_polls_are_few_and_grow_to_the_poll_interval(sim):
    """Each poll is one read of the session and one of the new activities; the pauses double from 2 s to
    poll_interval. The simulated clock runs only while the fake sleep advances it."""
    sim.set_speed(0.001)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        sim.advance(seconds)

    hook = JulesManagedAgentHook()
    ask_ = Ask(source="sources/github/bobalover/boba", prompt="Add a cache", timeout=600, poll_interval=15)
    answer = Invocation(hook, ask_, sleep=sleep).run()
    assert answer.result["outcome"] == "completed"
    assert sleeps[:4] == [2, 4, 8, 15] and set(sleeps[4:]) == {15}
    polls = len(sim.requests("get_session"))
    assert polls == len(sleeps) + 1 <= 14  # a session of about two simulated minutes
    activity_reads = sim.requests("list_activities")
    assert len(activity_reads) == polls
    # Once there is an activity, each read asks only for the newer ones.
    filtered = ["create_time>" in str(r["query"]) for r in activity_reads]
    assert filtered == sorted(filtered) and filtered[-1]


# ------------------------------------------------------------------------------------------ rejected
def test_a_failed_session_is_rejected_and_the_group_does_not_fail_over(sim, standby):
    group = FailoverManagedAgentClient([agent(), standby])
    with pytest.raises(ManagedAgentRejected, match="Jules encountered an error when working on the task"):
        group.invoke(ask("Upgrade the build sim:scenario=failure"))
    assert len(sim.requests("create_session")) == 1  # the standby was not asked the same thing


def test_an_empty_prompt_is_rejected_before_any_request(sim):
    with pytest.raises(ManagedAgentRejected, match="The prompt is empty"):
        agent().invoke(ask("   "))
    assert sim.requests() == []


def test_the_toolset_turns_a_rejection_into_a_retry_of_the_calling_model(sim):
    from airflow.providers.common.ai.toolsets import ManagedAgentToolset
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    prompts = iter(["Upgrade the build sim:scenario=failure", "Fix the flaky test in tests/test_add.py"])
    retries: list[str] = []

    def model(messages: list[Any], info: Any) -> ModelResponse:
        last = messages[-1].parts[-1]
        # A ModelRetry reaches the model as a retry prompt (a ToolReturnPart with outcome "retried" in
        # pydantic-ai 2.x, a RetryPromptPart before).
        if isinstance(last, RetryPromptPart) or getattr(last, "outcome", None) == "retried":
            retries.append(str(last.content))
        elif isinstance(last, ToolReturnPart):
            return ModelResponse(parts=[TextPart(str(last.content))])
        return ModelResponse(parts=[ToolCallPart("ask_jules", {"prompt": next(prompts)})])

    toolset = ManagedAgentToolset(agent(), tool_name="ask_jules", timeout=60)
    result = Agent(FunctionModel(model), toolsets=[toolset]).run_sync("Fix the build")
    (retry,) = retries
    assert "Jules encountered an error when working on the task" in retry
    assert "Pull request: https://github.com/bobalover/boba/pull/" in result.output
    assert [r["json"]["prompt"] for r in sim.requests("create_session")] == [
        "Upgrade the build sim:scenario=failure",
        "Fix the flaky test in tests/test_add.py",
    ]


# ------------------------------------------------------------------------------------------ terminal
def test_a_refused_key_is_terminal_and_the_group_fails_over_to_the_standby(sim, revoked, standby, caplog):
    with pytest.raises(ManagedAgentInvocationError, match="Check the API key"):
        revoked.invoke(ask("Add a cache"))
    with caplog.at_level(logging.INFO):
        response = FailoverManagedAgentClient([revoked, standby]).invoke(ask("Add a cache"))
    assert response.raw["outcome"] == "completed"
    assert "served by standby" in caplog.text
    assert statuses(sim, "create_session") == [200]


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("unknown repository", "NOT_FOUND"),
        ("quota", "daily Jules session quota"),
        ("re-targeting option", "would re-target the call"),
        ("unknown session", "NOT_FOUND"),
        ("session of another repository", "works on sources/github/bobalover/boba"),
    ],
)
def test_what_nothing_on_the_agent_side_recovers_is_terminal(sim, case, fragment):
    bound, request = agent(), ask("Add a cache")
    if case == "unknown repository":
        bound = JulesManagedAgentHook(**FAST).agent("nobody/nothing")
    elif case == "quota":
        sim.replace_config(daily_quota=0)
    elif case == "re-targeting option":
        request = ask("Add a cache", vendor_options={"source": "acme/web"})
    elif case == "unknown session":
        request = ask("Add a cache", session_id="12345678901234567890")
    else:
        session_id = bound.invoke(ask("Add a cache")).session_id
        bound = JulesManagedAgentHook(**FAST).agent("myorg/myrepo")
        request = ask("Add a cache", session_id=session_id)
    with pytest.raises(ManagedAgentInvocationError, match=fragment):
        bound.invoke(request)
    assert len(sim.requests("send_message")) == 0


# ------------------------------------------------------------------------------------------ transient
@pytest.mark.parametrize(
    ("status", "error", "attempts"),
    [
        (503, JulesServerError, 1),  # a 5xx on create is never retried by the client (it may have created)
        (429, JulesRateLimitError, 2),  # a 429 is, within the policy: both attempts refused
    ],
)
def test_a_transient_failure_propagates_unchanged_and_the_group_fails_over(
    sim, standby, status, error, attempts
):
    quick = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.01)
    primary = agent(retry_policy=quick)
    sim.inject(route="create_session", status=status, count=attempts)
    with pytest.raises(error):
        primary.invoke(ask("Add a cache"))
    assert statuses(sim, "create_session") == [status] * attempts
    sim.inject(route="create_session", status=status, count=attempts)
    response = FailoverManagedAgentClient([primary, standby]).invoke(ask("Add a cache"))
    assert response.raw["outcome"] == "completed"
    assert statuses(sim, "create_session") == [status] * (2 * attempts) + [200]  # the standby's
    assert sim.sessions_created == 1


def test_the_timeout_ends_the_wait_and_archives_the_session(sim):
    started = time.monotonic()
    with pytest.raises(JulesInvocationTimeout, match=r"did not finish within timeout=1\.5 s") as caught:
        agent().invoke(ask("Tidy the imports sim:scenario=stuck", timeout=1.5))
    assert time.monotonic() - started < 1.5 + 3  # the deadline, plus the one archive call and a busy machine
    assert isinstance(caught.value, TimeoutError)
    (archived,) = sim.requests("archive_session")
    assert archived["path"].endswith(f"/sessions/{caught.value.session_id}:archive")


def test_the_timeout_cuts_a_call_that_does_not_answer(sim):
    sim.inject(route="get_source", status=None, latency_ms=10_000)
    started = time.monotonic()
    with pytest.raises(JulesInvocationTimeout, match="Starting the Jules session did not finish"):
        agent().invoke(ask("Add a cache", timeout=1))
    assert time.monotonic() - started < 1 + 2
    assert sim.requests("create_session") == []


def test_a_session_abandoned_with_on_give_up_keep_stays(sim):
    with pytest.raises(JulesInvocationTimeout):
        agent(on_give_up="keep").invoke(ask("Tidy the imports sim:scenario=stuck", timeout=1))
    assert sim.requests("archive_session") == sim.requests("delete_session") == []


# ------------------------------------------------------------------------------------------ @task.agent
@pytest.mark.dagtest
def test_task_agent_hands_the_coding_work_to_jules(airflow_db, sim, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LLM_TEST", json.dumps({"conn_type": "pydanticai", "extra": {"model": "test"}})
    )
    dags = load_dag_module(REPO / "tests" / "dags" / "jules_managed_agent_dags.py")
    run = run_dag(dags.dag)
    assert (run.state, run.task_states) == ("success", {"fix": "success"})
    output = str(run.xcom("fix"))
    (create,) = sim.requests("create_session")
    assert create["json"]["sourceContext"]["source"] == "sources/github/bobalover/boba"
    assert "Pull request: https://github.com/bobalover/boba/pull/" in output
