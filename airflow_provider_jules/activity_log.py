"""The activity log: one short line per Jules activity in the Airflow task log.

The worker (``deferrable=False`` and the first poll) and the trigger both stream new activities through
:func:`log_activities`, so the task log reads the same wherever the wait runs. :func:`format_activity` renders
one activity; patches and media are never included. Pure apart from the logger it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from airflow_provider_jules.diffs import change_sets, last_patch, patch_files
from airflow_provider_jules.jsontext import as_dict, cut, dicts, kind, member, one_line, text
from airflow_provider_jules.links.text import defuse_urls

__all__ = ["format_activity", "log_activities"]

Json = dict[str, Any]

LINE_MAX = 500
_STEP_TITLE_MAX = 80
_PROGRESS_DESCRIPTION_MAX = 200


class _Log(Protocol):
    def info(self, msg: str, /, *args: Any) -> Any: ...


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _format(activity: Json) -> str | None:
    name = kind(activity)
    if name == "planGenerated":
        plan = as_dict(member(activity, name).get("plan"))
        steps = list(dicts(plan.get("steps")))
        parts = []
        for number, step in enumerate(steps, start=1):
            title = text(step.get("title")) or text(step.get("description")) or "(untitled)"
            parts.append(f"{number}. {cut(one_line(title), _STEP_TITLE_MAX)}")
        head = f"Plan generated ({_plural(len(steps), 'step')})"
        return f"{head}: {' | '.join(parts)}" if parts else head
    if name == "planApproved":
        originator = text(activity.get("originator"))
        return f"Plan approved (by {originator})" if originator else "Plan approved"
    if name == "progressUpdated":
        progress = member(activity, name)
        heading = one_line(text(progress.get("title")) or "")
        detail = one_line(text(progress.get("description")) or "")
        shown = [part for part in (heading, cut(detail, _PROGRESS_DESCRIPTION_MAX)) if part]
        return f"Progress: {' - '.join(shown)}" if shown else "Progress updated"
    if name == "agentMessaged":
        return f"Jules says: {one_line(text(member(activity, name).get('agentMessage')) or '')}".rstrip()
    if name == "userMessaged":
        return f"Message sent: {one_line(text(member(activity, name).get('userMessage')) or '')}".rstrip()
    if name == "sessionCompleted":
        patch, _ = last_patch(change_sets({}, [activity]))
        if patch is None:
            return "Session completed"
        return f"Session completed with a patch touching {_plural(len(patch_files(patch)), 'file')}"
    if name == "sessionFailed":
        reason = text(member(activity, name).get("reason"))
        return f"Session failed: {one_line(reason)}" if reason else "Session failed"
    if name:
        return f"Activity {name}"
    description = one_line(text(activity.get("description")) or "")
    return description or None


def format_activity(activity: Json) -> str | None:
    """One readable log line (at most 500 characters, whitespace collapsed) for an activity, or ``None``
    for one with neither a union member nor a description (Q13). Patches and media are never included."""
    if not isinstance(activity, dict):
        return None
    line = _format(activity)
    return cut(line, LINE_MAX) if line else None


def log_activities(log: _Log, activities: Iterable[Json]) -> None:
    """Write one ``[Jules] ...`` info line to ``log`` for each activity that has one."""
    for activity in activities:
        line = format_activity(activity)
        if line:
            log.info("[Jules] %s", defuse_urls(line))  # the log view links any https://
