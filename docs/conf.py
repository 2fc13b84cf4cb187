"""Sphinx configuration: built-ins only (no extensions, the bundled alabaster theme)."""

from __future__ import annotations

import re
from pathlib import Path

_init = (Path(__file__).resolve().parent.parent / "airflow_provider_jules" / "__init__.py").read_text()

project = "airflow-provider-jules"
author = "The airflow-provider-jules authors"
copyright = "The airflow-provider-jules authors"
_match = re.search(r'__version__ = "([^"]+)"', _init)
release = version = _match.group(1) if _match else "unknown"

extensions: list[str] = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"airflow-provider-jules {release}"
highlight_language = "python"
