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
    KL is ~1e-13 and its gradient is rounding noise (see tests/test_vat.py)."""
    target = logits.detach()
    d = (xi * _unit(torch.randn_like(x))).requires_grad_(True)
    kl = categorical_kl(target, classify(x.detach() + d)).mean()
    (grad,) = torch.autograd.grad(kl, d)
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
