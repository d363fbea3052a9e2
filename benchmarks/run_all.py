"""`make bench`: every benchmark, results under benchmarks/results/."""

import runpy
import sys
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
for name in BENCHMARKS:
    print(f"== {name}", flush=True)
    runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
