"""What every figure shares: PNG and PDF written atomically, notes for missing runs, seed bands.

Figures are built on matplotlib's object API (`Figure`, no pyplot), so nothing depends on a
display or a global backend and figures need no closing.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .runs import atomic_write

FORMATS = ("png", "pdf")
BAND_PERCENTILES = (10, 90)  # the 80% interval over seeds of Fig. 5
MODEL_LABELS = {"imae": "IMAE", "info-vae": "InfoVAE", "joint-vae": "JointVAE", "beta-vae": r"$\beta$-VAE"}
MODEL_COLOURS = {"imae": "C3", "info-vae": "C0", "joint-vae": "C2", "beta-vae": "C1"}
Log = Callable[[str], None]


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write fig as out_dir/name.png and .pdf (each atomically); returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=120, bbox_inches="tight"))
        paths.append(path)
    return paths


def note_missing(ax, missing: list[str], log: Log) -> None:
    """Say on the axes (and in the log) which runs or quantities this panel lacks."""
    if not missing:
        return
    text = "missing: " + "; ".join(missing)
    ax.text(0.5, 0.5, textwrap.fill(text, 45), transform=ax.transAxes, ha="center", va="center", fontsize=7,
            color="darkred", bbox={"facecolor": "white", "edgecolor": "darkred", "alpha": 0.9})
    log(text.replace("$", "").replace("\\", ""))  # plain text for the terminal: $\beta$ -> beta


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def seed_band(rows: list[dict], x_of: Callable[[dict], float], y_of: Callable[[dict], float | None]):
    """Group rows by x; per x the mean of y over seeds and its 10%-90% interval.
    Returns (x, mean, low, high) arrays sorted by x; rows without a finite y are skipped."""
    groups: dict[float, list[float]] = {}
    for row in rows:
        y = y_of(row)
        if finite(y):
            groups.setdefault(x_of(row), []).append(y)
    xs = sorted(groups)
    values = [np.asarray(groups[x]) for x in xs]
    mean = np.array([v.mean() for v in values])
    low = np.array([np.percentile(v, BAND_PERCENTILES[0]) for v in values])
    high = np.array([np.percentile(v, BAND_PERCENTILES[1]) for v in values])
    return np.asarray(xs, dtype=float), mean, low, high


def caption(fig: Figure, text: str) -> None:
    fig.text(0.5, -0.01, textwrap.fill(text, 160), ha="center", va="top", fontsize=8)
