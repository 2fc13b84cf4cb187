"""Jules's own text shown to a person: URLs in it stay text unless they pass the link checks.

Jules's questions, plan steps, summaries, session titles and progress updates are free text from the API.
Airflow renders a form's body as Markdown with GitHub's extensions, where ``[github.com](https://evil)``, a
bare ``https://evil.example`` and ``www.evil.example`` all become links, and its log view turns any
``https://...`` into a link. So before such text reaches a form, a subject or a task log line:

* :func:`defuse_urls` leaves a URL clickable only when it passes :func:`check_session_url` or
  :func:`check_pull_request_url`; any other ``http(s)://``, ``ftp://`` or ``www.`` gets a zero-width space
  after its scheme (``https\\u200b://evil.example``), which no linkifier matches and a reader still reads;
* :func:`inert_markdown` also backslash-escapes the characters of Markdown's own links, images, autolinks
  and code spans (``\\ [ ] < > ` ``), so the text cannot open a link, close the form's own link text, or
  start a code span that swallows what follows. Emphasis is kept.

Pure functions; the result dict and the XComs keep Jules's text as it came.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from airflow_provider_jules.links.urls import check_pull_request_url, check_session_url

__all__ = ["ZWSP", "defuse_urls", "inert_markdown"]

ZWSP = "\u200b"
# A URL-looking run: a scheme or "www." and everything up to whitespace or a character that ends a URL in
# prose. The scheme alone is what a linkifier needs, so the scheme is what gets broken.
_URL = re.compile(
    r"(?i)(?<![\w.+-])(https?|ftp)(://)[^\s<>\[\]()\"'`]*|(?<![\w.-])(www)(\.)[^\s<>\[\]()\"'`]*"
)
_MARKDOWN = re.compile(r"([\\\[\]<>`])")


def _allowed(url: str, hosts: Iterable[str]) -> bool:
    return check_session_url(url)[0] is not None or check_pull_request_url(url, hosts)[0] is not None


def defuse_urls(text: str, hosts: Iterable[str] = ()) -> str:
    """``text`` with every URL that is neither a Jules session link nor an allowed pull request link made
    unclickable (a zero-width space after its scheme); ``hosts``: extra pull request hosts."""
    allowed = tuple(hosts)

    def one(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")
        if match.group(1) and _allowed(url, allowed):
            return match.group(0)
        scheme, sep = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        return scheme + ZWSP + sep + match.group(0)[len(scheme) + len(sep) :]

    return _URL.sub(one, text)


def inert_markdown(text: str, hosts: Iterable[str] = ()) -> str:
    """``text`` safe to place in a Markdown form body: no link, image, autolink or code span of its own, and
    only allowed URLs clickable (as bare URLs)."""
    return defuse_urls(_MARKDOWN.sub(r"\\\1", text), hosts)
