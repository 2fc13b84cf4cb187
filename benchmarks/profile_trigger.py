"""Where a trigger's CPU goes per poll: cProfile of N triggers against the simulator process.

``python -m benchmarks.profile_trigger [--tls] [--rtt-ms 40] [--n 200] [--seconds 10]
[--transport httpx|aiohttp]``

The simulator runs in its own process (HTTPS from a throw-away CA with ``--tls``); the triggers run here,
under cProfile for ``--seconds`` after every trigger has polled once. Prints the self time (tottime) per
library, as shares of the profiled total, and per poll (polls counted by the simulator). Profiling slows
everything by a similar factor, so read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
from collections import defaultdict
from typing import Any

from benchmarks._common import OUT_DIR, SimulatorProcess, route_count, write_json

GROUPS = (
    ("httpx", "/httpx/"),
    ("httpcore", "/httpcore/"),
    ("h11", "/h11/"),
    ("anyio", "/anyio/"),
    ("aiohttp", "/aiohttp/"),
    ("yarl/multidict", "/yarl/"),
    ("yarl/multidict", "/multidict/"),
    ("tenacity", "/tenacity/"),
    ("ssl", "/ssl.py"),
    ("asyncio", "/asyncio/"),
    ("json", "/json/"),
    ("airflow", "/airflow/"),
    ("structlog/logging", "/structlog/"),
    ("structlog/logging", "/logging/"),
    ("ours", "/airflow_provider_jules/"),
    ("benchmark", "/benchmarks/"),
)


def group_of(filename: str, name: str) -> str:
    for label, part in GROUPS:
        if part in filename:
            return label
    if filename == "~":  # built-ins: attribute by what they are
        if "ssl" in name.lower() or "SSL" in name:
            return "ssl (C)"
        if "select" in name or "epoll" in name:
            return "epoll wait"
        return "builtins"
    return "other"


async def _run(args: argparse.Namespace, sim: SimulatorProcess, sessions: list[str]) -> dict[str, Any]:
    from airflow_provider_jules.triggers.jules import JulesSessionTrigger
    from airflow_provider_jules.watch import Watch

    first: set[str] = set()
    original = Watch.observe_session

    def observe_session(self: Any, session: Any, now: float) -> Any:
        first.add(self.session_id)
        return original(self, session, now)

    Watch.observe_session = observe_session  # type: ignore[method-assign]

    async def one(sid: str, offset: float) -> None:
        await asyncio.sleep(offset)
        async for _ in JulesSessionTrigger(session_id=sid, poll_interval=args.interval).run():
            return

    tasks = [asyncio.create_task(one(s, i * args.interval / len(sessions))) for i, s in enumerate(sessions)]
    for _ in range(int(120 / 0.25)):
        await asyncio.sleep(0.25)
        if len(first) >= len(sessions):
            break
    await asyncio.sleep(1)
    s0 = await asyncio.to_thread(sim.stats)
    profile = cProfile.Profile()
    cpu0 = time.process_time()
    profile.enable()
    await asyncio.sleep(args.seconds)
    profile.disable()
    cpu = time.process_time() - cpu0
    s1 = await asyncio.to_thread(sim.stats)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    polls = route_count(s1, "get_session") - route_count(s0, "get_session")
    stats = pstats.Stats(profile)
    if args.dump:
        stats.dump_stats(args.dump)
    by: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by[group_of(filename, name)] += tottime
    busy = {k: v for k, v in by.items() if k != "epoll wait"}
    total = sum(busy.values())
    return {
        "transport": args.transport,
        "tls": args.tls,
        "rtt_ms": args.rtt_ms,
        "n": len(sessions),
        "polls": polls,
        "cpu_s": round(cpu, 3),
        "profiled_cpu_per_poll_ms": round(cpu / polls * 1000, 3) if polls else None,
        "shares": {k: round(v / total, 3) for k, v in sorted(busy.items(), key=lambda kv: -kv[1])},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_trigger")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--rtt-ms", type=float, default=0.0)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    p.add_argument("--dump", default="", help="also write the raw cProfile stats to this file")
    args = p.parse_args(argv)
    tls_dir = OUT_DIR / "tls-profile" if args.tls else None
    with SimulatorProcess(scenario="stuck", tls_dir=tls_dir, round_trip_ms=args.rtt_ms) as sim:
        os.environ["AIRFLOW_CONN_JULES_DEFAULT"] = sim.conn_json
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        if sim.ca is not None:
            os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(sim.ca)
        if args.transport == "aiohttp":
            from benchmarks.bench_triggers import _use_aiohttp_transport

            _use_aiohttp_transport()
        sessions = [str(sim.create_session(f"Profile {i} sim:scenario=stuck")["id"]) for i in range(args.n)]
        sim.post("/_simulator/clock", {"advance": 3600})
        result = asyncio.run(_run(args, sim, sessions))
    name = f"profile-{args.transport}{'-tls' if args.tls else ''}.json"
    write_json(name, result)
    print(
        f"profile {args.transport} tls={args.tls} rtt={args.rtt_ms:g}ms n={result['n']}: "
        f"{result['polls']} polls, {result['profiled_cpu_per_poll_ms']} ms CPU per poll under cProfile; "
        + ", ".join(f"{k} {v:.0%}" for k, v in result["shares"].items() if v >= 0.01),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
