"""Each estimator against an independent computation: closed forms or brute force."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from imae import estimators as est


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _probs(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_mutual_information_brute_force():
    logits = np.random.default_rng(0).normal(size=(7, 4)) * 2
    p = _probs(logits)
    # I(x;y) with x uniform over the 7 rows: sum_x,y p(x) p(y|x) log(p(y|x) / p(y)).
    p_y = p.mean(0)
    expected = sum(p[n, k] * math.log(p[n, k] / p_y[k]) for n in range(7) for k in range(4)) / 7
    assert est.mutual_information_xy(torch.tensor(logits)).item() == pytest.approx(expected, rel=1e-10)


def test_mutual_information_extremes():
    k = 5
    confident_balanced = torch.eye(k) * 60.0  # one sample per category, near one-hot
    assert est.mutual_information_xy(confident_balanced).item() == pytest.approx(math.log(k), abs=1e-6)
    uniform = torch.zeros(10, k)
    assert est.mutual_information_xy(uniform).item() == pytest.approx(0.0, abs=1e-12)
    assert est.marginal_entropy(uniform).item() == pytest.approx(math.log(k))
    collapsed = torch.tensor([[50.0, 0, 0, 0, 0]]).repeat(8, 1)
    assert est.mutual_information_xy(collapsed).item() == pytest.approx(0.0, abs=1e-6)


def test_entropies_at_minus_infinite_logits_take_0_log_0_as_0():
    # One-hot p(y|x) given as -inf logits (log-probabilities), and a row with one impossible category.
    inf = math.inf
    logits = torch.tensor([[0.0, -inf, -inf], [-inf, 0.0, -inf], [-inf, -inf, 0.0],
                           [math.log(0.25), math.log(0.75), -inf]], requires_grad=True)
    p = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.25, 0.75, 0]])

    def entropy(q):
        return -sum(x * math.log(x) for x in q if x > 0)
    conditional = np.mean([entropy(row) for row in p])
    information = est.mutual_information_xy(logits)
    assert information.item() == pytest.approx(entropy(p.mean(0)) - conditional, rel=1e-12)
    assert est.conditional_entropy(logits).item() == pytest.approx(conditional, rel=1e-12)
    information.backward()
    assert torch.isfinite(logits.grad).all()
    reference = torch.tensor([[0.0, 1.0, 2.0]]).repeat(4, 1)
    expected_kl = [sum(x * math.log(x / y) for x, y in zip(row, _probs(reference.numpy())[0]) if x > 0) for row in p]
    np.testing.assert_allclose(est.categorical_kl(logits.detach(), reference).numpy(), expected_kl, rtol=1e-12)


def test_categorical_kl_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    p, q = _probs(a), _probs(b)
    expected = (p * np.log(p / q)).sum(1)
    np.testing.assert_allclose(est.categorical_kl(torch.tensor(a), torch.tensor(b)).numpy(), expected, rtol=1e-10)


def test_aggregate_log_densities_brute_force():
    rng = np.random.default_rng(2)
    n, k = 5, 3
    mu, logvar, z = rng.normal(size=(n, k)), rng.normal(size=(n, k)) * 0.5, rng.normal(size=(n, k))
    sd = np.exp(0.5 * logvar)
    joint, marginal = np.zeros(n), np.zeros((n, k))
    for i in range(n):
        joint[i] = math.log(np.mean([np.prod(norm.pdf(z[i], mu[j], sd[j])) for j in range(n)]))
        for d in range(k):
            marginal[i, d] = math.log(np.mean([norm.pdf(z[i, d], mu[j, d], sd[j, d]) for j in range(n)]))
    for chunk in (None, 2):
        got_joint, got_marginal = est.aggregate_log_densities(
            torch.tensor(z), torch.tensor(mu), torch.tensor(logvar), chunk=chunk)
        np.testing.assert_allclose(got_joint.numpy(), joint, rtol=1e-10)
        np.testing.assert_allclose(got_marginal.numpy(), marginal, rtol=1e-10)


def _gaussian_encodings(n, cov, s2, seed=0):
    """mu ~ N(0, cov - s2 I), z ~ N(mu, s2 I): the aggregate posterior is exactly N(0, cov)."""
    g = torch.Generator().manual_seed(seed)
    k = cov.shape[0]
    chol = torch.linalg.cholesky(cov - s2 * torch.eye(k))
    mu = torch.randn(n, k, generator=g) @ chol.T
    z = mu + math.sqrt(s2) * torch.randn(n, k, generator=g)
    return z, mu, torch.full_like(mu, math.log(s2))


@pytest.mark.parametrize("variance", [1.0, 4.0, 0.25])
def test_marginal_kl_matches_closed_form(variance):
    z, mu, logvar = _gaussian_encodings(3000, variance * torch.eye(2), s2=0.05 * variance)
    _, log_marginals = est.aggregate_log_densities(z, mu, logvar, chunk=1000)
    closed_form = 2 * 0.5 * (variance - 1.0 - math.log(variance))  # two dims of KL(N(0,v) || N(0,1))
    assert est.marginal_kl_to_standard_normal(z, log_marginals).item() == pytest.approx(closed_form, abs=0.04)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_total_correlation_of_correlated_gaussians(rho):
    cov = torch.tensor([[1.0, rho], [rho, 1.0]])
    z, mu, logvar = _gaussian_encodings(4000, cov, s2=0.05)
    log_joint, log_marginals = est.aggregate_log_densities(z, mu, logvar, chunk=1000)
    expected = -0.5 * math.log(torch.linalg.det(cov).item())  # TC of a Gaussian: -1/2 log det(corr)
    assert est.total_correlation(log_joint, log_marginals).item() == pytest.approx(expected, abs=0.05)


def test_total_correlation_zero_for_identical_encodings():
    # All encodings equal: the aggregate is one factorised Gaussian, so TC is exactly zero.
    mu = torch.tensor([[0.3, -1.0, 2.0]]).repeat(6, 1)
    logvar = torch.tensor([[0.1, -0.5, 0.0]]).repeat(6, 1)
    z = mu + torch.randn_like(mu)
    assert est.total_correlation(*est.aggregate_log_densities(z, mu, logvar)).item() == pytest.approx(0.0, abs=1e-12)


def test_gaussian_kl_closed_form_against_numeric_integral():
    mu, logvar = torch.tensor([[0.7, -1.2]]), torch.tensor([[0.4, -0.9]])
    grid = np.linspace(-12, 12, 200001)
    expected = 0.0
    for m, lv in zip(mu[0].tolist(), logvar[0].tolist()):
        p = norm.pdf(grid, m, math.exp(0.5 * lv))
        expected += np.trapezoid(p * (norm.logpdf(grid, m, math.exp(0.5 * lv)) - norm.logpdf(grid)), grid)
    assert est.gaussian_kl_to_standard_normal(mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_entropy_of_handles_zeros():
    p = torch.tensor([0.5, 0.5, 0.0])
    assert est.entropy_of(p).item() == pytest.approx(math.log(2))
    perms = [torch.tensor(x) for x in itertools.permutations([0.2, 0.3, 0.5])]
    assert len({round(est.entropy_of(p).item(), 12) for p in perms}) == 1


def test_aggregate_log_densities_gradient():
    # The hand-written backward against finite differences, for both outputs and all inputs.
    g = torch.Generator().manual_seed(3)
    z, mu = torch.randn(4, 3, generator=g), torch.randn(5, 3, generator=g)
    logvar = 0.3 * torch.randn(5, 3, generator=g)
    inputs = tuple(t.clone().requires_grad_(True) for t in (z, mu, logvar))
    assert torch.autograd.gradcheck(lambda a, b, c: est.aggregate_log_densities(a, b, c), inputs)
    assert torch.autograd.gradcheck(lambda a, b, c: est.aggregate_log_densities(a, b, c, chunk=3), inputs)


def test_aggregate_log_densities_gradient_matches_autograd_of_pairwise_formula():
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(16, 4, generator=g), 0.5 * torch.randn(16, 4, generator=g)
    z = mu + torch.randn(16, 4, generator=g)
    weights = torch.randn(16, generator=g), torch.randn(16, 4, generator=g)
    grads = []
    for fused in (True, False):
        leaves = [t.clone().requires_grad_(True) for t in (z, mu, logvar)]
        if fused:
            joint, marginal = est.aggregate_log_densities(*leaves)
        else:
            log_q = est.pairwise_log_density(*leaves)
            joint = torch.logsumexp(log_q.sum(2), 1) - math.log(16)
            marginal = torch.logsumexp(log_q, 1) - math.log(16)
        ((joint * weights[0]).sum() + (marginal * weights[1]).sum()).backward()
        grads.append([t.grad for t in leaves])
    for fused_grad, reference in zip(*grads):
        torch.testing.assert_close(fused_grad, reference)
