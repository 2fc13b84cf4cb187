"""Result building in one place: the single module that knows what "done" means for a Jules session.

Pure functions, JSON dicts in and a JSON dict out (no Airflow, no HTTP): the operator, the deferrable
trigger, the sensor and the hook all build their XCom value here, so a session reads the same everywhere.

:func:`build_result` turns a Session resource and its activities (oldest first; they are re-sorted by
``createTime`` only when every one has a valid timestamp) into a small, JSON-serializable dict with
exactly the keys of :data:`RESULT_KEYS`:

``session_id``, ``session_name``
    bare id and ``sessions/{id}``; ids stay strings (Q25: 20-digit ids exceed int64). ``None`` only when
    the resource carries no usable ``name``/``id`` at all.
``url``, ``title``
    as the API sent them (``None`` when missing); ``url`` is kept only when it passes
    :func:`check_session_url` (``https://jules.google.com/...``), else ``None`` with a logged warning; a
    title longer than :data:`MAX_TITLE_CHARS` characters (Q21: the title can be the whole prompt) is cut
    and ends with ``…``.
``state``
    the raw state string; unknown values are kept, a missing one is ``STATE_UNSPECIFIED``.
``outcome``
    one :class:`Outcome` value (see below).
``pull_requests``, ``pull_request_url``
    ``{url, title, description, base_ref, head_ref}`` for each ``outputs[].pullRequest`` (missing fields
    are ``None``; a ``url`` failing :func:`check_pull_request_url` is ``None``, with a logged warning: only
    ``https://github.com/<owner>/<repo>/pull/<n>``, or the same on one of ``pull_request_hosts``) and the
    first PR's url.
``change_set``
    ``None`` when neither ``outputs[].changeSet`` nor any activity artifact carries a change set, else
    ``{source, base_commit_id, suggested_commit_message, patch, patch_uri, files_changed, patch_bytes,
    truncated}``. Change sets are cumulative, so the patch is the *last* non-empty ``gitPatch.unidiffPatch``,
    looking at the activities' artifacts first (oldest to newest) and then at ``session.outputs`` (which
    therefore win when they carry a patch; Q19: they are often empty). ``base_commit_id`` and
    ``suggested_commit_message`` come from the last change set that has them (Q20: each can be missing).
    ``patch`` is ``None`` when no change set has a non-empty patch. ``files_changed`` lists the sorted
    unique paths of the diff (old and new path of a rename/copy, added and deleted files). A patch larger
    than ``inline_patch_limit`` UTF-8 bytes goes to ``write_patch`` (``patch`` ``None``, ``patch_uri`` set)
    or, without it, is cut to at most that many bytes, on a UTF-8 boundary and preferably after a newline
    (``truncated`` True). ``patch_bytes`` is always the UTF-8 size of the full patch.
``plan``
    the last ``planGenerated.plan`` as ``{id, steps: [{index, title, description}]}`` (Q20: an omitted
    ``index`` is 0), or ``None``.
``last_agent_message``
    the text of the last ``agentMessaged`` activity, or ``None``.
``failure_reason``
    for ``failed`` the last ``sessionFailed.reason`` (or :data:`FAILED_WITHOUT_REASON`); for ``timed_out``
    the ``timeout_reason`` given by the waiter (or a default naming the last state); otherwise ``None``.
``review``
    the change-review rounds of a task with ``review="hitl"`` (``[]`` here: the review room fills it), each
    ``{round, decision, reviewer, feedback, pull_request_url}``, decision ``approved``,
    ``changes_requested`` or ``rejected``.
``media``, ``media_dropped``
    the ``media`` artifacts of the activities (screenshots, e.g. of a "Frontend verification") that
    ``write_media`` stored, oldest first, each ``{activity_id, mime_type, path, bytes}`` (never their
    data), and the number of media artifacts not stored: all of them without ``write_media`` (no
    ``artifacts_path``), else those with invalid or empty base64 or over a size cap. Rules, caps and file
    names in :mod:`airflow_provider_jules.media`.

Outcomes (:class:`Outcome`, rule alone in :func:`classify_outcome`), first match wins:

* ``timed_out``: the waiter gave up (deadline or stall, Q17), whatever the state;
* ``failed``: state ``FAILED``;
* ``awaiting_plan_approval``: state ``AWAITING_PLAN_APPROVAL`` (needs ``approvePlan``);
* ``awaiting_user_feedback``: state ``AWAITING_USER_FEEDBACK`` (needs ``sendMessage``);
* ``completed``: state ``COMPLETED`` with a pull request or a non-empty patch;
* ``plan_not_approved``: state ``COMPLETED`` with a ``planGenerated`` and no ``planApproved`` after the
  last one, and neither PR nor patch: Q15 "silent completion", the plan timed out unapproved and nothing
  was delivered;
* ``completed_without_changes``: any other ``COMPLETED`` (e.g. an approved plan that changed nothing);
* ``running``: every other state (``QUEUED``, ``PLANNING``, ``IN_PROGRESS``, ``PAUSED``,
  ``STATE_UNSPECIFIED`` and values unknown to this version). This eighth value exists so that a result can
  be built from a live session too (e.g. a sensor or a "get session" operator); it is not an end state.

Diff parsing (:mod:`airflow_provider_jules.diffs`), the URL checks (:mod:`airflow_provider_jules.links.urls`),
the media artifacts (:mod:`airflow_provider_jules.media`) and the activity log lines
(:mod:`airflow_provider_jules.activity_log`) have modules of their own; their public names
(:func:`patch_files`, :func:`check_session_url`, :func:`format_activity`, ...) stay importable from here.

Nothing here raises on API data: missing keys, unknown activity kinds, activities without a union member
(Q13), unknown artifacts or outputs and non-dict junk in lists are skipped or rendered generically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from airflow_provider_jules.activity_log import format_activity
from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import SessionState, parse_state, session_id_of
from airflow_provider_jules.client.models import activity_time_ns as _activity_time_ns
from airflow_provider_jules.diffs import change_sets as _change_sets
from airflow_provider_jules.diffs import last_patch as _last_patch
from airflow_provider_jules.diffs import patch_files
from airflow_provider_jules.history import plan_pending
from airflow_provider_jules.jsontext import as_dict as _dict
from airflow_provider_jules.jsontext import cut as _cut
from airflow_provider_jules.jsontext import dicts as _dicts
from airflow_provider_jules.jsontext import kind as _kind
from airflow_provider_jules.jsontext import member as _member
from airflow_provider_jules.jsontext import string as _str
from airflow_provider_jules.jsontext import text as _text
from airflow_provider_jules.jsontext import utf8 as _utf8
from airflow_provider_jules.links.urls import (
    SESSION_URL_HOST as SESSION_URL_HOST,  # importable from here as before it moved
)
from airflow_provider_jules.links.urls import (
    check_pull_request_url,
    check_session_url,
    checked_pull_request_url,
    pull_request_outputs,
    pull_request_url,
    session_url,
)
from airflow_provider_jules.media import MediaCaps, collect_media

__all__ = [
    "DEFAULT_INLINE_PATCH_LIMIT",
    "FAILED_WITHOUT_REASON",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "RESULT_KEYS",
    "Outcome",
    "build_result",
    "check_pull_request_url",
    "check_session_url",
    "classify_outcome",
    "format_activity",
    "patch_files",
    "pull_request_url",
    "session_url",
]

Json = dict[str, Any]

#: XCom rows of some databases hold 64 KiB (MySQL BLOB): the inline patch stays below that by default.
DEFAULT_INLINE_PATCH_LIMIT = 60_000
MAX_TITLE_CHARS = 2_000
#: Free texts (PR descriptions, the agent's last message) are cut to this many characters, keeping XCom small.
MAX_TEXT_CHARS = 4_000
FAILED_WITHOUT_REASON = "Jules reported the session as FAILED without a reason; open the session to see why."
RESULT_KEYS = (
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
)


class Outcome(str, Enum):
    """What a session amounts to; the dict returned by :func:`build_result` holds the ``value``."""

    COMPLETED = "completed"
    COMPLETED_WITHOUT_CHANGES = "completed_without_changes"
    PLAN_NOT_APPROVED = "plan_not_approved"
    AWAITING_PLAN_APPROVAL = "awaiting_plan_approval"
    AWAITING_USER_FEEDBACK = "awaiting_user_feedback"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    RUNNING = "running"


# --------------------------------------------------------------------------------------------- helpers


def _cut_or_none(text: str | None, limit: int) -> str | None:
    return None if text is None else _cut(text, limit)


def _ordered(activities: object) -> list[Json]:
    """The dict activities, oldest first: sorted by ``createTime`` when every one has a valid one
    (stable, so ties keep their order), else in the order given."""
    items = list(_dicts(activities))
    times = [_time_ns(a) for a in items]
    if items and all(t is not None for t in times):
        order = sorted(range(len(items)), key=lambda i: times[i] or 0)
        items = [items[i] for i in order]
    return items


def _time_ns(activity: Json) -> int | None:
    try:
        return _activity_time_ns(activity)
    except (ValueError, OverflowError):
        return None


# ------------------------------------------------------------------------------------------ extraction


def _last_field(change_sets: list[Json], field: str) -> str | None:
    for change_set in reversed(change_sets):
        value = _text(_dict(change_set.get("gitPatch")).get(field))
        if value is not None:
            return value
    return None


def _pull_requests(session: Json, hosts: Iterable[str] = ()) -> list[Json]:
    return [
        {
            "url": checked_pull_request_url(pr, hosts),
            "title": _str(pr.get("title")),
            "description": _cut_or_none(_str(pr.get("description")), MAX_TEXT_CHARS),
            "base_ref": _text(pr.get("baseRef")),
            "head_ref": _text(pr.get("headRef")),
        }
        for pr in pull_request_outputs(session)
    ]


def _index(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _plan(activities: list[Json]) -> Json | None:
    for activity in reversed(activities):
        if _kind(activity) != "planGenerated":
            continue
        plan = _member(activity, "planGenerated").get("plan")
        if not isinstance(plan, dict):
            continue
        steps = [
            {
                "index": _index(step.get("index")),
                "title": _str(step.get("title")),
                "description": _text(step.get("description")),
            }
            for step in _dicts(plan.get("steps"))
        ]
        return {"id": _text(plan.get("id")), "steps": steps}
    return None


def _last_text(activities: list[Json], kind: str, field: str) -> str | None:
    for activity in reversed(activities):
        if _kind(activity) == kind:
            value = _text(_member(activity, kind).get(field))
            if value is not None:
                return value
    return None


def _classify(state: str, activities: list[Json], has_delivery: bool, timed_out: bool) -> Outcome:
    if timed_out:
        return Outcome.TIMED_OUT
    if state == SessionState.FAILED.value:
        return Outcome.FAILED
    if state == SessionState.AWAITING_PLAN_APPROVAL.value:
        return Outcome.AWAITING_PLAN_APPROVAL
    if state == SessionState.AWAITING_USER_FEEDBACK.value:
        return Outcome.AWAITING_USER_FEEDBACK
    if state == SessionState.COMPLETED.value:
        if has_delivery:
            return Outcome.COMPLETED
        if plan_pending(activities):
            return Outcome.PLAN_NOT_APPROVED
        return Outcome.COMPLETED_WITHOUT_CHANGES
    return Outcome.RUNNING


def _session_dict(session: object) -> Json:
    return session if isinstance(session, dict) else {}


def classify_outcome(session: Json, activities: Iterable[Json], *, timed_out: bool = False) -> Outcome:
    """The :class:`Outcome` of a session (rules in the module docstring); never raises on API data."""
    session = _session_dict(session)
    ordered = _ordered(list(activities) if activities is not None else [])
    has_delivery = bool(_pull_requests(session)) or _last_patch(_change_sets(session, ordered))[0] is not None
    return _classify(parse_state(session.get("state")), ordered, has_delivery, timed_out)


def _truncate_utf8(data: bytes, limit: int) -> str:
    """At most ``limit`` bytes of ``data`` as text: after the last newline when that keeps at least half,
    else on the last whole UTF-8 character."""
    head = data[:limit]
    newline = head.rfind(b"\n")
    if newline >= 0 and newline + 1 >= limit // 2:
        head = head[: newline + 1]
    return head.decode("utf-8", errors="ignore")


def _change_set_result(
    change_sets: list[Json],
    inline_patch_limit: int,
    write_patch: Callable[[str], str] | None,
) -> Json | None:
    if not change_sets:
        return None
    patch, patch_set = _last_patch(change_sets)
    source = _text(patch_set.get("source")) if patch_set is not None else None
    if source is None:
        source = next((s for c in reversed(change_sets) if (s := _text(c.get("source")))), None)
    result: Json = {
        "source": source,
        "base_commit_id": _last_field(change_sets, "baseCommitId"),
        "suggested_commit_message": _last_field(change_sets, "suggestedCommitMessage"),
        "patch": None,
        "patch_uri": None,
        "files_changed": [],
        "patch_bytes": 0,
        "truncated": False,
    }
    if patch is None:
        return result
    data = _utf8(patch)
    result["files_changed"] = patch_files(patch)
    result["patch_bytes"] = len(data)
    if len(data) <= inline_patch_limit:
        result["patch"] = patch
    elif write_patch is not None:
        uri = write_patch(patch)
        if not isinstance(uri, str) or not uri:
            raise TypeError(f"write_patch must return the URI of the stored patch as a string, got {uri!r}")
        result["patch_uri"] = uri
    else:
        result["patch"] = _truncate_utf8(data, inline_patch_limit)
        result["truncated"] = True
    return result


def _check_inline_patch_limit(inline_patch_limit: object) -> None:
    if (
        isinstance(inline_patch_limit, bool)
        or not isinstance(inline_patch_limit, int)
        or inline_patch_limit < 0
    ):
        raise ValueError(
            f"inline_patch_limit must be a non-negative number of bytes, got {inline_patch_limit!r}"
        )


def _ident(session: Json) -> str | None:
    """The bare session id, or None when the resource carries no usable ``name``/``id``."""
    try:
        return session_id_of(session)
    except JulesConfigError:
        return None


def _failure_reason(
    outcome: Outcome, ordered: list[Json], state: str, timeout_reason: str | None
) -> str | None:
    if outcome is Outcome.FAILED:
        return _last_text(ordered, "sessionFailed", "reason") or FAILED_WITHOUT_REASON
    if outcome is Outcome.TIMED_OUT:
        return timeout_reason or (
            f"Gave up waiting for the Jules session (last state {state}); it may still be running."
        )
    return None


def build_result(
    session: Json,
    activities: Iterable[Json],
    *,
    timed_out: bool = False,
    timeout_reason: str | None = None,
    inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT,
    write_patch: Callable[[str], str] | None = None,
    write_media: Callable[[str, bytes], str] | None = None,
    media_caps: MediaCaps | None = None,
    pull_request_hosts: Iterable[str] = (),
) -> Json:
    """The result dict of a session (keys :data:`RESULT_KEYS`; rules in the module docstring).

    ``pull_request_hosts`` are the hosts besides github.com whose pull request links are kept (the
    connection extra of the same name, :attr:`JulesHook.pull_request_hosts
    <airflow_provider_jules.hooks.jules.JulesHook.pull_request_hosts>`).

    ``write_patch`` is called once, with the full patch, only when the patch exceeds
    ``inline_patch_limit`` UTF-8 bytes; it must return a non-empty URI string. Its own errors propagate
    (losing the patch silently would be worse). A negative ``inline_patch_limit`` is a ``ValueError``.

    ``write_media(file_name, data)`` is called once per media artifact that passes the checks of
    :func:`~airflow_provider_jules.media.collect_media` and the ``media_caps`` (default
    :class:`~airflow_provider_jules.media.MediaCaps`), with the decoded bytes and a file name of the
    provider's own making; it returns the stored file's path. Its errors propagate too.
    """
    _check_inline_patch_limit(inline_patch_limit)
    session = _session_dict(session)
    ordered = _ordered(list(activities) if activities is not None else [])
    state = parse_state(session.get("state"))
    ident = _ident(session)

    pull_requests = _pull_requests(session, tuple(pull_request_hosts))
    change_sets = _change_sets(session, ordered)
    has_delivery = bool(pull_requests) or _last_patch(change_sets)[0] is not None
    outcome = _classify(state, ordered, has_delivery, timed_out)

    title = _str(session.get("title"))
    media, media_dropped = collect_media(ordered, write_media, media_caps)
    return {
        "session_id": ident,
        "session_name": f"sessions/{ident}" if ident is not None else None,
        "url": session_url(session),
        "title": _cut(title, MAX_TITLE_CHARS) if title is not None else None,
        "state": state,
        "outcome": outcome.value,
        "pull_requests": pull_requests,
        "pull_request_url": pull_requests[0]["url"] if pull_requests else None,
        "change_set": _change_set_result(change_sets, inline_patch_limit, write_patch),
        "plan": _plan(ordered),
        "last_agent_message": _cut_or_none(
            _last_text(ordered, "agentMessaged", "agentMessage"), MAX_TEXT_CHARS
        ),
        "failure_reason": _failure_reason(outcome, ordered, state, timeout_reason),
        "review": [],
        "media": media,
        "media_dropped": media_dropped,
    }
