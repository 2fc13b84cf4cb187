"""URL checks: which links the provider passes on, in the result dict, the XComs and the extra links.

A session link only to ``https://jules.google.com/...``; a pull request link only to an ``https://`` URL on a
host without user information. Anything else (another scheme, ``user@host``, spaces, control characters,
backslashes, more than :data:`MAX_URL_CHARS` characters) is ``None``, with the reason in a logged warning.
Pure functions, no Airflow: :mod:`airflow_provider_jules.results` and
:mod:`airflow_provider_jules.links.jules` both use them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_jules.jsontext import as_dict, dicts

__all__ = [
    "MAX_URL_CHARS",
    "SESSION_URL_HOST",
    "check_pull_request_url",
    "check_session_url",
    "checked",
    "pull_request_outputs",
    "pull_request_url",
    "session_url",
    "url_problem",
]

# The logger these warnings have always used: a logging config that filters on it keeps working.
log = logging.getLogger("airflow_provider_jules.results")

Json = dict[str, Any]

#: The only host of a session link (the Jules web app).
SESSION_URL_HOST = "jules.google.com"
MAX_URL_CHARS = 2048


def url_problem(url: object) -> tuple[str | None, str]:
    """(the URL's host, "") when ``url`` is a plain https URL, else (None, why not)."""
    if not isinstance(url, str) or not url:
        return None, "it is missing or not a string"
    if len(url) > MAX_URL_CHARS:
        return None, f"it is longer than {MAX_URL_CHARS} characters"
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
    host, why = url_problem(url)
    if host is None:
        return None, why
    if host != SESSION_URL_HOST or urlsplit(str(url)).port not in (None, 443):
        return None, f"its host is not {SESSION_URL_HOST}"
    return str(url), ""


def check_pull_request_url(url: object) -> tuple[str | None, str]:
    """``(url, "")`` when ``url`` is an ``https://`` URL on a host without user information, else
    ``(None, why)``."""
    host, why = url_problem(url)
    return (str(url), "") if host is not None else (None, why)


def checked(url: object, check: Callable[[object], tuple[str | None, str]], what: str) -> str | None:
    """``url`` when it passes ``check``; None when it is missing, or fails (logged, naming ``what``)."""
    if url is None or url == "":
        return None
    good, why = check(url)
    if good is None:
        shown = repr(url)[:200] if isinstance(url, str) else type(url).__name__
        log.warning("Ignoring the %s %s: %s.", what, shown, why)
    return good


def session_url(session: object) -> str | None:
    """The session's web-app link when it passes :func:`check_session_url`, else None (logged)."""
    return checked(as_dict(session).get("url"), check_session_url, "session URL")


def pull_request_outputs(session: object) -> Iterator[Json]:
    """The ``pullRequest`` dicts among the session's ``outputs``, in order (never raises)."""
    for output in dicts(as_dict(session).get("outputs")):
        pr = output.get("pullRequest")
        if isinstance(pr, dict):
            yield pr


def pull_request_url(session: object) -> str | None:
    """The first pull request's URL when it passes :func:`check_pull_request_url`, else None (logged).
    Never raises on malformed ``outputs``."""
    urls = [
        checked(pr.get("url"), check_pull_request_url, "pull request URL")
        for pr in pull_request_outputs(session)
    ]
    return urls[0] if urls else None
