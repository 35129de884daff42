"""What torch.compile (inductor) would add, in each precision, measured in one run: samples/s of IMAE's full
training step (VAT on) and of encoding the MNIST test set, eager against compiled. Two ways of compiling
the step: the networks (encoder and decoder modules), and the whole loss (forward pass and objective;
VAT's autograd.grad breaks the graph). The project adopts compilation only where it gives >= 1.2x on
top of the best precision (docs/benchmarks.md, "Precision"); compile time is reported apart.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/compile_speed.py [--precisions fp32 bf16] [--device cuda]

The images are random, of MNIST's shape (speed does not depend on the pixels).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from imae.config import TrainConfig
from imae.data.batches import as_float
from imae.metrics import encode
from imae.objectives import build_objective
from imae.training import build_model, build_optimizer, forward_pass, resolve_device

PRECISIONS = ("fp32", "bf16")


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def new_model(cfg, device, how: str):
    """The paper's MNIST network, its optimiser, and a loss function of a batch: eager, or compiled as `how`."""
    torch.manual_seed(0)
    model = build_model(cfg, (28, 28)).to(device)
    optimizer, _ = build_optimizer(cfg, model)
    objective = build_objective(cfg)
    if how == "networks":
        model.encoder.compile()
        model.decoder.compile()

    def loss(x):
        return objective(forward_pass(model, x, cfg))["loss"]
    return model, optimizer, torch.compile(loss) if how == "loss" else loss


def step_function(cfg, device, how: str):
    """One optimiser step on a batch, with the loss eager or compiled as `how`."""
    model, optimizer, loss = new_model(cfg, device, how)

    def step(x):
        optimizer.zero_grad(set_to_none=True)
        loss(x).backward()
        optimizer.step()
    return step


def encode_function(cfg, device, how: str):
    """Encoding a split with the encoder eager or compiled (how: eager or networks)."""
    torch.manual_seed(0)
    model = build_model(cfg, (28, 28)).to(device).eval()
    if how == "networks":
        model.encoder.compile()
    return lambda images: encode(model, images, cfg.eval_batch_size, cfg.precision)


def compare(make, hows, data, samples: int, rounds: int, device, label: str) -> None:
    """Samples/s of each variant, alternating over rounds (the machine's load drifts), median; the first
    call (compilation included) timed apart. A variant that fails to compile is reported and skipped."""
    functions, first = {}, {}
    for how in hows:
        try:
            function = make(how)
            first[how] = timed(lambda: function(data[0]), device)
            for x in data[:2]:  # a compiled function may compile again on its second call
                function(x)
            functions[how] = function
        except Exception as exc:  # noqa: BLE001 - a compile failure is a result here
            print(f"  {f'{label}, {how}':<34} failed: {type(exc).__name__}: {exc}".splitlines()[0])
    rates = {how: [] for how in functions}
    for _ in range(rounds):
        for how, function in functions.items():
            rates[how].append(samples / timed(lambda: [function(x) for x in data], device))
    for how in functions:
        rate = statistics.median(rates[how])
        print(f"  {f'{label}, {how}':<34} {rate:10.0f} {rate / statistics.median(rates['eager']):8.2f} "
              f"{first[how]:10.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10_000, 28, 28), dtype=torch.uint8, generator=generator).to(device)
    batches = [as_float(images[i * args.batch_size:(i + 1) * args.batch_size]) for i in range(args.steps)]
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"  {'what':<34} {'samples/s':>10} {'x eager':>8} {'first call':>11}")
    for precision in args.precisions:
        cfg = TrainConfig(precision=precision, batch_size=args.batch_size).validate()
        compare(lambda how: step_function(cfg, device, how), ("eager", "networks", "loss"), batches,
                args.steps * args.batch_size, args.rounds, device, f"IMAE step {precision}")
        compare(lambda how: encode_function(cfg, device, how), ("eager", "networks"), [images], len(images),
                args.rounds, device, f"encoding 10,000, {precision}")


if __name__ == "__main__":
    main()
