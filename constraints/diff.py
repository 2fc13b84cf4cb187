"""Print where this environment's installed releases differ from a lock file (``make test-latest``).

Run with the environment's own Python: ``python constraints/diff.py constraints/airflow-3.3.2.txt``. The
lock is universal (one line per package and Python range), so each line's marker is evaluated here.
Always exits 0: the differences are information, the test run that follows is the verdict.
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name


def locked(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-") or "==" not in line:
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, _, pinned = requirement.partition("==")
        pins[canonicalize_name(name.strip())] = pinned.strip()
    return pins


def main(path: Path) -> None:
    pins = locked(path)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    changed = sorted((n, pins[n], v) for n, v in installed.items() if n in pins and pins[n] != v)
    added = sorted(n for n in installed if n not in pins and n != "airflow-provider-jules")
    print(f"{path}: {len(changed)} package(s) newer or older than the lock in this environment")
    for name, pinned, now in changed:
        print(f"  {name}: {pinned} (locked) -> {now}")
    if added:
        print(f"  not in the lock: {', '.join(added)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
