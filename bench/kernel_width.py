"""Which width of PyTorch's CPU kernels (AVX2, AVX512) a study's runs were trained at, where metrics.json
does not record it (runs made before `training_hardware` existed), so that `imae reproduce --cpu-capability`
can be told.

    python bench/kernel_width.py results/paper-cpu [--widths avx2 avx512]

A sweep's runs share a machine, so one MNIST or Fashion-MNIST run per sweep (attempt.json's "sweep") is
trained again for one epoch under each width in turn (a new process held to it: imae.precision's
CPU_CAPABILITY_ENV) until its epoch-1 training loss equals history.jsonl's in every digit; that width is
printed, or "none" when no width gives it. Kernels of different widths sum in different orders, so the
first epoch's loss already differs in its last digits (212.748 against 212.825 for MNIST IMAE beta 3,
seed 0). dSprites runs are left out: their one epoch is the whole run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from imae.precision import CPU_CAPABILITY_ENV

DATA_DIRS = {"mnist": "../shared/data/mnist", "fashion-mnist": "/usr/share/datasets/fashion-mnist"}

# Trains epoch 1 of a run's config (one restart) and prints its training loss exactly.
EPOCH_ONE = """
import dataclasses, json, sys
from pathlib import Path
from imae import runs
from imae.training import train
run, out, data_dir = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cfg = dataclasses.replace(runs.load_config(run), epochs=1, restarts=1, data_dir=data_dir)
train(cfg, out, progress=False)
print(repr(json.loads((out / "history.jsonl").read_text().splitlines()[0])["train"]["loss"]))
"""


def one_run_per_sweep(study: Path) -> dict[str, Path]:
    """The first finished image-data run of each sweep whose metrics.json does not record its hardware."""
    chosen: dict[str, Path] = {}
    for attempt in sorted(study.glob("*/*/*/attempt.json")):
        run = attempt.parent
        if run.relative_to(study).parts[0] not in DATA_DIRS or not (run / "metrics.json").is_file():
            continue
        if "training_hardware" in json.loads((run / "metrics.json").read_text()):
            continue
        chosen.setdefault(json.loads(attempt.read_text()).get("sweep"), run)
    return chosen


def epoch_one_loss(run: Path, width: str, scratch: Path) -> str:
    data_dir = DATA_DIRS[run.parts[-3]]
    done = subprocess.run([sys.executable, "-c", EPOCH_ONE, str(run), str(scratch / f"{run.name}-{width}"), data_dir],
                          capture_output=True, text=True, env={**os.environ, **CPU_CAPABILITY_ENV[width]})
    if done.returncode:
        sys.exit(f"kernel_width.py: epoch 1 of {run} failed: {done.stderr.strip().splitlines()[-1]}")
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--widths", nargs="+", type=str.upper, choices=sorted(CPU_CAPABILITY_ENV),
                        default=["AVX2", "AVX512"])
    args = parser.parse_args()
    runs = one_run_per_sweep(args.study)
    print(f"{len(runs)} sweeps with runs that do not record their hardware", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for sweep, run in runs.items():
            committed = repr(json.loads((run / "history.jsonl").read_text().splitlines()[0])["train"]["loss"])
            width = next((w for w in args.widths if epoch_one_loss(run, w, Path(scratch)) == committed), "none")
            print(f"{sweep}  {width:6}  {run}  (epoch-1 loss {committed})", flush=True)


if __name__ == "__main__":
    main()
