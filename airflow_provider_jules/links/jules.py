"""Extra links: "Jules Session" (clickable while the task is deferred) and "Jules Pull Request".

In Airflow 3 the worker computes each link when a task attempt ends, deferral included, and stores it in XCom;
the operators push ``session_url`` right after creating the session, so the session link works while Jules is
still working. The pull request link appears once the session has produced a PR.

Both links check the XCom they read again, with the checks of the result dict
(:mod:`airflow_provider_jules.links.urls`): the pull request link with the hosts the task's connection adds
to github.com (its hook runs in the same worker); the API server only shows what the worker stored.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperatorLink

SESSION_URL_KEY = "session_url"
PULL_REQUEST_URL_KEY = "pull_request_url"


def _xcom_value(ti_key: Any, key: str, hosts: tuple[str, ...] = ()) -> str:
    """The URL stored under ``key``, or "" unless it passes the same check as the result dict: a session
    link only to ``https://jules.google.com/...``, a pull request link only to
    ``https://github.com/<owner>/<repo>/pull/<n>`` or the same on one of ``hosts``."""
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_provider_jules.links.urls import check_pull_request_url, check_session_url

    value = XCom.get_value(ti_key=ti_key, key=key)
    if key == SESSION_URL_KEY:
        return check_session_url(value)[0] or ""
    return check_pull_request_url(value, hosts)[0] or ""


def _pull_request_hosts(operator: Any) -> tuple[str, ...]:
    """The hosts the operator's connection adds to github.com; none when it cannot tell (a link must
    never fail the task's end: the link of an added host is then empty, never one of another host)."""
    from airflow_provider_jules.links.urls import hosts_of

    try:
        return hosts_of(getattr(operator, "hook", None))
    except Exception as exc:
        logging.getLogger(__name__).warning("The Jules Pull Request link cannot read its hosts: %s", exc)
        return ()


class JulesSessionLink(BaseOperatorLink):
    """Link to the Jules web app page of the session the task follows."""

    name = "Jules Session"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom_value(ti_key, SESSION_URL_KEY)


class JulesPullRequestLink(BaseOperatorLink):
    """Link to the (first) pull request the session opened."""

    name = "Jules Pull Request"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom_value(ti_key, PULL_REQUEST_URL_KEY, _pull_request_hosts(operator))


FIX_XCOM_KEY = "jules_fix"


class JulesFixLink(BaseOperatorLink):
    """ "Jules Fix" on every operator (a global link of the provider's plugin): the fix session that
    :class:`~airflow_provider_jules.notifications.jules.JulesFixNotifier` opened or found for the task's
    failure. Empty (greyed out) when the task instance has no ``jules_fix`` XCom.

    Unlike the operators' links, a global link runs in the API server, so it reads the XCom from the
    metadata database (the API server always has it).
    """

    name = "Jules Fix"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow_provider_jules.links.urls import check_session_url

        try:
            value = _stored_xcom(ti_key, FIX_XCOM_KEY)
        except Exception as exc:  # a global link runs for every task: never fail the whole links call
            logging.getLogger(__name__).warning("The Jules Fix link could not read its XCom: %s", exc)
            return ""
        url = value.get("url") if isinstance(value, dict) else None
        return check_session_url(url)[0] or ""


def _stored_xcom(ti_key: Any, key: str) -> Any:
    """One XCom value of the task instance ``ti_key``, read from the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=ti_key.run_id,
            key=key,
            dag_ids=ti_key.dag_id,
            task_ids=ti_key.task_id,
            map_indexes=ti_key.map_index,
        ).limit(1)
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)
