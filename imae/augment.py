"""Consistency of p(y|x) under small random affine transforms of the image: an option beside VAT
(`--augment-consistency W`), not part of the paper. Where VAT perturbs x in its most sensitive
direction, this term asks the category to survive the small rotations, scalings and shifts a
digit is drawn with."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .estimators import categorical_kl

# The largest transform drawn (each uniformly in +-): rotation in degrees, relative scaling, and shift
# as a fraction of the image side (0.1: 2.8 pixels on MNIST's 28).
MAX_ROTATION_DEGREES = 10.0
MAX_SCALING = 0.1
MAX_SHIFT = 0.1


def random_affine(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Each flat image of x [N, C*H*W] (shape (C, H, W)) rotated, scaled and shifted by its own random
    amounts, resampled bilinearly; pixels from outside repeat the border, so a uniform image stays uniform."""
    n = x.shape[0]

    def uniform(*size):  # in [-1, 1]
        return torch.rand(*size, device=x.device, dtype=x.dtype) * 2 - 1

    angle = uniform(n) * math.radians(MAX_ROTATION_DEGREES)
    scale = 1 + uniform(n) * MAX_SCALING
    shift = uniform(n, 2) * MAX_SHIFT * 2  # affine_grid's coordinates span [-1, 1]: the side is 2
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    images = x.reshape(n, *shape)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False).reshape(n, -1)


def augmentation_consistency(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                             logits: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """mean_n KL(p(y|x_n) || p(y|aug(x_n))) with p(y|x_n) held constant: VAT's term (eq 11) with a random
    affine transform (random_affine) in place of the adversarial perturbation."""
    return categorical_kl(logits.detach(), classify(random_affine(x, shape))).mean()
