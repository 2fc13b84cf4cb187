"""What a Jules task read and wrote, as OpenLineage names it (docs "Lineage").

:func:`session_lineage` turns what a session-creating task knows once it ends (its result dict, the session
resource, its own ``source`` and ``starting_branch``) into a :class:`SessionLineage`: plain strings and
lists, no OpenLineage. :mod:`airflow_provider_jules.lineage.facets` turns that into the OpenLineage objects
and is the only module that imports OpenLineage; it is imported only when the OpenLineage provider calls
a task's ``get_openlineage_facets_on_complete``, so a DAG never pays for OpenLineage, installed or not.

Naming (the OpenLineage naming spec has no entry for git repositories; this follows its general rule, a
namespace ``scheme://authority`` for the data source and a name that is the path, so that
``namespace + "/" + name`` is the URI of the dataset):

* the **input**, the repository at the branch Jules started from: namespace ``https://github.com``, name
  ``{owner}/{repo}/tree/{branch}`` (``{owner}/{repo}`` when the branch is unknown). Together they are the
  branch's page on GitHub.
* the **output**, the pull request: namespace ``https://{host}`` (``github.com``, or the GitHub Enterprise
  host of a connection's ``pull_request_hosts``), name ``{owner}/{repo}/pull/{number}``: together, the pull
  request's URL. Without a pull request, a session that completed with a patch outputs the branch the
  patch is for (the input's name); any other session (no change, failed, still running) has no output.

A source that is not ``sources/github/{owner}/{repo}`` (a single-segment id, quirk Q3) keeps its Jules
name in the namespace ``jules``: ``sources/{id}/tree/{branch}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_jules.client.errors import JulesConfigError
from airflow_provider_jules.client.models import source_name
from airflow_provider_jules.jsontext import as_dict, dicts, text
from airflow_provider_jules.links.urls import session_url

__all__ = ["GITHUB", "JULES_NAMESPACE", "DatasetName", "SessionLineage", "repository", "session_lineage"]

Json = dict[str, Any]

#: The namespace of every repository Jules works on (its sources are GitHub repositories).
GITHUB = "https://github.com"
#: The namespace of a source whose name says no owner and repository.
JULES_NAMESPACE = "jules"


@dataclass(frozen=True)
class DatasetName:
    """An OpenLineage dataset's namespace and name."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SessionLineage:
    """What a task read and wrote, and the session that did it (the facets' values; see the module)."""

    input: DatasetName | None
    output: DatasetName | None
    #: The commit Jules started from (the change set's ``base_commit_id``), when Jules said.
    base_commit: str | None = None
    #: The pull request's title (the output's documentation), when there is a pull request.
    pull_request_title: str | None = None
    #: The values of the ``julesSession`` run facet; empty when no session was created.
    session: Json = field(default_factory=dict)


def repository(source: object, branch: object = None) -> DatasetName | None:
    """The dataset of a Jules source at a branch; None when ``source`` names no source."""
    try:
        name = source_name(source)
    except JulesConfigError:
        return None
    parts = name.split("/")  # sources/github/owner/repo, or sources/<id>
    namespace, path = (GITHUB, f"{parts[2]}/{parts[3]}") if len(parts) == 4 else (JULES_NAMESPACE, name)
    branch = text(branch.strip()) if isinstance(branch, str) else None
    return DatasetName(namespace, f"{path}/tree/{branch}" if branch else path)


def pull_request(url: str | None) -> DatasetName | None:
    """The dataset of a pull request from its checked URL (the result dict's, never an unchecked one)."""
    if not url:
        return None
    parts = urlsplit(url)
    return DatasetName(f"{parts.scheme}://{parts.netloc}", parts.path.strip("/"))


def session_lineage(
    result: Json | None, session: Json | None, *, source: object = None, starting_branch: object = None
) -> SessionLineage:
    """What a session-creating task read and wrote (rules in the module docstring).

    ``result`` is the task's result dict (:mod:`airflow_provider_jules.results`), ``session`` the session
    resource as last read; either may be None (no session yet, or a wait that ended without a result). The
    repository and branch come from the session's ``sourceContext`` (so an adopted session names its own),
    else from the task's ``source`` and ``starting_branch``.
    """
    result = result or {}
    session = session or {}
    context = as_dict(session.get("sourceContext"))
    branch = text(as_dict(context.get("githubRepoContext")).get("startingBranch")) or starting_branch
    read = repository(context.get("source") or source, branch)
    change_set = as_dict(result.get("change_set"))
    files = [str(f) for f in change_set.get("files_changed") or []]
    pr_url = text(result.get("pull_request_url"))
    # A patch is delivered only by a completed session (a failed one may leave a partial change set).
    delivered = files and result.get("outcome") == "completed"
    written = pull_request(pr_url) or (read if delivered else None)
    titles = (text(pr.get("title")) for pr in dicts(result.get("pull_requests")) if pr.get("url") == pr_url)
    return SessionLineage(
        input=read,
        output=written,
        base_commit=text(change_set.get("base_commit_id")),
        pull_request_title=next(titles, None) if pr_url else None,
        session=_session_facet(result, session, files, pr_url),
    )


def _session_facet(result: Json, session: Json, files: list[str], pr_url: str | None) -> Json:
    sid = text(result.get("session_id")) or text(session.get("id"))
    if sid is None:
        return {}
    return {
        "sessionId": sid,
        "url": text(result.get("url")) or (session_url(session) if session else None),
        "state": text(result.get("state")) or text(session.get("state")),
        "outcome": text(result.get("outcome")),
        "pullRequestUrl": pr_url,
        "filesChanged": files,
    }
