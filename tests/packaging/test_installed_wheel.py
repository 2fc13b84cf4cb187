"""What users ``pip install`` is what we test (issue #13 item 4).

Builds the sdist and, from it, the wheel (``uv build``), checks both (LICENSE, metadata, ``twine check``),
installs the wheel (not editable, not from the source tree) with Airflow into a fresh virtualenv in a
temporary folder, and from there runs ``airflow providers list``, the simulator CLI and the quickstart DAG
(``run_demo.py`` and ``jules_quickstart.py`` copied out of the repository). The folder is removed after.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
NAME, DIST = "airflow-provider-jules", "airflow_provider_jules"


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    assert found, "uv is not on PATH (make venv installs it)"
    return found


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{args}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout + proc.stderr


@dataclass
class Work:
    root: Path
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def work() -> Iterator[Work]:
    root = Path(tempfile.mkdtemp(prefix="jules-wheel-test-"))
    try:
        started = time.monotonic()
        _run([_uv(), "build", "--out-dir", str(root / "dist"), str(REPO)], cwd=root)
        [sdist] = (root / "dist").glob("*.tar.gz")
        [wheel] = (root / "dist").glob("*.whl")
        print(f"\n[packaging] built {sdist.name} and {wheel.name} in {time.monotonic() - started:.1f} s")
        yield Work(root, sdist, wheel)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sdist_and_wheel_carry_the_license(work: Work) -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    with tarfile.open(work.sdist) as sdist:
        member = sdist.extractfile(f"{work.sdist.name.removesuffix('.tar.gz')}/LICENSE")
        assert member is not None and member.read().decode() == license_text
    with zipfile.ZipFile(work.wheel) as wheel:
        dist_info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        assert wheel.read(f"{dist_info}/licenses/LICENSE").decode() == license_text
        assert not [n for n in wheel.namelist() if n.startswith(("tests/", "benchmarks/", "example_dags/"))]


def test_wheel_metadata_is_release_ready(work: Work) -> None:
    with zipfile.ZipFile(work.wheel) as wheel:
        dist_info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert meta["Name"] == NAME and meta["License-Expression"] == "Apache-2.0", meta["Name"]
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier") or []
    assert {"Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"} <= set(classifiers)
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    assert "airflow" in (meta["Keywords"] or "") and "jules" in (meta["Keywords"] or "")
    urls = {u.split(",")[0].strip(): u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or []}
    assert set(urls) >= {"Source", "Documentation", "Changelog", "Issues"}, urls
    assert all(u.startswith("https://") for u in urls.values()), urls
    # The names of the requirements (a range such as "httpx<0.30,>=0.27" is written in any order).
    requires = {Requirement(r).name for r in meta.get_all("Requires-Dist") or []}
    assert {"apache-airflow", "requests", "tenacity", "httpx"} <= requires
    assert "common-ai" in (meta.get_all("Provides-Extra") or [])  # JulesManagedAgentHook's contract
    assert "[apache_airflow_provider]" in entry_points
    assert "pytest11" not in entry_points  # the simulator's fixtures are an opt-in plugin


def test_the_openlineage_extra_and_the_facet_schema_ship(work: Work) -> None:
    """``pip install airflow-provider-jules[openlineage]`` brings the OpenLineage provider, and the schema the
    ``julesSession`` facet's ``_schemaURL`` names is in the wheel (docs "Lineage")."""
    with zipfile.ZipFile(work.wheel) as wheel:
        names = wheel.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    assert "openlineage" in (meta.get_all("Provides-Extra") or [])
    extra = [
        r
        for r in map(Requirement, meta.get_all("Requires-Dist") or [])
        if r.marker is not None and r.marker.evaluate({"extra": "openlineage"})
    ]
    assert [r.name for r in extra] == ["apache-airflow-providers-openlineage"], extra
    assert "airflow_provider_jules/lineage/JulesSessionRunFacet.json" in names


def test_twine_check_is_clean(work: Work) -> None:
    out = _run(
        [sys.executable, "-m", "twine", "check", "--strict", str(work.sdist), str(work.wheel)], cwd=work.root
    )
    assert out.count("PASSED") == 2, out


def _this_environment_as_constraints(folder: Path) -> Path:
    """The releases installed in the environment running the tests, as a constraints file.

    The fresh virtualenv then resolves the same versions as this (locked, issue #18) test environment, as a
    user installing with Airflow's constraints file would, instead of whatever the index serves today.
    """
    ours = (NAME, DIST)
    pins = sorted(
        f"{d.metadata['Name']}=={d.version}" for d in distributions() if d.metadata["Name"] not in ours
    )
    path = folder / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


@pytest.fixture(scope="module")
def installed(work: Work) -> dict[str, str]:
    """A fresh virtualenv with the wheel and this run's Airflow version; the env to run its commands in."""
    venv = work.root / "venv"
    started = time.monotonic()
    constraints = _this_environment_as_constraints(work.root)
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=work.root)
    python = venv / "bin" / "python"
    _run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--constraint",
            str(constraints),
            f"{NAME}[simulator] @ {work.wheel.as_uri()}",
            f"apache-airflow=={version('apache-airflow')}",
        ],
        cwd=work.root,
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
    )
    print(
        f"\n[packaging] installed the wheel with Airflow {version('apache-airflow')} "
        f"in {time.monotonic() - started:.1f} s"
    )
    (work.root / "home").mkdir()
    (work.root / "tmp").mkdir()
    keep = ("HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        {
            "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", os.defpath)]),
            "VIRTUAL_ENV": str(venv),
            "AIRFLOW_HOME": str(work.root / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TMPDIR": str(work.root / "tmp"),  # what the commands leave in the temp folder, we see
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def test_the_installed_package_is_the_wheel(work: Work, installed: dict[str, str]) -> None:
    code = "import airflow_provider_jules as p, json; print(json.dumps([p.__file__, p.__version__]))"
    out = _run([str(work.root / "venv/bin/python"), "-c", code], cwd=work.root, env=installed)
    path, installed_version = json.loads(out.strip().splitlines()[-1])
    assert Path(path).is_relative_to(work.root / "venv"), path  # not the source tree
    assert installed_version == version(NAME)


def test_the_fresh_environment_has_this_environments_releases(work: Work, installed: dict[str, str]) -> None:
    """The wheel's virtualenv resolved the (locked) releases of the tests' environment, not the newest."""
    names = ["apache-airflow-core", "cryptography", "httpx", "httpcore", "requests", "tenacity"]
    code = f"import json, importlib.metadata as m; print(json.dumps([m.version(n) for n in {names}]))"
    out = _run([str(work.root / "venv/bin/python"), "-c", code], cwd=work.root, env=installed)
    assert json.loads(out.strip().splitlines()[-1]) == [version(n) for n in names]


def test_without_the_openlineage_extra_nothing_needs_openlineage(
    work: Work, installed: dict[str, str]
) -> None:
    """The wheel installed without its ``openlineage`` extra (docs "Lineage"): OpenLineage is absent, and the
    operators, the decorator and the lineage names still import and work (the demos below run here too)."""
    code = (
        "import importlib.util as u, json, sys;"
        "absent = [m for m in ('openlineage', 'airflow.providers.openlineage') if u.find_spec(m) is None];"
        "from airflow.sdk import DAG;"
        "import airflow_provider_jules.decorators.jules;"
        "from airflow_provider_jules.operators.jules import JulesCreateSessionOperator as Op;"
        "from airflow_provider_jules.lineage import session_lineage;"
        "Op(task_id='t', prompt='Fix it', source='acme/web', dag=DAG('d', schedule=None));"
        "print('lineage:', json.dumps([absent, session_lineage(None, None, source='acme/web').input.uri]))"
    )
    out = _run([str(work.root / "venv/bin/python"), "-c", code], cwd=work.root, env=installed)
    # stdout and stderr together: Airflow 3.1 writes deprecation warnings to stderr.
    [line] = [line for line in out.splitlines() if line.startswith("lineage:")]
    absent, uri = json.loads(line.removeprefix("lineage:"))
    assert absent == ["openlineage", "airflow.providers.openlineage"]
    assert uri == "https://github.com/acme/web"


def test_airflow_lists_the_provider(work: Work, installed: dict[str, str]) -> None:
    out = _run(
        [str(work.root / "venv/bin/airflow"), "providers", "list", "-o", "json"], cwd=work.root, env=installed
    )
    # stdout only (Airflow 3.1 prints deprecation warnings); tolerate a log line around the JSON
    providers, _ = json.JSONDecoder().raw_decode(out, out.index('[{"'))
    [ours] = [p for p in providers if p["package_name"] == NAME]
    assert ours["version"] == version(NAME), ours


def test_without_the_extra_the_managed_agent_hook_names_it(work: Work, installed: dict[str, str]) -> None:
    """The wheel installed without ``[common-ai]``: the managed-agent hook says what to install."""
    code = (
        "try:\n    import airflow_provider_jules.hooks.managed_agent\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)"
    )
    out = _run([str(work.root / "venv/bin/python"), "-c", code], cwd=work.root, env=installed)
    assert "AirflowOptionalProviderFeatureException" in out
    assert "pip install 'airflow-provider-jules[common-ai]'" in out


def test_the_simulator_cli_serves_the_api(work: Work, installed: dict[str, str]) -> None:
    cmd = [str(work.root / "venv/bin/python"), "-m", "airflow_provider_jules.simulator", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--api-key", "wheel-test-key"], cwd=work.root, env=installed, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = ""
        for _ in range(20):  # the banner is a few lines; bounded by the child's exit too
            line = proc.stdout.readline()
            if not line or "listening on" in line:
                url = line.split("listening on", 1)[1].split()[0] if line else ""
                break
        assert url.startswith("http://127.0.0.1:"), url
        headers = {"x-goog-api-key": "wheel-test-key"}
        req = urllib.request.Request(f"{url}/v1alpha/sources", headers=headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
            sources = json.loads(response.read())["sources"]
        assert any(s["name"].startswith("sources/github/") for s in sources), sources
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_the_quickstart_dag_runs_from_the_installed_wheel(work: Work, installed: dict[str, str]) -> None:
    demo = work.root / "demo"
    demo.mkdir()
    for name in ("run_demo.py", "jules_quickstart.py"):
        shutil.copy(REPO / "example_dags" / name, demo / name)
    out = _run([str(work.root / "venv/bin/python"), str(demo / "run_demo.py")], cwd=demo, env=installed)
    assert "outcome        completed" in out, out[-4000:]
    assert "pull request   https://github.com/bobalover/boba/pull/" in out, out[-4000:]
    assert list((work.root / "tmp").iterdir()) == []  # the demo removed its throw-away Airflow home


def test_the_self_healing_demo_runs_from_the_installed_wheel(work: Work, installed: dict[str, str]) -> None:
    """``make demo-self-healing``: the failing example DAG, its fix session and pull request (issue #20)."""
    demo = work.root / "demo-self-healing"
    demo.mkdir()
    for name in ("run_demo.py", "jules_self_healing.py"):
        shutil.copy(REPO / "example_dags" / name, demo / name)
    out = _run(
        [str(work.root / "venv/bin/python"), str(demo / "run_demo.py"), "--self-healing"],
        cwd=demo,
        env=installed,
    )
    assert "KeyError: 'amount_eur'" in out and "Jules fix session " in out, out[-4000:]
    assert "failed task    transform_orders" in out, out[-4000:]
    assert "exception      KeyError: 'amount_eur' (as Jules was told)" in out, out[-4000:]
    assert "(new): https://jules.google.com/session/" in out, out[-4000:]
    assert "session state  COMPLETED" in out, out[-4000:]
    assert "pull request   https://github.com/myorg/myrepo/pull/" in out, out[-4000:]
    assert "files changed  jules_self_healing.py" in out, out[-4000:]  # the failed DAG's file
    assert list((work.root / "tmp").iterdir()) == []  # the demo removed its throw-away Airflow home
