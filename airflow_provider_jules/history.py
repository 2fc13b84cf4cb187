"""Questions about a session's activity history, each answered once, here.

The result builder (:mod:`airflow_provider_jules.results`), the follower and the review ask the same
questions of the same list of activities (oldest first): is a plan still waiting for approval, which is
the last question, was it answered, which completions were answered by a change request. Nothing here does
I/O or imports Airflow; every function takes the activities as the API returned them and never raises on
odd data.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_jules.jsontext import kind

Json = dict[str, Any]


def plan_pending(activities: list[Json]) -> bool:
    """A plan was generated and no approval follows the last one."""
    pending = False
    for activity in activities:
        found = kind(activity)
        if found == "planGenerated":
            pending = True
        elif found == "planApproved":
            pending = False
    return pending


def last_question(activities: list[Json]) -> Json | None:
    """Jules's latest question (its last ``agentMessaged`` activity), or None."""
    return next((a for a in reversed(activities) if kind(a) == "agentMessaged"), None)


def activity_id(activity: Json) -> str:
    return str(activity.get("id") or "")


def find(activities: list[Json], wanted: str | None) -> Json | None:
    """The activity with the id ``wanted``, or None."""
    return next((a for a in activities if activity_id(a) == wanted), None)


def question_text(activity: Json | None) -> str:
    """The text of a question (an ``agentMessaged`` activity); ``""`` when it has none."""
    member = (activity or {}).get("agentMessaged")
    return str(member.get("agentMessage") or "") if isinstance(member, dict) else ""


def question_answered(activities: list[Json], question_id: str | None) -> bool:
    """Whether a message follows the question (sent by us earlier, or by someone in the Jules app)."""
    seen = question_id is None
    for activity in activities:
        if not seen:
            seen = activity_id(activity) == question_id
            continue
        if kind(activity) == "userMessaged":
            return True
    return False


def completions_answered(activities: list[Json]) -> tuple[int, bool]:
    """From the session's own history: how many completions were followed by a message (change requests
    already sent), and whether the latest completion was (so its change is no longer the one to review)."""
    count = 0
    pending = False
    latest_answered = False
    for activity in activities:
        found = kind(activity)
        if found == "sessionCompleted":
            pending = True
            latest_answered = False
        elif found == "userMessaged" and pending:
            count += 1
            pending = False
            latest_answered = True
    return count, latest_answered
