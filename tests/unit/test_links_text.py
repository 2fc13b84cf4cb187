"""Jules's free text reaching a person (issue #22 item 5): URLs in it are clickable only when they pass the
link checks; in a form body the text opens no Markdown link, image, autolink or code span of its own."""

from __future__ import annotations

import re
from typing import Any

import pytest

from airflow_provider_jules import review as rv
from airflow_provider_jules.activity_log import log_activities
from airflow_provider_jules.links.text import ZWSP, defuse_urls, inert_markdown

PR = "https://github.com/acme/web/pull/7"
SESSION = "https://jules.google.com/session/123"
CLICKABLE = re.compile(r"(?i)(https?|ftp)://|www\.")


def clickable(text: str) -> list[str]:
    """What a linkifier would find: every scheme or www. not broken by a zero-width space."""
    return [m.group(0) for m in CLICKABLE.finditer(text)]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/login",
        "http://evil.example",
        "HTTPS://EVIL.EXAMPLE/x",
        "ftp://files.evil.example/a",
        "https://g\u0456thub.com/acme/web/pull/7",  # Cyrillic i
        "https://xn--gthub-n2e.com/acme/web/pull/7",  # its punycode
        "https://github.com.evil.example/acme/web/pull/7",
        "https://github.com@evil.example/acme/web/pull/7",
        "https://github.com/login/oauth/authorize?client_id=x",  # github.com, but no pull request
        "www.evil.example/path",
    ],
)
def test_a_url_that_fails_the_checks_stays_text(url: str) -> None:
    out = defuse_urls(f"Please open {url} now.")
    assert clickable(out) == [], out
    assert out.replace(ZWSP, "") == f"Please open {url} now."  # a person still reads the same text


@pytest.mark.parametrize("url", [PR, SESSION, "HTTPS://GitHub.COM/acme/web/pull/7"])
def test_a_pull_request_or_session_link_that_passes_stays_clickable(url: str) -> None:
    text = f"Done: {url}. And see ({url})"
    assert defuse_urls(text) == text


def test_an_extra_host_from_the_connection_is_honoured() -> None:
    ghe = "https://ghe.acme.example/team/web/pull/3"
    assert clickable(defuse_urls(ghe)) == []
    assert defuse_urls(ghe, hosts=["ghe.acme.example"]) == ghe


def test_inert_markdown_opens_no_link_image_autolink_or_code_span() -> None:
    text = (
        "See [github.com](https://evil.example) ![x](https://evil.example/p.png) <https://evil.example> `a`"
    )
    text += " [r]: x"
    out = inert_markdown(text)
    for char in "[]<>`":  # each one escaped: Markdown reads it as the character itself
        assert all(out[i - 1] == "\\" for i, c in enumerate(out) if c == char), out
    assert clickable(out) == [], out
    assert inert_markdown(f"Fixed in {PR}") == f"Fixed in {PR}"  # an allowed link is still a (bare) link
    assert inert_markdown("a \\ b") == "a \\\\ b"  # a backslash cannot escape the form's own text


def _result(**over: Any) -> dict[str, Any]:
    base = {
        "session_id": "1",
        "url": SESSION,
        "title": "Fix it](https://evil.example) [x",
        "pull_request_url": PR,
        "change_set": {
            "files_changed": ["a.py", "b`[x](https://evil.example)`.py"],
            "patch_bytes": 10,
            "suggested_commit_message": "Done. Details: https://evil.example/d and [here](https://evil.example)",
        },
    }
    base.update(over)
    return base


def test_the_forms_show_jules_s_text_without_its_links() -> None:
    result = _result(
        plan={"steps": [{"title": "Read https://evil.example", "description": "[x](http://e.x)"}]}
    )
    bodies = [
        rv.change_markdown(result, round_number=1, max_rounds=3),
        rv.question_markdown(result, "Shall I use <https://evil.example>?\nOr www.evil.example?"),
        rv.plan_review_markdown(result),
    ]
    for body in bodies:
        found = set(clickable(body))
        assert found <= {"https://"}, (found, body)  # only the checked session and PR links remain
        urls = set(re.findall(r"https://[^\s)\]]+", body))
        assert urls <= {PR, SESSION}, urls
        assert "](https://evil" not in body
    assert "Fix it\\](https" in bodies[1]  # the title cannot close the form's own link text
    assert "- `b'[x](https\u200b://evil.example)'.py`" in bodies[0]  # a file name cannot end its code span
    subject = rv.subject_for("question", result, question="Open https://evil.example please")
    assert clickable(subject) == [] and "evil.example" in subject


def test_the_task_log_shows_jules_s_urls_as_text() -> None:
    lines: list[str] = []

    class Log:
        def info(self, fmt: str, *args: object) -> None:
            lines.append(fmt % args)

    activity = {
        "id": "a1",
        "progressUpdated": {"title": "Deployed to https://evil.example", "description": PR},
    }
    log_activities(Log(), [activity])
    [line] = lines
    assert "https\u200b://evil.example" in line and line.endswith(PR), line  # the checked PR link stays one
    assert clickable(line) == ["https://"], line
