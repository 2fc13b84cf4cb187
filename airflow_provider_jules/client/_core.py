"""The sans-IO core shared by the sync and the async client.

Each endpoint is written once here, as a function returning a :class:`Request`. The transports only send a
Request and hand back ``(status, headers, body)``; :func:`parse_response` turns that into a dict or a typed
error. No I/O, no Airflow, no HTTP library in this module.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from airflow_provider_jules.client.errors import (
    JulesConfigError,
    JulesInvalidResponseError,
    JulesTransportError,
    error_from_response,
)
from airflow_provider_jules.client.models import (
    AUTOMATION_MODES,
    Json,
    activity_id,
    format_timestamp_ns,
    parse_timestamp_ns,
    session_id,
    source_name,
    source_path_segments,
)

DEFAULT_BASE_URL = "https://jules.googleapis.com"
API_VERSION = "v1alpha"
API_KEY_HEADER = "x-goog-api-key"
MAX_PAGE_SIZE = 100
#: Upper bound on pages followed by one list call (1000 pages x 100 items): every loop is bounded. A list
#: that still has a next page after this many is an error (JulesInvalidResponseError), never cut silently.
MAX_PAGES = 1000
#: A ``nextPageToken`` longer than this is refused (real tokens are ids or nanosecond timestamps).
MAX_PAGE_TOKEN_CHARS = 4096
#: Default cap on the (decompressed) bytes of one response body; the connection extra max_response_bytes.
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: Bytes read of an error (non-2xx) body: enough for the google.rpc envelope; the rest is not read.
ERROR_BODY_LIMIT = 16 * 1024
#: Bytes read per chunk by the transports.
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One API call, independent of the transport."""

    method: str
    path: str  # below the base URL, starting with /v1alpha
    route: str  # stable endpoint name, e.g. "create_session"
    params: Mapping[str, str] = field(default_factory=dict)
    body: Json | None = None
    #: True when sending the call twice has the same effect as once (safe to retry after it was sent).
    idempotent: bool = True

    def with_params(self, **params: str) -> Request:
        merged = {**self.params, **params}
        return Request(self.method, self.path, self.route, merged, self.body, self.idempotent)


def validate_base_url(base_url: str | None) -> str:
    """The API root without a trailing slash or version; https required except on loopback."""
    url = (base_url or DEFAULT_BASE_URL).strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    if url.endswith("/" + API_VERSION):
        url = url[: -len(API_VERSION) - 1]
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise JulesConfigError(
            f"Base URL {base_url!r} is not a valid URL: use 'https://jules.googleapis.com' (the default) "
            "or leave the connection's Base URL empty."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise JulesConfigError(
            "Base URL must not carry credentials, a query or a fragment: put the API key in the "
            "connection's password field (API Key)."
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise JulesConfigError(
            f"Base URL {base_url!r} uses plain http to a non-loopback host: the API key would travel "
            "unencrypted. Use https, or http only to 127.0.0.1/localhost (for the bundled simulator)."
        )
    return url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_api_key(api_key: str | None) -> str:
    """The key, stripped; it must be printable ASCII without spaces (the same rule for both clients).

    The error never contains the key.
    """
    if not isinstance(api_key, str) or not api_key.strip():
        raise JulesConfigError(
            "The Jules connection has no API key: put the key in the connection's password field "
            '(\'API Key\' in the UI), e.g. AIRFLOW_CONN_JULES_DEFAULT=\'{"conn_type": "jules", '
            '"password": "<key>"}\'. Create a key at https://jules.google.com/settings#api.'
        )
    key = api_key.strip()
    bad = [c for c in key if not 33 <= ord(c) <= 126]
    if bad:
        kinds = sorted({_char_kind(c) for c in bad})
        raise JulesConfigError(
            f"The Jules API key contains {' and '.join(kinds)} ({len(bad)} character(s)); a key is printable "
            "ASCII without spaces. Paste it again from https://jules.google.com/settings#api."
        )
    return key


def _char_kind(c: str) -> str:
    if c.isspace():
        return "spaces"
    return "control characters" if ord(c) < 32 or ord(c) == 127 else "non-ASCII characters"


def _v(*segments: str) -> str:
    return "/" + API_VERSION + "/" + "/".join(quote(s, safe="") for s in segments)


def _page_params(page_size: int | None, page_token: str | None, **extra: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if page_size is not None:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise JulesConfigError(f"page_size must be a positive integer, got {page_size!r}.")
        params["pageSize"] = str(min(page_size, MAX_PAGE_SIZE))
    if page_token:
        params["pageToken"] = page_token
    params.update({k: v for k, v in extra.items() if v})
    return params


# ----------------------------------------------------------------------------------------------- endpoints


def create_session(
    prompt: str,
    *,
    source: str | None = None,
    starting_branch: str | None = None,
    title: str | None = None,
    require_plan_approval: bool | None = None,
    automation_mode: str | None = None,
) -> Request:
    if not isinstance(prompt, str) or not prompt.strip():
        raise JulesConfigError("prompt must be a non-empty string: tell Jules what to do.")
    body: Json = {"prompt": prompt}
    if source is not None:
        context: Json = {"source": source_name(source)}
        if starting_branch is not None:
            if not isinstance(starting_branch, str) or not starting_branch.strip():
                raise JulesConfigError("starting_branch must be a non-empty branch name, or None.")
            context["githubRepoContext"] = {"startingBranch": starting_branch.strip()}
        body["sourceContext"] = context
    elif starting_branch is not None:
        raise JulesConfigError("starting_branch needs a source: name the repository in source.")
    if title is not None:
        if not isinstance(title, str):
            raise JulesConfigError(f"title must be a string, got {type(title).__name__}.")
        if title.strip():
            body["title"] = title
    if require_plan_approval is not None:
        if not isinstance(require_plan_approval, bool):
            raise JulesConfigError(
                f"require_plan_approval must be True, False or None, got {require_plan_approval!r}."
            )
        body["requirePlanApproval"] = require_plan_approval
    if automation_mode is not None:
        if automation_mode not in AUTOMATION_MODES:
            raise JulesConfigError(
                f"automation_mode {automation_mode!r} is unknown: use one of {sorted(AUTOMATION_MODES)}."
            )
        body["automationMode"] = automation_mode
    return Request("POST", _v("sessions"), "create_session", body=body, idempotent=False)


def get_session(session: str) -> Request:
    return Request("GET", _v("sessions", session_id(session)), "get_session")


def list_sessions(
    *, page_size: int | None = None, page_token: str | None = None, archived: bool | None = None
) -> Request:
    archived_filter = None if archived is None else f"archived = {'true' if archived else 'false'}"
    return Request(
        "GET",
        _v("sessions"),
        "list_sessions",
        params=_page_params(page_size, page_token, filter=archived_filter),
    )


def delete_session(session: str) -> Request:
    return Request("DELETE", _v("sessions", session_id(session)), "delete_session")


def _verb(session: str, verb: str) -> str:
    return _v("sessions", session_id(session)) + ":" + verb


def send_message(session: str, prompt: str) -> Request:
    if not isinstance(prompt, str) or not prompt.strip():
        raise JulesConfigError("prompt (the message to send) must be a non-empty string.")
    # A second identical message would be a second message: never blindly retried once sent.
    return Request(
        "POST", _verb(session, "sendMessage"), "send_message", body={"prompt": prompt}, idempotent=False
    )


def approve_plan(session: str) -> Request:
    return Request("POST", _verb(session, "approvePlan"), "approve_plan", body={})


def archive_session(session: str) -> Request:
    return Request("POST", _verb(session, "archive"), "archive_session", body={})


def unarchive_session(session: str) -> Request:
    return Request("POST", _verb(session, "unarchive"), "unarchive_session", body={})


def create_time_filter(created_after: str | int) -> str:
    """The ``create_time>"..."`` filter of the incremental activity listing."""
    ns = created_after if isinstance(created_after, int) else parse_timestamp_ns(created_after)
    return f'create_time>"{format_timestamp_ns(ns)}"'


def list_activities(
    session: str,
    *,
    page_size: int | None = None,
    page_token: str | None = None,
    created_after: str | int | None = None,
) -> Request:
    flt = create_time_filter(created_after) if created_after is not None else None
    return Request(
        "GET",
        _v("sessions", session_id(session), "activities"),
        "list_activities",
        params=_page_params(page_size, page_token, filter=flt),
    )


def get_activity(session: str, activity: str) -> Request:
    return Request(
        "GET", _v("sessions", session_id(session), "activities", activity_id(activity)), "get_activity"
    )


def list_sources(
    *, filter: str | None = None, page_size: int | None = None, page_token: str | None = None
) -> Request:
    return Request(
        "GET", _v("sources"), "list_sources", params=_page_params(page_size, page_token, filter=filter)
    )


def get_source(source: str) -> Request:
    return Request("GET", _v("sources", *source_path_segments(source)), "get_source")


# ----------------------------------------------------------------------------------------------- responses


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_response(
    request: Request,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    reason: str = "",
    *,
    secret: str = "",
) -> Json:
    """A 2xx body as a dict (zero-length and ``{}`` both give ``{}``, Q8/Q9), or raise the typed error.

    A 2xx body that is not a JSON object (invalid, nested too deeply, an array, ``null``...) is a
    :class:`JulesInvalidResponseError`. ``secret`` is masked in any server text kept in an error.
    """
    if 200 <= status < 300:
        if not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
            raise invalid_response(request, status, f"a body that is {what} ({len(body)} bytes)") from None
        if not isinstance(parsed, dict):
            raise invalid_response(
                request, status, f"a JSON {type(parsed).__name__} where an object was expected"
            )
        return parsed
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    raise error_from_response(
        status,
        body,
        retry_after=retry_after,
        reason=reason,
        method=request.method,
        path=request.path,
        secret=secret,
    )


def invalid_response(request: Request, status: int, what: str) -> JulesInvalidResponseError:
    return JulesInvalidResponseError(
        f"the API answered {status} with {what}",
        http_status=status,
        status="INVALID_RESPONSE",
        method=request.method,
        path=request.path,
    )


def too_large(request: Request, limit: int) -> JulesTransportError:
    return JulesTransportError(
        f"{describe(request)} failed: the response body exceeded {limit} bytes (decompressed) and was not "
        "read further. Raise the connection extra max_response_bytes if the API really sends that much.",
        reached_server=True,
        method=request.method,
        path=request.path,
    )


def deadline_exceeded(request: Request, seconds: float) -> JulesTransportError:
    return JulesTransportError(
        f"{describe(request)} failed: no complete response within {seconds:g} s (the connection's "
        "timeout covers connect, send and the whole body of one attempt)",
        reached_server=True,
        method=request.method,
        path=request.path,
    )


def body_limit(status: int, max_response_bytes: int) -> int:
    """How many body bytes to read: the cap for a 2xx, a few KB for an error (the rest is not needed)."""
    return max_response_bytes if 200 <= status < 300 else min(ERROR_BODY_LIMIT, max_response_bytes)


def list_items(request: Request, response: Json, key: str) -> list[Json]:
    """The dict items of a list field: missing or ``null`` (proto3 JSON default) is empty; a value that is
    not a list is a :class:`JulesInvalidResponseError`; non-dict items are skipped."""
    value = response.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_response(request, 200, f"{key!r} as a JSON {type(value).__name__}, not a list")
    return [item for item in value if isinstance(item, dict)]


def has_session_id(session: Json) -> bool:
    try:
        session_id(session)
    except JulesConfigError:
        return False
    return True


def require_session(request: Request, session: Json) -> Json:
    """A created or read session must carry a usable ``name`` or ``id``."""
    try:
        session_id(session)
    except JulesConfigError:
        raise invalid_response(request, 200, "a session without a usable 'name' or 'id'") from None
    return session


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def next_page(request: Request, response: Json) -> Request | None:
    token = response.get("nextPageToken")
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise invalid_response(request, 200, f"a nextPageToken that is a JSON {type(token).__name__}")
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise invalid_response(
            request, 200, f"a nextPageToken of {len(token)} characters (at most {MAX_PAGE_TOKEN_CHARS})"
        )
    return request.with_params(pageToken=token)


class Pager:
    """Follows ``nextPageToken`` for one list call and notices a loop: a token seen before, or more than
    :data:`MAX_PAGES` pages, is a :class:`JulesInvalidResponseError` (never a silent truncation)."""

    def __init__(self, first: Request) -> None:
        self.first = first
        self.pages = 0
        self._seen: set[str] = set()

    def next(self, request: Request, response: Json) -> Request | None:
        self.pages += 1
        nxt = next_page(request, response)
        if nxt is None:
            return None
        token = nxt.params["pageToken"]
        if token in self._seen or token == self.first.params.get("pageToken"):
            raise invalid_response(
                request, 200, "a nextPageToken it already sent for this list (a paging loop); stopping"
            )
        if self.pages >= MAX_PAGES:
            raise invalid_response(
                request, 200, f"a next page after {MAX_PAGES} pages (the page cap); stopping the list"
            )
        self._seen.add(token)
        return nxt


def filter_created_after(activities: list[Json], created_after: str | int) -> list[Json]:
    """Client-side fallback of the ``create_time>`` filter."""
    from airflow_provider_jules.client.models import activity_time_ns

    cutoff = created_after if isinstance(created_after, int) else parse_timestamp_ns(created_after)
    return [a for a in activities if (activity_time_ns(a) or 0) > cutoff]


def headers_for(api_key: str, user_agent: str, request: Request) -> dict[str, str]:
    headers = {
        API_KEY_HEADER: api_key,
        "Accept": "application/json",
        # Only what both clients decode with a bounded output (see max_response_bytes).
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": user_agent,
    }
    if request.body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def encode_body(request: Request) -> bytes | None:
    return None if request.body is None else json.dumps(request.body, separators=(",", ":")).encode()


def user_agent() -> str:
    from airflow_provider_jules import __version__

    return f"airflow-provider-jules/{__version__}"


def describe(request: Request) -> str:
    """A loggable description of a request: method and path only (never headers)."""
    return f"{request.method} {request.path}"


_ = session_id  # re-exported for the transports
