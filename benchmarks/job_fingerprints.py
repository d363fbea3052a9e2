"""Run shipped jobs in FLARE's simulator and record their numbers to full precision, so that a
refactoring can show it changed no result: every round's mean training loss and pooled score and
the final cross-site table.

    .venv/bin/python benchmarks/job_fingerprints.py [--jobs heart_fedavg,...] [--out FILE]

Compare two runs (before/after a change) with ``--compare A.json B.json`` (``--table NAME`` also
writes the comparison, with its provenance, to benchmarks/results/NAME).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JOBS = ("heart_fedavg", "heart_fedprox", "heart_fednova", "seg_fedavg")


def fingerprint(job: str, scratch: Path) -> dict:
    from consortium.cli.main import main
    from consortium.reports.job_report import load_results

    ws = scratch / job
    args = ["job", "simulate", str(REPO / "jobs" / job), "-w", str(ws), "--project", str(REPO / "provisioning" / "project.yml"),
            "--profiles", str(REPO / "poc_workspace" / "scanner_profiles.json")]
    if main(args) != 0:
        raise SystemExit(f"{job}: simulator run failed")
    res = load_results(ws / "server" / "simulate_job")
    return {
        "rounds": res.rounds[["round", "mean_train_loss", "pooled_score"]].to_dict(orient="list"),
        "final_pooled_score": res.final_pooled_score,
        "cross_site": {site: {k: float(v) for k, v in row.items()} for site, row in res.scores.to_dict(orient="index").items()},
    }


def compare(a: dict, b: dict) -> list[str]:
    """One line per job: the largest absolute difference over every recorded number."""
    lines = []
    for job in sorted(set(a) & set(b)):
        def flat(d, prefix=""):
            if isinstance(d, dict):
                for k, v in d.items():
                    yield from flat(v, f"{prefix}.{k}")
            elif isinstance(d, list):
                for i, v in enumerate(d):
                    yield from flat(v, f"{prefix}[{i}]")
            else:
                yield prefix, float(d)

        fa, fb = dict(flat(a[job])), dict(flat(b[job]))
        diffs = {k: abs(fa[k] - fb[k]) for k in fa if k in fb and not (math.isnan(fa[k]) and math.isnan(fb[k]))}
        worst = max(diffs, key=diffs.get)
        lines.append(f"{job}: {len(diffs)} numbers, max |diff| {diffs[worst]:.3g} at {worst}; "
                     f"final pooled {fa['.final_pooled_score']:.6f} vs {fb['.final_pooled_score']:.6f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default=",".join(DEFAULT_JOBS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--compare", nargs=2, type=Path, default=None)
    ap.add_argument("--table", default=None, help="with --compare: write the comparison to benchmarks/results/TABLE")
    ap.add_argument("--note", action="append", default=[], help="with --table: a line of explanation (repeatable)")
    args = ap.parse_args()
    if args.compare:
        lines = compare(*(json.loads(p.read_text()) for p in args.compare))
        if args.table:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from common import write_table

            write_table(args.table, [f"# Job fingerprints: {args.compare[0].name} vs {args.compare[1].name}", "",
                                     "Every round's mean training loss and pooled score and the final cross-site table,",
                                     "shipped jobs in FLARE's simulator, same seeds; largest absolute difference per job.",
                                     "Each fingerprint file was made by `job_fingerprints.py --out FILE` at the commit its",
                                     "name gives.", "", *[f"- {line}" for line in lines], *([""] + args.note if args.note else [])])
        else:
            print("\n".join(lines))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        out = {job: fingerprint(job, Path(scratch)) for job in args.jobs.split(",")}
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
