"""The results report of a finished job: per-site table, learning curve (PNG) and a Markdown file,
read from the job result FLARE hands back (``<result>/workspace/...``).

Inputs: ``progress.jsonl`` (one :class:`~consortium.aggregation.round_summary.RoundSummary` per
round, written by the server's aggregator) and ``cross_site_val/cross_val_results.json`` (FLARE's
cross-site evaluation: ``{data_site: {model_owner: metrics}}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from consortium.flare_files import PROGRESS_FILE as PROGRESS

CROSS_SITE = Path("cross_site_val") / "cross_val_results.json"
GLOBAL_MODEL_PREFIX = "SRV_"


@dataclass(frozen=True)
class JobResults:
    folder: Path
    rounds: pd.DataFrame  # columns: round, sites, mean_train_loss, pooled_accuracy
    per_site: pd.DataFrame  # index: site; columns: n_test, global_accuracy, local_accuracy

    @property
    def final_pooled_accuracy(self) -> float:
        """Accuracy of the final global model on the union of the sites' test splits."""
        return float(self.per_site["global_correct"].sum() / self.per_site["n_test"].sum())


def _workspace(folder: Path) -> Path:
    ws = folder / "workspace"
    return ws if ws.is_dir() else folder


def load_results(folder: Path | str) -> JobResults:
    folder = Path(folder)
    ws = _workspace(folder)
    progress = ws / PROGRESS
    if not progress.is_file():
        raise FileNotFoundError(f"{progress}: no round progress in this job result (was it a consortium job?)")
    rounds = pd.DataFrame([json.loads(line) for line in progress.read_text().splitlines() if line.strip()])
    cross = ws / CROSS_SITE
    if not cross.is_file():
        raise FileNotFoundError(f"{cross}: no cross-site evaluation in this job result")
    table = json.loads(cross.read_text())
    rows = []
    for site, by_model in sorted(table.items()):
        glob = next((m for owner, m in by_model.items() if owner.startswith(GLOBAL_MODEL_PREFIX)), None)
        if glob is None:
            raise ValueError(f"{cross}: site {site!r} has no evaluation of the global model")
        local = by_model.get(site, {})
        rows.append({"site": site, "n_test": int(glob["n"]), "global_accuracy": glob["accuracy"],
                     "global_correct": int(glob["correct"]), "local_accuracy": local.get("accuracy", float("nan"))})
    return JobResults(folder, rounds, pd.DataFrame(rows).set_index("site"))


def plot_learning_curve(results: JobResults, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(7, 4))
    r = results.rounds
    ax1.plot(r["round"], r["pooled_accuracy"], marker="o", ms=3, color="tab:blue", label="pooled test accuracy")
    ax1.set_xlabel("round (global model received)")
    ax1.set_ylabel("pooled test accuracy", color="tab:blue")
    ax1.set_ylim(0, 1)
    ax2 = ax1.twinx()
    ax2.plot(r["round"], r["mean_train_loss"], color="tab:red", label="mean training loss")
    ax2.set_ylabel("mean local training loss", color="tab:red")
    ax1.set_title(f"{results.folder.name}: final pooled accuracy {results.final_pooled_accuracy:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: JobResults, job_name: str = "") -> Path:
    """Write ``report.md`` and ``learning_curve.png`` into the result folder; returns the report path."""
    png = plot_learning_curve(results, results.folder / "learning_curve.png")
    t = results.per_site
    lines = [
        f"# Results: {job_name or results.folder.name}",
        "",
        f"Rounds: {len(results.rounds)}. Final global model, pooled test accuracy over "
        f"{int(t['n_test'].sum())} held-out rows of {len(t)} sites: **{results.final_pooled_accuracy:.3f}**.",
        "",
        "| site | test rows | global model accuracy | site's own last local model |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {s} | {int(r.n_test)} | {r.global_accuracy:.3f} | {r.local_accuracy:.3f} |" for s, r in t.iterrows()]
    lines += ["", f"![learning curve]({png.name})", ""]
    path = results.folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def print_table(results: JobResults, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"per-site results (pooled accuracy {results.final_pooled_accuracy:.3f})")
    for col in ("site", "test rows", "global model accuracy", "own local model accuracy"):
        table.add_column(col, justify="left" if col == "site" else "right")
    for s, r in results.per_site.iterrows():
        table.add_row(s, str(int(r.n_test)), f"{r.global_accuracy:.3f}", f"{r.local_accuracy:.3f}")
    console.print(table)
