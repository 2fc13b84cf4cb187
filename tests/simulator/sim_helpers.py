"""Helpers of the simulator tests: a thin httpx wrapper (not the provider's client)."""

from __future__ import annotations

from typing import Any

import httpx

from airflow_provider_jules.simulator import JulesSimulator

REPO = "sources/github/myorg/myrepo"


class Api:
    """A thin httpx wrapper bound to one simulator (not the provider's client)."""

    def __init__(self, sim: JulesSimulator) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.url, headers={"x-goog-api-key": sim.api_key}, timeout=10)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get("/v1alpha" + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post("/v1alpha" + path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete("/v1alpha" + path, **kw)

    def create(
        self, prompt: str = "Add a health check endpoint", *, source: str | None = REPO, **body: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"prompt": prompt, **body}
        if source is not None:
            payload.setdefault(
                "sourceContext", {"source": source, "githubRepoContext": {"startingBranch": "main"}}
            )
        r = self.post("/sessions", json=payload)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def session(self, sid: str) -> dict[str, Any]:
        r = self.get(f"/sessions/{sid}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def activities(self, sid: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get(f"/sessions/{sid}/activities", params={"pageSize": 100, **params})
        assert r.status_code == 200, r.text
        acts: list[dict[str, Any]] = r.json().get("activities", [])
        return acts

    def wait_state(self, sid: str, *states: str, step: float = 10.0, max_steps: int = 300) -> dict[str, Any]:
        """Advance the simulated clock until the session reaches one of ``states`` (bounded)."""
        for _ in range(max_steps):
            s = self.session(sid)
            if s["state"] in states:
                return s
            self.sim.advance(step)
        raise AssertionError(f"session {sid} never reached {states}: {self.session(sid)['state']}")

    def control(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, "/_simulator" + path, **kw)


def union_key(activity: dict[str, Any]) -> str | None:
    keys = set(activity) - {"name", "id", "description", "createTime", "originator", "artifacts"}
    return next(iter(keys)) if keys else None


def bash_outputs(api: Api, sid: str) -> list[dict[str, Any]]:
    """The bashOutput artifacts of a session's activities, oldest first."""
    return [
        art["bashOutput"]
        for a in api.activities(sid)
        for art in a.get("artifacts", [])
        if "bashOutput" in art
    ]
