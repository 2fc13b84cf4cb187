"""The system-test harness's one exception to "a component that exits fails the test": a triggerer whose
trigger runner died of Airflow's own apache/airflow#64620 is restarted once, as a process manager would."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system import harness
from tests.system.harness import TRIGGERER_BUG, AirflowStack


def exited(code: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    proc.wait(30)
    return proc


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AirflowStack, list[str]]]:
    started: list[str] = []
    made = AirflowStack(home=tmp_path, port=0, env={})

    def start(name: str) -> subprocess.Popen[bytes]:
        started.append(name)
        made.procs[name] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        return made.procs[name]

    monkeypatch.setattr(made, "start", start)
    monkeypatch.setattr(harness, "airflow_at_least", lambda major, minor: (major, minor) <= (3, 1))
    yield made, started
    for proc in [*made.procs.values(), *made.gone.values()]:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_triggerer_that_died_of_the_upstream_bug_is_restarted_once(
    stack: tuple[AirflowStack, list[str]],
) -> None:
    made, started = stack
    made.log_path("triggerer").write_text(
        f"Trigger runner failed\nRuntimeError: {TRIGGERER_BUG}! Got frame.id=7\n"
    )
    made.procs["triggerer"] = exited(0)
    with pytest.warns(UserWarning, match="apache/airflow#64620"):
        made.check_alive()  # restarted, not failed, and said so
    assert started == ["triggerer"] and made.procs["triggerer"].poll() is None
    made.procs["triggerer"].kill()
    made.procs["triggerer"].wait(10)
    with pytest.raises(AssertionError, match="exited early"):  # a second crash fails the test
        made.check_alive()


def test_any_other_exit_fails_the_test(stack: tuple[AirflowStack, list[str]]) -> None:
    made, started = stack
    made.log_path("triggerer").write_text("Trigger runner process has died! Exiting.\n")
    made.procs["triggerer"] = exited(0)
    with pytest.raises(AssertionError, match=re.escape("exited early: {'triggerer': 0}")):
        made.check_alive()
    made.log_path("scheduler").write_text(TRIGGERER_BUG)
    made.procs = {"scheduler": exited(1)}
    with pytest.raises(AssertionError, match="scheduler"):  # only a triggerer, only that bug
        made.check_alive()
    assert started == []


def test_not_on_airflow_versions_without_the_bug(
    stack: tuple[AirflowStack, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, started = stack
    monkeypatch.setattr(harness, "airflow_at_least", lambda major, minor: True)
    made.log_path("triggerer").write_text(TRIGGERER_BUG)
    made.procs["triggerer"] = exited(0)
    with pytest.raises(AssertionError, match="exited early"):
        made.check_alive()
    assert started == []
