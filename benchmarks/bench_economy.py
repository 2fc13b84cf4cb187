"""Figure 3, API economy: requests and bytes that following one ~50-activity session costs.

Two pollers follow twin sessions (same prompt, ``sim:steps=48``) side by side in one event loop, same poll
interval, against the simulator in its own process:

* ``trigger``: ``JulesSessionTrigger.run()`` until its terminal event (incremental ``create_time>`` listing);
* ``naive``: the same client, but listing every activity on every poll (what a poller without the filter
  pays).

Every HTTP exchange is recorded by wrapping ``httpx.AsyncClient.send`` in this process: body bytes and an
estimate of wire bytes (request line and headers, status line and headers, body). The minimum is one state
read per poll plus each activity fetched once (the body of one full listing at the end). The target: the
bytes of a poll, net of the new activities it brings, do not grow with the activities already seen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from benchmarks._common import SimulatorProcess, log, machine, median, verdict, write_json

PROMPT = "Refactor the payment module sim:steps={steps}"


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.tags: dict[str, str] = {}  # session id -> poller name

    def install(self) -> None:
        import httpx

        original = httpx.AsyncClient.send
        recorder = self

        async def send(client: Any, request: Any, **kwargs: Any) -> Any:
            response = await original(client, request, **kwargs)
            body = await response.aread()  # the client streams; read it here (then served from memory)
            req_bytes = len(request.method) + len(str(request.url.raw_path, "ascii")) + 12
            req_bytes += sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + 2
            resp_bytes = 15 + sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2 + len(body)
            path = request.url.path
            sid = path.split("/sessions/", 1)[1].split("/", 1)[0] if "/sessions/" in path else ""
            recorder.exchanges.append(
                {
                    "poller": recorder.tags.get(sid, "other"),
                    "route": "list_activities" if path.endswith("/activities") else "get_session",
                    "query": str(request.url.query, "ascii"),
                    "body_bytes": len(body),
                    "wire_bytes": req_bytes + resp_bytes,
                    "json": json.loads(body) if body.strip() else {},
                    "t": time.monotonic(),
                }
            )
            return response

        httpx.AsyncClient.send = send  # type: ignore[method-assign]


def _compact(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


async def _naive(sid: str, interval: float, deadline: float) -> None:
    from airflow_provider_jules.hooks.jules import JulesHook

    hook = JulesHook()
    try:
        while time.monotonic() < deadline:
            session = await hook.aget_session(sid)
            _ = [a async for a in hook.alist_activities(sid)]
            if session.get("state") in ("COMPLETED", "FAILED"):
                return
            await asyncio.sleep(interval)
    finally:
        await hook.aclose()


async def _trigger(sid: str, interval: float) -> dict[str, Any]:
    from airflow_provider_jules.triggers.jules import JulesSessionTrigger

    trigger = JulesSessionTrigger(session_id=sid, poll_interval=interval)
    async for event in trigger.run():
        return dict(event.payload)
    return {}


def _polls(exchanges: list[dict[str, Any]], poller: str) -> list[dict[str, Any]]:
    """Group one poller's exchanges into polls (a state read, then the activity pages)."""
    polls: list[dict[str, Any]] = []
    for ex in exchanges:
        if ex["poller"] != poller:
            continue
        if ex["route"] == "get_session":
            polls.append({"requests": 0, "body": 0, "wire": 0, "new": 0, "new_bytes": 0})
        if not polls:
            continue
        poll = polls[-1]
        poll["requests"] += 1
        poll["body"] += ex["body_bytes"]
        poll["wire"] += ex["wire_bytes"]
        if ex["route"] == "list_activities":
            acts = ex["json"].get("activities", [])
            poll["new"] += len(acts)
            poll["new_bytes"] += sum(_compact(a) for a in acts)
    seen = 0
    for poll in polls:
        poll["seen_before"] = seen
        seen += poll["new"]
    return polls


async def _run(sim: SimulatorProcess, steps: int, interval: float, timeout: float) -> dict[str, Any]:
    rec = Recorder()
    rec.install()
    a = sim.create_session(PROMPT.format(steps=steps))
    b = sim.create_session(PROMPT.format(steps=steps))
    rec.tags[a["id"]], rec.tags[b["id"]] = "trigger", "naive"
    deadline = time.monotonic() + timeout
    naive = asyncio.create_task(_naive(b["id"], interval, deadline))
    event = await asyncio.wait_for(_trigger(a["id"], interval), timeout)
    await asyncio.wait_for(naive, max(1.0, deadline - time.monotonic()))
    final = sim.get(f"/v1alpha/sessions/{a['id']}/activities?pageSize=100")
    session = sim.get(f"/v1alpha/sessions/{a['id']}")
    return {"event": event, "final": final, "session": session, "exchanges": rec.exchanges}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_economy")
    p.add_argument("--steps", type=int, default=47, help="sim:steps=N (N progress activities)")
    p.add_argument("--speed", type=float, default=100.0)
    p.add_argument("--interval", type=float, default=0.25, help="real seconds between polls")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    with SimulatorProcess(speed=args.speed, scenario="happy") as sim:
        os.environ["AIRFLOW_CONN_JULES_DEFAULT"] = sim.conn_json
        data = asyncio.run(_run(sim, args.steps, args.interval, args.timeout))
    activities = data["final"].get("activities", [])
    n_act = len(activities)
    result: dict[str, Any] = {"activities": n_act, "event_status": data["event"].get("status")}
    for poller in ("trigger", "naive"):
        polls = _polls(data["exchanges"], poller)
        result[poller] = {
            "polls": len(polls),
            "requests": sum(p["requests"] for p in polls),
            "body_bytes": sum(p["body"] for p in polls),
            "wire_bytes": sum(p["wire"] for p in polls),
            "activities_delivered": sum(p["new"] for p in polls),
            "per_poll": [
                {k: p[k] for k in ("seen_before", "new", "requests", "body", "wire", "new_bytes")}
                for p in polls
            ],
        }
    ours = result["trigger"]
    polls = ours["polls"]
    # The minimum: one state read per poll, each activity fetched once.
    state_body = sum(
        ex["body_bytes"]
        for ex in data["exchanges"]
        if ex["poller"] == "trigger" and ex["route"] == "get_session"
    )
    state_wire = sum(
        ex["wire_bytes"]
        for ex in data["exchanges"]
        if ex["poller"] == "trigger" and ex["route"] == "get_session"
    )
    once_body = _compact(data["final"])
    min_requests = polls + sum(1 for p in ours["per_poll"] if p["new"])
    min_body = state_body + once_body
    overhead = [p["wire"] - p["new_bytes"] for p in ours["per_poll"]]
    third = max(1, len(overhead) // 3)
    early, late = median(overhead[:third]), median(overhead[-third:])
    growth = late / early if early else float("nan")
    naive_polls = result["naive"]["per_poll"]
    naive_growth = (
        median([p["wire"] for p in naive_polls[-third:]]) / median([p["wire"] for p in naive_polls[:third]])
        if naive_polls
        else float("nan")
    )
    result.update(
        {
            "min_requests": min_requests,
            "min_body_bytes": min_body,
            "state_read_wire_bytes": state_wire,
            "requests_ratio": round(ours["requests"] / min_requests, 2),
            "body_ratio": round(ours["body_bytes"] / min_body, 3),
            "activity_bytes_ratio": round((ours["body_bytes"] - state_body) / once_body, 3),
            "overhead_wire_per_poll_early": early,
            "overhead_wire_per_poll_late": late,
            "growth": round(growth, 3),
            "naive_growth": round(naive_growth, 2),
            "naive_body_ratio": round(result["naive"]["body_bytes"] / ours["body_bytes"], 2),
            "poll_interval_s": args.interval,
            "speed": args.speed,
        }
    )
    ok = growth <= 1.1 and ours["activities_delivered"] == n_act and data["event"].get("status") == "target"
    line = (
        f"api_economy: session of {n_act} activities, {polls} polls: requests={ours['requests']} "
        f"(min {min_requests}, {result['requests_ratio']:.2f}x) body={ours['body_bytes'] / 1024:.1f} KiB "
        f"(min {min_body / 1024:.1f} KiB, {result['body_ratio']:.2f}x; each activity fetched "
        f"{result['activity_bytes_ratio']:.2f}x) bytes/poll net of new activities early={early:.0f} "
        f"late={late:.0f} growth={growth:.2f}x (full re-listing: growth={naive_growth:.1f}x, "
        f"{result['naive_body_ratio']:.1f}x the bytes) target growth<=1.1x {verdict(ok)}"
    )
    result["summary"] = {"ok": ok, "line": line}
    for poller in ("trigger", "naive"):
        result[poller]["per_poll"] = result[poller]["per_poll"][:200]
    write_json("economy.json", {"machine": machine(), "results": result, "summary": result["summary"]})
    log(f"trigger event: {data['event'].get('status')} {data['event'].get('message')}")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
