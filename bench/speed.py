"""Speed against the hardware, all measured in one run on one device (ratios, not absolute times:
the machine is shared and noisy):

  (a) the device's fp32 matmul peak (GFLOP/s);
  (b) a bare autoencoder step of the paper's MNIST network (no VAT, no estimators);
  (c) the full training step of each model (VAT on), as a ratio to (b) and to its ideal: the
      ratio its extra FLOPs allow (VAT adds about 5 encoder forwards, so IMAE's ideal is ~0.5);
  (d) evaluation: every metric on the MNIST test set, total correlation on 10,000 points, and
      MIG on all 737,280 dSprites images (--dsprites; encoding plus the estimators).

Measurements alternate over --rounds and report the median. Data stay on the device.

    python bench/speed.py --data-dir ../shared/data/mnist [--device cpu|cuda|auto] [--batch-sizes 256 1024]
    python bench/speed.py --synthetic ...   # random MNIST-shaped images (speed does not depend on content)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from imae.config import MODELS, TrainConfig
from imae import disentanglement as dis
from imae.data import load_dataset
from imae.data.batches import ImageSet, as_float, shuffled_indices
from imae.metrics import code_statistics, encode, evaluate
from imae.objectives import build_objective, reconstruction_nll
from imae.training import build_model, build_optimizer, resolve_device, train_step

# Every MAC of a Linear layer costs 2 FLOPs forward and 4 backward (input and weight gradients).
FORWARD, TRAIN = 2, 6


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, size: int, repeats: int = 10) -> float:
    """GFLOP/s of a square fp32 matmul, the best of a few."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def linear_macs(module: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def step_flops(model, vat: bool) -> tuple[float, float]:
    """FLOPs per sample of a bare step and of a step with VAT: VAT's power iteration is an encoder
    forward and a backward to the input only (2 + 2 FLOPs/MAC), its loss a forward with backward (6)."""
    encoder, decoder = linear_macs(model.encoder), linear_macs(model.decoder)
    bare = TRAIN * (encoder + decoder)
    return bare, bare + (4 + TRAIN) * encoder * vat


def bare_step(model, optimizer, x, cfg) -> None:
    """Encoder, sampled code, decoder, BCE: an autoencoder step with no VAT and no estimators."""
    post = model.encoder(x)
    z, y = model.sample_code(post, cfg.temperature)
    loss = reconstruction_nll(model.decoder(z, y), x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def steps_per_second(step, images, batch_size: int, steps: int, device, generator) -> float:
    """Samples/s of `steps` steps on shuffled batches (after 3 warm-up steps)."""
    batches = [as_float(images[i]) for _, i in zip(range(steps + 3), shuffled_indices(len(images), batch_size,
                                                                                        generator, device))]
    for x in batches[:3]:
        step(x)
    return steps * batch_size / timed(lambda: [step(x) for x in batches[3:]], device)


def batching_rate(images, batch_size: int, steps: int, device, generator) -> float:
    """Samples/s of making the batches alone (shuffle, index, convert)."""
    def make():
        for _, index in zip(range(steps), shuffled_indices(len(images), batch_size, generator, device)):
            as_float(images[index])
    return steps * batch_size / timed(make, device)


def training_table(args, device, images) -> None:
    for batch_size in args.batch_sizes:
        cfg = TrainConfig(batch_size=batch_size).validate()
        generator = torch.Generator().manual_seed(0)
        steps = max(10, args.samples // batch_size)
        models = {}
        for name in MODELS:
            model_cfg = TrainConfig(model=name, batch_size=batch_size).validate()
            torch.manual_seed(0)
            model = build_model(model_cfg, tuple(images.shape[1:])).to(device)
            optimizer, _ = build_optimizer(model_cfg, model)
            objective = build_objective(model_cfg)
            models[name] = (model, optimizer, objective, model_cfg)
        rates = {name: [] for name in ("bare", *MODELS, "batching")}
        for _ in range(args.rounds):
            model, optimizer, _, _ = models["imae"]
            rates["bare"].append(steps_per_second(lambda x: bare_step(model, optimizer, x, cfg), images,
                                                  batch_size, steps, device, generator))
            for name, (model, optimizer, objective, model_cfg) in models.items():
                rates[name].append(steps_per_second(
                    lambda x, m=model, o=optimizer, f=objective, c=model_cfg: train_step(m, f, o, x, c),
                    images, batch_size, steps, device, generator))
            rates["batching"].append(batching_rate(images, batch_size, steps, device, generator))
        median = {name: statistics.median(values) for name, values in rates.items()}
        bare_flops, vat_flops = step_flops(models["imae"][0], vat=True)
        ideal = bare_flops / vat_flops
        print(f"\nbatch {batch_size}, {steps} steps x {args.rounds} rounds")
        print(f"  {'step':<12} {'samples/s':>10} {'/bare':>7} {'/ideal':>7} {'% of peak':>9}")
        print(f"  {'bare':<12} {median['bare']:10.0f} {1:7.3f} {'':>7} "
              f"{100 * median['bare'] * bare_flops / 1e9 / args.peak:8.1f}%")
        for name in MODELS:
            ratio = median[name] / median["bare"]
            print(f"  {name:<12} {median[name]:10.0f} {ratio:7.3f} {ratio / ideal:7.3f} "
                  f"{100 * median[name] * vat_flops / 1e9 / args.peak:8.1f}%")
        print(f"  ideal ratio with VAT {ideal:.3f} (targets: imae >= 0.47 of bare, others >= 0.9 of ideal); "
              f"making batches: {100 * median['imae'] / median['batching']:.1f}% of IMAE's step time (target <= 5%)")


def mnist_split(args, split: str) -> ImageSet:
    if args.synthetic:
        n = 60_000 if split == "train" else 10_000
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        return ImageSet(images, torch.arange(n) % 10, f"synthetic-{split}")
    return load_dataset("mnist", split, args.data_dir)


def dsprites_evaluation(args, device) -> None:
    """Every final metric of a dSprites run (encoding all 737,280 images with the paper's network, MIG,
    the other disentanglement metrics, per-dimension information, total correlation) with an untrained model."""
    cfg = TrainConfig(dataset="dsprites").validate()
    split = load_dataset("dsprites", "test").to(device)  # the default cache (generated on first use)
    torch.manual_seed(0)
    model = build_model(cfg, tuple(split.images.shape[1:])).to(device).eval()
    post = timed_value(lambda: encode(model, split.images, cfg.eval_batch_size), device, "encoding 737,280 images")
    post = type(post)(*(t.float().cpu() for t in (post.mu, post.logvar, post.logits)))
    sizes = tuple(int(s) for s in split.factors.max(0).values + 1)
    timed_value(lambda: dis.disentanglement_metrics(post.mu, post.logvar, post.logits, split.factors.cpu(), sizes,
                                                    torch.Generator().manual_seed(0)), device,
                "MIG, mig_with_y and the other disentanglement metrics (DCI by gradient boosting)")
    timed_value(lambda: code_statistics(post), device, "per-dimension information and total correlation")


def timed_value(fn, device, label: str):
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    print(f"  {label}: {time.perf_counter() - start:.1f} s")
    return value


def evaluation_table(args, device) -> None:
    cfg = TrainConfig().validate()
    test = mnist_split(args, "test").to(device)
    torch.manual_seed(0)
    model = build_model(cfg, tuple(test.images.shape[1:])).to(device).eval()
    evaluate(model, test.select(slice(0, 1000)), cfg.eval_batch_size)  # warm-up
    seconds = timed(lambda: evaluate(model, test, cfg.eval_batch_size, complete=True), device)
    print(f"\n(d) final evaluation of the MNIST test set (10,000 images: accuracy, I(x;y), reconstruction, "
          f"per-dimension information, total correlation): {seconds:.2f} s (target <= 5 s)")
    post = encode(model, test.images, cfg.eval_batch_size)
    post = type(post)(*(t.float().cpu() for t in (post.mu, post.logvar, post.logits)))
    seconds = timed(lambda: dis.split_total_correlation(post.mu, post.logvar, torch.Generator().manual_seed(0)),
                    device)
    print(f"  total correlation with all 10,000 z's (O(N^2 K)): {seconds:.2f} s")
    if args.dsprites:
        print("dSprites, all 737,280 images:")
        dsprites_evaluation(args, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="directory with MNIST's IDX files")
    parser.add_argument("--synthetic", action="store_true", help="random images of MNIST's shape instead")
    parser.add_argument("--dsprites", action="store_true", help="also time every final metric on all of dSprites")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--samples", type=int, default=25_600, help="samples per timed measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, help="default 2048 on CPU, 8192 on CUDA")
    args = parser.parse_args()
    if not (args.data_dir or args.synthetic):
        parser.error("give --data-dir (MNIST) or --synthetic")
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    args.peak = matmul_peak(device, args.matmul_size or (8192 if device.type == "cuda" else 2048))
    print(f"torch {torch.__version__}, {name}")
    print(f"(a) fp32 matmul peak: {args.peak:.0f} GFLOP/s")
    images = mnist_split(args, "train").images.to(device)
    training_table(args, device, images)
    evaluation_table(args, device)


if __name__ == "__main__":
    main()
