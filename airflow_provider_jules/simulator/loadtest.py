"""Capacity check: N polling clients against a simulator started as a separate process.

``python -m airflow_provider_jules.simulator.loadtest --clients 2000 --seconds 10``

Each client owns one keep-alive connection (raw asyncio streams, cheaper than an HTTP library so the
load generator is not the bottleneck), creates nothing itself, and every ``--interval`` seconds polls
``GET /v1alpha/sessions/{id}`` and ``GET /v1alpha/sessions/{id}/activities`` of one of the sessions
created up front. Prints requests/s, p50/p99 latency and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from typing import Any


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.non_200 = 0
        self.connect_errors = 0


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, host: str, key: str
) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nx-goog-api-key: {key}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _client(
    idx: int, host: str, port: int, key: str, sids: list[str], until: float, interval: float, st: _Stats
) -> None:
    await asyncio.sleep(random.random() * interval)  # spread the clients over the interval
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        st.connect_errors += 1
        return
    sid = sids[idx % len(sids)]
    hosthdr = f"{host}:{port}"
    try:
        while time.monotonic() < until:
            tick = time.monotonic()
            for path in (f"/v1alpha/sessions/{sid}", f"/v1alpha/sessions/{sid}/activities"):
                t0 = time.perf_counter()
                try:
                    status = await asyncio.wait_for(_request(reader, writer, path, hosthdr, key), 30)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                    st.errors += 1
                    return
                st.latencies.append(time.perf_counter() - t0)
                if status != 200:
                    st.non_200 += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    finally:
        writer.close()


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "airflow_provider_jules.simulator", "--port", "0", "--speed", "10"]
    cmd += ["--api-key", args.api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # noqa: S603
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {0})
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)) or {0})
    assert proc.stdout is not None
    for _ in range(50):
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, line.split("listening on", 1)[1].split()[0]
    proc.kill()
    raise RuntimeError("simulator did not start")


def _post(url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        headers={"x-goog-api-key": key, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        data: dict[str, Any] = json.loads(resp.read())
        return data


async def _run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sids = []
    for i in range(args.sessions):
        body = {
            "prompt": f"Load test session {i}",
            "sourceContext": {
                "source": "sources/github/myorg/myrepo",
                "githubRepoContext": {"startingBranch": "main"},
            },
        }
        sids.append(_post(f"{url}/v1alpha/sessions", body, args.api_key)["id"])
    st = _Stats()
    start = time.monotonic()
    until = start + args.seconds
    tasks = [
        asyncio.create_task(_client(i, host, int(port), args.api_key, sids, until, args.interval, st))
        for i in range(args.clients)
    ]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    lat = sorted(st.latencies)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else 0.0

    return {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 1) if lat else 0.0,
        "errors": st.errors + st.connect_errors,
        "non_200": st.non_200,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_jules.simulator.loadtest")
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=1.0, help="poll interval per client (s)")
    p.add_argument("--sessions", type=int, default=200, help="sessions created up front")
    p.add_argument("--url", default=None, help="use a running simulator instead of starting one")
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--pin", action="store_true", help="pin the server to CPU 0 and the clients to the others")
    args = p.parse_args(argv)
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_server(args)
    try:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()  # no global policy change
        except ImportError:
            loop = asyncio.new_event_loop()
        try:
            result = loop.run_until_complete(_run(args, url))
        finally:
            loop.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 and result["non_200"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
