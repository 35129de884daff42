"""The figure of generated dSprites in docs/dsprites.md: each shape (rows of three) at scales 0.5 and 1, four
orientations, at two positions; one image per cell, drawn with its factor classes.

    python bench/dsprites_samples.py --out docs/dsprites_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from imae.data.dsprites import SHAPE_NAMES, factor_values, render

SCALES = (0, 5)
ORIENTATIONS = (0, 3, 6, 10)  # 0, 28, 55, 92 degrees
POSITIONS = ((3, 5), (28, 20))


def sample_classes() -> np.ndarray:
    return np.array([(shape, scale, orientation, x, y) for shape in range(3) for scale in SCALES
                     for x, y in POSITIONS for orientation in ORIENTATIONS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/dsprites_samples.png"))
    args = parser.parse_args()
    classes = sample_classes()
    images, values = render(classes), factor_values(classes)
    columns = len(SCALES) * len(POSITIONS) * len(ORIENTATIONS) // 2
    rows = len(classes) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows))
    for ax, image, c, v in zip(axes.flat, images, classes, values):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{SHAPE_NAMES[c[0]]} s={v[1]:.1f}\nθ={np.degrees(v[2]):.0f}° x={c[3]} y={c[4]}", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
