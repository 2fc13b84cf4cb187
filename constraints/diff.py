"""Print where this environment's installed releases differ from a lock file (``make test-latest``).

Run with the environment's own Python: ``python constraints/diff.py constraints/airflow-3.3.2.txt``. The
lock is universal (one line per package and Python range), so each line's marker is evaluated here.
Exits 0: the differences are information, the test run that follows is the verdict. With ``--check``
(``make test`` on a locked environment) it exits 1 when an installed release differs from the lock.
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


def differences(pins: dict[str, str], installed: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, locked, installed) for every locked package installed at another version."""
    return sorted((n, pins[n], v) for n, v in installed.items() if n in pins and pins[n] != v)


def main(path: Path, *, check: bool = False) -> int:
    pins = locked(path)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    changed = differences(pins, installed)
    if check:
        for name, pinned, now in changed:
            print(f"{path}: {name} is {now}, the lock says {pinned} (run `make clean` or reinstall)")
        return 1 if changed else 0
    added = sorted(n for n in installed if n not in pins and n != "airflow-provider-jules")
    print(f"{path}: {len(changed)} package(s) newer or older than the lock in this environment")
    for name, pinned, now in changed:
        print(f"  {name}: {pinned} (locked) -> {now}")
    if added:
        print(f"  not in the lock: {', '.join(added)}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(next(a for a in args if a != "--check")), check="--check" in args))
