"""Figure 1, DAG-parse cost: what importing an operators module adds to ``import airflow.sdk``.

Every sample is a fresh interpreter. Three kinds run interleaved, round after round, so that drift hits all
alike: ``airflow.sdk`` alone, ``airflow.sdk`` then our operators module, ``airflow.sdk`` then the dbt Cloud
provider's operators module. Two estimates of the extra cost:

* in-process (the figure): the wall time of the second import, timed inside the interpreter right after
  ``import airflow.sdk`` finished (precise: it excludes the ~3 s start-up noise of Airflow itself);
* whole-process (cross-check): the median wall time of the interpreter minus that of ``airflow.sdk`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import REPO, log, machine, median, verdict, write_json

MODULES = {
    "sdk_only": None,
    "ours": "airflow_provider_jules.operators.jules",
    "dbt_cloud": "airflow.providers.dbt.cloud.operators.dbt",
}

_PROBE = """
import importlib, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
name = sys.argv[1]
if name != "-":
    importlib.import_module(name)
t2 = time.perf_counter()
heavy = [m for m in ("requests", "httpx", "tenacity", "aiohttp") if m in sys.modules]
print(json.dumps({"sdk_ms": (t1 - t0) * 1000, "extra_ms": (t2 - t1) * 1000, "heavy": heavy}))
"""


def sample(module: str | None, env: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module or "-"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wall_ms = (time.perf_counter() - start) * 1000
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    data["wall_ms"] = wall_ms
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_import")
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    # Warm the byte-code caches and the file cache once for each kind (not measured).
    for module in MODULES.values():
        sample(module, env)
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in MODULES}
    for _ in range(args.runs):
        for kind, module in MODULES.items():
            samples[kind].append(sample(module, env))
    res: dict[str, Any] = {}
    for kind in MODULES:
        res[kind] = {
            "extra_ms_median": round(median([s["extra_ms"] for s in samples[kind]]), 2),
            "extra_ms_all": [round(s["extra_ms"], 2) for s in samples[kind]],
            "wall_ms_median": round(median([s["wall_ms"] for s in samples[kind]]), 1),
            "sdk_ms_median": round(median([s["sdk_ms"] for s in samples[kind]]), 1),
            "heavy_modules": sorted({m for s in samples[kind] for m in s["heavy"]}),
        }
    base_wall = res["sdk_only"]["wall_ms_median"]
    for kind in ("ours", "dbt_cloud"):
        res[kind]["whole_process_extra_ms"] = round(res[kind]["wall_ms_median"] - base_wall, 1)
    ours, dbt = res["ours"]["extra_ms_median"], res["dbt_cloud"]["extra_ms_median"]
    ratio = ours / dbt if dbt else float("nan")
    ok = ours <= 20.0 and ratio < 0.25
    line = (
        f"import_cost: ours=+{ours:.1f} ms dbt_cloud=+{dbt:.1f} ms ratio={ratio:.2f} "
        f"(whole-process: ours=+{res['ours']['whole_process_extra_ms']:.0f} ms "
        f"dbt_cloud=+{res['dbt_cloud']['whole_process_extra_ms']:.0f} ms over "
        f"{base_wall:.0f} ms; median of {args.runs}) target<=20ms & <0.25 {verdict(ok)}"
    )
    summary = {"ok": ok, "line": line, "ours_ms": ours, "dbt_cloud_ms": dbt, "ratio": ratio}
    write_json("import.json", {"machine": machine(), "results": res, "summary": summary})
    log(f"heavy modules loaded by our operators module: {res['ours']['heavy_modules'] or 'none'}")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
