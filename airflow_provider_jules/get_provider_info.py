"""Provider metadata for Airflow's provider discovery.

Airflow calls this on every ``import airflow``: it is a pure dict with no imports. A broken provider info
breaks all of Airflow, so ``tests/unit/test_provider_info.py`` validates it against Airflow's own schema.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-jules",
        "name": "Jules",
        "description": "Run Google's Jules coding agent from Airflow: sessions, plans, pull requests.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Jules",
                "external-doc-url": "https://developers.google.com/jules/api",
                "tags": ["software"],
            }
        ],
        # hooks.managed_agent needs the extra 'common-ai' (it raises AirflowOptionalProviderFeatureException
        # without it); the common AI provider has no registry of managed agents: a DAG passes hook.agent(...).
        "hooks": [
            {
                "integration-name": "Jules",
                "python-modules": [
                    "airflow_provider_jules.hooks.jules",
                    "airflow_provider_jules.hooks.managed_agent",
                ],
            }
        ],
        "operators": [
            {"integration-name": "Jules", "python-modules": ["airflow_provider_jules.operators.jules"]}
        ],
        "sensors": [
            {"integration-name": "Jules", "python-modules": ["airflow_provider_jules.sensors.jules"]}
        ],
        "triggers": [
            {
                "integration-name": "Jules",
                "python-modules": [
                    "airflow_provider_jules.triggers.jules",
                    "airflow_provider_jules.triggers.events",
                ],
            }
        ],
        "task-decorators": [
            {"name": "jules", "class-name": "airflow_provider_jules.decorators.jules.jules_task"}
        ],
        "extra-links": [
            "airflow_provider_jules.links.jules.JulesSessionLink",
            "airflow_provider_jules.links.jules.JulesPullRequestLink",
            "airflow_provider_jules.links.jules.JulesFixLink",
        ],
        "notifications": ["airflow_provider_jules.notifications.jules.JulesFixNotifier"],
        "connection-types": [
            {
                "connection-type": "jules",
                "hook-class-name": "airflow_provider_jules.hooks.jules.JulesHook",
                "hook-name": "Jules",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {
                        "host": "https://jules.googleapis.com",
                        "password": "API key from https://jules.google.com/settings#api",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": (
                            "Total seconds of each HTTP attempt to the Jules API: connect, send and the "
                            "whole response."
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 1, "default": 30},
                    },
                    "max_attempts": {
                        "label": "Attempts per call",
                        "description": "Attempts per API call, retries of 429/5xx/network errors included.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 20, "default": 6},
                    },
                    "max_response_bytes": {
                        "label": "Max response size (bytes)",
                        "description": "Cap on one response body (decompressed); larger is an error.",
                        "schema": {
                            "type": ["integer", "null"],
                            "minimum": 1024,
                            "maximum": 1073741824,
                            "default": 10485760,
                        },
                    },
                    "proxy": {
                        "label": "Proxy URL",
                        "description": (
                            "http(s):// proxy for the Jules API. Empty: HTTPS_PROXY/NO_PROXY from the "
                            "environment. A loopback Base URL never uses a proxy."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "pull_request_hosts": {
                        "label": "Pull request hosts (GitHub Enterprise)",
                        "description": (
                            "Hosts besides github.com whose pull request links are shown, comma-separated, "
                            "e.g. github.example.com. Links to any other host are dropped."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
    }
