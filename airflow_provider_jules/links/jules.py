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
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_value(ti_key=ti_key, key=key)
    return value if isinstance(value, str) and value.startswith("https://") else ""


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
