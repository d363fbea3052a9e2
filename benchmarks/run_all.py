"""`make bench`: every benchmark, results under benchmarks/results/.

`make bench-smoke` (``run_all.py --smoke``): every benchmark at its smallest size (common.SMOKE),
its tables and plots in a temporary folder ($BENCH_RESULTS), never in benchmarks/results/; each
benchmark in its own process, timed, so one that fails is named and the others still run.
"""

import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BENCHMARKS = (
    "round_overhead",
    "monitoring_overhead",
    "aggregation_memory",
    "he_cost",
    "poisoning",
    "dp_utility",
    "fednova_heterogeneous",
    "heart_selection",
    "heart_standardisation",
    "heart_accuracy",
    "imaging_selection",
    "personalisation_selection",
    "imaging_segmentation",
    "fednova_imaging",
    "fednova_diagnosis",
)


def smoke(names=BENCHMARKS) -> int:
    """Each benchmark's smoke mode in a subprocess; the number that failed."""
    out = Path(os.environ.get("BENCH_RESULTS") or tempfile.mkdtemp(prefix="bench_smoke_"))
    env = dict(os.environ, BENCH_SMOKE="1", BENCH_RESULTS=str(out))
    failed, started = [], time.perf_counter()
    for name in names:
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], env=env).returncode
        print(f"== smoke {name}: rc {rc}, {time.perf_counter() - t:.1f} s", flush=True)
        if rc != 0:
            failed.append(name)
    print(f"== smoke: {len(names) - len(failed)} of {len(names)} ran in {time.perf_counter() - started:.0f} s, "
          f"results in {out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return len(failed)


if __name__ == "__main__":
    if "--smoke" in sys.argv[1:]:
        sys.exit(1 if smoke([a for a in sys.argv[1:] if a != "--smoke"] or BENCHMARKS) else 0)
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
