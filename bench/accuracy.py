"""Test accuracy over data sets x models x beta x seeds, as the tables of docs/benchmarks.md: per data set and model the
seed table, the mean with its spread (standard deviation, minimum to maximum), and the training time
to reach a target test accuracy (0.95 by default) from each run's history.jsonl. Each cell is one
training run with the model's default settings (IMSAT's recipe for imsat) plus the grid's values and
--set; finished runs (with a metrics.json) are reused, so an interrupted benchmark resumes.

    python bench/accuracy.py --datasets mnist --data-dir ../shared/data/mnist --seeds 0 1 2 --out runs/bench-mnist
    python bench/accuracy.py --models imae imsat --seeds 0 1 2 --set epochs=50 --out runs/bench-imsat
    python bench/accuracy.py --models imsat --set train_split=all restarts=3 restart_epochs=10 --out runs/bench-all
    python bench/accuracy.py --seeds 0 1 2 3 4 --set validation_size=10000 reconstruction_weight=0.3 \
        --suffix=-reconstruction_weight=0.3 --out results/protocol/imsat-vat-reconstruction

The time to the target sums the per-epoch training seconds of history.jsonl (evaluation excluded) up
to the first epoch whose test accuracy (the per-epoch monitor: up to 10,000 test images, all of
MNIST's) reaches it; with restarts, every candidate's training time counts, since the choice waits
for all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from imae.config import DATASETS, MODELS, TrainConfig
from imae.training import train


def parse_setting(item: str) -> tuple[str, object]:
    """KEY=VALUE, VALUE read as JSON (5, 0.1, true, null, "all") or else as a plain string (all)."""
    key, _, text = item.partition("=")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def run_cell(args, dataset: str, model: str, beta: float | None, seed: int, overrides: dict) -> Path:
    """Train (unless finished) the run of one cell; its directory."""
    cfg = TrainConfig(dataset=dataset, data_dir=args.data_dir, model=model, beta=beta, seed=seed,
                      **overrides).validate()
    run_dir = args.out / dataset / model / f"beta{cfg.beta:g}-seed{seed}{args.suffix}"
    if not (run_dir / "metrics.json").exists():
        started = time.perf_counter()
        train(cfg, run_dir, resume=(run_dir / "config.json").exists(), progress=False)
        print(f"{run_dir}: {time.perf_counter() - started:.0f} s", flush=True)
    return run_dir


def read_run(run_dir: Path) -> tuple[dict, list[dict], dict]:
    """metrics.json, the rows of history.jsonl, and restarts.json ({} without restarts)."""
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    restarts = run_dir / "restarts.json"
    return (json.loads((run_dir / "metrics.json").read_text()), history,
            json.loads(restarts.read_text()) if restarts.exists() else {})


def training_seconds(history: list[dict], restarts: dict) -> float:
    """All training time: the epochs of the history, plus the candidates not continued."""
    others = sum(c["seconds"] for i, c in enumerate(restarts.get("restart_candidates", []))
                 if i != restarts["restart_chosen"])
    return sum(row["seconds"] for row in history) + others


def seconds_to(target: float, history: list[dict], restarts: dict, restart_epochs: int) -> float | None:
    """Training seconds until the test accuracy first reaches target (None if it never does). With restarts
    the chosen candidate's first restart_epochs epochs are among the candidates' seconds, and the target
    counts as reached no earlier than the choice, made after every candidate."""
    elapsed, choice = 0.0, 0
    if restarts:
        elapsed, choice = sum(c["seconds"] for c in restarts["restart_candidates"]), restart_epochs
    for row in history:
        if row["epoch"] > choice:
            elapsed += row["seconds"]
        if row.get("test", {}).get("accuracy", -1.0) >= target:
            return elapsed
    return None


def number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def spread(values: list[float], digits: int) -> str:
    """mean ± standard deviation (minimum–maximum)."""
    text = f"{statistics.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"
    return text


def table(args, dataset: str, model: str, beta: float | None, overrides: dict) -> None:
    cells = []
    for seed in args.seeds:
        run_dir = run_cell(args, dataset, model, beta, seed, overrides)
        cells.append((seed, run_dir, *read_run(run_dir)))
    cfg = json.loads((cells[0][1] / "config.json").read_text())
    print(f"\n{dataset}, {model}, beta {cfg['beta']:g}, {cfg['epochs']} epochs"
          f"{', ' + json.dumps(overrides) if overrides else ''}\n")
    validation = any("validation_accuracy" in metrics for _, _, metrics, _, _ in cells)
    print(f"| seed | accuracy |{' validation accuracy |' if validation else ''} I(x;y) (nats) | "
          f"reconstruction error (nats) | training time (s) | time to {args.target:g} (s) |")
    print("|---" * (6 + validation) + "|")
    accuracies = []
    for seed, _, metrics, history, restarts in cells:
        accuracies.append(metrics["accuracy"])
        trained_on = " (test images trained on)" if metrics.get("test_images_trained_on") else ""
        print(f"| {seed} | {metrics['accuracy']:.4f}{trained_on} |"
              + (f" {number(metrics.get('validation_accuracy'), 4)} |" if validation else "")
              + f" {metrics['mutual_info_xy']:.3f} | {number(metrics.get('reconstruction_error'), 2)} | "
              f"{training_seconds(history, restarts):.0f} | "
              f"{number(seconds_to(args.target, history, restarts, cfg['restart_epochs']), 0)} |",
              flush=True)
    if len(cells) > 1:
        print(f"| mean | {spread(accuracies, 4)} |"
              + (f" {spread([m['validation_accuracy'] for _, _, m, _, _ in cells], 4)} |" if validation else "")
              + f" {statistics.mean(m['mutual_info_xy'] for _, _, m, _, _ in cells):.3f} | "
              f"{number(_mean_or_none([m.get('reconstruction_error') for _, _, m, _, _ in cells]), 2)} | | |")


def _mean_or_none(values: list) -> float | None:
    return None if any(v is None for v in values) else statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", "--dataset", nargs="+", choices=DATASETS, default=["mnist"])
    parser.add_argument("--data-dir", help="directory of the data set's files (one data set at a time)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["imae"])
    parser.add_argument("--betas", type=float, nargs="+", help="default: each model's own (imae 5, imsat 0.1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.95, help="the test accuracy to time (default 0.95)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--suffix", default="", help="appended to each run directory's name, to reuse a study's "
                        "runs: e.g. --suffix=-reconstruction_weight=0.3 with --set reconstruction_weight=0.3")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override settings, e.g. epochs=5 train_split=all restarts=3 augment_consistency=1")
    args = parser.parse_args()
    overrides = dict(parse_setting(item) for item in args.set)
    for dataset in args.datasets:
        for model in args.models:
            for beta in args.betas or [None]:
                table(args, dataset, model, beta, overrides)


if __name__ == "__main__":
    main()
