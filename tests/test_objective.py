"""The IMAE loss, eq (10), assembled by hand from brute-force numbers on a tiny batch."""

import math

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from scipy.stats import norm

from imae.config import TrainConfig
from imae.networks import Posterior
from imae.objectives import ForwardPass, IMAEObjective


def _brute_force_terms(x, mu, logvar, logits, z, recon_logits):
    n, k = mu.shape
    sd = np.exp(0.5 * logvar)
    p_x = expit(recon_logits)
    recon = -np.mean([np.sum(x[i] * np.log(p_x[i]) + (1 - x[i]) * np.log(1 - p_x[i])) for i in range(n)])
    p = softmax(logits, axis=1)
    p_y = p.mean(0)
    h_y = -np.sum(p_y * np.log(p_y))
    h_y_x = -np.mean(np.sum(p * np.log(p), axis=1))
    log_qz = np.array([math.log(np.mean([np.prod(norm.pdf(z[i], mu[j], sd[j])) for j in range(n)])) for i in range(n)])
    log_qzk = np.array([[math.log(np.mean([norm.pdf(z[i, d], mu[j, d], sd[j, d]) for j in range(n)]))
                         for d in range(k)] for i in range(n)])
    kl_z = np.mean(np.sum(log_qzk - norm.logpdf(z), axis=1))
    tc = np.mean(log_qz - log_qzk.sum(1))
    return recon, h_y, h_y_x, kl_z, tc


@pytest.mark.parametrize("weights", [{}, {"gamma": 3.0, "marginal_entropy_weight": 4.0, "vat_weight": 10.0,
                                          "reconstruction_weight": 0.1}])
def test_imae_loss_matches_hand_assembly(weights):
    rng = np.random.default_rng(0)
    n, k, c, d = 6, 3, 4, 5
    arrays = dict(x=rng.random((n, d)), mu=rng.normal(size=(n, k)), logvar=rng.normal(size=(n, k)) * 0.3,
                  logits=rng.normal(size=(n, c)), z=rng.normal(size=(n, k)), recon_logits=rng.normal(size=(n, d)))
    t = {name: torch.tensor(a) for name, a in arrays.items()}
    vat = torch.tensor(0.37, dtype=torch.float64)
    fp = ForwardPass(t["x"], Posterior(t["mu"], t["logvar"], t["logits"]), t["z"],
                     torch.zeros(n, c, dtype=torch.float64), t["recon_logits"], vat)
    cfg = TrainConfig(beta=2.5, **weights).validate()
    terms = IMAEObjective(cfg)(fp)

    recon, h_y, h_y_x, kl_z, tc = _brute_force_terms(**arrays)
    l_y = cfg.marginal_entropy_weight * h_y - h_y_x - cfg.vat_weight * 0.37
    expected = cfg.reconstruction_weight * recon - cfg.beta * l_y + cfg.beta * kl_z + cfg.gamma_value * tc
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-10)
    assert terms["mutual_info_xy"].item() == pytest.approx(h_y - h_y_x, rel=1e-10)
    assert terms["total_correlation"].item() == pytest.approx(tc, rel=1e-9)
    assert terms["marginal_kl_z"].item() == pytest.approx(kl_z, rel=1e-9)


def test_gamma_defaults_to_twice_beta():
    assert TrainConfig(beta=3.0).gamma_value == 6.0
    assert TrainConfig(beta=3.0, gamma=1.0).gamma_value == 1.0


@pytest.mark.parametrize("clip", [None, 1e-3, 1e6])
def test_grad_clip_scales_the_whole_gradient_to_the_norm_before_the_step(clip):
    """One plain SGD step (no momentum) moves the parameters by -lr x the gradient, rescaled as a whole to
    norm `clip` when it is longer (torch.nn.utils.clip_grad_norm_'s rule, computed here by hand)."""
    import copy

    from imae.networks import HybridAutoencoder
    from imae.objectives import build_objective
    from imae.training import forward_pass, train_step
    torch.manual_seed(0)
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, grad_clip=clip, vat=False).validate()
    model, x = HybridAutoencoder((28, 28)), torch.rand(16, 784)
    reference = copy.deepcopy(model)
    objective = build_objective(cfg)
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    objective(forward_pass(reference, x, cfg))["loss"].backward()
    gradients = [p.grad for p in reference.parameters()]
    norm = torch.sqrt(sum(g.square().sum() for g in gradients))
    scale = 1.0 if clip is None else min(1.0, clip / (norm.item() + 1e-6))
    torch.manual_seed(1)
    train_step(model, objective, torch.optim.SGD(model.parameters(), lr=0.1), x, cfg)
    for p, p0, g in zip(model.parameters(), before, gradients):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * scale * g, rtol=1e-5, atol=1e-7)
    if clip == 1e-3:
        assert norm.item() > 1.0  # the clip did act
