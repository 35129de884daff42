"""Would a restart chosen by the unsupervised objective catch a stalled run? Read from the histories of runs
that differ only by seed (e.g. results/protocol/imsat-vat-seeds): for each of several epochs, every seed's
label-free score at that epoch (the epoch's mean training I(x;y), and I(x;y) on the validation images), and
the mean final test accuracy of "train k seeds to that epoch, continue the one of highest score", over every
k-subset of the seeds, beside a single run's mean (k = 1). This is `--restarts k --restart-epochs E` measured
without new runs: the candidates of a restart are runs of other seeds, and the one continued goes on as a run
of its seed would (imae.training.choose_restart); `--restarts` scores the training images after the E epochs
rather than averaging over the epoch, close to the first score here.

    python bench/restart_selection.py results/protocol/imsat-vat-seeds [--epochs 5 10 20 50] [--k 2 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

SCORES = {"training I(x;y)": ("train", "mutual_info_xy"), "validation I(x;y)": ("validation", "mutual_info_xy")}


def load_runs(study_dir: Path) -> dict[int, dict]:
    """seed -> {"history": [rows], "accuracy": final test accuracy} of every finished run below study_dir."""
    runs = {}
    for metrics_path in sorted(study_dir.rglob("metrics.json")):
        run_dir = metrics_path.parent
        seed = json.loads((run_dir / "config.json").read_text())["seed"]
        if seed in runs:
            raise SystemExit(f"{study_dir}: two runs of seed {seed}; give a directory of runs differing only by seed")
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        runs[seed] = {"history": history, "accuracy": json.loads(metrics_path.read_text())["accuracy"]}
    return runs


def score_at(run: dict, epoch: int, score: str) -> float:
    split, key = SCORES[score]
    return run["history"][epoch - 1][split][key]


def best_of_k(runs: dict[int, dict], epoch: int, score: str, k: int) -> float:
    """Mean final test accuracy of the highest-scoring run at `epoch`, over every k-subset of the seeds."""
    chosen = [max(subset, key=lambda seed: score_at(runs[seed], epoch, score))
              for subset in itertools.combinations(sorted(runs), k)]
    return statistics.mean(runs[seed]["accuracy"] for seed in chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args()
    runs = load_runs(args.study_dir)
    seeds = sorted(runs)
    epochs = [e for e in args.epochs if all(len(run["history"]) >= e for run in runs.values())]
    print("| seed | " + " | ".join(f"{name} at epoch {e}" for e in epochs for name in SCORES) + " | final test accuracy |")
    print("|---" * (1 + len(epochs) * len(SCORES) + 1) + "|")
    for seed in seeds:
        cells = [f"{score_at(runs[seed], e, name):.3f}" for e in epochs for name in SCORES]
        print(f"| {seed} | " + " | ".join(cells) + f" | {runs[seed]['accuracy']:.4f} |")
    print(f"\nMean final test accuracy, one run: {statistics.mean(r['accuracy'] for r in runs.values()):.4f}\n")
    print("| chosen at epoch | by | " + " | ".join(f"best of {k}" for k in args.k) + " |")
    print("|---|---|" + "---|" * len(args.k))
    for e in epochs:
        for name in SCORES:
            print(f"| {e} | {name} | " + " | ".join(f"{best_of_k(runs, e, name, k):.4f}" for k in args.k) + " |")


if __name__ == "__main__":
    main()
