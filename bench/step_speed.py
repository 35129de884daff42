"""Samples/s of one MNIST epoch of IMAE training (VAT on) against a bare autoencoder step
of the same network, measured in the same run, alternating to share the machine's noise.

    python bench/step_speed.py --data-dir ../shared/data/mnist [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from imae.config import TrainConfig
from imae.data import load_dataset
from imae.data.batches import shuffled_batches
from imae.objectives import build_objective, reconstruction_nll
from imae.training import build_model, build_optimizer, train_epoch


def bare_epoch(model, optimizer, images, cfg, generator) -> None:
    """Encoder, sampled code, decoder, BCE: an autoencoder step with no VAT and no estimators."""
    for x in shuffled_batches(images, cfg.batch_size, generator):
        post = model.encoder(x)
        z, y = model.sample_code(post, cfg.temperature)
        loss = reconstruction_nll(model.decoder(z, y), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    args = parser.parse_args()
    cfg = TrainConfig(data_dir=args.data_dir, batch_size=args.batch_size).validate()
    train = load_dataset("mnist", "train", args.data_dir)
    n = len(train) // cfg.batch_size * cfg.batch_size
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = build_model(cfg, tuple(train.images.shape[1:]))
    optimizer, _ = build_optimizer(cfg, model)
    objective = build_objective(cfg)
    bare, full, batching = [], [], []
    for _ in range(args.rounds):
        bare.append(n / timed(lambda: bare_epoch(model, optimizer, train.images, cfg, generator)))
        full.append(n / timed(lambda: train_epoch(model, objective, optimizer, train, cfg, generator, 1, False)))
        batching.append(n / timed(lambda: sum(1 for _ in shuffled_batches(train.images, cfg.batch_size, generator))))
    b, f, m = statistics.median(bare), statistics.median(full), statistics.median(batching)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {cfg.batch_size}, {args.rounds} rounds")
    print(f"bare autoencoder step : {b:9.0f} samples/s")
    print(f"IMAE step, VAT on     : {f:9.0f} samples/s   ratio to bare {f / b:.3f} (target >= 0.45)")
    print(f"making batches alone  : {m:9.0f} samples/s   {100 * f / m:.1f}% of the IMAE step's time")


if __name__ == "__main__":
    main()
