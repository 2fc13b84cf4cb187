"""The lock files of the test environments (issue #18, docs/contributing.rst) and the tool that reads them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCKS = sorted((REPO / "constraints").glob("airflow-*.txt"))


def _diff_module():  # constraints/diff.py is a script, not a package module
    spec = importlib.util.spec_from_file_location("lock_diff", REPO / "constraints" / "diff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_lock_exists_for_each_airflow_version_ci_tests():
    ci = (REPO / ".ci" / "run").read_text()
    tested = {
        line.split("AIRFLOW_VERSION=")[1].split()[0] for line in ci.splitlines() if "AIRFLOW_VERSION=" in line
    }
    assert tested and {p.name for p in LOCKS} >= {f"airflow-{v}.txt" for v in tested}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_each_lock_pins_its_airflow_and_every_package_exactly(lock):
    pins = _diff_module().locked(lock)
    assert pins["apache-airflow"] == lock.stem.removeprefix("airflow-")
    lines = [ln for ln in lock.read_text().splitlines() if ln and not ln.startswith((" ", "#"))]
    assert lines and all("==" in ln for ln in lines), [ln for ln in lines if "==" not in ln]


def test_the_airflow_3_1_lock_keeps_cryptography_below_51():
    """cryptography 51 makes every connection undefined on Airflow 3.1.x (docs/installation.rst)."""
    lock = REPO / "constraints" / "airflow-3.1.8.txt"
    assert Version(_diff_module().locked(lock)["cryptography"]) < Version("51")
    assert "cryptography<51" in (REPO / "constraints" / "airflow-3.1.8.in").read_text()


def test_markers_choose_the_line_for_this_python(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\n"
        "example-pkg==1.0 ; python_full_version < '3.0'\n"
        "    # via something\n"
        "example-pkg==2.0 ; python_full_version >= '3.0'\n"
        "Other_Pkg==3.1\n"
    )
    assert _diff_module().locked(lock) == {"example-pkg": "2.0", "other-pkg": "3.1"}


def test_the_check_names_each_release_that_differs_from_the_lock():
    diff = _diff_module()
    pins = {"a": "1.0", "b": "2.0", "c": "3.0"}
    assert diff.differences(pins, {"a": "1.0", "b": "2.1", "d": "9"}) == [("b", "2.0", "2.1")]
