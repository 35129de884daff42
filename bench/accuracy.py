"""Test accuracy, I(x;y) and reconstruction error over models x beta x seeds, as a README table.
Each cell is one training run with the default settings plus the grid's values; finished runs
(with a metrics.json) are reused, so an interrupted benchmark resumes.

    python bench/accuracy.py --dataset mnist --data-dir ../shared/data/mnist --seeds 0 1 2 --out runs/bench-mnist
    python bench/accuracy.py --models imae beta-vae info-vae joint-vae --betas 1 5 9 --set epochs=15 --out runs/bench-models
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from imae.config import DATASETS, MODELS, TrainConfig
from imae.training import train


def run_cell(args, model: str, beta: float, seed: int, overrides: dict) -> tuple[dict, float]:
    run_dir = args.out / (f"seed{seed}" if (args.models, args.betas) == (["imae"], [5.0])
                          else f"{model}-beta{beta:g}-seed{seed}")
    if not (run_dir / "metrics.json").exists():
        cfg = TrainConfig(dataset=args.dataset, data_dir=args.data_dir, model=model, beta=beta, seed=seed,
                          **overrides).validate()
        started = time.perf_counter()
        train(cfg, run_dir, progress=False)
        print(f"{run_dir.name}: {time.perf_counter() - started:.0f} s", flush=True)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return json.loads((run_dir / "metrics.json").read_text()), sum(h["seconds"] for h in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["imae"])
    parser.add_argument("--betas", type=float, nargs="+", default=[5.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="override settings, e.g. epochs=5")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    print(f"{args.dataset}, default settings{' + ' + json.dumps(overrides) if overrides else ''}")
    print("| model | beta | seed | accuracy | I(x;y) (nats) | reconstruction error (nats) | training time (s) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for beta in args.betas:
            cells = [run_cell(args, model, beta, seed, overrides) for seed in args.seeds]
            for seed, (m, seconds) in zip(args.seeds, cells):
                print(f"| {model} | {beta:g} | {seed} | {m['accuracy']:.4f} | {m['mutual_info_xy']:.3f} | "
                      f"{m['reconstruction_error']:.2f} | {seconds:.0f} |", flush=True)
            if len(cells) > 1:
                acc = [m["accuracy"] for m, _ in cells]
                print(f"| {model} | {beta:g} | mean | {statistics.mean(acc):.4f} ± {statistics.stdev(acc):.4f} | "
                      f"{statistics.mean(m['mutual_info_xy'] for m, _ in cells):.3f} | "
                      f"{statistics.mean(m['reconstruction_error'] for m, _ in cells):.2f} | |", flush=True)


if __name__ == "__main__":
    main()
