"""Objectives: each model is a small loss on the same forward pass and the same trainer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import estimators as est
from .config import TrainConfig
from .networks import Posterior


@dataclass
class ForwardPass:
    """What one training step computed for a batch; objectives only read it."""

    x: torch.Tensor
    posterior: Posterior
    z: torch.Tensor  # sampled continuous code
    y: torch.Tensor  # relaxed one-hot categorical code
    reconstruction_logits: torch.Tensor
    vat: torch.Tensor  # VAT term, zero when switched off


def reconstruction_nll(reconstruction_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-E log q(x|y,z) for a Bernoulli decoder: BCE summed over pixels, mean over the batch."""
    bce = F.binary_cross_entropy_with_logits(reconstruction_logits, x, reduction="none")
    return bce.sum(1).mean()


class IMAEObjective:
    """Minimises -L_IMAE, eq (10):
        w_rec * recon - beta * L(y) + beta * sum_k KL(p(z_k) || N(0,1)) + gamma * TC(z),
    with L(y) = w_H * H(y) - H(y|x) - w_vat * VAT, eq (11) (w_H = w_vat = 1 is the paper's)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        cfg, post = self.cfg, fp.posterior
        recon = reconstruction_nll(fp.reconstruction_logits, fp.x)
        h_y = est.marginal_entropy(post.logits)
        h_y_given_x = est.conditional_entropy(post.logits)
        log_joint, log_marginals = est.aggregate_log_densities(fp.z, post.mu, post.logvar)
        kl_z = est.marginal_kl_to_standard_normal(fp.z, log_marginals)
        tc = est.total_correlation(log_joint, log_marginals)
        info_y = cfg.marginal_entropy_weight * h_y - h_y_given_x - cfg.vat_weight * fp.vat
        loss = (cfg.reconstruction_weight * recon - cfg.beta * info_y
                + cfg.beta * kl_z + cfg.gamma_value * tc)
        return {"loss": loss, "reconstruction": recon, "mutual_info_xy": h_y - h_y_given_x,
                "marginal_entropy_y": h_y, "conditional_entropy_y": h_y_given_x, "vat": fp.vat,
                "marginal_kl_z": kl_z, "total_correlation": tc}


OBJECTIVES = {"imae": IMAEObjective}


def build_objective(cfg: TrainConfig):
    return OBJECTIVES[cfg.model](cfg)
