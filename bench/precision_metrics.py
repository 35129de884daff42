"""Would bf16 encodings do for the final metrics? Every scalar of a trained run's metrics.json recomputed
with the networks in fp32 and in bf16 (the estimators in fp32 either way), side by side. metrics.json stays
fp32 unless every metric moves by at most 1e-3 (docs/benchmarks.md, "Precision").

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/precision_metrics.py RUN_DIR [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time

from imae.data import load_dataset
from imae.metrics import evaluate
from imae.results import scalar_metrics
from imae.training import load_trained

TOLERANCE = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", help="the data set's files, if not where training found them")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    cfg, model, _ = load_trained(args.run_dir, args.device)
    test = load_dataset(cfg.dataset, "test", args.data_dir or cfg.data_dir, cfg.image_size)
    test = test.to(next(model.parameters()).device)
    metrics, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        metrics[precision] = scalar_metrics(evaluate(model, test, cfg.eval_batch_size, complete=True,
                                                     seed=cfg.seed, precision=precision))
        seconds[precision] = time.perf_counter() - start
    print(f"{args.run_dir}: {len(test)} test images; evaluation {seconds['fp32']:.1f} s in fp32, "
          f"{seconds['bf16']:.1f} s in bf16")
    print(f"  {'metric':<44} {'fp32':>12} {'bf16':>12} {'|difference|':>13}")
    worst = 0.0
    for name, value in metrics["fp32"].items():
        difference = abs(metrics["bf16"][name] - value)
        worst = max(worst, difference)
        print(f"  {name:<44} {value:12.6f} {metrics['bf16'][name]:12.6f} {difference:13.2e}")
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    print(f"largest difference {worst:.2e}: bf16 encodings are {verdict} {TOLERANCE:g} of every metric")


if __name__ == "__main__":
    main()
