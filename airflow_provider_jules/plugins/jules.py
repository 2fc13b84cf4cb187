"""The provider's Airflow plugin: the global "Jules Fix" extra link, shown on every operator.

Airflow loads it through the provider info's ``plugins`` entry, in the API server (which resolves the
link) and wherever plugins load; it adds nothing else.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_jules.links.jules import JulesFixLink


class JulesPlugin(AirflowPlugin):
    name = "jules"
    global_operator_extra_links = [JulesFixLink()]
