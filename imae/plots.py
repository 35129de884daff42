"""What every figure shares: PNG and PDF written atomically, notes for missing runs, the mean over
seeds with its 80% confidence interval.

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
from scipy import stats

from .runs import atomic_write

FORMATS = ("png", "pdf")
CONFIDENCE = 0.8  # the paper's shaded regions are "80% confidence intervals" (Fig. 5, 7)
BAND = ("Mean over seeds; shaded: its 80% confidence interval (Student t: mean ± t(0.9, n-1)·sd/√n over "
        "the n seeds; none for a single seed)")
MODEL_LABELS = {"imae": "IMAE", "info-vae": "InfoVAE", "joint-vae": "JointVAE", "beta-vae": r"$\beta$-VAE",
                "imsat": "IMSAT"}
MODEL_COLOURS = {"imae": "C3", "info-vae": "C0", "joint-vae": "C2", "beta-vae": "C1", "imsat": "C4"}
Log = Callable[[str], None]


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write fig as out_dir/name.png and .pdf (each atomically); returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        # No creation date in a PDF: redrawing an unchanged figure leaves the committed file unchanged.
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        atomic_write(path, lambda f, fmt=fmt, metadata=metadata: fig.savefig(
            f, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata))
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


def mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the mean of values and its two-sided confidence interval from Student's t,
    mean -+ t_{(1+confidence)/2, n-1} * sd / sqrt(n), sd with n-1 in the denominator. It says where
    the mean over seeds lies, not how far one seed spreads. One value has no interval: (mean, nan, nan)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def seed_band(rows: list[dict], x_of: Callable[[dict], float], y_of: Callable[[dict], float | None]):
    """Group rows by x; per x the mean of y over seeds and its 80% confidence interval (mean_interval).
    Returns (x, mean, low, high) arrays sorted by x (low, high nan where one seed); rows without a
    finite y are skipped."""
    groups: dict[float, list[float]] = {}
    for row in rows:
        y = y_of(row)
        if finite(y):
            groups.setdefault(x_of(row), []).append(y)
    xs = sorted(groups)
    bands = np.array([mean_interval(groups[x]) for x in xs]).reshape(len(xs), 3)
    return np.asarray(xs, dtype=float), bands[:, 0], bands[:, 1], bands[:, 2]


def caption(fig: Figure, text: str) -> None:
    fig.text(0.5, -0.01, textwrap.fill(text, 160), ha="center", va="top", fontsize=8)
