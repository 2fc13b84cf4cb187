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
    are ``None``; a ``url`` failing :func:`check_pull_request_url` is ``None``, with a logged warning) and
    the first PR's url.
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

:func:`format_activity` renders one activity as one short log line for the Airflow task log.

Nothing here raises on API data: missing keys, unknown activity kinds, activities without a union member
(Q13), unknown artifacts or outputs and non-dict junk in lists are skipped or rendered generically.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import SessionState, activity_kind, parse_state, session_id_of
from airflow_provider_jules.client.models import activity_time_ns as _activity_time_ns
from airflow_provider_jules.history import cut as _cut
from airflow_provider_jules.history import plan_pending

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

log = logging.getLogger(__name__)

#: The only host of a session link (the Jules web app).
SESSION_URL_HOST = "jules.google.com"
_MAX_URL_CHARS = 2048

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
)

_LINE_MAX = 500
_STEP_TITLE_MAX = 80
_PROGRESS_DESCRIPTION_MAX = 200


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


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> Iterator[Json]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def _utf8(text: str) -> bytes:
    # errors="replace": a lone surrogate (valid in JSON, invalid in UTF-8) must not raise.
    return text.encode("utf-8", errors="replace")


def _cut_or_none(text: str | None, limit: int) -> str | None:
    return None if text is None else _cut(text, limit)


def _one_line(text: str) -> str:
    return " ".join(text.split())


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


def _kind(activity: Json) -> str:
    try:
        return activity_kind(activity)
    except Exception:  # defensive: never raise on API data
        return ""


def _member(activity: Json, kind: str) -> Json:
    return _dict(activity.get(kind))


def _non_empty_patch(git_patch: Json) -> str | None:
    patch = git_patch.get("unidiffPatch")
    return patch if isinstance(patch, str) and patch.strip() else None


# ------------------------------------------------------------------------------------------------ URLs


def _url_problem(url: object) -> tuple[str | None, str]:
    """(the URL's host, "") when ``url`` is a plain https URL, else (None, why not)."""
    if not isinstance(url, str) or not url:
        return None, "it is missing or not a string"
    if len(url) > _MAX_URL_CHARS:
        return None, f"it is longer than {_MAX_URL_CHARS} characters"
    if any(ord(c) <= 32 or ord(c) == 127 or c == "\\" for c in url):
        return None, "it contains spaces, control characters or backslashes"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None, "it is not a valid URL"
    if parts.scheme != "https":
        return None, f"its scheme is {parts.scheme or 'missing'!r}, not 'https'"
    if "@" in parts.netloc:
        return None, "it carries user information ('user@host')"
    if not host:
        return None, "it has no host"
    return host, ""


def check_session_url(url: object) -> tuple[str | None, str]:
    """``(url, "")`` when ``url`` is an ``https://jules.google.com/...`` link, else ``(None, why)``."""
    host, why = _url_problem(url)
    if host is None:
        return None, why
    if host != SESSION_URL_HOST or urlsplit(str(url)).port not in (None, 443):
        return None, f"its host is not {SESSION_URL_HOST}"
    return str(url), ""


def check_pull_request_url(url: object) -> tuple[str | None, str]:
    """``(url, "")`` when ``url`` is an ``https://`` URL on a host without user information, else
    ``(None, why)``."""
    host, why = _url_problem(url)
    return (str(url), "") if host is not None else (None, why)


def _checked(url: object, check: Callable[[object], tuple[str | None, str]], what: str) -> str | None:
    if url is None or url == "":
        return None
    good, why = check(url)
    if good is None:
        shown = repr(url)[:200] if isinstance(url, str) else type(url).__name__
        log.warning("Ignoring the %s %s: %s.", what, shown, why)
    return good


def session_url(session: object) -> str | None:
    """The session's web-app link when it passes :func:`check_session_url`, else None (logged)."""
    return _checked(_session_dict(session).get("url"), check_session_url, "session URL")


def pull_request_url(session: object) -> str | None:
    """The first pull request's URL when it passes :func:`check_pull_request_url`, else None (logged).
    Never raises on malformed ``outputs``."""
    prs = _pull_requests(_session_dict(session))
    return prs[0]["url"] if prs else None


# ------------------------------------------------------------------------------------ diff file names

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(path: str) -> str:
    """Undo git's C-style quoting of a path (``"a/t\\303\\251st"``)."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
        out.extend(_utf8(ch))
        i += 1
    return out.decode("utf-8", errors="replace")


def _header_path(raw: str, prefix: str) -> str | None:
    """Path of a ``---``/``+++`` line (``None`` for /dev/null), without the ``a/``/``b/`` prefix."""
    raw = raw.split("\t", 1)[0] if not raw.startswith('"') else raw
    path = _unquote(raw.strip())
    if not path or path == "/dev/null":
        return None
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else path


def _git_header_paths(rest: str) -> list[str]:
    """Paths of ``diff --git a/X b/Y`` (``rest`` is ``a/X b/Y``); empty when ambiguous."""
    if rest.startswith('"'):
        m = re.match(r'^("(?:[^"\\]|\\.)*")\s+(.+)$', rest)
        if not m:
            return []
        first, second = _unquote(m.group(1)), _unquote(m.group(2).strip())
    elif rest.endswith('"'):
        m = re.match(r'^(\S+)\s+("(?:[^"\\]|\\.)*")$', rest)
        if not m:
            return []
        first, second = m.group(1), _unquote(m.group(2))
    else:
        half = (len(rest) - 1) // 2
        if len(rest) % 2 == 1 and rest[half] == " " and rest[2:half] == rest[half + 3 :]:
            first, second = rest[:half], rest[half + 1 :]  # a/P b/P, spaces in P allowed
        elif rest.count(" b/") == 1:
            first, second = rest.split(" b/")
            second = "b/" + second
        else:
            return []
    paths = []
    for path, prefix in ((first, "a/"), (second, "b/")):
        if path.startswith(prefix) and len(path) > len(prefix):
            paths.append(path[len(prefix) :])
    return paths


def patch_files(patch: str) -> list[str]:
    """Sorted unique file paths touched by a unified diff (git or plain).

    Uses ``diff --git`` headers, ``rename``/``copy`` lines and the ``---``/``+++`` file headers outside
    hunks (a removed line ``-- x`` inside a hunk is not a header); ``/dev/null`` is skipped, so added and
    deleted files appear once under their real path. A rename lists both the old and the new path.
    """
    files: set[str] = set()
    old_left = new_left = 0
    for raw_line in patch.split("\n"):
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag in (" ", ""):
                old_left, new_left = old_left - 1, new_left - 1
                continue
            if tag == "-":
                old_left -= 1
                continue
            if tag == "+":
                new_left -= 1
                continue
            if tag == "\\":
                continue
            old_left = new_left = 0  # malformed counts: leave the hunk
        if line.startswith("diff --git "):
            files.update(_git_header_paths(line[len("diff --git ") :]))
        elif line.startswith("--- "):
            path = _header_path(line[4:], "a/")
            if path:
                files.add(path)
        elif line.startswith("+++ "):
            path = _header_path(line[4:], "b/")
            if path:
                files.add(path)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            path = _unquote(line.split(" ", 2)[2].strip())
            if path:
                files.add(path)
        elif line.startswith("@@"):
            m = _HUNK.match(line)
            if m:
                old_left = int(m.group(1)) if m.group(1) is not None else 1
                new_left = int(m.group(2)) if m.group(2) is not None else 1
    return sorted(files)


# ------------------------------------------------------------------------------------------ extraction


def _change_sets(session: Json, activities: list[Json]) -> list[Json]:
    """Every change set, in precedence order: activity artifacts oldest first, then session outputs."""
    found: list[Json] = []
    for activity in activities:
        for artifact in _dicts(activity.get("artifacts")):
            change_set = artifact.get("changeSet")
            if isinstance(change_set, dict):
                found.append(change_set)
    for output in _dicts(session.get("outputs")):
        change_set = output.get("changeSet")
        if isinstance(change_set, dict):
            found.append(change_set)
    return found


def _last_patch(change_sets: list[Json]) -> tuple[str | None, Json | None]:
    for change_set in reversed(change_sets):
        patch = _non_empty_patch(_dict(change_set.get("gitPatch")))
        if patch is not None:
            return patch, change_set
    return None, None


def _last_field(change_sets: list[Json], field: str) -> str | None:
    for change_set in reversed(change_sets):
        value = _text(_dict(change_set.get("gitPatch")).get(field))
        if value is not None:
            return value
    return None


def _pull_requests(session: Json) -> list[Json]:
    prs = []
    for output in _dicts(session.get("outputs")):
        pr = output.get("pullRequest")
        if isinstance(pr, dict):
            prs.append(
                {
                    "url": _checked(pr.get("url"), check_pull_request_url, "pull request URL"),
                    "title": _str(pr.get("title")),
                    "description": _cut_or_none(_str(pr.get("description")), MAX_TEXT_CHARS),
                    "base_ref": _text(pr.get("baseRef")),
                    "head_ref": _text(pr.get("headRef")),
                }
            )
    return prs


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


def build_result(
    session: Json,
    activities: Iterable[Json],
    *,
    timed_out: bool = False,
    timeout_reason: str | None = None,
    inline_patch_limit: int = DEFAULT_INLINE_PATCH_LIMIT,
    write_patch: Callable[[str], str] | None = None,
) -> Json:
    """The result dict of a session (keys :data:`RESULT_KEYS`; rules in the module docstring).

    ``write_patch`` is called once, with the full patch, only when the patch exceeds
    ``inline_patch_limit`` UTF-8 bytes; it must return a non-empty URI string. Its own errors propagate
    (losing the patch silently would be worse). A negative ``inline_patch_limit`` is a ``ValueError``.
    """
    if (
        isinstance(inline_patch_limit, bool)
        or not isinstance(inline_patch_limit, int)
        or inline_patch_limit < 0
    ):
        raise ValueError(
            f"inline_patch_limit must be a non-negative number of bytes, got {inline_patch_limit!r}"
        )
    session = _session_dict(session)
    ordered = _ordered(list(activities) if activities is not None else [])
    state = parse_state(session.get("state"))

    try:
        ident: str | None = session_id_of(session)
    except JulesConfigError:
        ident = None

    pull_requests = _pull_requests(session)
    change_sets = _change_sets(session, ordered)
    has_delivery = bool(pull_requests) or _last_patch(change_sets)[0] is not None
    outcome = _classify(state, ordered, has_delivery, timed_out)

    if outcome is Outcome.FAILED:
        failure_reason: str | None = _last_text(ordered, "sessionFailed", "reason") or FAILED_WITHOUT_REASON
    elif outcome is Outcome.TIMED_OUT:
        failure_reason = timeout_reason or (
            f"Gave up waiting for the Jules session (last state {state}); it may still be running."
        )
    else:
        failure_reason = None

    title = _str(session.get("title"))
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
        "failure_reason": failure_reason,
        "review": [],
    }


# ---------------------------------------------------------------------------------------- log lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _format(activity: Json) -> str | None:
    kind = _kind(activity)
    if kind == "planGenerated":
        plan = _dict(_member(activity, kind).get("plan"))
        steps = list(_dicts(plan.get("steps")))
        parts = []
        for number, step in enumerate(steps, start=1):
            title = _text(step.get("title")) or _text(step.get("description")) or "(untitled)"
            parts.append(f"{number}. {_cut(_one_line(title), _STEP_TITLE_MAX)}")
        head = f"Plan generated ({_plural(len(steps), 'step')})"
        return f"{head}: {' | '.join(parts)}" if parts else head
    if kind == "planApproved":
        originator = _text(activity.get("originator"))
        return f"Plan approved (by {originator})" if originator else "Plan approved"
    if kind == "progressUpdated":
        member = _member(activity, kind)
        heading = _one_line(_text(member.get("title")) or "")
        detail = _one_line(_text(member.get("description")) or "")
        shown = [part for part in (heading, _cut(detail, _PROGRESS_DESCRIPTION_MAX)) if part]
        return f"Progress: {' - '.join(shown)}" if shown else "Progress updated"
    if kind == "agentMessaged":
        return f"Jules says: {_one_line(_text(_member(activity, kind).get('agentMessage')) or '')}".rstrip()
    if kind == "userMessaged":
        return f"Message sent: {_one_line(_text(_member(activity, kind).get('userMessage')) or '')}".rstrip()
    if kind == "sessionCompleted":
        patch, _ = _last_patch(_change_sets({}, [activity]))
        if patch is None:
            return "Session completed"
        return f"Session completed with a patch touching {_plural(len(patch_files(patch)), 'file')}"
    if kind == "sessionFailed":
        reason = _text(_member(activity, kind).get("reason"))
        return f"Session failed: {_one_line(reason)}" if reason else "Session failed"
    if kind:
        return f"Activity {kind}"
    description = _one_line(_text(activity.get("description")) or "")
    return description or None


def format_activity(activity: Json) -> str | None:
    """One readable log line (at most 500 characters, whitespace collapsed) for an activity, or ``None``
    for one with neither a union member nor a description (Q13). Patches and media are never included."""
    if not isinstance(activity, dict):
        return None
    line = _format(activity)
    return _cut(line, _LINE_MAX) if line else None
