"""CLI: ``python -m airflow_provider_jules.simulator --port 8765 [...]``.

Prints the base URL and the Airflow connection to use, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from airflow_provider_jules.simulator.config import ROUTES, SCENARIOS, FaultConfig, FaultRule, SimulatorConfig


def _fault(text: str) -> FaultRule:
    """``ROUTE:STATUS[:COUNT]`` (COUNT ``*`` = unlimited)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("expected ROUTE:STATUS[:COUNT]")
    count: int | None = 1
    if len(parts) == 3:
        count = None if parts[2] in ("*", "") else int(parts[2])
    try:
        return FaultRule.from_dict({"route": parts[0], "status": int(parts[1]), "count": count})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_jules.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback only unless --allow-remote)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--scenario", default="happy", choices=SCENARIOS, help="default scenario")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=5, help="default number of progress activities")
    p.add_argument(
        "--approval-timeout", type=float, default=600.0, help="simulated seconds (Q15); 0 disables"
    )
    p.add_argument("--daily-quota", type=int, default=None, help="sessions per simulated day")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every API request")
    p.add_argument(
        "--round-trip-ms",
        type=float,
        default=0.0,
        help="network round trip (real ms): one per request, plus one per handshake of a new connection",
    )
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate chain")
    p.add_argument("--tls-key", default=None, help="the PEM private key of --tls-cert")
    p.add_argument("--error-rate", type=float, default=0.0, help="probability of 503 on any API request")
    p.add_argument("--rate-limit-rate", type=float, default=0.0, help="probability of 429 on any API request")
    p.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on injected 429/503")
    p.add_argument(
        "--transient-404-seconds", type=float, default=0.0, help="activities 404 for new sessions (Q18)"
    )
    p.add_argument(
        "--transient-404-requests", type=int, default=0, help="first N activities requests 404 (Q18)"
    )
    p.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="ROUTE:STATUS[:COUNT]",
        help=f"deterministic fault rule (repeatable); routes: {', '.join(ROUTES)}",
    )
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    rules: list[FaultRule] = list(args.fault)
    if args.rate_limit_rate > 0:
        rules.append(
            FaultRule(status=429, count=None, probability=args.rate_limit_rate, retry_after=args.retry_after)
        )
    if args.error_rate > 0:
        rules.append(
            FaultRule(status=503, count=None, probability=args.error_rate, retry_after=args.retry_after)
        )
    faults = FaultConfig(
        rules=rules,
        latency_ms=args.latency_ms,
        transient_404_seconds=args.transient_404_seconds,
        transient_404_requests=args.transient_404_requests,
        seed=args.seed,
    )
    return SimulatorConfig(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        speed=args.speed,
        scenario=args.scenario,
        seed=args.seed,
        default_steps=args.steps,
        approval_timeout=args.approval_timeout or None,
        daily_quota=args.daily_quota,
        faults=faults,
        allow_remote=args.allow_remote,
        round_trip_ms=args.round_trip_ms,
        tls_certfile=args.tls_cert,
        tls_keyfile=args.tls_key,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    from airflow_provider_jules.simulator.server import (
        JulesSimulator,
        bind_socket,
        make_uvicorn_server,
    )

    try:
        sock = bind_socket(cfg.host, cfg.port, cfg.allow_remote)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sim = JulesSimulator(cfg)
    sim.port = int(sock.getsockname()[1])
    print(f"Jules simulator listening on {sim.url}  (API base {sim.api_url})", flush=True)
    print(f"AIRFLOW_CONN_JULES_DEFAULT='{sim.conn_uri}'", flush=True)
    print(f"AIRFLOW_CONN_JULES_DEFAULT='{sim.conn_json}'  # JSON form", flush=True)
    print(f"API key: {cfg.api_key}   speed: {cfg.speed}   scenario: {cfg.scenario}", flush=True)
    server = make_uvicorn_server(sim.app, cfg)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
