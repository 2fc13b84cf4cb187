"""Issue #22 item 5 end to end with dag.test() against the simulator: a look-alike pull request link reaches
none of the result, the XComs, the Jules Pull Request link, the asset event or the log as a link; a GitHub
Enterprise host that the connection adds reaches all of them, through the trigger and in the worker."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import REPO, load_dag_module, run_dag

# Airflow's log view (3.1 and 3.3) makes a link of this (JavaScript's \w is ASCII: re.ASCII here too).
AIRFLOW_LOG_LINK = re.compile(
    r"https?://[\w.-]+(?:\.?:[\w.-]+)*(?:[#/?][\w!#$%&'()*+,./:;=?@\[\]~-]*)?", re.ASCII
)
LINK_XCOM = "_link_JulesPullRequestLink"


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> Any:
    return load_dag_module(REPO / "tests" / "dags" / "jules_link_dags.py")


def _asset_extra() -> dict[str, Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri="jules://tests/links").one()
        event = session.query(AssetEvent).filter_by(asset_id=asset.id).order_by(AssetEvent.id.desc()).first()
        return dict(event.extra)


def _pull_request_sent(sim: Any, session_id: str) -> str:
    """The pull request URL the simulator answered, read back from its own session."""
    outputs = sim.session_info(session_id)["session"]["outputs"]
    return str(next(o["pullRequest"]["url"] for o in outputs if "pullRequest" in o))


@pytest.mark.parametrize(
    ("case", "mode", "named"),
    [
        ("cyrillic", "deferrable", "on host 'g\\u0456thub.com' (IDNA xn--gthub-n2e.com)"),
        ("punycode", "sync", "on host 'xn--gthub-n2e.com' (IDNA for 'g\\u0456thub.com')"),
        ("suffix", "deferrable", "on host 'github.com.evil.example'"),
    ],
)
def test_a_look_alike_pull_request_link_reaches_no_one(dags, sim, case, mode, named, capfd, caplog):
    run = run_dag(getattr(dags, f"jules_links_{case}_{mode}"))
    assert (run.state, run.task_states) == ("success", {"create": "success"})
    host = dags.LOOK_ALIKES[case]
    result = run.xcom("create")
    assert result["outcome"] == "completed"  # Jules opened a pull request; only its link is withheld
    assert result["pull_request_url"] is None
    assert [pr["url"] for pr in result["pull_requests"]] == [None]
    assert result["pull_requests"][0]["title"]  # the rest of the pull request is kept
    assert run.xcom("create", "pull_request_url") is None
    assert run.xcom("create", LINK_XCOM) == ""  # the "Jules Pull Request" button stays grey
    assert _asset_extra()["pull_request_url"] is None
    stored = json.dumps([run.xcom("create", key) for key in sorted(run.xcom_keys("create"))])
    assert host not in stored and "xn--gthub" not in stored and "\\u0456" not in stored
    # The task's log as the test sees it: Airflow's output and the provider's loggers.
    log = "".join(capfd.readouterr()) + caplog.text
    assert "[Jules] Session completed" in log
    assert f"Ignoring the pull request URL {named}: " in caplog.text
    # No link Airflow's log view would make leads to the look-alike (for the Cyrillic host it would stop
    # at the first non-ASCII letter: https://g), and the URL is nowhere in the log, link or not.
    for link in AIRFLOW_LOG_LINK.findall(log):
        assert urlsplit(link).hostname not in (host, host.split("\u0456")[0], "evil.example"), link
    assert "://" + host not in log
    # The simulator did send the look-alike: the check, not a quiet simulator, kept it out.
    assert _pull_request_sent(sim, result["session_id"]).startswith(f"https://{host}/bobalover/boba/pull/")


@pytest.fixture
def ghe_conn(sim: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    conn = json.loads(sim.conn_json)
    conn["extra"] = {"pull_request_hosts": "ghe.example.com"}
    monkeypatch.setenv("AIRFLOW_CONN_JULES_GHE", json.dumps(conn))
    return "jules_ghe"


@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_a_host_the_connection_adds_reaches_every_place(dags, sim, ghe_conn, mode, capfd, caplog):
    run = run_dag(getattr(dags, f"jules_links_ghe_{mode}"))
    assert (run.state, run.task_states) == ("success", {"create": "success"})
    result = run.xcom("create")
    url = result["pull_request_url"]
    assert re.fullmatch(r"https://ghe\.example\.com/bobalover/boba/pull/\d+", url)
    assert result["pull_requests"][0]["url"] == url
    assert run.xcom("create", "pull_request_url") == url
    assert run.xcom("create", LINK_XCOM) == url
    assert _asset_extra()["pull_request_url"] == url
    log = "".join(capfd.readouterr()) + caplog.text
    assert "[Jules] Session completed" in log and "Ignoring the pull request URL" not in log
    # Deferrable: the wait really went through the trigger (which needs no hosts), the result to the worker.
    assert ("Following Jules session" in log) is (mode == "deferrable")
