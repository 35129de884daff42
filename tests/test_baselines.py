"""The baselines of Figure 1 on the same hybrid code, against independent computations."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from imae import estimators as est
from imae.cli import main
from imae.config import TrainConfig
from imae.networks import HybridAutoencoder
from imae.objectives import BetaVAEObjective, InfoVAEObjective, JointVAEObjective, capacity
from imae.training import forward_pass


def _forward(cfg, seed=0):
    torch.manual_seed(seed)
    model = HybridAutoencoder((28, 28))
    x = torch.rand(32, 784).round()
    return forward_pass(model, x, cfg)


def test_beta_vae_at_beta_one_is_the_negative_elbo():
    cfg = TrainConfig(model="beta-vae", beta=1.0, vat=False, reconstruction_weight=1.0).validate()
    fp = _forward(cfg)
    post = fp.posterior
    # -ELBO = -E log q(x|y,z) + KL(p(y|x) || U) + KL(p(z|x) || N(0, I)), written with torch.distributions.
    log_likelihood = Bernoulli(logits=fp.reconstruction_logits).log_prob(fp.x).sum(1)
    uniform = Categorical(probs=torch.full_like(post.logits, 1.0 / post.logits.shape[1]))
    kl_y = kl_divergence(Categorical(logits=post.logits), uniform)
    kl_z = kl_divergence(Normal(post.mu, torch.exp(0.5 * post.logvar)), Normal(0.0, 1.0)).sum(1)
    negative_elbo = (-log_likelihood + kl_y + kl_z).mean()
    assert BetaVAEObjective(cfg)(fp)["loss"].item() == pytest.approx(negative_elbo.item(), rel=1e-5)


def test_jointvae_capacity_schedule_and_cap():
    assert capacity(5.0, 0, 25_000) == 0.0
    assert capacity(5.0, 12_500, 25_000) == pytest.approx(2.5)
    assert capacity(5.0, 25_000, 25_000) == 5.0
    assert capacity(5.0, 90_000, 25_000) == 5.0
    log_k = math.log(10)
    assert capacity(10.0, 50_000, 50_000, cap=log_k) == pytest.approx(log_k)
    assert capacity(10.0, 5_000, 50_000, cap=log_k) == pytest.approx(1.0)


def test_jointvae_defaults_follow_the_data_set():
    mnist = TrainConfig(model="joint-vae").validate()
    fashion = TrainConfig(model="joint-vae", dataset="fashion-mnist").validate()
    assert (mnist.capacity_y, mnist.capacity_z, mnist.capacity_iterations) == (5.0, 5.0, 25_000)
    assert (fashion.capacity_y, fashion.capacity_z, fashion.capacity_iterations) == (10.0, 5.0, 50_000)


def test_jointvae_loss_uses_capacity_at_step():
    cfg = TrainConfig(model="joint-vae", vat=False, beta=2.0, capacity_iterations=100).validate()
    fp = _forward(cfg)
    fp.step = 20
    terms = JointVAEObjective(cfg)(fp)
    assert terms["capacity_y"].item() == pytest.approx(1.0) and terms["capacity_z"].item() == pytest.approx(1.0)
    expected = cfg.reconstruction_weight * terms["reconstruction"] + 2.0 * ((terms["kl_y"] - 1.0).abs() + (terms["kl_z"] - 1.0).abs())
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_infovae_marginal_kl_brute_force():
    logits = torch.randn(9, 4, dtype=torch.float64)
    p = torch.softmax(logits, 1).mean(0).numpy()
    expected = sum(p[k] * math.log(p[k] / 0.25) for k in range(4))
    assert est.marginal_categorical_kl_to_uniform(logits).item() == pytest.approx(expected, rel=1e-10)
    cfg = TrainConfig(model="info-vae", vat=False).validate()
    fp = _forward(cfg)
    assert InfoVAEObjective(cfg)(fp)["marginal_kl_y"].item() == pytest.approx(
        est.marginal_categorical_kl_to_uniform(fp.posterior.logits).item())


def test_aggregate_kl_matches_gaussian_closed_form():
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    s2 = 0.05
    mu = torch.randn(3000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov - s2 * torch.eye(2, dtype=torch.float64)).T
    z = mu + math.sqrt(s2) * torch.randn(3000, 2, generator=g, dtype=torch.float64)
    log_joint, _ = est.aggregate_log_densities(z, mu, torch.full_like(mu, math.log(s2)), chunk=1000)
    closed = 0.5 * (torch.trace(cov) - 2 - torch.logdet(cov)).item()
    assert est.aggregate_kl_to_standard_normal(z, log_joint).item() == pytest.approx(closed, abs=0.05)


def test_jointvae_target_below_its_kl_leaves_the_gradient_unchanged():
    """beta |KL_z - C_z| has the gradient beta grad KL_z for every C_z below KL_z: two such targets train
    identically, their losses a constant beta (C_z' - C_z) apart (results/paper-cpu's Fig. 8: (5, 2) and
    (5, 10) at beta 1); a target above KL_z flips the pull."""
    def loss_and_gradients(capacity_z):
        cfg = TrainConfig(model="joint-vae", vat=False, beta=3.0, capacity_iterations=10,
                          capacity_z=capacity_z).validate()
        torch.manual_seed(0)
        model, x = HybridAutoencoder((28, 28)), torch.rand(32, 784).round()
        fp = forward_pass(model, x, cfg)
        fp.step = 10
        terms = JointVAEObjective(cfg)(fp)
        terms["loss"].backward()
        return terms, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    kl_z = loss_and_gradients(0.0)[0]["kl_z"].item()
    (low, grad_low), (high, grad_high) = loss_and_gradients(kl_z / 4), loss_and_gradients(kl_z / 2)
    assert torch.equal(grad_low, grad_high)
    assert (low["loss"] - high["loss"]).item() == pytest.approx(3.0 * kl_z / 4, rel=1e-4)
    assert not torch.allclose(loss_and_gradients(2 * kl_z)[1], grad_low)


@pytest.mark.parametrize("kind", ["rbf", "imq"])
def test_mmd_brute_force(kind):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) + 0.5
    c = 2.0 * 3

    def k(u, v):
        d2 = float(np.sum((u - v) ** 2))
        return math.exp(-d2 / (2.0 * 3)) if kind == "rbf" else c / (c + d2)

    within_a = np.mean([k(a[i], a[j]) for i, j in itertools.permutations(range(5), 2)])
    within_b = np.mean([k(b[i], b[j]) for i, j in itertools.permutations(range(4), 2)])
    across = np.mean([k(u, v) for u in a for v in b])
    got = est.maximum_mean_discrepancy(torch.tensor(a), torch.tensor(b), kind)
    assert got.item() == pytest.approx(within_a + within_b - 2 * across, rel=1e-9)


def test_rbf_mmd_saturates_on_a_code_spread_wider_than_its_kernel():
    """Why InfoVAE's RBF MMD can stop acting: once the codes spread far beyond the kernel's width (2 * dim),
    every k(z, z') and k(z, p) vanishes and MMD^2 sits at E k(p, p') = (1 + 2 / dim)^(-dim / 2) for N(0, I),
    with no gradient left; the IMQ kernel's heavy tail still pulls."""
    dim, g = 10, torch.Generator().manual_seed(0)
    prior = torch.randn(4000, dim, generator=g, dtype=torch.float64)
    # each z_i's gradient carries a 1/n of the pair averages: 1e-7 is a pull, 1e-15 none
    for kind, pulls in (("rbf", False), ("imq", True)):
        z = (30.0 * torch.randn(256, dim, generator=g, dtype=torch.float64)).requires_grad_()
        mmd = est.maximum_mean_discrepancy(z, prior, kind)
        mmd.backward()
        if kind == "rbf":
            assert mmd.item() == pytest.approx((1 + 2 / dim) ** (-dim / 2), abs=0.005)
        assert z.grad.abs().max().item() > 1e-7 if pulls else z.grad.abs().max().item() < 1e-15


@pytest.mark.parametrize("model, extra", [("beta-vae", []), ("info-vae", []), ("info-vae", ["--infovae-divergence", "mmd-imq"]),
                                          ("joint-vae", ["--capacity-iterations", "10"]), ("imae", ["--no-vat"])])
def test_each_model_trains_and_evaluates(tiny_mnist, tmp_path, model, extra):
    out = tmp_path / "run"
    args = ["train", "--model", model, "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out),
            "--epochs", "4", "--batch-size", "64", "--optimizer", "adam", "--no-progress", *extra]
    assert main(args) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history[-1]["train"]["reconstruction"] < history[0]["train"]["reconstruction"]
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == model
    assert main(["evaluate", str(out)]) == 0
    assert "accuracy" in json.loads((out / "metrics.json").read_text())
