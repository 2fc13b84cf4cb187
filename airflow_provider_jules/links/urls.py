"""URL checks: which links the provider passes on, in the result dict, the XComs, the extra links, the asset
events, the review forms and the logs.

Every URL the Jules API sends that reaches a person goes through one of two checks here:

* a **session link** (:func:`check_session_url`) only to ``https://jules.google.com/...``;
* a **pull request link** (:func:`check_pull_request_url`) only to ``https://github.com/<owner>/<repo>/pull/<n>``
  (Jules opens pull requests on GitHub only), or to the same path on a host the ``jules`` connection adds
  with its extra ``pull_request_hosts`` (a GitHub Enterprise server, see :func:`allowed_hosts`).

Both checks read the host the way a browser would and compare it with the allowed host exactly, case
aside: ``https``, an ASCII host (a look-alike such as ``g\\u0456thub.com``, with a Cyrillic letter, is
refused, and so is its punycode form ``xn--gthub-n2e.com``, which is another host), no user information
(``github.com@evil.example`` is a link to ``evil.example``), no port but the default 443, no trailing dot,
nothing appended (``github.com.evil.example``). A pull request link must also have the path of one (no
query, no fragment), so that even a github.com link leads nowhere but to a pull request (not, say, to an
OAuth authorisation page).

Anything else (another scheme or host, spaces, control characters, backslashes, more than
:data:`MAX_URL_CHARS` characters) is ``None``, with the reason in a logged warning that names the host,
escaped (``'g\\u0456thub.com' (IDNA xn--gthub-n2e.com)``), and never the URL itself: Airflow's log view turns
``https://...`` text into a link, and the warning must not hand the reader the link it refused.

Pure functions, no Airflow: :mod:`airflow_provider_jules.results`, :mod:`airflow_provider_jules.follower` and
:mod:`airflow_provider_jules.links.jules` all use them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_jules.jsontext import as_dict, dicts

__all__ = [
    "MAX_URL_CHARS",
    "PULL_REQUEST_HOST",
    "SESSION_URL_HOST",
    "allowed_hosts",
    "check_pull_request_url",
    "check_session_url",
    "checked",
    "checked_pull_request_url",
    "hosts_of",
    "pull_request_outputs",
    "pull_request_url",
    "session_url",
    "shown_host",
    "url_problem",
]

# The logger these warnings have always used: a logging config that filters on it keeps working.
log = logging.getLogger("airflow_provider_jules.results")

Json = dict[str, Any]

#: The only host of a session link (the Jules web app).
SESSION_URL_HOST = "jules.google.com"
#: The host of every pull request Jules opens; a connection may add GitHub Enterprise hosts.
PULL_REQUEST_HOST = "github.com"
#: The name of the connection extra that adds pull request hosts.
PULL_REQUEST_HOSTS_EXTRA = "pull_request_hosts"
MAX_URL_CHARS = 2048

# /<owner>/<repo>/pull/<number>, as GitHub and GitHub Enterprise write them: letters, digits, ``_``, ``.``
# and ``-`` only (so no percent-escapes), and neither segment ``.`` nor ``..`` (a browser resolves them away).
_SEGMENT = r"(?!\.{1,2}/)[A-Za-z0-9_.-]{1,100}"
_PULL_REQUEST_PATH = re.compile(rf"/{_SEGMENT}/{_SEGMENT}/pull/[1-9][0-9]{{0,9}}")
# A host name a connection may add: dot-separated labels of ASCII letters, digits and inner hyphens.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_HOSTS = 20


def url_problem(url: object) -> tuple[str | None, str]:
    """(the URL's host, lowercase, "") when ``url`` is a plain https URL on an ASCII host without user
    information, else (None, why not)."""
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
        return None, "it carries user information ('user@host'): its host is the part after the '@'"
    if not host:
        return None, "it has no host"
    if not host.isascii():
        return None, "its host has non-ASCII characters (a look-alike of another host?)"
    return host, ""


def _host_problem(url: str, host: str, allowed: tuple[str, ...], hint: str) -> str:
    """Why ``url`` (on ``host``, as :func:`url_problem` read it) is not on one of the ``allowed`` hosts,
    with the default port; "" when it is."""
    if host not in allowed:
        names = " or ".join(allowed)
        return f"its host is not {names}{hint}"
    if urlsplit(url).port not in (None, 443):
        return "it names a port other than the default (443)"
    return ""


def check_session_url(url: object) -> tuple[str | None, str]:
    """``(url, "")`` when ``url`` is an ``https://jules.google.com/...`` link, else ``(None, why)``."""
    host, why = url_problem(url)
    if host is None:
        return None, why
    why = _host_problem(str(url), host, (SESSION_URL_HOST,), "")
    return (None, why) if why else (str(url), "")


def check_pull_request_url(url: object, hosts: Iterable[str] = ()) -> tuple[str | None, str]:
    """``(url, "")`` when ``url`` is ``https://github.com/<owner>/<repo>/pull/<n>`` or the same on one of
    ``hosts`` (lowercase ASCII host names, e.g. from :func:`allowed_hosts`), else ``(None, why)``."""
    host, why = url_problem(url)
    if host is None:
        return None, why
    extra = tuple(h for h in hosts if isinstance(h, str) and h != PULL_REQUEST_HOST)
    hint = f" (nor a host of the connection extra {PULL_REQUEST_HOSTS_EXTRA})" if extra else ""
    why = _host_problem(str(url), host, (PULL_REQUEST_HOST, *extra), hint)
    if why:
        return None, why
    parts = urlsplit(str(url))
    if not _PULL_REQUEST_PATH.fullmatch(parts.path):
        path = parts.path[:100]
        return None, f"it is not a pull request's link (/<owner>/<repo>/pull/<n>): its path is {path!a}"
    if parts.query or parts.fragment or "?" in str(url) or "#" in str(url):
        return None, "it has a query or a fragment, which a pull request's link has not"
    return str(url), ""


def allowed_hosts(value: object) -> tuple[str, ...]:
    """The hosts the connection extra ``pull_request_hosts`` adds to github.com: a list of host names, or one
    string of them separated by commas or spaces (the URI form and the UI field give a string). Lowercased;
    ``()`` when unset. ``ValueError`` naming the first bad entry: a host name only (ASCII letters, digits,
    hyphens and dots; no scheme, port, path, user information or trailing dot), at most 20 of them."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[object] = [item for item in re.split(r"[\s,]+", value) if item]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(
            f"it must be a list of host names or a comma-separated string, got {type(value).__name__}"
        )
    hosts: list[str] = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else item
        if not isinstance(name, str) or len(name) > 253 or not _HOST_NAME.fullmatch(name):
            raise ValueError(
                f"{ascii(item)[:100]} is not a host name: give the host only, e.g. 'github.example.com' "
                "(ASCII letters, digits, '-' and '.'; no scheme, port or path; an internationalised name "
                "in its xn-- form)"
            )
        if name not in hosts:
            hosts.append(name)
    if len(hosts) > _MAX_HOSTS:
        raise ValueError(f"it names {len(hosts)} hosts, more than {_MAX_HOSTS}")
    return tuple(hosts)


def hosts_of(owner: object) -> tuple[str, ...]:
    """The pull request hosts ``owner`` (a :class:`~airflow_provider_jules.hooks.jules.JulesHook`) adds to
    github.com (its ``pull_request_hosts``); ``()`` for anything that has none."""
    value = getattr(owner, "pull_request_hosts", ())
    if not isinstance(value, tuple | list):
        return ()
    return tuple(h for h in value if isinstance(h, str))


def shown_host(url: object) -> str:
    """The host of ``url`` for a log line, never as a link: quoted and escaped (``ascii``), so that a
    look-alike shows its odd letters, with the other IDNA form of an internationalised host."""
    if not isinstance(url, str):
        return f"(a {type(url).__name__}, not a string)"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        return "without a host"
    shown = f"on host {host[:100]!a}"
    try:
        if not host.isascii():
            return f"{shown} (IDNA {host.encode('idna').decode('ascii')[:100]})"
        if any(label.startswith("xn--") for label in host.split(".")):
            return f"{shown} (IDNA for {host.encode('ascii').decode('idna')[:100]!a})"
    except UnicodeError:
        return f"{shown} (not a valid internationalised name)"
    return shown


def checked(url: object, check: Callable[[object], tuple[str | None, str]], what: str) -> str | None:
    """``url`` when it passes ``check``; None when it is missing, or fails (logged, naming ``what`` and the
    URL's host, see :func:`shown_host`; never the URL, which the log view would make a link)."""
    if url is None or url == "":
        return None
    good, why = check(url)
    if good is None:
        log.warning("Ignoring the %s %s: %s.", what, shown_host(url), why)
    return good


def session_url(session: object) -> str | None:
    """The session's web-app link when it passes :func:`check_session_url`, else None (logged)."""
    return checked(as_dict(session).get("url"), check_session_url, "session URL")


def pull_request_outputs(session: object) -> Iterator[Json]:
    """The ``pullRequest`` dicts among the session's ``outputs``, in order (never raises). Their ``url`` is
    as the API sent it: read it with :func:`checked_pull_request_url`."""
    for output in dicts(as_dict(session).get("outputs")):
        pr = output.get("pullRequest")
        if isinstance(pr, dict):
            yield pr


def checked_pull_request_url(pr: Json, hosts: Iterable[str] = ()) -> str | None:
    """The ``url`` of one ``pullRequest`` output when it passes :func:`check_pull_request_url` with
    ``hosts``, else None (logged)."""
    allowed = tuple(hosts)
    return checked(pr.get("url"), lambda url: check_pull_request_url(url, allowed), "pull request URL")


def pull_request_url(session: object, hosts: Iterable[str] = ()) -> str | None:
    """The first pull request's URL when it passes :func:`check_pull_request_url` with ``hosts``, else None
    (logged). Never raises on malformed ``outputs``."""
    for pr in pull_request_outputs(session):
        return checked_pull_request_url(pr, hosts)
    return None
