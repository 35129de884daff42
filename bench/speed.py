"""Speed against the hardware, fp32 and bf16 side by side, all measured in one run on one device (ratios,
not absolute times: the machine is shared and noisy):

  (a) the device's matmul peak in each precision (GFLOP/s);
  (b) a bare autoencoder step of the paper's MNIST network (no VAT, no estimators);
  (c) the full training step of each model (VAT on), as a ratio to (b) and to its ideal: the
      ratio its extra FLOPs allow (VAT adds about 5 encoder forwards, so IMAE's ideal is ~0.5);
      under bf16, what VAT's power iteration, kept in fp32 (imae/vat.py), costs;
  (d) with --dsprites-step: the bare and the IMAE step of the paper's dSprites network;
  (e) evaluation: every metric on the MNIST test set, total correlation on 10,000 points, and
      with --dsprites encoding all 737,280 dSprites images and every metric of them.

bf16 is torch.autocast as training runs it (--precision bf16), whether or not the hardware has bf16
units: on a CPU without AMX or AVX512-BF16 it is much slower (docs/benchmarks.md, "Precision"); shrink --samples there.
Measurements alternate over --rounds and report the median. Data stay on the device.

    python bench/speed.py --data-dir ../shared/data/mnist [--device cpu|cuda|auto] [--batch-sizes 256 1024]
    python bench/speed.py --synthetic ...   # random MNIST-shaped images (speed does not depend on content)
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from imae.config import MODELS, TrainConfig
from imae import disentanglement as dis
from imae.data import load_dataset
from imae.data.batches import ImageSet, as_float, shuffled_indices
from imae.estimators import categorical_kl
from imae.metrics import code_statistics, encode, evaluate
from imae.networks import frozen_batchnorm_statistics
from imae.objectives import build_objective, reconstruction_nll
from imae.precision import autocast
from imae.training import build_model, build_optimizer, resolve_device, train_step
from imae.vat import adversarial_direction

# Every MAC of a Linear layer costs 2 FLOPs forward and 4 backward (input and weight gradients).
FORWARD, TRAIN = 2, 6
PRECISIONS = ("fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, size: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """GFLOP/s of a square matmul in dtype by F.linear (nn.Linear's kernel: for bf16 on a CPU without bf16
    units several times faster than `@`), the best of a few; sizes double from 256 up to `size`, and stop
    early once one product takes a second (bf16 without hardware support)."""
    n, rate = 256, 0.0
    while n <= size:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        first = timed(lambda: F.linear(a, b), device)
        best = min([first] + [timed(lambda: F.linear(a, b), device) for _ in range(repeats if first < 0.1 else 1)])
        rate = 2 * n ** 3 / best / 1e9
        if first > 1.0:
            break
        n *= 2
    return rate


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
    with autocast(cfg.precision, x.device):
        post = model.encoder(x)
        z, y = model.sample_code(post, cfg.temperature)
        logits = model.decoder(z, y)
    loss = reconstruction_nll(logits, x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def bf16_power_iteration(model, x, logits, xi: float) -> None:
    """VAT's power iteration as a bf16 pass against the bf16 logits of the step: what training does
    not do (its direction degrades, tests/test_vat.py), timed for the cost of keeping it in fp32."""
    d = (xi * F.normalize(torch.randn_like(x), dim=1)).requires_grad_(True)
    torch.autograd.grad(categorical_kl(logits, model.encoder.logits(x + d)).mean(), d)


def power_iteration_seconds(model, x, cfg, in_bf16: bool, repeats: int) -> float:
    """Seconds of VAT's power iteration on the batch x under bf16 autocast: as trained (fp32 inside,
    adversarial_direction), or in_bf16 (bf16_power_iteration)."""
    with autocast("bf16", x.device), frozen_batchnorm_statistics(model.encoder):
        logits = model.encoder.logits(x).detach()
        if in_bf16:
            return timed(lambda: [bf16_power_iteration(model, x, logits, cfg.vat_xi) for _ in range(repeats)],
                         x.device) / repeats
        return timed(lambda: [adversarial_direction(model.encoder.logits, x, logits, cfg.vat_xi)
                              for _ in range(repeats)], x.device) / repeats


def index_batches(n: int, batch_size: int, count: int, generator, device):
    """`count` shuffled index batches, over as many epochs as they need (large batches, few images)."""
    epochs = itertools.chain.from_iterable(shuffled_indices(n, batch_size, generator, device)
                                           for _ in itertools.count())
    return itertools.islice(epochs, count)


def steps_per_second(step, images, batch_size: int, steps: int, device, generator) -> float:
    """Samples/s of `steps` steps on shuffled batches (after 3 warm-up steps)."""
    batches = [as_float(images[i]) for i in index_batches(len(images), batch_size, steps + 3, generator, device)]
    for x in batches[:3]:
        step(x)
    return steps * batch_size / timed(lambda: [step(x) for x in batches[3:]], device)


def batching_rate(images, batch_size: int, steps: int, device, generator) -> float:
    """Samples/s of making the batches alone (shuffle, index, convert)."""
    def make():
        for index in index_batches(len(images), batch_size, steps, generator, device):
            as_float(images[index])
    return steps * batch_size / timed(make, device)


def step_rates(args, device, images, batch_size: int, models, dataset: str) -> tuple[dict, dict]:
    """Median samples/s of the bare step and of each model's step, per precision; and the models."""
    generator = torch.Generator().manual_seed(0)
    steps = max(3, args.samples // batch_size)
    built = {}
    for name in models:
        for precision in args.precisions:
            cfg = TrainConfig(dataset=dataset, model=name, batch_size=batch_size, precision=precision).validate()
            torch.manual_seed(0)
            model = build_model(cfg, tuple(images.shape[1:])).to(device)
            optimizer, _ = build_optimizer(cfg, model)
            built[name, precision] = (model, optimizer, build_objective(cfg), cfg)
    rates = {key: [] for name in ("bare", *models) for key in ((name, p) for p in args.precisions)}
    rates["batching"] = []
    for _ in range(args.rounds):
        for precision in args.precisions:
            model, optimizer, _, cfg = built[models[0], precision]
            rates["bare", precision].append(steps_per_second(lambda x: bare_step(model, optimizer, x, cfg), images,
                                                             batch_size, steps, device, generator))
            for name in models:
                model, optimizer, objective, cfg = built[name, precision]
                rates[name, precision].append(steps_per_second(
                    lambda x, m=model, o=optimizer, f=objective, c=cfg: train_step(m, f, o, x, c),
                    images, batch_size, steps, device, generator))
        rates["batching"].append(batching_rate(images, batch_size, steps, device, generator))
    print(f"\nbatch {batch_size}, {steps} steps x {args.rounds} rounds, {dataset}'s network")
    return {key: statistics.median(values) for key, values in rates.items()}, built


def print_table(args, median: dict, model, models) -> None:
    bare_flops, vat_flops = step_flops(model, vat=True)
    ideal = bare_flops / vat_flops
    head = "".join(f" | {p + ' samples/s':>16} {'/bare':>6} {'/ideal':>6} {'%peak':>6}" for p in args.precisions)
    ratio = " | bf16/fp32" if set(PRECISIONS) <= set(args.precisions) else ""
    print(f"  {'step':<10}{head}{ratio}")
    for name in ("bare", *models):
        flops = bare_flops if name == "bare" else vat_flops
        cells = ""
        for p in args.precisions:
            to_bare = median[name, p] / median["bare", p]
            cells += (f" | {median[name, p]:16.0f} {to_bare:6.3f} "
                      f"{'' if name == 'bare' else f'{to_bare / ideal:.3f}':>6} "
                      f"{100 * median[name, p] * flops / 1e9 / args.peak[p]:5.1f}%")
        if ratio:
            cells += f" | {median[name, 'bf16'] / median[name, 'fp32']:9.2f}x"
        print(f"  {name:<10}{cells}")
    print(f"  ideal ratio with VAT {ideal:.3f}")


def training_table(args, device, images) -> None:
    for batch_size in args.batch_sizes:
        median, built = step_rates(args, device, images, batch_size, args.models, "mnist")
        print_table(args, median, built[args.models[0], args.precisions[0]][0], args.models)
        print("  targets: imae >= 0.47 of bare, others >= 0.9 of ideal; imae bf16/fp32 >= 1.8 at batch 256")
        if "imae" not in args.models:
            continue
        p = args.precisions[-1]
        print(f"  making batches: {100 * median['imae', p] / median['batching']:.1f}% of IMAE's {p} step time "
              f"(target <= 5%)")
        if "bf16" in args.precisions:
            power_iteration_cost(args, device, images, batch_size, built["imae", "bf16"], median["imae", "bf16"])


def power_iteration_cost(args, device, images, batch_size, built, imae_rate) -> None:
    model, _, _, cfg = built
    x = as_float(images[:batch_size])
    power_iteration_seconds(model, x, cfg, False, 1)  # warm-up
    repeats = max(1, args.samples // batch_size // 10)
    seconds = {in_bf16: statistics.median(power_iteration_seconds(model, x, cfg, in_bf16, repeats)
                                          for _ in range(args.rounds)) for in_bf16 in (False, True)}
    step = batch_size / imae_rate
    print(f"  VAT's power iteration under bf16: in fp32 as trained {1e3 * seconds[False]:.1f} ms a batch "
          f"({100 * seconds[False] / step:.0f}% of the IMAE step), in bf16 it would take {1e3 * seconds[True]:.1f} ms")


def dsprites_step_table(args, device) -> None:
    """The bare and the IMAE step of the paper's dSprites network on binary 64x64 images."""
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(20_000, 64, 64, generator=generator) < 0.1).to(torch.uint8).mul_(255).to(device)
    for batch_size in args.batch_sizes:
        median, built = step_rates(args, device, images, batch_size, ("imae",), "dsprites")
        print_table(args, median, built["imae", args.precisions[0]][0], ("imae",))
        print("  (target: imae bf16/fp32 >= 2)")


def mnist_split(args, split: str) -> ImageSet:
    if args.synthetic:
        n = 60_000 if split == "train" else 10_000
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        return ImageSet(images, torch.arange(n) % 10, f"synthetic-{split}")
    return load_dataset("mnist", split, args.data_dir)


def dsprites_evaluation(args, device) -> None:
    """Every final metric of a dSprites run (encoding all 737,280 images with the paper's network in each
    precision, MIG, the other disentanglement metrics, per-dimension information, total correlation)
    with an untrained model."""
    cfg = TrainConfig(dataset="dsprites").validate()
    split = load_dataset("dsprites", "test").to(device)  # the default cache (generated on first use)
    torch.manual_seed(0)
    model = build_model(cfg, tuple(split.images.shape[1:])).to(device).eval()
    for precision in args.precisions:
        post = timed_value(lambda: encode(model, split.images, cfg.eval_batch_size, precision), device,
                           f"encoding 737,280 images, {precision}")
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
    print("\n(e) final evaluation of the MNIST test set (10,000 images: accuracy, I(x;y), reconstruction, "
          "per-dimension information, total correlation; target <= 5 s):")
    for precision in args.precisions:
        evaluate(model, test.select(slice(0, 1000)), cfg.eval_batch_size, precision=precision)  # warm-up
        seconds = timed(lambda: evaluate(model, test, cfg.eval_batch_size, complete=True, precision=precision),
                        device)
        print(f"  networks in {precision}: {seconds:.2f} s")
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
    parser.add_argument("--dsprites-step", action="store_true", help="also time the dSprites network's step")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--samples", type=int, default=25_600, help="samples per timed measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, help="default 2048 on CPU, 8192 on CUDA")
    args = parser.parse_args()
    if not (args.data_dir or args.synthetic):
        parser.error("give --data-dir (MNIST) or --synthetic")
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    args.peak = {p: matmul_peak(device, size, DTYPES[p]) for p in args.precisions}
    print(f"torch {torch.__version__}, {name}")
    print("(a) matmul peak: " + ", ".join(f"{p} {rate:.1f} GFLOP/s" for p, rate in args.peak.items()))
    images = mnist_split(args, "train").images.to(device)
    training_table(args, device, images)
    if args.dsprites_step:
        print("\n(d) the dSprites network (4096-1200-1200-2400 / 13-1200-1200-1200-4096) on binary 64x64 images")
        dsprites_step_table(args, device)
    evaluation_table(args, device)


if __name__ == "__main__":
    main()
