"""Checks of what a client sends: request bodies, ``filter`` expressions and page tokens.

Each check answers the API's own 400 INVALID_ARGUMENT (field name and message as the real API words them)
or returns the cleaned value the engine works with.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from airflow_provider_jules.simulator.clock import parse_ts_ns
from airflow_provider_jules.simulator.errors import ApiError, bad_request, unknown_field

AUTOMATION_MODES = ("AUTOMATION_MODE_UNSPECIFIED", "AUTO_CREATE_PR")
_SESSION_FIELDS = {
    "name",
    "id",
    "prompt",
    "sourceContext",
    "title",
    "requirePlanApproval",
    "automationMode",
    "createTime",
    "updateTime",
    "state",
    "url",
    "outputs",
    "archived",
}
_CTX_FIELDS = {"source", "githubRepoContext", "workingBranch", "environmentVariablesEnabled"}
_REPO_CONTEXT = "session.source_context.github_repo_context"


# ----------------------------------------------------------------------------- bodies
def validate_create(body: dict[str, Any]) -> dict[str, Any]:
    """The body of ``sessions.create``: the fields the engine uses, source name normalised."""
    for k in body:
        if k not in _SESSION_FIELDS:
            raise unknown_field(k)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("Session prompt is required.", "session.prompt")
    out: dict[str, Any] = {"prompt": prompt}
    title = body.get("title")
    if title is not None:
        if not isinstance(title, str):
            raise bad_request("Invalid value for title: expected a string.", "session.title")
        out["title"] = title
    rpa = body.get("requirePlanApproval")
    if rpa is not None:
        if not isinstance(rpa, bool):
            raise bad_request(
                "Invalid value for requirePlanApproval: expected a boolean.", "session.require_plan_approval"
            )
        out["requirePlanApproval"] = rpa
    mode = body.get("automationMode")
    if mode is not None:
        if mode not in AUTOMATION_MODES:
            raise bad_request(
                "Invalid value at 'session.automation_mode' "
                f'(type.googleapis.com/google.labs.jules.v1alpha.AutomationMode), "{mode}"',
                "session.automation_mode",
            )
        out["automationMode"] = mode
    ctx = body.get("sourceContext")
    if ctx is not None:
        out["sourceContext"] = _validate_source_context(ctx)
    return out


def _validate_source_context(ctx: Any) -> dict[str, Any]:
    if not isinstance(ctx, dict):
        raise bad_request("Invalid value for sourceContext: expected an object.", "session.source_context")
    for k in ctx:
        if k not in _CTX_FIELDS:
            raise unknown_field(f"sourceContext.{k}")
    src = ctx.get("source")
    if not isinstance(src, str) or not src:
        raise bad_request("sourceContext.source is required.", "session.source_context.source")
    clean: dict[str, Any] = {"source": src if src.startswith("sources/") else f"sources/{src}"}
    grc = ctx.get("githubRepoContext")
    if grc is not None:
        clean["githubRepoContext"] = _validate_repo_context(grc)
    wb = ctx.get("workingBranch")
    if isinstance(wb, str) and wb:
        clean["workingBranch"] = wb
    if ctx.get("environmentVariablesEnabled") is True:
        clean["environmentVariablesEnabled"] = True
    return clean


def _validate_repo_context(grc: Any) -> dict[str, Any]:
    if not isinstance(grc, dict):
        raise bad_request("Invalid value for githubRepoContext.", _REPO_CONTEXT)
    for k in grc:
        if k != "startingBranch":
            raise unknown_field(f"sourceContext.githubRepoContext.{k}")
    branch = grc.get("startingBranch")
    if branch is not None and not isinstance(branch, str):
        raise bad_request("Invalid value for startingBranch.", _REPO_CONTEXT)
    return {"startingBranch": branch} if branch else {}


def validate_message(body: dict[str, Any]) -> str:
    """The body of ``sessions.sendMessage``: its prompt."""
    unknown = [k for k in body if k != "prompt"]
    if unknown:
        raise unknown_field(unknown[0])
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("prompt is required.", "prompt")
    return prompt


# ----------------------------------------------------------------------------- filters
def parse_archived_filter(filt: str) -> bool:
    """``archived = true|false`` of ``sessions.list`` (empty: not archived)."""
    if not filt.strip():
        return False
    m = re.fullmatch(r"\s*archived\s*=\s*(true|false)\s*", filt, re.IGNORECASE)
    if not m:
        raise bad_request(f"Invalid filter: {filt!r}. Supported: archived = true|false.", "filter")
    return m.group(1).lower() == "true"


def parse_source_filter(filt: str) -> set[str]:
    """``name=sources/x OR name=sources/y`` of ``sources.list``: the names wanted."""
    wanted: set[str] = set()
    for part in re.split(r"\s+OR\s+", filt.strip()):
        m = re.fullmatch(r'\s*name\s*=\s*"?(sources/[^"\s]+)"?\s*', part)
        if not m:
            raise bad_request(
                f"Invalid filter: {filt!r}. Supported: name=sources/x OR name=sources/y.", "filter"
            )
        wanted.add(m.group(1))
    return wanted


def parse_activity_filter(filt: str) -> int | None:
    """``create_time>"RFC3339"`` of ``activities.list``: the time in nanoseconds (``None`` when empty)."""
    if not filt.strip():
        return None
    m = re.fullmatch(r'\s*create_time\s*>\s*"([^"]+)"\s*', filt)
    if not m:
        raise bad_request(f'Invalid filter: {filt!r}. Supported: create_time>"RFC3339".', "filter")
    try:
        return parse_ts_ns(m.group(1))
    except ValueError:
        raise bad_request(f"Invalid timestamp in filter: {m.group(1)!r}.", "filter") from None


# ----------------------------------------------------------------------------- page tokens
def invalid_page_token() -> ApiError:
    return bad_request("Invalid page token.", "page_token")


def sessions_page_token(seq: int) -> str:
    """The token of a ``sessions.list`` page that starts at (and goes back from) session ``seq``."""
    return base64.urlsafe_b64encode(f"sessions:{seq}".encode()).decode().rstrip("=")


def parse_sessions_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("sessions:"):
            raise ValueError(raw)
        return int(raw.removeprefix("sessions:"))
    except (ValueError, UnicodeDecodeError):
        raise invalid_page_token() from None


def parse_activities_page_token(token: str) -> int:
    """An ``activities.list`` token: the create time (ns) of the page's first activity."""
    if not token.isdigit() or len(token) > 20:
        raise invalid_page_token()
    return int(token)
