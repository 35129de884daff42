"""Gather the run directories below a study directory into one table: settings and metrics.

A run directory holds config.json; a finished run also holds metrics.json, a failed one
error.json ({"error": one line, "traceback": text}), and one still running or killed neither.
A sweep also writes attempt.json: where the run's latest attempt ran (host, Ray node id).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import runs
from .errors import ImaeError

ERROR = "error.json"
ATTEMPT = "attempt.json"


def find_runs(study_dir: Path) -> list[Path]:
    """Every run directory below study_dir (itself included), sorted by path."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ImaeError(f"{study_dir}: not a directory")
    return sorted(path.parent for path in study_dir.rglob(runs.CONFIG))


def run_status(run_dir: Path) -> str:
    """'finished', 'failed' or 'incomplete'."""
    run_dir = Path(run_dir)
    if (run_dir / runs.METRICS).is_file():
        return "finished"
    if (run_dir / ERROR).is_file():
        return "failed"
    return "incomplete"


def scalar_metrics(metrics: dict, prefix: str = "") -> dict:
    """Flatten nested dicts to 'a.b' keys and lists to 'a.0', 'a.1', ... so every cell is a scalar."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(scalar_metrics(value, f"{name}."))
        elif isinstance(value, list):
            flat.update(scalar_metrics(dict(enumerate(value)), f"{name}."))
        else:
            flat[name] = value
    return flat


def table_metrics(metrics: dict) -> dict:
    """The metrics that go into the table: all but the confusion matrix (K2 x labels numbers; its figure
    and metrics.json hold it)."""
    return {key: value for key, value in metrics.items() if not key.startswith("confusion_matrix")}


def load_run(run_dir: Path, study_dir: Path | None = None) -> dict:
    """One row: run (path relative to study_dir), status, error, every setting, every metric (table_metrics)."""
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    row = {"run": str(run_dir.relative_to(study_dir)) if study_dir else str(run_dir), "status": status}
    row.update(runs.read_json(run_dir / runs.CONFIG))
    if status == "finished":
        row.update(scalar_metrics(table_metrics(runs.read_json(run_dir / runs.METRICS))))
    elif status == "failed":
        row["error"] = runs.read_json(run_dir / ERROR).get("error", "")
    if (run_dir / ATTEMPT).is_file():
        attempt = runs.read_json(run_dir / ATTEMPT)
        row.update({key: attempt.get(key) for key in ("host", "ray_node")})
    return row


def results_table(study_dir: Path) -> list[dict]:
    """One row per run directory below study_dir."""
    return [load_run(path, Path(study_dir)) for path in find_runs(study_dir)]


def per_dimension(row: dict, name: str) -> np.ndarray:
    """A per-dimension metric of one row as an array over k (empty when the run has none): load_run flattens
    metrics.json's per_dimension.NAME list to "per_dimension.NAME.k"."""
    values = []
    while f"per_dimension.{name}.{len(values)}" in row:
        values.append(row[f"per_dimension.{name}.{len(values)}"])
    return np.asarray(values, dtype=float)


def aggregate_variance(row: dict) -> float:
    """Var[z_k] of the aggregate posterior, Var[mu_k] + E[sigma_k^2] (the law of total variance), averaged over
    k: 1 where p(z) matches N(0, I) in its second moments; nan without per-dimension metrics."""
    spread, noise = per_dimension(row, "variance_of_posterior_mean"), per_dimension(row, "mean_posterior_variance")
    return float(np.mean(spread + noise)) if len(spread) and len(spread) == len(noise) else math.nan
