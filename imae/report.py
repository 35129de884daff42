"""A static HTML report of a study: its figures, a table of the runs, each run's config and metrics.

One self-contained folder (index.html and figures/ beside it, linked relatively), so it can be
zipped and opened anywhere with no server and no JavaScript. All text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from . import runs
from .figures import CONFUSION_PREFIX, write_figures
from .plots import Log, finite
from .results import ERROR, find_runs, results_table

KEY_METRICS = ("accuracy", "mutual_info_xy", "reconstruction_error", "total_correlation", "mig", "mig_with_y")
STYLE = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
td.text, th { text-align: left; }
tr.failed { background: #fee; } tr.incomplete { background: #ffd; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }"""


def varying_settings(table: list[dict], config_keys: list[str]) -> list[str]:
    """The config keys whose values differ between runs (what the study sweeps)."""
    return [k for k in config_keys if len({json.dumps(r.get(k), sort_keys=True) for r in table}) > 1]


def cell(value) -> str:
    if value is None:
        return '<td class="text"></td>'
    if finite(value) and not isinstance(value, int):
        return f"<td>{value:.4g}</td>"
    return f'<td class="text">{html.escape(str(value))}</td>'


def summary_table(table: list[dict], settings: list[str]) -> str:
    metrics = [k for k in KEY_METRICS if any(k in r for r in table)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", "status", *settings, *metrics, "error"])
    body = []
    for r in table:
        cells = [cell(r["run"]), cell(r["status"]), *(cell(r.get(k)) for k in settings),
                 *(cell(r.get(k)) for k in metrics), cell(r.get("error"))]
        body.append(f'<tr class="{html.escape(r["status"])}">{"".join(cells)}</tr>')
    return f'<table id="runs">\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table>"


def run_details(study_dir: Path, run_dir: Path, report_dir: Path, figures: dict[str, list[Path]]) -> str:
    """A run's confusion matrix (if drawn), config.json, metrics.json and error.json, verbatim, in a
    collapsed section."""
    run = run_dir.relative_to(study_dir).as_posix()
    name = html.escape(run)
    parts = [f"<details><summary>{name}</summary>"]
    if CONFUSION_PREFIX + run in figures:
        parts.append(figure_block(report_dir, f"confusion matrix: {run}", figures[CONFUSION_PREFIX + run]))
    for filename in (runs.CONFIG, runs.METRICS, ERROR):
        path = run_dir / filename
        if path.is_file():
            text = path.read_text(errors="replace")
            parts.append(f"<h4>{filename}</h4><pre>{html.escape(text)}</pre>")
    return "\n".join(parts) + "</details>"


def figure_block(report_dir: Path, name: str, paths: list[Path]) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    pdf = next((p for p in paths if p.suffix == ".pdf"), None)
    link = f' (<a href="{html.escape(pdf.relative_to(report_dir).as_posix())}">PDF</a>)' if pdf else ""
    src = html.escape(png.relative_to(report_dir).as_posix())
    return (f'<figure><img src="{src}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}{link}</figcaption></figure>")


def render(study_dir: Path, report_dir: Path, table: list[dict], figures: dict[str, list[Path]]) -> str:
    config_keys = list(runs.read_json(Path(study_dir) / table[0]["run"] / runs.CONFIG)) if table else []
    settings = varying_settings(table, config_keys)
    counts = {s: sum(r["status"] == s for r in table) for s in ("finished", "failed", "incomplete")}
    title = html.escape(f"IMAE study: {Path(study_dir).resolve().name}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{title}</h1>",
        f"<p>{len(table)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "</p>",
        "<h2>Runs</h2>", summary_table(table, settings),
        "<h2>Figures</h2>", *(figure_block(report_dir, n, p) for n, p in figures.items()
                              if not n.startswith(CONFUSION_PREFIX)),
        "<h2>Each run</h2>", "<p>Each run's confusion matrix (labelled data sets) is in its section.</p>",
        *(run_details(Path(study_dir), d, report_dir, figures) for d in find_runs(study_dir)),
        "</body></html>", ""])


def write_report(study_dir: Path, out_dir: Path | None = None, log: Log = print) -> Path:
    """Draw the figures into OUT/figures and write OUT/index.html (default OUT: STUDY/report)."""
    study_dir = Path(study_dir)
    report_dir = Path(out_dir) if out_dir is not None else study_dir / "report"
    figures = write_figures(study_dir, report_dir / "figures", log)
    table = results_table(study_dir)
    page = render(study_dir, report_dir, table, figures)
    index = report_dir / "index.html"
    runs.atomic_write(index, lambda f: f.write(page.encode()))
    return index
