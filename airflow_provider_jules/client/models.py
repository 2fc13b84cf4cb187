"""Names, enums and tolerant parsing of Jules API resources.

Resources stay plain ``dict`` objects (JSON in, JSON out: ready for XCom and trigger events). This module
holds the few rules that make them safe to use:

* names in both forms (quirks Q1-Q3): ``123`` or ``sessions/123``; ``sources/github/o/r``, ``github/o/r`` or
  ``o/r``; ``sessions/1/activities/a`` or ``1/activities/a``;
* ids are validated before they are put in a URL path, so no input can reach another path;
* enum values that this version does not know are kept as strings, never a crash;
* ids stay strings (Q25: 20-digit session ids exceed int64).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from airflow_provider_jules.client.errors import JulesConfigError

Json = dict[str, Any]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class SessionState(str, Enum):
    """Session states of v1alpha. Values the API adds later are passed through as plain strings."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    QUEUED = "QUEUED"
    PLANNING = "PLANNING"
    AWAITING_PLAN_APPROVAL = "AWAITING_PLAN_APPROVAL"
    AWAITING_USER_FEEDBACK = "AWAITING_USER_FEEDBACK"
    IN_PROGRESS = "IN_PROGRESS"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"


KNOWN_STATES = frozenset(s.value for s in SessionState)
#: States after which a session makes no progress by itself (Q15/Q16: COMPLETED may still resume).
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED"})


class AutomationMode(str, Enum):
    AUTOMATION_MODE_UNSPECIFIED = "AUTOMATION_MODE_UNSPECIFIED"
    AUTO_CREATE_PR = "AUTO_CREATE_PR"


AUTOMATION_MODES = frozenset(m.value for m in AutomationMode)

#: The activity union members of v1alpha (serialized as top-level keys of an Activity).
ACTIVITY_KINDS = (
    "agentMessaged",
    "userMessaged",
    "planGenerated",
    "planApproved",
    "progressUpdated",
    "sessionCompleted",
    "sessionFailed",
)
_ACTIVITY_COMMON_KEYS = frozenset({"name", "id", "description", "createTime", "originator", "artifacts"})


def session_id(value: object) -> str:
    """Return the bare id of a session given ``123``, ``sessions/123`` or a session dict."""
    if isinstance(value, dict):
        return session_id_of(value)
    if not isinstance(value, str) or not value.strip():
        raise JulesConfigError(
            f"session_id must be a non-empty string such as '123' or 'sessions/123', got {value!r}."
        )
    text = value.strip()
    if text.startswith("sessions/"):
        text = text[len("sessions/") :]
    if not _ID.match(text):
        raise JulesConfigError(
            f"session_id {value!r} is not a valid Jules session id: use the digits of the session "
            "(e.g. '14550388554331055113') or 'sessions/<id>'; '/', '?', '#', ':' and spaces are not allowed."
        )
    return text


def session_name(value: object) -> str:
    return f"sessions/{session_id(value)}"


def session_id_of(session: Json) -> str:
    """The id of a session resource, tolerant of Q1 (``name`` without prefix, ``id`` not matching)."""
    name = session.get("name")
    if isinstance(name, str) and name:
        bare = name[len("sessions/") :] if name.startswith("sessions/") else name
        if _ID.match(bare):
            return bare
    ident = session.get("id")
    if isinstance(ident, str) and _ID.match(ident):
        return ident
    raise JulesConfigError(f"the session resource has no usable name or id: {sorted(session)}")


def activity_id(value: str) -> str:
    """Bare activity id from ``a1``, ``sessions/1/activities/a1`` or ``1/activities/a1`` (Q2)."""
    if not isinstance(value, str) or not value.strip():
        raise JulesConfigError(f"activity_id must be a non-empty string, got {value!r}.")
    text = value.strip().rsplit("/activities/", 1)[-1]
    if not _ID.match(text):
        raise JulesConfigError(f"activity_id {value!r} is not a valid Jules activity id.")
    return text


def source_name(value: object) -> str:
    """Canonical ``sources/...`` name from ``sources/github/o/r``, ``github/o/r`` or ``o/r``.

    A single-segment id (``sources/github-myorg-myrepo``, quirk Q3) is kept as it is.
    """
    if not isinstance(value, str) or not value.strip():
        raise JulesConfigError(
            f"source must be a non-empty string such as 'owner/repo' or 'sources/github/owner/repo', "
            f"got {value!r}."
        )
    text = value.strip().strip("/")
    if text.startswith("sources/"):
        text = text[len("sources/") :]
    parts = text.split("/")
    if len(parts) == 2:
        parts = ["github", *parts]
    bad = [p for p in parts if not _SEGMENT.match(p) or p in {".", ".."}]
    if bad or len(parts) not in (1, 3):
        raise JulesConfigError(
            f"source {value!r} is malformed: use 'owner/repo', 'github/owner/repo' or "
            "'sources/github/owner/repo' (letters, digits, '.', '_' and '-' only). "
            "List the connected sources with JulesListSourcesOperator or JulesHook.list_sources()."
        )
    return "sources/" + "/".join(parts)


def source_path_segments(name: str) -> list[str]:
    """Path segments after ``sources/`` of a canonical name (validated by :func:`source_name`)."""
    return source_name(name)[len("sources/") :].split("/")


def default_branch(source: object) -> str | None:
    """``githubRepo.defaultBranch.displayName`` of a Source, or None; never raises on malformed members."""
    repo = source.get("githubRepo") if isinstance(source, dict) else None
    branch = repo.get("defaultBranch") if isinstance(repo, dict) else None
    name = branch.get("displayName") if isinstance(branch, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def parse_state(value: object) -> str:
    """The state string; unknown values are kept as they are, a missing one is STATE_UNSPECIFIED."""
    return value if isinstance(value, str) and value else SessionState.STATE_UNSPECIFIED.value


def activity_kind(activity: Json) -> str:
    """The union member of an activity: a known kind, an unknown key kept as is, or ``""`` (Q13)."""
    for kind in ACTIVITY_KINDS:
        if kind in activity:
            return kind
    for key, value in activity.items():
        if key not in _ACTIVITY_COMMON_KEYS and isinstance(value, dict):
            return key
    return ""


def normalize_session(session: Json) -> Json:
    """Return the session with ``name`` = ``sessions/{id}`` and a matching ``id`` (Q1)."""
    out = dict(session)
    try:
        ident = session_id_of(session)
    except JulesConfigError:
        return out
    out["id"] = ident
    out["name"] = f"sessions/{ident}"
    out["state"] = parse_state(session.get("state"))
    return out


def normalize_activity(activity: Json) -> Json:
    """Return the activity with an ``id`` derived from ``name`` when missing (Q2)."""
    out = dict(activity)
    name = activity.get("name")
    if not out.get("id") and isinstance(name, str) and "/activities/" in name:
        out["id"] = name.rsplit("/activities/", 1)[-1]
    return out


def parse_timestamp_ns(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp with 0-9 fractional digits."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$", value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    base, frac, tz = m.groups()
    dt = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
    nanos = int((frac or "").ljust(9, "0")) if frac else 0
    return int(dt.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + nanos


def format_timestamp_ns(ns: int) -> str:
    """RFC 3339 UTC with nanosecond digits trimmed to 6 when possible."""
    secs, nanos = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}"
    frac = frac[:6] if frac.endswith("000") else frac
    return f"{base}.{frac}Z"


def timestamp_ns(value: object) -> int | None:
    """Nanoseconds of an RFC 3339 timestamp, or None for anything else (never raises on API data)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp_ns(value)
    except ValueError:
        return None


def activity_time_ns(activity: Json) -> int | None:
    return timestamp_ns(activity.get("createTime"))
