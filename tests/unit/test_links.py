"""Issue #22 item 5: the links a reviewer clicks are safe.

Pull request links only to ``https://github.com/<owner>/<repo>/pull/<n>`` (an ASCII host compared exactly,
case aside) or the same on a host the connection's extra ``pull_request_hosts`` adds; look-alikes dropped
with a warning that names the host escaped and never hands the log a link; the same rule for the result,
the XComs, the extra link, the review forms and the hook that reads the connection.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from unittest import mock

import pytest

from airflow_provider_jules import review as rv
from airflow_provider_jules.client import JulesConfigError
from airflow_provider_jules.failures import JulesSessionError
from airflow_provider_jules.follower import SessionFollower, push_session
from airflow_provider_jules.hooks.jules import JulesHook
from airflow_provider_jules.links.jules import JulesPullRequestLink, JulesSessionLink
from airflow_provider_jules.links.urls import (
    allowed_hosts,
    check_pull_request_url,
    check_session_url,
    hosts_of,
    pull_request_url,
)
from airflow_provider_jules.operators.jules import JulesCreateSessionOperator
from airflow_provider_jules.results import build_result
from tests.fakes import FakeHook, wait_options

GHE = "ghe.example.com"
CYRILLIC = "https://g\u0456thub.com/acme/web/pull/7"  # a Cyrillic i (U+0456) for the Latin one
PUNYCODE = "https://xn--gthub-n2e.com/acme/web/pull/7"  # the same host as the browser sends it (IDNA)
LOOK_ALIKES = [
    CYRILLIC,
    PUNYCODE,
    "https://github.com.evil.example/acme/web/pull/7",  # the suffix trick
    "https://github.com@evil.example/acme/web/pull/7",  # user information: the host is evil.example
    "https://github.com:x@evil.example/acme/web/pull/7",
    "https://github.com./acme/web/pull/7",  # trailing dot: refused (exact names only)
    "https://evilgithub.com/acme/web/pull/7",
    "https://gist.github.com/acme/web/pull/7",  # a subdomain is another host
    "https://\uff47ithub.com/acme/web/pull/7",  # a fullwidth "g"
    "https://github.com:8443/acme/web/pull/7",
    "http://github.com/acme/web/pull/7",
    "https://ghe.example.com.evil.example/acme/web/pull/7",  # the suffix trick on an added host
]
NOT_A_PULL_REQUEST = [
    "https://github.com/login/oauth/authorize?client_id=evil&scope=repo",
    "https://github.com/acme/web/pull/7?tab=files",
    "https://github.com/acme/web/pull/7#top",
    "https://github.com/acme/web/pull/7?",
    "https://github.com/acme/web/pull/7/files",
    "https://github.com/acme/web/pull/",
    "https://github.com/acme/web/pull/0",
    "https://github.com/acme/web/issues/7",
    "https://github.com/../web/pull/7",
    "https://github.com/acme/%2e%2e/pull/7",
    "https://github.com/acme/web/pull/7/../../../../settings",
    "https://github.com/",
]
ACCEPTED = [
    "https://github.com/o/r/pull/1",
    "https://github.com/bobalover/boba/pull/35",
    "HTTPS://GitHub.COM/o/r/pull/1",  # scheme and host are case-insensitive; the URL is kept as sent
    "https://github.com:443/o/r/pull/1",  # the default port, written out
    "https://github.com/my-org/my_repo.js/pull/12345",
]

# Airflow's log view (3.1 and 3.3) makes a link of this (JavaScript's \w is ASCII: re.ASCII here too).
AIRFLOW_LOG_LINK = re.compile(
    r"https?://[\w.-]+(?:\.?:[\w.-]+)*(?:[#/?][\w!#$%&'()*+,./:;=?@\[\]~-]*)?", re.ASCII
)


def session(pr_url: str | None, **extra: Any) -> dict[str, Any]:
    outputs = [] if pr_url is None else [{"pullRequest": {"url": pr_url, "title": "Fix it"}}]
    return {
        "name": "sessions/1",
        "id": "1",
        "state": "COMPLETED",
        "url": "https://jules.google.com/session/1",
        "outputs": outputs,
        **extra,
    }


# ------------------------------------------------------------------------------------------ the check
@pytest.mark.parametrize("hosts", [(), (GHE,)])
@pytest.mark.parametrize("url", LOOK_ALIKES + NOT_A_PULL_REQUEST)
def test_a_look_alike_or_a_link_that_is_not_a_pull_request_is_refused(url, hosts):
    good, why = check_pull_request_url(url, hosts)
    assert good is None and why


@pytest.mark.parametrize("hosts", [(), (GHE,)])
@pytest.mark.parametrize("url", ACCEPTED)
def test_a_github_pull_request_link_is_kept_as_it_was_sent(url, hosts):
    assert check_pull_request_url(url, hosts) == (url, "")


def test_an_added_host_is_kept_and_only_that_host():
    url = f"https://{GHE}/acme/web/pull/7"
    assert check_pull_request_url(url) == (None, "its host is not github.com")
    assert check_pull_request_url(url, (GHE,)) == (url, "")
    assert check_pull_request_url("https://GHE.Example.COM/acme/web/pull/7", (GHE,))[0] is not None
    assert check_pull_request_url("https://ghe2.example.com/acme/web/pull/7", (GHE,))[0] is None
    assert check_pull_request_url(f"https://{GHE}/login?next=/", (GHE,))[0] is None


def test_the_reason_says_what_is_wrong():
    assert "non-ASCII" in check_pull_request_url(CYRILLIC)[1]
    assert check_pull_request_url(PUNYCODE)[1] == "its host is not github.com"
    assert "user information" in check_pull_request_url("https://github.com@evil.example/o/r/pull/1")[1]
    assert "port" in check_pull_request_url("https://github.com:8443/o/r/pull/1")[1]
    assert "'/login/oauth/authorize'" in check_pull_request_url(NOT_A_PULL_REQUEST[0])[1]
    assert "query or a fragment" in check_pull_request_url("https://github.com/o/r/pull/1#x")[1]
    assert (
        "nor a host of the connection extra pull_request_hosts"
        in (check_pull_request_url("https://evil.example/o/r/pull/1", (GHE,))[1])
    )


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://jules.google.com/session/1", True),
        ("https://JULES.Google.com/session/1", True),
        ("https://jules.g\u043e\u043egle.com/session/1", False),  # two Cyrillic o (U+043E)
        ("https://jules.xn--ggle-55da.com/session/1", False),  # the same in punycode
        ("https://jules.google.com./session/1", False),
        ("https://jules.google.com.evil.example/session/1", False),
        ("https://jules.goog1e.com/session/1", False),
        ("https://google.com/session/1", False),
    ],
)
def test_the_session_link_follows_the_same_host_rules(url, ok):
    assert (check_session_url(url)[0] == url) is ok


# ------------------------------------------------------------------------------------------ the warning
@pytest.mark.parametrize(
    ("url", "named"),
    [
        (CYRILLIC, "on host 'g\\u0456thub.com' (IDNA xn--gthub-n2e.com)"),
        (PUNYCODE, "on host 'xn--gthub-n2e.com' (IDNA for 'g\\u0456thub.com')"),
        ("https://github.com.evil.example/acme/web/pull/7", "on host 'github.com.evil.example'"),
        ("https://github.com@evil.example/acme/web/pull/7", "on host 'evil.example'"),
    ],
)
def test_a_dropped_link_is_logged_with_its_host_escaped_and_never_as_a_link(url, named, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_jules.results")
    result = build_result(session(url), [])
    assert result["pull_request_url"] is None and result["pull_requests"][0]["url"] is None
    assert result["pull_requests"][0]["title"] == "Fix it"  # the rest of the pull request is kept
    assert result["outcome"] == "completed"  # Jules did open one: only its link is withheld
    assert f"Ignoring the pull request URL {named}: " in caplog.text
    assert AIRFLOW_LOG_LINK.findall(caplog.text) == []
    assert "://" not in caplog.text and "\u0456" not in caplog.text


def test_a_failing_session_error_names_only_a_checked_session_link():
    good = JulesSessionError("failed", "boom", session_id="1", url="https://jules.google.com/session/1")
    assert "Open https://jules.google.com/session/1 to see the session." in str(good)
    bad = JulesSessionError("failed", "boom", session_id="1", url="https://jules.g\u043e\u043egle.com/s/1")
    assert bad.url is None and "Open" not in str(bad) and "://" not in str(bad)


# ------------------------------------------------------------------------------------------ the extra
@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        (None, ()),
        ("", ()),
        ([], ()),
        ("ghe.example.com", (GHE,)),
        ("GHE.example.com, git.corp.example  git.corp.example", (GHE, "git.corp.example")),
        (["ghe.example.com", "xn--gthub-n2e.corp"], (GHE, "xn--gthub-n2e.corp")),  # an admin's own choice
    ],
)
def test_the_extra_names_host_names(value, hosts):
    assert allowed_hosts(value) == hosts


@pytest.mark.parametrize(
    "value",
    [
        "https://ghe.example.com",
        "ghe.example.com:443",
        "ghe.example.com.",
        "ghe.example.com/api",
        "user@ghe.example.com",
        "g\u0456thub.com",
        "*.example.com",
        ["ghe.example.com", 5],
        5,
        {"host": "ghe.example.com"},
        ",".join(f"h{i}.example" for i in range(21)),
    ],
)
def test_a_bad_extra_is_refused(value):
    with pytest.raises(ValueError):
        allowed_hosts(value)


def _conn(monkeypatch, conn_id="jules_default", **fields):
    payload = {"conn_type": "jules", "password": "k-123", "host": "http://127.0.0.1:9", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def test_the_hook_reads_the_hosts_from_the_connection(monkeypatch):
    _conn(monkeypatch, extra={"pull_request_hosts": ["GHE.example.com"]})
    assert JulesHook().pull_request_hosts == (GHE,)
    _conn(monkeypatch, "jules_plain")
    assert JulesHook("jules_plain").pull_request_hosts == ()


def test_the_hook_reads_the_hosts_from_a_connection_uri(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_JULES_URI",
        "jules://:k-123@http%3A%2F%2F127.0.0.1%3A9?pull_request_hosts=ghe.example.com",
    )
    assert JulesHook("jules_uri").pull_request_hosts == (GHE,)


def test_a_bad_extra_fails_the_client_before_any_request_naming_the_extra(monkeypatch):
    _conn(monkeypatch, extra={"pull_request_hosts": "https://ghe.example.com"})
    with pytest.raises(JulesConfigError, match=r"extra 'pull_request_hosts'.*host name"):
        JulesHook().client  # noqa: B018
    with pytest.raises(JulesConfigError, match="pull_request_hosts"):
        JulesHook().pull_request_hosts  # noqa: B018


@pytest.mark.parametrize(
    ("owner", "hosts"),
    [
        (mock.Mock(pull_request_hosts=(GHE,)), (GHE,)),
        (mock.Mock(pull_request_hosts=[GHE, 5]), (GHE,)),
        (mock.MagicMock(), ()),  # a mock hook of a test: no hosts
        (FakeHook(), ()),
        (None, ()),
    ],
)
def test_hosts_of_reads_a_hooks_hosts_and_nothing_else(owner, hosts):
    assert hosts_of(owner) == hosts


# ------------------------------------------------------------------------------------------ every caller
def _hook(hosts: tuple[str, ...], pr_url: str) -> FakeHook:
    hook = FakeHook(states=["COMPLETED"], session=session(pr_url))
    hook.pull_request_hosts = hosts  # type: ignore[attr-defined]
    return hook


@pytest.mark.parametrize(("hosts", "kept"), [((), False), ((GHE,), True)])
def test_the_xcom_pushed_with_the_session_uses_the_hooks_hosts(hosts, kept):
    url = f"https://{GHE}/acme/web/pull/7"
    ti = mock.MagicMock()
    push_session({"ti": ti}, session(url), _hook(hosts, url))  # type: ignore[arg-type]
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ti.xcom_push.call_args_list}
    assert pushed["pull_request_url"] == (url if kept else None)
    assert pushed["session_url"] == "https://jules.google.com/session/1"


def _follower(hook: FakeHook) -> SessionFollower:
    task = JulesCreateSessionOperator(task_id="t", prompt="Fix it", source="acme/web")
    return SessionFollower(task, wait_options(), hook=hook, conn_id="jules_default")


@pytest.mark.parametrize(
    ("hosts", "url", "shown"),
    [
        ((), CYRILLIC, False),
        ((GHE,), "https://github.com.evil.example/acme/web/pull/7", False),
        ((), f"https://{GHE}/acme/web/pull/7", False),
        ((GHE,), f"https://{GHE}/acme/web/pull/7", True),
        ((), "https://github.com/acme/web/pull/7", True),
    ],
)
def test_the_review_forms_link_only_a_kept_pull_request(hosts, url, shown):
    hook = _hook(hosts, url)
    result = _follower(hook).snapshot(hook.get_session("1"), [])
    assert (result["pull_request_url"] == url) is shown
    body = rv.change_markdown(result, round_number=1, max_rounds=3) + rv.reuse_note(result)
    assert (url in body) is shown
    assert ("[the pull request](" in body) is shown
    for link in AIRFLOW_LOG_LINK.findall(body):
        assert link.startswith(("https://jules.google.com/", "https://github.com/", f"https://{GHE}/")), link


@pytest.mark.parametrize(("hosts", "kept"), [((), False), ((GHE,), True)])
def test_the_pull_request_link_checks_its_xcom_with_the_operators_hosts(hosts, kept):
    url = f"https://{GHE}/acme/web/pull/7"
    operator = mock.Mock(hook=mock.Mock(pull_request_hosts=hosts))
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=url):
        assert JulesPullRequestLink().get_link(operator, ti_key=mock.MagicMock()) == (url if kept else "")


@pytest.mark.parametrize("stored", LOOK_ALIKES[:4])
def test_the_pull_request_link_never_shows_a_look_alike(stored):
    operator = mock.Mock(hook=mock.Mock(pull_request_hosts=(GHE,)))
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=stored):
        assert JulesPullRequestLink().get_link(operator, ti_key=mock.MagicMock()) == ""
        assert JulesSessionLink().get_link(operator, ti_key=mock.MagicMock()) == ""


def test_the_pull_request_link_survives_a_connection_it_cannot_read(caplog):
    url = "https://github.com/acme/web/pull/7"
    hook = mock.Mock()
    type(hook).pull_request_hosts = mock.PropertyMock(side_effect=JulesConfigError("no such connection"))
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value=url):
        assert JulesPullRequestLink().get_link(mock.Mock(hook=hook), ti_key=mock.MagicMock()) == url
    assert "cannot read its hosts" in caplog.text


def test_the_trigger_carries_no_hosts():
    """The trigger never handles a URL (it reports states; the worker builds the result): its kwargs, which
    the metadata database stores, need no hosts."""
    hook = FakeHook(states=["IN_PROGRESS"])
    hook.pull_request_hosts = (GHE,)  # type: ignore[attr-defined]
    task = JulesCreateSessionOperator(task_id="t", prompt="Fix it", source="acme/web")
    follower = SessionFollower(task, wait_options(deferrable=True), hook=hook, conn_id="jules_ghe")
    from airflow_provider_jules._compat import TaskDeferred

    with pytest.raises(TaskDeferred) as info:
        follower.follow({"ti": mock.MagicMock()}, follower.new_watch("1"))  # type: ignore[arg-type]
    _, kwargs = info.value.trigger.serialize()
    assert GHE not in json.dumps(kwargs) and kwargs["jules_conn_id"] == "jules_ghe"


def test_the_first_pull_request_decides_the_link():
    two = session(CYRILLIC)
    two["outputs"].append({"pullRequest": {"url": "https://github.com/acme/web/pull/8"}})
    assert pull_request_url(two) is None  # the first pull request's link is withheld, not replaced
    result = build_result(two, [])
    assert [pr["url"] for pr in result["pull_requests"]] == [None, "https://github.com/acme/web/pull/8"]
    assert result["pull_request_url"] is None
