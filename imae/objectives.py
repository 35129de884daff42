"""Objectives: each model is a small loss on the same forward pass and the same trainer."""

from __future__ import annotations

import math
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
    z: torch.Tensor | None  # sampled continuous code (None without a decoder: IMSAT)
    y: torch.Tensor | None  # relaxed one-hot categorical code (None without a decoder)
    reconstruction_logits: torch.Tensor | None
    vat: torch.Tensor  # VAT term, zero when switched off
    step: int = 0  # optimiser steps taken before this one (JointVAE's capacity schedule)
    consistency: torch.Tensor | None = None  # augmentation consistency (imae/augment.py), None when off


def reconstruction_nll(reconstruction_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-E log q(x|y,z) for a Bernoulli decoder: BCE summed over pixels, mean over the batch."""
    bce = F.binary_cross_entropy_with_logits(reconstruction_logits, x, reduction="none")
    return bce.sum(1).mean()


def smoothness(cfg: TrainConfig, fp: ForwardPass) -> torch.Tensor:
    """The penalties on how p(y|x) changes near x: w_vat * VAT (eq 11), plus, when switched on,
    augment_consistency * the consistency under small random affine transforms."""
    penalty = cfg.vat_weight * fp.vat
    if fp.consistency is not None:
        penalty = penalty + cfg.augment_consistency * fp.consistency
    return penalty


def smoothness_terms(fp: ForwardPass) -> dict[str, torch.Tensor]:
    return {"vat": fp.vat, **({} if fp.consistency is None else {"augment_consistency": fp.consistency})}


def categorical_information(cfg: TrainConfig, fp: ForwardPass) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L(y) = w_H * H(y) - H(y|x) - w_vat * VAT, eq (7) and (11) (w_H = w_vat = 1 is the paper's), with
    its named terms."""
    h_y = est.marginal_entropy(fp.posterior.logits)
    h_y_given_x = est.conditional_entropy(fp.posterior.logits)
    info_y = cfg.marginal_entropy_weight * h_y - h_y_given_x - smoothness(cfg, fp)
    return info_y, {"mutual_info_xy": h_y - h_y_given_x, "marginal_entropy_y": h_y,
                    "conditional_entropy_y": h_y_given_x, **smoothness_terms(fp)}


class Objective:
    """A model's loss: called on a ForwardPass, returns {"loss": ..., every named term: ...}."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class IMAEObjective(Objective):
    """Minimises -L_IMAE, eq (10):
        w_rec * recon - beta * L(y) + beta * sum_k KL(p(z_k) || N(0,1)) + gamma * TC(z),
    with L(y) = w_H * H(y) - H(y|x) - w_vat * VAT, eq (11) (categorical_information)."""

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        cfg, post = self.cfg, fp.posterior
        recon = reconstruction_nll(fp.reconstruction_logits, fp.x)
        info_y, info_terms = categorical_information(cfg, fp)
        log_joint, log_marginals = est.aggregate_log_densities(fp.z, post.mu, post.logvar)
        kl_z = est.marginal_kl_to_standard_normal(fp.z, log_marginals)
        tc = est.total_correlation(log_joint, log_marginals)
        loss = (cfg.reconstruction_weight * recon - cfg.beta * info_y
                + cfg.beta * kl_z + cfg.gamma_value * tc)
        return {"loss": loss, "reconstruction": recon, **info_terms,
                "marginal_kl_z": kl_z, "total_correlation": tc}


class IMSATObjective(Objective):
    """IMSAT (Hu et al. 2017) for clustering: minimises -beta * L(y), IMAE's categorical term alone (eq 7,
    11), with no decoder and no z. Its published loss VAT + lambda (H(y|x) - mu H(y)), lambda 0.1, mu 4,
    is this with beta = lambda = 0.1, w_H = mu = 4, w_vat = 1 / lambda = 10:
        -0.1 (4 H(y) - H(y|x) - 10 VAT) = VAT + 0.1 (H(y|x) - 4 H(y))."""

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        info_y, info_terms = categorical_information(self.cfg, fp)
        return {"loss": -self.cfg.beta * info_y, **info_terms}


def posterior_kls(post: Posterior) -> tuple[torch.Tensor, torch.Tensor]:
    """E_x KL(p(y|x) || U) = (2)+(3) and E_x KL(p(z|x) || N(0, I)) = (4)+(5) of Figure 1, closed forms."""
    return (est.categorical_kl_to_uniform(post.logits).mean(),
            est.gaussian_kl_to_standard_normal(post.mu, post.logvar).mean())


class BetaVAEObjective(Objective):
    """beta-VAE on the hybrid code: recon + beta * E_x KL(p(y|x) || U) + beta * E_x KL(p(z|x) || N(0, I)),
    i.e. -(1) + beta[(2)+(3)] + beta[(4)+(5)] of Figure 1, both KLs in closed form; plus VAT."""

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        cfg, post = self.cfg, fp.posterior
        recon = reconstruction_nll(fp.reconstruction_logits, fp.x)
        kl_y, kl_z = posterior_kls(post)
        loss = cfg.reconstruction_weight * recon + cfg.beta * (kl_y + kl_z + smoothness(cfg, fp))
        return {"loss": loss, "reconstruction": recon, "kl_y": kl_y, "kl_z": kl_z, **smoothness_terms(fp),
                "mutual_info_xy": est.mutual_information_xy(post.logits)}


class InfoVAEObjective(Objective):
    """InfoVAE: only the aggregate-posterior terms, recon + beta * KL(p(y) || U) + beta * D(p(z), N(0, I)),
    -(1) + beta(3) + beta(5); D the minibatch KL estimator or an MMD (RBF or IMQ kernel); plus VAT."""

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        cfg, post = self.cfg, fp.posterior
        recon = reconstruction_nll(fp.reconstruction_logits, fp.x)
        kl_y = est.marginal_categorical_kl_to_uniform(post.logits)
        if cfg.infovae_divergence == "kl":
            log_joint, _ = est.aggregate_log_densities(fp.z, post.mu, post.logvar)
            divergence_z = est.aggregate_kl_to_standard_normal(fp.z, log_joint)
        else:
            divergence_z = est.maximum_mean_discrepancy(fp.z, torch.randn_like(fp.z),
                                                        kind=cfg.infovae_divergence.removeprefix("mmd-"))
        loss = cfg.reconstruction_weight * recon + cfg.beta * (kl_y + divergence_z + smoothness(cfg, fp))
        return {"loss": loss, "reconstruction": recon, "marginal_kl_y": kl_y, "divergence_z": divergence_z,
                **smoothness_terms(fp), "mutual_info_xy": est.mutual_information_xy(post.logits)}


def capacity(target: float, step: int, iterations: int, cap: float = math.inf) -> float:
    """JointVAE's capacity: raised linearly from 0 to target over `iterations` steps, then held; at most cap."""
    return min(target * min(step / iterations, 1.0), cap)


class JointVAEObjective(Objective):
    """JointVAE: recon + beta * |KL_y - C_y| + beta * |KL_z - C_z|, KL_y = E_x KL(p(y|x) || U) = (2)+(3),
    KL_z = E_x KL(p(z|x) || N(0, I)) = (4)+(5), the capacities C raised linearly, C_y capped at log K2."""

    def __call__(self, fp: ForwardPass) -> dict[str, torch.Tensor]:
        cfg, post = self.cfg, fp.posterior
        recon = reconstruction_nll(fp.reconstruction_logits, fp.x)
        kl_y, kl_z = posterior_kls(post)
        c_y = capacity(cfg.capacity_y, fp.step, cfg.capacity_iterations, cap=math.log(cfg.categories))
        c_z = capacity(cfg.capacity_z, fp.step, cfg.capacity_iterations)
        loss = cfg.reconstruction_weight * recon + cfg.beta * (
            (kl_y - c_y).abs() + (kl_z - c_z).abs() + smoothness(cfg, fp))
        return {"loss": loss, "reconstruction": recon, "kl_y": kl_y, "kl_z": kl_z, **smoothness_terms(fp),
                "capacity_y": kl_y.new_tensor(c_y), "capacity_z": kl_z.new_tensor(c_z),
                "mutual_info_xy": est.mutual_information_xy(post.logits)}


OBJECTIVES = {"imae": IMAEObjective, "beta-vae": BetaVAEObjective, "info-vae": InfoVAEObjective,
              "joint-vae": JointVAEObjective, "imsat": IMSATObjective}


def build_objective(cfg: TrainConfig):
    return OBJECTIVES[cfg.model](cfg)
