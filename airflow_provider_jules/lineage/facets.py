"""The OpenLineage objects of a Jules task (docs "Lineage"): the one module that imports OpenLineage.

Imported only by ``get_openlineage_facets_on_complete``, which only the OpenLineage provider calls (so only
where ``apache-airflow-providers-openlineage`` is installed: the ``openlineage`` extra).

* inputs and outputs: the datasets of :func:`airflow_provider_jules.lineage.session_lineage`; the input
  carries a ``version`` facet (the commit Jules started from) when Jules said which, the pull request a
  ``documentation`` facet (its title);
* run facets: ``julesSession`` (:class:`JulesSessionRunFacet`: the session's id, URL, state and outcome,
  the pull request URL and the files changed) and OpenLineage's standard ``externalQuery`` (the session id as
  the id of the work in another system, ``source`` ``jules``, as BigQuery and Databricks report their jobs).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    documentation_dataset,
    external_query_run,
)

from airflow_provider_jules.lineage import DatasetName, SessionLineage

__all__ = ["EXTERNAL_QUERY_SOURCE", "SCHEMA_URL", "JulesSessionRunFacet", "operator_lineage"]

#: The JSON schema of :class:`JulesSessionRunFacet`, kept next to this module.
SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-provider-jules/airflow-provider-jules/main/"
    "airflow_provider_jules/lineage/JulesSessionRunFacet.json#/$defs/JulesSessionRunFacet"
)
#: ``externalQuery.source``: the system the session id belongs to.
EXTERNAL_QUERY_SOURCE = "jules"


@define
class JulesSessionRunFacet(RunFacet):
    """The Jules session of a task run (run facet ``julesSession``)."""

    sessionId: str
    url: str | None = field(default=None)
    state: str | None = field(default=None)
    outcome: str | None = field(default=None)
    pullRequestUrl: str | None = field(default=None)
    filesChanged: list[str] = field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def _dataset(name: DatasetName, facets: dict[str, DatasetFacet]) -> Dataset:
    return Dataset(namespace=name.namespace, name=name.name, facets=facets)


def operator_lineage(lineage: SessionLineage) -> OperatorLineage[Any, Any]:
    """The ``OperatorLineage`` the OpenLineage provider puts in the task's event."""
    inputs, outputs = [], []
    if lineage.input is not None:
        version: dict[str, DatasetFacet] = {}
        if lineage.base_commit:
            version["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=lineage.base_commit
            )
        inputs.append(_dataset(lineage.input, version))
    if lineage.output is not None:
        docs: dict[str, DatasetFacet] = {}
        if lineage.pull_request_title:
            docs["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=lineage.pull_request_title
            )
        outputs.append(_dataset(lineage.output, docs))
    run_facets: dict[str, RunFacet] = {}
    if lineage.session:
        run_facets["julesSession"] = JulesSessionRunFacet(**lineage.session)
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=lineage.session["sessionId"], source=EXTERNAL_QUERY_SOURCE
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)
