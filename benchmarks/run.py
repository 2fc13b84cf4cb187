"""``make bench``: run the four benchmarks, each in its own process, and print one line per figure.

Each figure is a ratio measured side by side in the same run. Details (every sample, every contestant)
go to ``.tmp/bench/*.json``; ``benchmarks/RESULTS.md`` records a reference run and what bounds each figure.
Exit status: 0 when every benchmark ran (whatever its verdict), 1 when one crashed, or, with ``--strict``,
when a target was missed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks._common import REPO, log, machine, write_json

FIGURES = (
    ("import_cost", "benchmarks.bench_import", 600),
    ("triggerer_capacity", "benchmarks.bench_triggers", 1500),
    ("triggerer_tls", "benchmarks.bench_triggers", 1500),
    ("api_economy", "benchmarks.bench_economy", 300),
    ("latency", "benchmarks.bench_latency", 600),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run")
    p.add_argument("--only", default="", help="comma-separated figure names")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="smaller sizes and windows (a smoke run)")
    args = p.parse_args(argv)
    only = {x for x in args.only.split(",") if x}
    # 1,000 triggers polling every 10 s (100 polls/s): the operator's default interval is 30 s.
    base_args = {
        "triggerer_tls": [
            "--tls",
            "--rtt-ms",
            "40",
            "--sizes",
            "1000",
            "--interval-per-1000",
            "10",
            "--window",
            "10",
            "--repeat",
            "2",
        ]
    }
    quick_args = {
        "import_cost": ["--runs", "3"],
        "triggerer_capacity": ["--sizes", "200,400", "--window", "4", "--warmup", "1"],
        "triggerer_tls": ["--sizes", "200", "--window", "4", "--warmup", "1", "--repeat", "1"],
        "api_economy": [],
        "latency": ["--phases", "0.5"],
    }
    started = time.monotonic()
    m = machine()
    log(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}")
    lines: dict[str, str] = {}
    crashed = False
    for name, module, limit in FIGURES:
        if only and name not in only:
            continue
        t = time.monotonic()
        log(f"running {name} ...")
        cmd = [
            sys.executable,
            "-m",
            module,
            *base_args.get(name, []),
            *(quick_args[name] if args.quick else []),
        ]
        try:
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=limit)
            out, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, code = str(exc.stdout or ""), -1
        found = [ln for ln in out.splitlines() if ln.startswith(name + ":")]
        if code != 0 or not found:
            crashed = True
            lines[name] = f"{name}: ERROR (exit {code}) no result"
        else:
            lines[name] = found[-1]
        log(f"{name} done in {time.monotonic() - t:.0f} s")
    total = time.monotonic() - started
    print()
    for line in lines.values():
        print(line)
    print(f"bench: {len(lines)} figures in {total:.0f} s on {m['cores']} cores ({m['cpu']})")
    write_json("summary.json", {"machine": m, "lines": lines, "wall_s": round(total, 1)})
    failed = any(line.rstrip().endswith("FAIL") for line in lines.values())
    return 1 if crashed or (args.strict and failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
