"""Unit tests of airflow_provider_jules.results: one behaviour per test, exact values, no network."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from airflow_provider_jules.results import (
    FAILED_WITHOUT_REASON,
    MAX_TITLE_CHARS,
    RESULT_KEYS,
    Outcome,
    build_result,
    classify_outcome,
    format_activity,
    patch_files,
)

Json = dict[str, Any]

SESSION_ID = "14550388554331055113"  # Q25: larger than int64
SOURCE = "sources/github/bobalover/boba"
BASE = "36ead0a4caefc451b9652ed926a15af9570f4f35"

# Doc example 7 (developers.google.com/jules/api quickstart, earlier 11-activity version), verbatim: an
# auto-approved plan, bash outputs, cumulative change sets (patches blanked by the docs), media, completion.
DOC_EXAMPLE_7_ACTIVITIES: list[dict[str, Any]] = [
    {
        "name": "sessions/14550388554331055113/activities/02200cce44f746308651037e4a18caed",
        "createTime": "2025-10-03T05:43:42.801654Z",
        "originator": "agent",
        "planGenerated": {
            "plan": {
                "id": "5103d604240042cd9f59a4cb2355643a",
                "steps": [
                    {
                        "id": "705a61fc8ec24a98abc9296a3956fb6b",
                        "title": "Setup the environment. I will install the dependencies to run the app.",
                    },
                    {
                        "id": "bb5276efad354794a4527e9ad7c0cd42",
                        "title": "Modify `src/App.js`. I will replace the existing "
                        "React boilerplate with a simple Boba-themed "
                        "component. This will include a title and a list "
                        "of boba options.",
                        "index": 1,
                    },
                    {
                        "id": "377c9a1c91764dc794a618a06772e3d8",
                        "title": "Modify `src/App.css`. I will update the CSS to "
                        "provide a fresh, modern look for the Boba app.",
                        "index": 2,
                    },
                    {
                        "id": "335802b585b449aeabb855c722cd9c40",
                        "title": "Frontend Verification. I will use the "
                        "`frontend_verification_instructions` tool to get "
                        "instructions on how to write a Playwright script "
                        "to verify the frontend application and generate "
                        "a screenshot of the changes.",
                        "index": 3,
                    },
                    {
                        "id": "3e4cc97c7b2448668d1ac75b8c7b7d69",
                        "title": "Submit the changes. Once the app is looking good "
                        "and verified, I will submit my work.",
                        "index": 4,
                    },
                ],
            }
        },
        "id": "02200cce44f746308651037e4a18caed",
    },
    {
        "name": "sessions/14550388554331055113/activities/2918fac8bc54450a9cbda423b7688413",
        "createTime": "2025-10-03T05:43:44.954030Z",
        "originator": "user",
        "planApproved": {"planId": "5103d604240042cd9f59a4cb2355643a"},
        "id": "2918fac8bc54450a9cbda423b7688413",
    },
    {
        "name": "sessions/14550388554331055113/activities/5b3acd1b3ca2439f9cbaefaccf7f709a",
        "createTime": "2025-10-03T05:44:16.700231Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "Ran bash command",
            "description": "Command: \n"
            "npm install\n"
            "Output: added 1326 packages, and audited 1327 packages in "
            "25s\n"
            "\n"
            "268 packages are looking for fundingExit Code: 0",
        },
        "artifacts": [
            {
                "bashOutput": {
                    "command": "\nnpm install",
                    "output": "added 1326 packages, and audited 1327 packages in 25s\n"
                    "\n"
                    "268 packages are looking for funding",
                }
            }
        ],
        "id": "5b3acd1b3ca2439f9cbaefaccf7f709a",
    },
    {
        "name": "sessions/14550388554331055113/activities/1ad545d812614a5b84c23a33f6120063",
        "createTime": "2025-10-03T05:44:19.502115Z",
        "originator": "agent",
        "progressUpdated": {"title": "I have installed the dependencies using `npm install`."},
        "artifacts": [
            {
                "changeSet": {
                    "source": "sources/github/bobalover/boba",
                    "gitPatch": {"baseCommitId": "36ead0a4caefc451b9652ed926a15af9570f4f35"},
                }
            }
        ],
        "id": "1ad545d812614a5b84c23a33f6120063",
    },
    {
        "name": "sessions/14550388554331055113/activities/3a2b46329f894ebea1faf6b8fb956428",
        "createTime": "2025-10-03T05:44:29.265425Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "I have replaced the boilerplate in `src/App.js` with a Boba-themed component."
        },
        "artifacts": [
            {
                "changeSet": {
                    "source": "sources/github/bobalover/boba",
                    "gitPatch": {
                        "unidiffPatch": "",
                        "baseCommitId": "36ead0a4caefc451b9652ed926a15af9570f4f35",
                    },
                }
            }
        ],
        "id": "3a2b46329f894ebea1faf6b8fb956428",
    },
    {
        "name": "sessions/14550388554331055113/activities/4e8dd66f15e247e3ae5e48eeff89ef47",
        "createTime": "2025-10-03T05:44:37.721013Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "I have updated the CSS in `src/App.css` to give the app a fresh, modern look."
        },
        "artifacts": [
            {"changeSet": {"source": "sources/github/bobalover/boba", "gitPatch": {"unidiffPatch": ""}}}
        ],
        "id": "4e8dd66f15e247e3ae5e48eeff89ef47",
    },
    {
        "name": "sessions/14550388554331055113/activities/100901155a4141d3b37e8e8d2950f3b7",
        "createTime": "2025-10-03T05:44:51.048996Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "Ran bash command",
            "description": "Command: \nOutput: Command failed due to an internal error.\nExit Code: 1",
        },
        "artifacts": [{"bashOutput": {"output": "Command failed due to an internal error.", "exitCode": 1}}],
        "id": "100901155a4141d3b37e8e8d2950f3b7",
    },
    {
        "name": "sessions/14550388554331055113/activities/a76b35353eda42d09b1c37aedaa56047",
        "createTime": "2025-10-03T05:47:49.628363Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "Frontend verification",
            "description": "Agent provided UI verification.",
        },
        "artifacts": [{"media": {"data": "", "mimeType": "image/png"}}],
        "id": "a76b35353eda42d09b1c37aedaa56047",
    },
    {
        "name": "sessions/14550388554331055113/activities/db089c7052024cbeb9e37b8c584bc964",
        "createTime": "2025-10-03T05:47:53.669642Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "I have successfully verified the frontend changes by building the app, runnin...",
            "description": "I have successfully verified the frontend changes by "
            "building the app, running a Playwright script, and "
            "inspecting the resulting screenshot.",
        },
        "artifacts": [
            {
                "changeSet": {
                    "source": "sources/github/bobalover/boba",
                    "gitPatch": {
                        "unidiffPatch": "",
                        "baseCommitId": "36ead0a4caefc451b9652ed926a15af9570f4f35",
                    },
                }
            }
        ],
        "id": "db089c7052024cbeb9e37b8c584bc964",
    },
    {
        "name": "sessions/14550388554331055113/activities/890e16e30dbb4bf99a92613bdccec212",
        "createTime": "2025-10-03T05:48:14.434427Z",
        "originator": "agent",
        "progressUpdated": {
            "title": "Code reviewed",
            "description": 'The user wants to create a "boba app". This is a very '
            "open-ended request, but the agent's implementation suggests "
            "the goal is to create a simple, static web page about boba.",
        },
        "id": "890e16e30dbb4bf99a92613bdccec212",
    },
    {
        "name": "sessions/14550388554331055113/activities/022837dbc0e940eabcc1bc53608e15fc",
        "createTime": "2025-10-03T05:48:35.523200Z",
        "originator": "agent",
        "sessionCompleted": {},
        "artifacts": [
            {
                "changeSet": {
                    "source": "sources/github/bobalover/boba",
                    "gitPatch": {
                        "unidiffPatch": "",
                        "baseCommitId": "36ead0a4caefc451b9652ed926a15af9570f4f35",
                        "suggestedCommitMessage": "feat: Create simple Boba "
                        "App\n"
                        "\n"
                        "This commit transforms the "
                        "default Create React App "
                        "boilerplate into a simple, "
                        "visually appealing "
                        "Boba-themed "
                        "application.",
                    },
                }
            }
        ],
        "id": "022837dbc0e940eabcc1bc53608e15fc",
    },
]


def session(state: str | None = "COMPLETED", **extra: Any) -> Json:
    resource: Json = {"name": f"sessions/{SESSION_ID}", "id": SESSION_ID, "title": "Boba App"}
    if state is not None:
        resource["state"] = state
    resource.update(extra)
    return resource


def plan_generated(plan_id: str = "p1", steps: list[Json] | None = None) -> Json:
    return {
        "originator": "agent",
        "planGenerated": {"plan": {"id": plan_id, "steps": steps or [{"id": "s1", "title": "Do it"}]}},
    }


def plan_approved(plan_id: str = "p1") -> Json:
    return {"originator": "user", "planApproved": {"planId": plan_id}}


def change_set_artifact(
    patch: str | None = None, base: str | None = BASE, message: str | None = None
) -> Json:
    git_patch: Json = {}
    if patch is not None:
        git_patch["unidiffPatch"] = patch
    if base is not None:
        git_patch["baseCommitId"] = base
    if message is not None:
        git_patch["suggestedCommitMessage"] = message
    return {"changeSet": {"source": SOURCE, "gitPatch": git_patch}}


def with_artifacts(activity: Json, *artifacts: Json) -> Json:
    return {**activity, "artifacts": list(artifacts)}


def diff(path: str, added: str = "new line") -> str:
    return (
        f"diff --git a/{path} b/{path}\n"
        "index 1111111..2222222 100644\n"
        f"--- a/{path}\n"
        f"+++ b/{path}\n"
        "@@ -1 +1 @@\n"
        "-old line\n"
        f"+{added}\n"
    )


PATCH_APP = diff("src/App.js")
PATCH_APP_AND_CSS = diff("src/App.js") + diff("src/App.css")
PR: Json = {
    "pullRequest": {
        "url": "https://github.com/bobalover/boba/pull/35",
        "title": "Create a boba app",
        "description": "This change adds the initial implementation of a boba app.",
    }
}


def example_7_with_patches() -> list[Json]:
    """Doc example 7 with its blanked patches filled in: cumulative, the last one is the full diff."""
    activities = copy.deepcopy(DOC_EXAMPLE_7_ACTIVITIES)
    activities[4]["artifacts"][0]["changeSet"]["gitPatch"]["unidiffPatch"] = PATCH_APP
    activities[5]["artifacts"][0]["changeSet"]["gitPatch"]["unidiffPatch"] = PATCH_APP_AND_CSS
    activities[10]["artifacts"][0]["changeSet"]["gitPatch"]["unidiffPatch"] = PATCH_APP_AND_CSS
    return activities


# ------------------------------------------------------------------------------------------ shape


def test_result_has_exactly_the_listed_keys() -> None:
    result = build_result(session(), DOC_EXAMPLE_7_ACTIVITIES)

    assert tuple(result) == RESULT_KEYS
    assert set(result) == {
        "session_id",
        "session_name",
        "url",
        "title",
        "state",
        "outcome",
        "pull_requests",
        "pull_request_url",
        "change_set",
        "plan",
        "last_agent_message",
        "failure_reason",
        "review",
        "media",
        "media_dropped",
    }
    assert result["review"] == []  # the review room fills it (review="hitl")


def test_change_set_has_exactly_the_listed_keys() -> None:
    change_set = build_result(session(), example_7_with_patches())["change_set"]

    assert list(change_set) == [
        "source",
        "base_commit_id",
        "suggested_commit_message",
        "patch",
        "patch_uri",
        "files_changed",
        "patch_bytes",
        "truncated",
    ]


def test_result_survives_a_json_round_trip_unchanged() -> None:
    activities = [*example_7_with_patches(), {"agentMessaged": {"agentMessage": "Done!"}}]
    result = build_result(session(outputs=[PR], url="https://jules.google.com/session/1"), activities)

    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_result_contains_only_json_types() -> None:
    def check(value: object) -> None:
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for item in value.values():
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert value is None or type(value) in (str, int, bool)

    check(build_result(session(outputs=[PR]), example_7_with_patches(), timed_out=True))


# ------------------------------------------------------------------------------------ doc example 7


def test_doc_example_7_completed_without_outputs_reads_change_set_from_activities() -> None:
    result = build_result(session(url="https://jules.google.com/session/1"), DOC_EXAMPLE_7_ACTIVITIES)

    assert result == {
        "session_id": SESSION_ID,
        "session_name": f"sessions/{SESSION_ID}",
        "url": "https://jules.google.com/session/1",
        "title": "Boba App",
        "state": "COMPLETED",
        "outcome": "completed_without_changes",  # the docs blanked every unidiffPatch
        "pull_requests": [],
        "pull_request_url": None,
        "change_set": {
            "source": SOURCE,
            "base_commit_id": BASE,
            "suggested_commit_message": "feat: Create simple Boba App\n\nThis commit transforms the default "
            "Create React App boilerplate into a simple, visually appealing Boba-themed application.",
            "patch": None,
            "patch_uri": None,
            "files_changed": [],
            "patch_bytes": 0,
            "truncated": False,
        },
        "plan": {
            "id": "5103d604240042cd9f59a4cb2355643a",
            "steps": [
                {
                    "index": 0,
                    "title": "Setup the environment. I will install the dependencies to run the app.",
                    "description": None,
                },
                {
                    "index": 1,
                    "title": "Modify `src/App.js`. I will replace the existing React boilerplate with a "
                    "simple Boba-themed component. This will include a title and a list of boba options.",
                    "description": None,
                },
                {
                    "index": 2,
                    "title": "Modify `src/App.css`. I will update the CSS to provide a fresh, modern look "
                    "for the Boba app.",
                    "description": None,
                },
                {
                    "index": 3,
                    "title": "Frontend Verification. I will use the `frontend_verification_instructions` "
                    "tool to get instructions on how to write a Playwright script to verify the frontend "
                    "application and generate a screenshot of the changes.",
                    "description": None,
                },
                {
                    "index": 4,
                    "title": "Submit the changes. Once the app is looking good and verified, I will submit "
                    "my work.",
                    "description": None,
                },
            ],
        },
        "last_agent_message": None,
        "failure_reason": None,
        "review": [],
        "media": [],
        "media_dropped": 1,  # the "Frontend verification" screenshot: no writer (and the docs blanked it)
    }


def test_doc_example_7_with_patches_is_completed_with_the_final_cumulative_patch() -> None:
    result = build_result(session(), example_7_with_patches())

    assert result["outcome"] == "completed"
    assert result["change_set"]["patch"] == PATCH_APP_AND_CSS
    assert result["change_set"]["files_changed"] == ["src/App.css", "src/App.js"]
    assert result["change_set"]["patch_bytes"] == len(PATCH_APP_AND_CSS.encode())
    assert result["change_set"]["base_commit_id"] == BASE
    assert result["change_set"]["suggested_commit_message"].startswith("feat: Create simple Boba App")


def test_doc_example_7_log_lines() -> None:
    lines = [format_activity(a) for a in example_7_with_patches()]

    assert lines == [
        "Plan generated (5 steps): 1. Setup the environment. I will install the dependencies to run the "
        "app. | 2. Modify `src/App.js`. I will replace the existing React boilerplate with a simpl… | "
        "3. Modify `src/App.css`. I will update the CSS to provide a fresh, modern look for… | "
        "4. Frontend Verification. I will use the `frontend_verification_instructions` tool… | "
        "5. Submit the changes. Once the app is looking good and verified, I will submit my…",
        "Plan approved (by user)",
        "Progress: Ran bash command - Command: npm install Output: added 1326 packages, and audited 1327 "
        "packages in 25s 268 packages are looking for fundingExit Code: 0",
        "Progress: I have installed the dependencies using `npm install`.",
        "Progress: I have replaced the boilerplate in `src/App.js` with a Boba-themed component.",
        "Progress: I have updated the CSS in `src/App.css` to give the app a fresh, modern look.",
        "Progress: Ran bash command - Command: Output: Command failed due to an internal error. Exit Code: 1",
        "Progress: Frontend verification - Agent provided UI verification.",
        "Progress: I have successfully verified the frontend changes by building the app, runnin... - I have "
        "successfully verified the frontend changes by building the app, running a Playwright script, and "
        "inspecting the resulting screenshot.",
        'Progress: Code reviewed - The user wants to create a "boba app". This is a very open-ended request, '
        "but the agent's implementation suggests the goal is to create a simple, static web page about boba.",
        "Session completed with a patch touching 2 files",
    ]


# ------------------------------------------------------------------------------------------ outcomes


def test_outcome_enum_has_the_eight_documented_values() -> None:
    assert sorted(o.value for o in Outcome) == [
        "awaiting_plan_approval",
        "awaiting_user_feedback",
        "completed",
        "completed_without_changes",
        "failed",
        "plan_not_approved",
        "running",
        "timed_out",
    ]
    assert Outcome("completed") is Outcome.COMPLETED
    assert isinstance(Outcome.COMPLETED, str)


def test_completed_with_pull_request_only_is_completed() -> None:
    result = build_result(session(outputs=[PR]), [])

    assert result["outcome"] == "completed"
    assert result["change_set"] is None


def test_completed_with_patch_only_is_completed() -> None:
    activities = [with_artifacts({"sessionCompleted": {}}, change_set_artifact(PATCH_APP))]

    assert build_result(session(), activities)["outcome"] == "completed"


def test_completed_with_approved_plan_and_nothing_delivered_is_completed_without_changes() -> None:
    activities = [plan_generated(), plan_approved(), {"sessionCompleted": {}}]

    result = build_result(session(), activities)

    assert result["outcome"] == "completed_without_changes"
    assert result["failure_reason"] is None


def test_completed_without_any_activity_is_completed_without_changes() -> None:
    assert build_result(session(), [])["outcome"] == "completed_without_changes"


def test_silent_completion_of_an_unapproved_plan_is_plan_not_approved() -> None:
    # Q15: a plan that nobody approved times out to COMPLETED with no outputs.
    result = build_result(session(), [plan_generated()])

    assert result["outcome"] == "plan_not_approved"
    assert result["failure_reason"] is None
    assert result["plan"] == {"id": "p1", "steps": [{"index": 0, "title": "Do it", "description": None}]}


def test_new_plan_after_an_approved_one_left_unapproved_is_plan_not_approved() -> None:
    activities = [plan_generated("p1"), plan_approved("p1"), plan_generated("p2")]

    assert build_result(session(), activities)["outcome"] == "plan_not_approved"


def test_unapproved_plan_with_a_pull_request_is_completed() -> None:
    assert build_result(session(outputs=[PR]), [plan_generated()])["outcome"] == "completed"


def test_unapproved_plan_with_a_patch_is_completed() -> None:
    activities = [plan_generated(), with_artifacts({"progressUpdated": {}}, change_set_artifact(PATCH_APP))]

    assert build_result(session(), activities)["outcome"] == "completed"


def test_empty_or_whitespace_patch_does_not_count_as_delivered() -> None:
    activities = [plan_generated(), with_artifacts({"sessionCompleted": {}}, change_set_artifact("  \n"))]

    assert build_result(session(), activities)["outcome"] == "plan_not_approved"


def test_failed_state_is_failed_with_the_last_reason() -> None:
    activities = [
        {"sessionFailed": {"reason": "Jules encountered an error when cloning the repo."}},
        {"sessionFailed": {"reason": "Jules encountered an error when working on the task."}},
    ]

    result = build_result(session("FAILED"), activities)

    assert result["outcome"] == "failed"
    assert result["failure_reason"] == "Jules encountered an error when working on the task."


def test_failed_state_without_a_reason_activity_uses_the_fallback_text() -> None:
    result = build_result(session("FAILED"), [{"sessionFailed": {}}])

    assert result["failure_reason"] == FAILED_WITHOUT_REASON
    assert FAILED_WITHOUT_REASON == (
        "Jules reported the session as FAILED without a reason; open the session to see why."
    )


def test_failed_reason_is_ignored_when_the_state_is_not_failed() -> None:
    # Q16: a failed session can resume; the state decides.
    activities = [{"sessionFailed": {"reason": "boom"}}, {"userMessaged": {"userMessage": "retry"}}]

    result = build_result(session("IN_PROGRESS"), activities)

    assert result["outcome"] == "running"
    assert result["failure_reason"] is None


def test_awaiting_plan_approval_state() -> None:
    result = build_result(session("AWAITING_PLAN_APPROVAL"), [plan_generated()])

    assert result["outcome"] == "awaiting_plan_approval"
    assert result["failure_reason"] is None


def test_awaiting_user_feedback_state_keeps_the_question() -> None:
    activities = [{"agentMessaged": {"agentMessage": "Which framework should I use?"}}]

    result = build_result(session("AWAITING_USER_FEEDBACK"), activities)

    assert result["outcome"] == "awaiting_user_feedback"
    assert result["last_agent_message"] == "Which framework should I use?"


@pytest.mark.parametrize(
    "state", ["QUEUED", "PLANNING", "IN_PROGRESS", "PAUSED", "STATE_UNSPECIFIED", "CANCELLED", "Completed"]
)
def test_every_other_state_is_running(state: str) -> None:
    assert build_result(session(state), [])["outcome"] == "running"


def test_missing_state_is_state_unspecified_and_running() -> None:
    result = build_result(session(None), [])

    assert result["state"] == "STATE_UNSPECIFIED"
    assert result["outcome"] == "running"


def test_unknown_state_is_kept_as_sent() -> None:
    assert build_result(session("SOMETHING_NEW"), [])["state"] == "SOMETHING_NEW"


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "IN_PROGRESS", "AWAITING_PLAN_APPROVAL"])
def test_timed_out_wins_over_any_state(state: str) -> None:
    result = build_result(
        session(state, outputs=[PR]), [], timed_out=True, timeout_reason="no progress for 3600 s"
    )

    assert result["outcome"] == "timed_out"
    assert result["state"] == state
    assert result["failure_reason"] == "no progress for 3600 s"


def test_timed_out_without_a_reason_uses_a_default_text_naming_the_state() -> None:
    result = build_result(session("IN_PROGRESS"), [], timed_out=True)

    assert result["failure_reason"] == (
        "Gave up waiting for the Jules session (last state IN_PROGRESS); it may still be running."
    )


@pytest.mark.parametrize(
    ("state", "activities", "timed_out", "expected"),
    [
        ("COMPLETED", [plan_generated()], False, Outcome.PLAN_NOT_APPROVED),
        ("COMPLETED", [plan_generated(), plan_approved()], False, Outcome.COMPLETED_WITHOUT_CHANGES),
        ("FAILED", [], False, Outcome.FAILED),
        ("QUEUED", [], False, Outcome.RUNNING),
        ("COMPLETED", [], True, Outcome.TIMED_OUT),
    ],
)
def test_classify_outcome_exposes_the_rule_alone(
    state: str, activities: list[Json], timed_out: bool, expected: Outcome
) -> None:
    outcome = classify_outcome(session(state), activities, timed_out=timed_out)

    assert outcome is expected
    assert build_result(session(state), activities, timed_out=timed_out)["outcome"] == expected.value


# ------------------------------------------------------------------------------------ ids and session


def test_twenty_digit_session_id_stays_a_string() -> None:
    result = build_result({"name": "sessions/18446744073709551615", "state": "QUEUED"}, [])

    assert result["session_id"] == "18446744073709551615"
    assert result["session_name"] == "sessions/18446744073709551615"
    assert json.loads(json.dumps(result))["session_id"] == "18446744073709551615"


def test_name_without_prefix_and_mismatched_id_uses_the_name() -> None:
    # Q1: jules.google example {"name": "1234567", "id": "abc123"}
    result = build_result({"name": "1234567", "id": "abc123", "state": "COMPLETED"}, [])

    assert (result["session_id"], result["session_name"]) == ("1234567", "sessions/1234567")


def test_session_without_usable_name_or_id_gives_none_ids() -> None:
    result = build_result({"state": "COMPLETED", "name": "bad/../name"}, [])

    assert (result["session_id"], result["session_name"]) == (None, None)


def test_missing_url_and_title_are_none() -> None:
    result = build_result({"name": "sessions/1"}, [])

    assert (result["url"], result["title"]) == (None, None)


def test_huge_title_is_cut_with_an_ellipsis() -> None:
    # Q21: the title can be the whole prompt.
    result = build_result(session(title="x" * 10_000), [])

    assert result["title"] == "x" * (MAX_TITLE_CHARS - 1) + "…"


# ------------------------------------------------------------------------------------ pull requests


def test_pull_requests_with_missing_base_and_head_ref_are_none() -> None:
    outputs = [
        PR,
        {"pullRequest": {"url": "https://github.com/o/r/pull/2", "baseRef": "main", "headRef": "jules-1-ab"}},
    ]

    result = build_result(session(outputs=outputs), [])

    assert result["pull_requests"] == [
        {
            "url": "https://github.com/bobalover/boba/pull/35",
            "title": "Create a boba app",
            "description": "This change adds the initial implementation of a boba app.",
            "base_ref": None,
            "head_ref": None,
        },
        {
            "url": "https://github.com/o/r/pull/2",
            "title": None,
            "description": None,
            "base_ref": "main",
            "head_ref": "jules-1-ab",
        },
    ]
    assert result["pull_request_url"] == "https://github.com/bobalover/boba/pull/35"


def test_no_outputs_means_no_pull_requests() -> None:
    result = build_result(session(), [])

    assert (result["pull_requests"], result["pull_request_url"]) == ([], None)


# -------------------------------------------------------------------------------------- change sets


def test_outputs_change_set_is_preferred_over_activities() -> None:
    outputs = [{"changeSet": change_set_artifact(PATCH_APP_AND_CSS, message="from outputs")["changeSet"]}]
    activities = [
        with_artifacts({"sessionCompleted": {}}, change_set_artifact(PATCH_APP, message="from act"))
    ]

    change_set = build_result(session(outputs=outputs), activities)["change_set"]

    assert change_set["patch"] == PATCH_APP_AND_CSS
    assert change_set["suggested_commit_message"] == "from outputs"


def test_activities_patch_is_used_when_the_outputs_change_set_has_none() -> None:
    outputs = [{"changeSet": {"source": SOURCE, "gitPatch": {"baseCommitId": BASE}}}]
    activities = [with_artifacts({"sessionCompleted": {}}, change_set_artifact(PATCH_APP))]

    assert build_result(session(outputs=outputs), activities)["change_set"]["patch"] == PATCH_APP


def test_last_cumulative_change_set_wins() -> None:
    activities = [
        with_artifacts({"progressUpdated": {"title": "a"}}, change_set_artifact(PATCH_APP)),
        with_artifacts({"progressUpdated": {"title": "b"}}, change_set_artifact(PATCH_APP_AND_CSS)),
        with_artifacts({"progressUpdated": {"title": "c"}}, change_set_artifact("")),  # Q20 empty
    ]

    change_set = build_result(session(), activities)["change_set"]

    assert change_set["patch"] == PATCH_APP_AND_CSS
    assert change_set["files_changed"] == ["src/App.css", "src/App.js"]


def test_base_commit_and_message_come_from_the_last_change_set_that_has_them() -> None:
    activities = [
        with_artifacts({"progressUpdated": {}}, change_set_artifact(PATCH_APP, base="aaa", message="first")),
        with_artifacts({"progressUpdated": {}}, change_set_artifact(PATCH_APP_AND_CSS, base="bbb")),
        with_artifacts({"sessionCompleted": {}}, change_set_artifact(None, base=None)),
    ]

    change_set = build_result(session(), activities)["change_set"]

    assert change_set["base_commit_id"] == "bbb"
    assert change_set["suggested_commit_message"] == "first"


def test_git_patch_without_unidiff_patch_key_is_tolerated() -> None:
    # Q20: a gitPatch with no unidiffPatch key broke a client.
    activities = [with_artifacts({"sessionCompleted": {}}, {"changeSet": {"gitPatch": {}}})]

    assert build_result(session(), activities)["change_set"] == {
        "source": None,
        "base_commit_id": None,
        "suggested_commit_message": None,
        "patch": None,
        "patch_uri": None,
        "files_changed": [],
        "patch_bytes": 0,
        "truncated": False,
    }


def test_change_set_is_none_without_any_change_set() -> None:
    activities = [with_artifacts({"progressUpdated": {}}, {"bashOutput": {"command": "ls"}})]

    assert build_result(session(), activities)["change_set"] is None


# ------------------------------------------------------------------------------------ files changed


def test_files_changed_lists_modified_added_deleted_renamed_copied_and_binary_files() -> None:
    patch = (
        "diff --git a/src/App.js b/src/App.js\n"
        "index 1..2 100644\n"
        "--- a/src/App.js\n"
        "+++ b/src/App.js\n"
        "@@ -1,2 +1,2 @@\n"
        " keep\n"
        "-old\n"
        "+new\n"
        "diff --git a/src/new.js b/src/new.js\n"
        "new file mode 100644\n"
        "index 0000000..3\n"
        "--- /dev/null\n"
        "+++ b/src/new.js\n"
        "@@ -0,0 +1 @@\n"
        "+hello\n"
        "diff --git a/src/gone.js b/src/gone.js\n"
        "deleted file mode 100644\n"
        "index 4..0000000\n"
        "--- a/src/gone.js\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-bye\n"
        "diff --git a/old name.txt b/new name.txt\n"
        "similarity index 100%\n"
        "rename from old name.txt\n"
        "rename to new name.txt\n"
        "diff --git a/lib/a.py b/lib/b.py\n"
        "similarity index 90%\n"
        "rename from lib/a.py\n"
        "rename to lib/b.py\n"
        "--- a/lib/a.py\n"
        "+++ b/lib/b.py\n"
        "@@ -1 +1 @@\n"
        "-x = 1\n"
        "+x = 2\n"
        "diff --git a/c.txt b/d.txt\n"
        "similarity index 100%\n"
        "copy from c.txt\n"
        "copy to d.txt\n"
        "diff --git a/img/logo.png b/img/logo.png\n"
        "index 5..6 100644\n"
        "Binary files a/img/logo.png and b/img/logo.png differ\n"
    )

    assert patch_files(patch) == [
        "c.txt",
        "d.txt",
        "img/logo.png",
        "lib/a.py",
        "lib/b.py",
        "new name.txt",
        "old name.txt",
        "src/App.js",
        "src/gone.js",
        "src/new.js",
    ]


def test_files_changed_from_a_plain_unified_diff_without_git_headers() -> None:
    patch = (
        "--- a/README.md\t2025-10-03 05:43:42\n"
        "+++ b/README.md\t2025-10-03 05:44:00\n"
        "@@ -1 +1,2 @@\n"
        " title\n"
        "+more\n"
        "--- /dev/null\n"
        "+++ b/docs/new.md\n"
        "@@ -0,0 +1 @@\n"
        "+new\n"
    )

    assert patch_files(patch) == ["README.md", "docs/new.md"]


def test_files_changed_ignores_removed_lines_that_look_like_headers() -> None:
    patch = (
        "diff --git a/db/schema.sql b/db/schema.sql\n"
        "--- a/db/schema.sql\n"
        "+++ b/db/schema.sql\n"
        "@@ -1,3 +1,3 @@\n"
        "--- a/not/a/file.sql\n"
        "+++ b/not/a/file.sql\n"
        " SELECT 1;\n"
        "diff --git a/z.txt b/z.txt\n"
    )

    assert patch_files(patch) == ["db/schema.sql", "z.txt"]


def test_files_changed_unquotes_git_quoted_paths_and_handles_crlf() -> None:
    patch = (
        'diff --git "a/t\\303\\251st file.txt" "b/t\\303\\251st file.txt"\r\n'
        '--- "a/t\\303\\251st file.txt"\r\n'
        '+++ "b/t\\303\\251st file.txt"\r\n'
        "@@ -1 +1 @@\r\n"
        "-a\r\n"
        "+b\r\n"
    )

    assert patch_files(patch) == ["tést file.txt"]


def test_files_changed_of_garbage_is_empty() -> None:
    assert patch_files("not a diff\n@@ nonsense @@\n+++\n---\n") == []


# ---------------------------------------------------------------------------------- patch size limit


def big_patch(lines: int) -> str:
    body = "".join(f"+line {i} ünïcödé\n" for i in range(lines))
    return f"diff --git a/big.txt b/big.txt\n--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,{lines} @@\n" + body


def completed_with(patch: str) -> list[Json]:
    return [with_artifacts({"sessionCompleted": {}}, change_set_artifact(patch))]


def test_patch_over_the_limit_goes_to_write_patch_once() -> None:
    patch = big_patch(200)
    calls: list[str] = []

    def write_patch(text: str) -> str:
        calls.append(text)
        return "s3://bucket/jules/patch.diff"

    change_set = build_result(
        session(), completed_with(patch), inline_patch_limit=1000, write_patch=write_patch
    )["change_set"]

    assert calls == [patch]
    assert change_set["patch"] is None
    assert change_set["patch_uri"] == "s3://bucket/jules/patch.diff"
    assert change_set["truncated"] is False
    assert change_set["patch_bytes"] == len(patch.encode("utf-8"))
    assert change_set["files_changed"] == ["big.txt"]


def test_patch_over_the_limit_without_write_patch_is_truncated_at_a_line_boundary() -> None:
    patch = big_patch(200)

    change_set = build_result(session(), completed_with(patch), inline_patch_limit=1000)["change_set"]

    kept = change_set["patch"]
    assert change_set["truncated"] is True
    assert change_set["patch_uri"] is None
    assert change_set["patch_bytes"] == len(patch.encode("utf-8"))
    assert len(kept.encode("utf-8")) <= 1000
    assert len(kept.encode("utf-8")) >= 500
    assert kept.encode("utf-8").decode("utf-8") == kept
    assert patch.startswith(kept)
    assert kept.endswith("\n")
    assert change_set["files_changed"] == ["big.txt"]


def test_truncation_of_a_single_long_line_cuts_on_a_utf8_boundary() -> None:
    patch = "+" + "é" * 1000  # 2001 bytes, no newline to cut at
    result = build_result(session(), completed_with(patch), inline_patch_limit=100)

    kept = result["change_set"]["patch"]
    assert kept == "+" + "é" * 49  # 99 bytes: the 50th "é" would need bytes 99-100
    assert len(kept.encode("utf-8")) == 99


def test_patch_exactly_at_the_limit_stays_inline_and_write_patch_is_not_called() -> None:
    limit = len(PATCH_APP.encode("utf-8"))

    def write_patch(text: str) -> str:
        raise AssertionError("must not be called")

    change_set = build_result(
        session(), completed_with(PATCH_APP), inline_patch_limit=limit, write_patch=write_patch
    )["change_set"]

    assert (change_set["patch"], change_set["patch_uri"], change_set["truncated"]) == (PATCH_APP, None, False)


def test_default_inline_limit_keeps_a_normal_patch() -> None:
    change_set = build_result(session(), completed_with(big_patch(1000)))["change_set"]

    assert change_set["patch"] == big_patch(1000)
    assert change_set["truncated"] is False


def no_uri(patch: str) -> Any:
    return None


def test_write_patch_returning_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="write_patch must return"):
        build_result(session(), completed_with(big_patch(100)), inline_patch_limit=10, write_patch=no_uri)


def test_negative_inline_patch_limit_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="inline_patch_limit"):
        build_result(session(), [], inline_patch_limit=-1)


def test_lone_surrogate_in_a_patch_does_not_raise() -> None:
    patch = json.loads('"diff --git a/x b/x\\n+\\ud800\\n"')

    change_set = build_result(session(), completed_with(patch), inline_patch_limit=5)["change_set"]

    assert change_set["files_changed"] == ["x"]
    assert change_set["truncated"] is True


# ------------------------------------------------------------------------------ plan and messages


def test_plan_step_with_omitted_index_and_description_defaults_to_zero_and_none() -> None:
    # Q20: index 0 and empty descriptions are omitted on the wire.
    steps: list[Json] = [
        {"id": "a", "title": "First"},
        {"id": "b", "title": "Second", "index": 1, "description": "More"},
    ]

    plan = build_result(session(), [plan_generated("p9", steps)])["plan"]

    assert plan == {
        "id": "p9",
        "steps": [
            {"index": 0, "title": "First", "description": None},
            {"index": 1, "title": "Second", "description": "More"},
        ],
    }


def test_last_plan_wins() -> None:
    activities = [plan_generated("p1"), plan_approved("p1"), plan_generated("p2"), plan_approved("p2")]

    assert build_result(session(), activities)["plan"]["id"] == "p2"


def test_no_plan_is_none() -> None:
    assert build_result(session(), [{"progressUpdated": {"title": "x"}}])["plan"] is None


def test_last_agent_message_wins() -> None:
    activities: list[Json] = [
        {"agentMessaged": {"agentMessage": "first"}},
        {"userMessaged": {"userMessage": "answer"}},
        {"agentMessaged": {"agentMessage": "second"}},
        {"agentMessaged": {}},
    ]

    assert build_result(session(), activities)["last_agent_message"] == "second"


def test_activities_are_reordered_by_create_time_when_all_have_one() -> None:
    activities = [
        {"createTime": "2025-10-03T05:44:00.000002Z", "agentMessaged": {"agentMessage": "newest"}},
        {"createTime": "2025-10-03T05:44:00.000001Z", "agentMessaged": {"agentMessage": "older"}},
    ]

    assert build_result(session(), activities)["last_agent_message"] == "newest"


def test_given_order_is_kept_when_a_create_time_is_missing() -> None:
    activities: list[Json] = [
        {"createTime": "2025-10-03T05:44:00Z", "agentMessaged": {"agentMessage": "later in list"}},
        {"agentMessaged": {"agentMessage": "last in list"}},
    ]

    assert build_result(session(), activities)["last_agent_message"] == "last in list"


# ------------------------------------------------------------------------------------------ tolerance


def test_activities_without_union_member_and_unknown_kinds_are_tolerated() -> None:
    # Q13: the jules.google list example starts with an activity that has only a description.
    activities: list[Json] = [
        {"name": "1234567/activities/act1", "originator": "system", "description": "Session started"},
        {"originator": "agent", "codeReviewed": {"verdict": "ok"}},
        {},
        plan_generated(),
        plan_approved(),
    ]

    result = build_result(session(), activities)

    assert result["outcome"] == "completed_without_changes"
    assert result["plan"] is not None


def test_junk_everywhere_never_raises() -> None:
    resource = {
        "name": f"sessions/{SESSION_ID}",
        "state": 7,
        "title": ["not", "a", "string"],
        "url": 3,
        "outputs": [None, "x", {"unknownOutput": {}}, {"pullRequest": "nope"}, {"changeSet": []}, PR],
    }
    activities: list[Any] = [
        None,
        "junk",
        42,
        ["list"],
        {"planGenerated": None},
        {"planGenerated": {"plan": {"steps": [None, "s", {"index": "2", "title": 5}, {"index": True}]}}},
        {"agentMessaged": "text"},
        {"sessionFailed": []},
        {"createTime": "not a time", "artifacts": "nope"},
        {
            "artifacts": [
                None,
                {"media": {"data": "AAAA"}},
                {"changeSet": {"gitPatch": "nope"}},
                {"future": {}},
            ]
        },
        {"artifacts": [{"changeSet": {"gitPatch": {"unidiffPatch": 12}}}]},
    ]

    result = build_result(resource, activities)

    assert result["state"] == "STATE_UNSPECIFIED"
    assert (result["title"], result["url"]) == (None, None)
    assert result["outcome"] == "running"
    assert result["pull_request_url"] == "https://github.com/bobalover/boba/pull/35"
    assert result["plan"] == {
        "id": None,
        "steps": [
            {"index": 2, "title": None, "description": None},
            {"index": 0, "title": None, "description": None},
        ],
    }
    assert result["change_set"]["patch"] is None
    assert [format_activity(a) for a in activities] == [
        None,
        None,
        None,
        None,
        "Plan generated (0 steps)",
        "Plan generated (2 steps): 1. (untitled) | 2. (untitled)",
        "Jules says:",
        "Session failed",
        None,
        None,
        None,
    ]


def test_non_dict_session_and_none_activities_do_not_raise() -> None:
    result = build_result(None, None)  # type: ignore[arg-type]

    assert result["session_id"] is None
    assert result["outcome"] == "running"
    assert classify_outcome(None, None) is Outcome.RUNNING  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ format_activity


def test_format_plan_generated_counts_steps_and_numbers_them() -> None:
    activity = plan_generated(
        "p", [{"title": "Setup the environment."}, {"title": "Modify src/App.js", "index": 1}]
    )

    assert (
        format_activity(activity)
        == "Plan generated (2 steps): 1. Setup the environment. | 2. Modify src/App.js"
    )


def test_format_plan_generated_with_one_step_is_singular() -> None:
    assert format_activity(plan_generated()) == "Plan generated (1 step): 1. Do it"


def test_format_plan_generated_cuts_step_titles_at_80_characters() -> None:
    line = format_activity(plan_generated("p", [{"title": "a" * 200}]))

    assert line == "Plan generated (1 step): 1. " + "a" * 79 + "…"


def test_format_plan_generated_cuts_the_whole_line_at_500_characters() -> None:
    line = format_activity(plan_generated("p", [{"title": f"step {i} " + "b" * 100} for i in range(50)]))

    assert line is not None
    assert len(line) == 500
    assert line.startswith("Plan generated (50 steps): 1. step 0 bbb")
    assert line.endswith("…")


def test_format_plan_approved_names_the_originator() -> None:
    assert format_activity(plan_approved()) == "Plan approved (by user)"


def test_format_plan_approved_without_originator() -> None:
    assert format_activity({"planApproved": {"planId": "p"}}) == "Plan approved"


def test_format_progress_with_title_and_description() -> None:
    activity = {"progressUpdated": {"title": "Writing tests", "description": "Creating test cases"}}

    assert format_activity(activity) == "Progress: Writing tests - Creating test cases"


def test_format_progress_with_title_only() -> None:
    assert format_activity({"progressUpdated": {"title": "Code reviewed"}}) == "Progress: Code reviewed"


def test_format_progress_with_description_only() -> None:
    assert format_activity({"progressUpdated": {"description": "Halfway"}}) == "Progress: Halfway"


def test_format_progress_without_title_or_description() -> None:
    assert format_activity({"progressUpdated": {}}) == "Progress updated"


def test_format_progress_cuts_the_description_at_200_characters() -> None:
    line = format_activity({"progressUpdated": {"title": "T", "description": "d" * 1000}})

    assert line == "Progress: T - " + "d" * 199 + "…"


def test_format_agent_message() -> None:
    activity = {"agentMessaged": {"agentMessage": "Would you like integration tests as well?"}}

    assert format_activity(activity) == "Jules says: Would you like integration tests as well?"


def test_format_user_message() -> None:
    activity = {"userMessaged": {"userMessage": "Please also add integration tests"}}

    assert format_activity(activity) == "Message sent: Please also add integration tests"


def test_format_long_multiline_agent_message_is_one_line_of_500_characters() -> None:
    line = format_activity({"agentMessaged": {"agentMessage": "word\n" * 500}})

    assert line is not None
    assert "\n" not in line
    assert len(line) == 500


def test_format_session_completed_without_patch() -> None:
    assert format_activity({"sessionCompleted": {}}) == "Session completed"


def test_format_session_completed_with_a_patch_counts_files() -> None:
    activity = with_artifacts({"sessionCompleted": {}}, change_set_artifact(PATCH_APP_AND_CSS))

    assert format_activity(activity) == "Session completed with a patch touching 2 files"


def test_format_session_completed_with_a_one_file_patch_is_singular() -> None:
    activity = with_artifacts({"sessionCompleted": {}}, change_set_artifact(PATCH_APP))

    assert format_activity(activity) == "Session completed with a patch touching 1 file"


def test_format_session_failed_with_reason() -> None:
    activity = {"sessionFailed": {"reason": "Unable to install dependencies"}}

    assert format_activity(activity) == "Session failed: Unable to install dependencies"


def test_format_unknown_kind() -> None:
    assert format_activity({"originator": "agent", "codeReviewed": {"ok": True}}) == "Activity codeReviewed"


def test_format_activity_without_union_member_uses_its_description() -> None:
    assert format_activity({"originator": "system", "description": "Session started"}) == "Session started"


def test_format_activity_without_union_member_or_description_is_none() -> None:
    assert format_activity({"originator": "system", "description": ""}) is None


def test_format_never_includes_patches_or_media() -> None:
    secret_patch = diff("src/secret.js", added="PATCH-CONTENT-" + "p" * 5000)
    media = {"media": {"mimeType": "image/png", "data": "QUJD" * 5000}}
    activities = [
        with_artifacts({"sessionCompleted": {}}, change_set_artifact(secret_patch), media),
        with_artifacts({"progressUpdated": {"title": "Frontend verification"}}, media),
    ]

    lines = [format_activity(a) for a in activities]

    assert lines == ["Session completed with a patch touching 1 file", "Progress: Frontend verification"]
