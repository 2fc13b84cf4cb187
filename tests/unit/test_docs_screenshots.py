"""docs/images/screenshots.py, the script that takes the docs' screenshots, still imports and parses its
command line (issue #22: it had broken at import when the system tests' harness moved, and nothing ran it).

Nothing here starts Airflow or a browser: the script's imports, its command line, its list of shots against
the PNGs the docs show, and its DAGs, parsed as Airflow parses them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"


@pytest.fixture(scope="module")
def shots() -> Iterator[ModuleType]:
    """The script as a module (docs/images is no package): imported as ``python`` runs it, by its path."""
    spec = importlib.util.spec_from_file_location("docs_screenshots", IMAGES / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def names(args: object) -> list[str]:
    return [shot.name for shot in args.shots]  # type: ignore[attr-defined]


def test_every_shot_by_default(shots: ModuleType) -> None:
    args = shots.parse_args([])
    assert names(args) == [shot.name for shot in shots.SHOTS]
    assert args.node_dir == REPO / ".tmp" / "screenshots-node"
    assert args.out == IMAGES
    assert not args.list


def test_a_set_a_shot_and_the_options(shots: ModuleType, tmp_path: Path) -> None:
    args = shots.parse_args(["self_healing", "required_actions_plan_review", "--out", str(tmp_path)])
    assert names(args) == ["required_actions_plan_review", "self_healing_fix_link"]  # in SHOTS's order
    assert args.out == tmp_path
    args = shots.parse_args(["--node-dir", str(tmp_path), "required_actions"])
    assert names(args) == [
        "required_actions_question",
        "required_actions_change_review",
        "required_actions_plan_review",
        "required_actions_media_review",
        "required_actions_page",
    ]
    assert args.node_dir == tmp_path


def test_an_unknown_name_is_refused(shots: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        shots.parse_args(["required_action"])
    assert exit_.value.code == 2
    assert "unknown set or shot required_action" in capsys.readouterr().err


def test_list_starts_nothing(shots: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert shots.main(["--list", "self_healing"]) == 0
    assert capsys.readouterr().out.split() == ["self_healing", "self_healing_fix_link"]


def test_missing_browser_tools_are_named_with_their_install_command(
    shots: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-chromium"))
    assert shots.main(["--node-dir", str(tmp_path), "self_healing"]) == 2  # before any component starts
    err = capsys.readouterr().err
    assert "apt-get install -y chromium" in err
    assert f"npm install --prefix {tmp_path} playwright-core" in err


def test_every_picture_is_a_shot_and_shown_in_the_docs(shots: ModuleType) -> None:
    """Each PNG can be taken again, and each shot is a picture the docs show."""
    pictures = {path.stem for path in IMAGES.glob("*.png")}
    assert pictures == {shot.name for shot in shots.SHOTS}
    shown = {
        m for rst in (REPO / "docs").glob("*.rst") for m in re.findall(r"images/(\w+)\.png", rst.read_text())
    }
    assert shown == pictures
    assert len(shots.SHOTS) == len(pictures)  # no name twice


def test_the_dags_parse(shots: ModuleType, tmp_path: Path) -> None:
    """The shots' DAGs, written as the script writes them, import without error (the operators' arguments
    have not drifted), and each shot runs DAGs the script has."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    for dag_id, source in shots.DAGS.items():
        (tmp_path / f"{dag_id}.py").write_text(source)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(shots.DAGS)
    for shot in shots.SHOTS:
        assert shot.dags and set(shot.dags) <= set(shots.DAGS), shot.name
    for dag_id in shots.FORMS:
        assert bag.dags[dag_id].task_ids == ["jules"]
    # An expression (shots.Code), not a string literal: the folder of the components' AIRFLOW_HOME.
    assert bag.dags["jules_media_review"].get_task("jules").artifacts_path.startswith("file://")
