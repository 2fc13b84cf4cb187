"""Extra links: "Jules Session" (clickable while the task is deferred) and "Jules Pull Request".

In Airflow 3 the worker computes each link when a task attempt ends, deferral included, and stores it in XCom;
the operators push ``session_url`` right after creating the session, so the session link works while Jules is
still working. The pull request link appears once the session has produced a PR.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

SESSION_URL_KEY = "session_url"
PULL_REQUEST_URL_KEY = "pull_request_url"


def _xcom_value(ti_key: Any, key: str) -> str:
    """The URL stored under ``key``, or "" unless it passes the same check as the result dict: a session
    link only to ``https://jules.google.com/...``, a pull request link only to an ``https://`` URL on a host
    without user information."""
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_provider_jules.links.urls import check_pull_request_url, check_session_url

    value = XCom.get_value(ti_key=ti_key, key=key)
    check = check_session_url if key == SESSION_URL_KEY else check_pull_request_url
    return check(value)[0] or ""


class JulesSessionLink(BaseOperatorLink):
    """Link to the Jules web app page of the session the task follows."""

    name = "Jules Session"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom_value(ti_key, SESSION_URL_KEY)


class JulesPullRequestLink(BaseOperatorLink):
    """Link to the (first) pull request the session opened."""

    name = "Jules Pull Request"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom_value(ti_key, PULL_REQUEST_URL_KEY)
