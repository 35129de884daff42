"""Virtual adversarial training on p(y|x) (Miyato et al.; eq 11 of the paper)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .estimators import categorical_kl


def _unit(v: torch.Tensor) -> torch.Tensor:
    return F.normalize(v.reshape(v.shape[0], -1), dim=1).reshape(v.shape)


def adversarial_direction(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                          logits: torch.Tensor, xi: float) -> torch.Tensor:
    """Unit direction that most increases KL(p(y|x) || p(y|x + r)), by one power iteration
    from Gaussian noise. xi must be large enough for float32: with xi = 1e-6 the perturbed
    KL is ~1e-13 and its gradient is rounding noise (see tests/test_vat.py). Under bf16
    autocast the power iteration runs in float32, the logits of x included: bf16 rounds
    x + d and the hidden units too coarsely for a finite difference (the direction's cosine to
    the exact one falls from 0.97 to 0.91 at xi = 1 on a trained MNIST encoder, to 0.35-0.5 at
    xi = 0.01), and bf16 logits of x against float32 ones of x + d would add a first-order term."""
    device = x.device.type
    mixed = torch.is_autocast_enabled(device)
    with torch.autocast(device, enabled=False):
        if mixed:
            with torch.no_grad():
                logits = classify(x)
        d = (xi * _unit(torch.randn_like(x))).requires_grad_(True)
        kl = categorical_kl(logits.detach(), classify(x.detach() + d)).mean()
        (grad,) = torch.autograd.grad(kl, d)  # inside: autocast would run the backward's matmuls in bf16 too
    return _unit(grad).detach()


def virtual_adversarial_loss(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                             logits: torch.Tensor, eps: float | torch.Tensor, xi: float) -> torch.Tensor:
    """mean_n KL(p(y|x_n) || p(y|x_n + r_n)), r_n = eps * adversarial direction, with
    p(y|x_n) held constant. `eps` is a radius or one radius per sample ([N])."""
    r = adversarial_direction(classify, x, logits, xi)
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps.ndim == 1:
        eps = eps.reshape(-1, *([1] * (x.ndim - 1)))
    return categorical_kl(logits.detach(), classify(x + eps * r)).mean()


@torch.no_grad()
def nearest_neighbour_radius(x: torch.Tensor, neighbours: int, scale: float, chunk: int = 1000) -> torch.Tensor:
    """IMSAT's per-sample VAT radius: scale x the L2 distance from each row of x [N, D] to its
    k-th nearest other row (exact, by chunked squared-distance matrices)."""
    squared_norms = x.square().sum(1)
    radii = []
    for start in range(0, x.shape[0], chunk):
        rows = x[start:start + chunk]
        d2 = squared_norms[start:start + chunk, None] + squared_norms[None] - 2.0 * rows @ x.T
        d2[torch.arange(rows.shape[0]), torch.arange(start, start + rows.shape[0])] = float("inf")  # not itself
        radii.append(d2.kthvalue(neighbours, dim=1).values.clamp_min(0.0).sqrt())
    return scale * torch.cat(radii)
