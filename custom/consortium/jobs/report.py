"""A downloaded job result's report: the per-site table printed, ``report.md`` and the learning
curve written (:mod:`consortium.reports.job_report`), and for an imaging job whose sites' data
folders are at hand (POC: this machine) one picture per site of the final model's prediction."""

from __future__ import annotations

from pathlib import Path

from consortium.poc.state import PocState


def report(result: Path, site_roots: dict[str, Path] | None = None, echo=print) -> Path:
    """Print the table, write report.md (+ pictures); returns report.md's path."""
    from consortium.reports.job_report import load_results, print_table, write_report

    results = load_results(result)
    print_table(results)
    pictures = []
    if results.metric == "dice" and site_roots:
        from consortium.reports.imaging_pictures import render_site_pictures

        data = {s: root / "data" / "imaging" for s, root in site_roots.items() if (root / "data" / "imaging").is_dir()}
        job = results.folder / "job" if (results.folder / "job").is_dir() else results.workspace
        pictures = render_site_pictures(results.workspace, data, results.folder / "pictures", job)
    path = write_report(results, pictures)
    echo(f"report: {path}")
    return path


def poc_site_roots(state: PocState) -> dict[str, Path]:
    """Each POC site's workspace (its kit folder), where its data lies."""
    return {c: Path(state.kits) / c for c in state.clients}


def folder_site_roots(folder: Path) -> dict[str, Path]:
    """Each site's workspace under ``folder`` (e.g. a POC's ``prod_00``): one sub-folder per site."""
    return {d.name: d for d in Path(folder).iterdir() if d.is_dir()}
