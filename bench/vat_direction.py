"""VAT's power iteration under bf16, on a briefly trained MNIST encoder: the mean (and worst) cosine of its
direction to the exact one, H d / |H d| with H the Hessian of KL(p(y|x) || p(y|x + r)) at r = 0 (float64,
double backward), for three ways of computing it:

  fp32               a float32 run;
  bf16 as trained    a bf16 run: imae/vat.py runs the power iteration in float32, the logits of x included;
  bf16 pass          the power iteration left to bf16 autocast, against the step's bf16 logits of x.

The bf16 pass is why the power iteration stays in fp32 (docs/benchmarks.md, "Precision").

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/vat_direction.py --data-dir ../shared/data/mnist [--steps 300]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from imae.config import TrainConfig
from imae.data import load_dataset
from imae.data.batches import as_float, shuffled_indices
from imae.estimators import categorical_kl
from imae.objectives import build_objective
from imae.precision import autocast
from imae.training import build_model, build_optimizer, train_step
from imae.vat import adversarial_direction


def exact_direction(classify64, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """H d / |H d| per row, in float64."""
    x = x.double()
    target = classify64(x).detach()
    r = torch.zeros_like(x, requires_grad=True)
    (g,) = torch.autograd.grad(categorical_kl(target, classify64(x + r)).sum(), r, create_graph=True)
    (hd,) = torch.autograd.grad((g * start.double()).sum(), r)
    return F.normalize(hd, dim=1)


def bf16_pass(classify, x, logits, xi):
    d = (xi * F.normalize(torch.randn_like(x), dim=1)).requires_grad_(True)
    (grad,) = torch.autograd.grad(categorical_kl(logits.detach(), classify(x + d)).mean(), d)
    return F.normalize(grad, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="directory with MNIST's IDX files")
    parser.add_argument("--steps", type=int, default=300, help="fp32 training steps before measuring")
    parser.add_argument("--xis", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    args = parser.parse_args()
    images = load_dataset("mnist", "train", args.data_dir).images
    cfg = TrainConfig(precision="fp32").validate()
    torch.manual_seed(0)
    model = build_model(cfg, (28, 28))
    optimizer, _ = build_optimizer(cfg, model)
    objective = build_objective(cfg)
    batches = shuffled_indices(len(images), cfg.batch_size, torch.Generator().manual_seed(0))
    for _, index in zip(range(args.steps), batches):
        train_step(model, objective, optimizer, as_float(images[index]), cfg)
    model.eval()  # one network per sample: the exact Hessian is per sample
    encoder64 = copy.deepcopy(model.encoder).double()
    x = as_float(images[:256])
    ways = {"fp32": ("fp32", adversarial_direction), "bf16 as trained": ("bf16", adversarial_direction),
            "bf16 pass": ("bf16", bf16_pass)}
    print(f"MNIST encoder after {args.steps} fp32 steps, 256 training images: "
          "mean / worst cosine to the exact direction")
    print(f"  {'xi':>6} " + "".join(f"{name:>18}" for name in ways))
    for xi in args.xis:
        torch.manual_seed(1)
        exact = exact_direction(encoder64.logits, x, torch.randn_like(x))  # the start each way draws below
        cells = ""
        for precision, direction in ways.values():
            with autocast(precision, x.device):
                logits = model.encoder.logits(x)
                torch.manual_seed(1)
                d = direction(model.encoder.logits, x, logits, xi)
            cosine = (d.double() * exact).sum(1).abs()
            cells += f"{cosine.mean():>11.3f} / {cosine.min():.2f}"
        print(f"  {xi:>6g} {cells}")


if __name__ == "__main__":
    main()
