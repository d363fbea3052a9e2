"""The results report of a finished job: per-site table, learning curve (PNG) and a Markdown file,
read from the job result FLARE hands back (``<result>/workspace/...``).

Inputs: ``progress.jsonl`` (one :class:`~consortium.protocol.round_record.RoundRecord` per
round, written by the server's aggregator) and ``cross_site_val/cross_val_results.json`` (FLARE's
cross-site evaluation: ``{data_site: {model_owner: metrics}}``, each metrics an
:class:`~consortium.protocol.evaluation.Evaluation`, the global model's owner starting with ``SRV_``).
Sites' own models are what each site submitted for cross-site evaluation: the imaging executor's
local-only baseline, the tabular executor's last local update. Where the sites personalise
(``personalise_epochs``), the global model's metrics also carry the score of the global model
fine-tuned at each site (:mod:`consortium.learning.personalisation`): a "personalised" column.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from consortium.protocol.evaluation import Evaluation
from consortium.protocol.files import PROGRESS_FILE, TRAINING_STATUS_FILE
from consortium.protocol.round_record import RoundRecord

CROSS_SITE = Path("cross_site_val") / "cross_val_results.json"
GLOBAL_MODEL_PREFIX = "SRV_"
GLOBAL = "global model"


@dataclass(frozen=True)
class JobResults:
    folder: Path
    name: str
    metric: str
    rounds: pd.DataFrame  # columns: round, sites, mean_train_loss, pooled_score, ...
    scores: pd.DataFrame  # index: data site; columns: GLOBAL then each site's model; values: mean metric
    n_test: pd.Series  # index: data site
    global_total: pd.Series  # index: data site; sum of the per-example metric of the global model
    personalised: pd.Series | None = None  # index: data site; the global model fine-tuned there (None: not run)
    personalise_epochs: int | None = None

    @property
    def final_pooled_score(self) -> float:
        """The final global model's metric over the union of the sites' test examples."""
        return float(self.global_total.sum() / self.n_test.sum())

    @property
    def workspace(self) -> Path:
        return _workspace(self.folder)


def _workspace(folder: Path) -> Path:
    ws = folder / "workspace"
    return ws if ws.is_dir() else folder


def _json(path: Path, kind: type = dict):
    """The file parsed as JSON of type ``kind``; ValueError naming the file."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise ValueError(f"{path}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _job_name(folder: Path) -> str:
    for meta in (folder / "meta.json", _workspace(folder) / "meta.json"):
        if meta.is_file():
            name = _json(meta).get("name")
            if name:
                return f"{name} ({folder.name})" if name != folder.name else name
    return folder.name


def load_results(folder: Path | str) -> JobResults:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: job result folder not found")
    ws = _workspace(folder)
    progress = ws / PROGRESS_FILE
    if not progress.is_file():
        raise FileNotFoundError(f"{progress}: no round progress in this job result (was it a consortium job?)")
    rounds = pd.DataFrame([RoundRecord.from_json_line(text, f"{progress}: line {n}").to_dict()
                           for n, text in enumerate(progress.read_text().splitlines(), 1) if text.strip()])
    if rounds.empty:
        raise ValueError(f"{progress}: no round records")
    cross = ws / CROSS_SITE
    if not cross.is_file():
        raise FileNotFoundError(f"{cross}: no cross-site evaluation in this job result")
    table = _json(cross)
    metric = str(rounds["metric"].iloc[0])
    scores, n_test, totals, personalised, epochs = {}, {}, {}, {}, set()
    for site, by_model in sorted(table.items()):
        if not isinstance(by_model, dict):
            raise ValueError(f"{cross}: site {site!r}: expected {{model: {{metric: value}}}}, got {by_model!r:.80}")
        owner = next((o for o in by_model if o.startswith(GLOBAL_MODEL_PREFIX)), None)
        if owner is None:
            raise ValueError(f"{cross}: site {site!r} has no evaluation of the global model")
        evals = {o: Evaluation.from_dict(m, f"{cross}: site {site!r}, model {o!r}") for o, m in sorted(by_model.items())}
        wrong = sorted({e.metric for e in evals.values()} - {metric})
        if wrong:
            raise ValueError(f"{cross}: site {site!r} scored {wrong}, the rounds {metric!r}")
        glob = evals.pop(owner)
        n_test[site], totals[site] = glob.n, glob.score_sum
        scores[site] = {GLOBAL: glob.mean} | {o: e.mean for o, e in evals.items()}
        if glob.personalised is not None:
            personalised[site] = glob.personalised
            epochs.add(glob.personalise_epochs)
    frame = pd.DataFrame.from_dict(scores, orient="index")
    frame = frame[[GLOBAL] + sorted(c for c in frame.columns if c != GLOBAL)]
    if personalised and len(epochs) != 1:
        raise ValueError(f"{cross}: the sites personalised with different numbers of epochs {sorted(map(str, epochs))}")
    return JobResults(folder, _job_name(folder), metric, rounds, frame, pd.Series(n_test), pd.Series(totals),
                      pd.Series(personalised, dtype=float).reindex(frame.index) if personalised else None,
                      epochs.pop() if personalised else None)


def _columns(results: JobResults) -> list[tuple[str, pd.Series]]:
    """The table's model columns, in order: global, personalised (when run), each site's model."""
    s = results.scores
    cols = [(GLOBAL, s[GLOBAL])]
    if results.personalised is not None:
        cols.append((f"personalised ({results.personalise_epochs} local epochs)", results.personalised))
    return cols + [(f"{c}'s model", s[c]) for c in s.columns[1:]]


def _cell(v: float) -> str:
    return "–" if pd.isna(v) else f"{v:.3f}"


def plot_learning_curve(results: JobResults, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax1 = plt.subplots(figsize=(7, 4))
    r = results.rounds
    ax1.plot(r["round"], r["pooled_score"], marker="o", ms=3, color="tab:blue")
    ax1.set_xlabel("round (global model received)")
    ax1.set_ylabel(f"pooled test {results.metric}", color="tab:blue")
    ax1.set_ylim(0, 1)
    ax2 = ax1.twinx()
    ax2.plot(r["round"], r["mean_train_loss"], color="tab:red")
    ax2.set_ylabel("mean local training loss", color="tab:red")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_title(f"{results.name}\nfinal pooled {results.metric} {results.final_pooled_score:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _table_lines(results: JobResults) -> list[str]:
    cols = _columns(results)
    lines = ["| data site | test examples | " + " | ".join(c for c, _ in cols) + " |",
             "| --- | ---: |" + " ---: |" * len(cols)]
    for site in results.scores.index:
        lines.append(f"| {site} | {results.n_test[site]} | " + " | ".join(_cell(v[site]) for _, v in cols) + " |")
    lines.append("| **mean over sites** | | " + " | ".join(f"**{_cell(v.mean())}**" for _, v in cols) + " |")
    return lines


def _column(results: JobResults, name: str, kind: type = dict) -> list:
    """A round-record field per round; None where a record lacks it (or holds another type)."""
    r = results.rounds
    return [v if isinstance(v, kind) else None for v in r[name]] if name in r else [None] * len(r)


def event_lines(results: JobResults) -> list[str]:
    """What a hospital admin reads first: how training ended, each round whose contributors were
    not every site (with the reasons), the alerts, and each site's ε round by round under DP."""
    lines: list[str] = []
    status = training_status(results.folder)
    if status.get("status") == "stopped":
        lines += [f"**Training stopped early**: {status.get('reason')}", ""]
    sites = sorted(set(results.n_test.index) | {s for c in _column(results, "contributors", list) if c for s in c})
    events = []
    for rnd, contributors, rejected, withheld, alerts in zip(
            results.rounds["round"], _column(results, "contributors", list), _column(results, "rejected"),
            _column(results, "withheld"), _column(results, "alerts"), strict=True):
        answered = set(rejected or {}) | set(withheld or {})
        missing = sorted(set(sites) - set(contributors) - answered) if contributors is not None else []
        parts = [f"rejected {s}: {why}" for s, why in sorted((rejected or {}).items())]
        parts += [f"withheld by {s}: {why}" for s, why in sorted((withheld or {}).items()) if s not in (rejected or {})]
        parts += [f"no result from {s}" for s in missing]
        parts += [f"ALERT {s}: {why}" for s, why in sorted((alerts or {}).items())]
        if parts:
            events.append(f"| {rnd} | {', '.join(contributors or []) or '–'} | {'; '.join(parts)} |")
    if events:
        lines += ["Rounds without every site's accepted update, and alerts:", "",
                  "| round | contributors | what happened |", "| ---: | --- | --- |", *events, ""]
    eps = [e or {} for e in _column(results, "epsilon")]
    dp_sites = sorted({s for e in eps for s in e})
    if dp_sites:
        lines += ["Differential privacy: each site's ε spent in this job after each round (from its ledger; δ as the "
                  "site's policy sets it).", "", "| round | " + " | ".join(dp_sites) + " |",
                  "| ---: |" + " ---: |" * len(dp_sites)]
        lines += [f"| {rnd} | " + " | ".join(f"{e[s]:.3f}" if s in e else "–" for s in dp_sites) + " |"
                  for rnd, e in zip(results.rounds["round"], eps, strict=True)]
        lines.append("")
    return lines


def training_status(folder: Path) -> dict:
    """What the training workflow wrote about how it ended (``{}`` for a job without it)."""
    for path in (folder / "workspace" / TRAINING_STATUS_FILE, folder / TRAINING_STATUS_FILE):
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return {}


def write_report(results: JobResults, pictures: list[Path] | None = None) -> Path:
    """Write ``report.md`` and ``learning_curve.png`` into the result folder; returns the report path."""
    png = plot_learning_curve(results, results.folder / "learning_curve.png")
    m = results.metric
    lines = [
        f"# Results: {results.name}",
        "",
        f"Rounds: {len(results.rounds)}. Final global model, pooled test {m} over {int(results.n_test.sum())} held-out "
        f"examples of {len(results.n_test)} sites: **{results.final_pooled_score:.3f}**; mean of the sites' {m}: "
        f"**{results.scores[GLOBAL].mean():.3f}**.",
        "",
        f"Cross-site evaluation ({m}): every site's test data (rows) against the final global model and every site's "
        "own submitted model (imaging jobs: a local-only baseline trained on that site alone; tabular jobs: the "
        "site's last local update)." + (
            f" Personalised: the final global model fine-tuned for {results.personalise_epochs} local epochs at each "
            "site, scored on that site's test split (the fine-tuned model stays at the site)."
            if results.personalised is not None else ""),
        "",
        *_table_lines(results),
        "",
        *event_lines(results),
        f"![learning curve]({png.name})",
        "",
    ]
    for pic in pictures or []:
        lines += [f"![{pic.stem}]({pic.relative_to(results.folder)})", ""]
    path = results.folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def print_table(results: JobResults, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    # not a terminal (a log file, a pipe): rich would cut the table to 80 columns
    console = console or (Console() if sys.stdout.isatty() else Console(width=240))
    table = Table(title=f"{results.name}: final pooled {results.metric} {results.final_pooled_score:.3f}")
    table.add_column("data site")
    table.add_column("test examples", justify="right")
    cols = _columns(results)
    for c, _ in cols:
        table.add_column(c, justify="right")
    for site in results.scores.index:
        table.add_row(site, str(results.n_test[site]), *(_cell(v[site]) for _, v in cols))
    table.add_row("mean over sites", "", *(_cell(v.mean()) for _, v in cols), style="bold")
    console.print(table)
