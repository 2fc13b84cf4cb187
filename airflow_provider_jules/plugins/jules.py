"""The provider's Airflow plugin: the global "Jules Fix" extra link, shown on every operator.

Airflow loads it through the package's ``airflow.plugins`` entry point (pyproject.toml), in the API server
(which resolves the link) and wherever plugins load; it adds nothing else.

Not through the provider info's ``plugins`` entry: Airflow (3.1 to 3.3) loads a provider's plugins only when
``[core] lazy_discover_providers`` is False, and it is True by default, so the API server would not know the
link. Entry-point plugins load whatever that setting. Both at once would register the plugin twice when the
setting is False (Airflow 3.3 then reports "Plugin 'jules' already registered" as a plugin import error).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_jules.links.jules import JulesFixLink


class JulesPlugin(AirflowPlugin):
    name = "jules"
    global_operator_extra_links = [JulesFixLink()]
