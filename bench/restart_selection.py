"""Would a restart chosen by the unsupervised objective catch a stalled run? Read from the histories of runs
that differ only by seed (e.g. results/protocol/imsat-vat-seeds): for each of several epochs, every seed's
label-free score at that epoch (the epoch's mean training I(x;y), and I(x;y) on the validation images), and
the mean final validation and test accuracy of "train k seeds to that epoch, continue the one of highest
score", over every k-subset of the seeds, beside a single run's mean (k = 1); a default is chosen on the
validation column. This is `--restarts k --restart-epochs E` measured
without new runs: the candidates of a restart are runs of other seeds, and the one continued goes on as a run
of its seed would (imae.training.choose_restart); `--restarts` scores the training images after the E epochs
rather than averaging over the epoch, close to the first score here.

    python bench/restart_selection.py results/protocol/imsat-vat-seeds [--epochs 5 10 20 50] [--k 2 3]
    python bench/restart_selection.py results/protocol/imsat-vat-fashion --match vat_xi=5   # one variant's seeds
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

SCORES = {"training I(x;y)": ("train", "mutual_info_xy"), "validation I(x;y)": ("validation", "mutual_info_xy")}


def load_runs(study_dir: Path, match: str = "") -> dict[int, dict]:
    """seed -> {"history": [rows], "test": final test accuracy, "validation": final validation accuracy (None
    without a validation split)} of every finished run below study_dir whose path contains `match`."""
    runs = {}
    for metrics_path in sorted(study_dir.rglob("metrics.json")):
        run_dir = metrics_path.parent
        if match not in str(run_dir.relative_to(study_dir)):
            continue
        seed = json.loads((run_dir / "config.json").read_text())["seed"]
        if seed in runs:
            raise SystemExit(f"{study_dir}: two runs of seed {seed}; give a directory of runs differing only by seed")
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        runs[seed] = {"history": history, "test": json.loads(metrics_path.read_text())["accuracy"],
                      "validation": history[-1].get("validation", {}).get("accuracy")}
    if len(runs) < 2:
        raise SystemExit(f"{study_dir}: {len(runs)} finished run(s){f' matching {match!r}' if match else ''}; "
                         "need runs of at least 2 seeds")
    return runs


def score_at(run: dict, epoch: int, score: str) -> float:
    split, key = SCORES[score]
    return run["history"][epoch - 1][split][key]


def best_of_k(runs: dict[int, dict], epoch: int, score: str, k: int, split: str = "test") -> float:
    """Mean final accuracy on `split` of the highest-scoring run at `epoch`, over every k-subset of the seeds."""
    chosen = [max(subset, key=lambda seed: score_at(runs[seed], epoch, score))
              for subset in itertools.combinations(sorted(runs), k)]
    return statistics.mean(runs[seed][split] for seed in chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--match", default="", help="only the runs whose path below STUDY_DIR contains this")
    args = parser.parse_args()
    runs = load_runs(args.study_dir, args.match)
    seeds = sorted(runs)
    epochs = [e for e in args.epochs if all(len(run["history"]) >= e for run in runs.values())]
    splits = [split for split in ("validation", "test") if all(run[split] is not None for run in runs.values())]
    print("| seed | " + " | ".join(f"{name} at epoch {e}" for e in epochs for name in SCORES)
          + "".join(f" | final {split} accuracy" for split in splits) + " |")
    print("|---" * (1 + len(epochs) * len(SCORES) + len(splits)) + "|")
    for seed in seeds:
        cells = [f"{score_at(runs[seed], e, name):.3f}" for e in epochs for name in SCORES]
        cells += [f"{runs[seed][split]:.4f}" for split in splits]
        print(f"| {seed} | " + " | ".join(cells) + " |")
    print("\n| chosen at epoch | by | " + " | ".join(f"{split}, best of {k}" for k in [1, *args.k] for split in splits)
          + " |")
    print("|---|---|" + "---|" * (len(splits) * (1 + len(args.k))))
    for e in epochs:
        for name in SCORES:
            cells = [f"{best_of_k(runs, e, name, k, split):.4f}" for k in [1, *args.k] for split in splits]
            print(f"| {e} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
