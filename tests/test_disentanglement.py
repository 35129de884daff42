"""The disentanglement metrics and whole-split estimators against closed forms, brute force and
synthetic codes with known answers, on small full factor grids."""

import itertools
import logging
import math
import resource

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import roots_legendre, xlogy
from scipy.stats import entropy as scipy_entropy
from scipy.stats import norm
from sklearn.ensemble import GradientBoostingClassifier

from imae import disentanglement as dis
from imae import estimators as est

SIZES = (3, 4, 5, 6, 7)
GRID = torch.tensor(list(itertools.product(*[range(s) for s in SIZES])))  # 2520 rows, every combination


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _perfect_codes(factors=GRID, sizes=SIZES, sigma=0.01):
    """mu = each factor normalised to [0, 1], small sigma: code j carries factor j and nothing else."""
    mu = factors.double() / (torch.tensor(sizes) - 1)
    return mu, torch.full_like(mu, 2 * math.log(sigma))


def _gaussian_entropy(sigma):
    return 0.5 * math.log(2 * math.pi * math.e * sigma ** 2)


# --- 1-D aggregate entropies -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["quadrature", "sampling"])
def test_entropy_of_one_gaussian_and_of_two_separated_ones(method):
    def entropies(mu, logvar):
        if method == "quadrature":
            return est.aggregate_entropies_quadrature(mu, logvar)[0]
        return est.aggregate_entropies_sampled(mu, logvar, (), 4000, _gen())[0]
    # Monte Carlo sd of -mean log q for a Gaussian: sqrt(Var[chi2_1 / 2] / S) = sqrt(0.5 / 4000) = 0.011.
    tolerance = 1e-6 if method == "quadrature" else 0.05  # quadrature: the 6-sigma tails left out
    sigma = torch.tensor([0.3, 2.0])
    mu, logvar = torch.zeros(500, 2, dtype=torch.float64), (2 * sigma.log()).repeat(500, 1).double()
    expected = torch.tensor([_gaussian_entropy(s) for s in sigma.tolist()], dtype=torch.float64)
    torch.testing.assert_close(entropies(mu, logvar).double(), expected, atol=tolerance, rtol=0)
    mu[250:] = 100.0  # two halves 50 sigmas apart: the mixture's entropy gains exactly log 2
    torch.testing.assert_close(entropies(mu, logvar).double(), expected + math.log(2), atol=tolerance, rtol=0)


def test_quadrature_against_scipy_integration_of_a_mixture():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=7) * 2, np.exp(rng.normal(size=7) * 0.7)  # sigmas over a factor ~10

    def density(x):
        return norm.pdf(x, mu, sigma).mean()
    expected, _ = integrate.quad(lambda x: -density(x) * math.log(density(x)), -40, 40, points=mu, limit=500)
    got, _ = est.aggregate_entropies_quadrature(torch.tensor(mu)[:, None], torch.tensor(2 * np.log(sigma))[:, None])
    assert got.item() == pytest.approx(expected, abs=1e-7)


def test_quadrature_and_sampling_agree_on_every_group():
    g = _gen(1)
    labels = torch.randint(0, 3, (3000,), generator=g)
    mu = torch.randn(3000, 2, generator=g, dtype=torch.float64) + labels[:, None] * torch.tensor([1.5, 0.0])
    logvar = 0.5 * torch.randn(3000, 2, generator=g, dtype=torch.float64) - 1.0
    quad, (quad_given,) = est.aggregate_entropies_quadrature(mu, logvar, [labels])
    samp, (samp_given,) = est.aggregate_entropies_sampled(mu, logvar, [labels], 1000, g)
    # 1000 samples: Monte Carlo sd ~ sqrt(Var[log q] / 1000) < 0.03 here, so 0.1 is over 3 sd.
    torch.testing.assert_close(samp.double(), quad, atol=0.1, rtol=0)
    torch.testing.assert_close(samp_given.double(), quad_given, atol=0.1, rtol=0)
    assert quad_given.shape == (3, 2)
    assert (quad_given[:, 0] < quad[0] - 0.3).all()  # knowing the label narrows dimension 0 only


def _quadrature_entropy(mu, sigma):
    mu, sigma = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
    return est.aggregate_entropies_quadrature(mu[:, None], 2 * sigma.log()[:, None])[0].item()


@pytest.mark.parametrize("span", [1.0, 10.0])
@pytest.mark.parametrize("sigma", [1e-3, 1e-4, 1e-5, 1e-6, 1e-7])
def test_quadrature_of_narrow_separated_components_is_their_closed_form(sigma, span):
    # Components more than 30 of their sigmas apart do not overlap (to e^-112): the mixture's entropy is exactly
    # mean_n [H(N(mu_n, sigma_n^2)) + log N]. sigmas vary over a factor 3 (two octaves), means over the span.
    rng = np.random.default_rng(0)
    n = 8
    mu = (np.arange(n) + rng.uniform(0.4, 0.6, n)) * span / n
    assert np.diff(mu).min() > 30 * 3 * sigma
    sigmas = sigma * rng.uniform(1, 3, n)
    expected = np.mean([_gaussian_entropy(s) for s in sigmas]) + math.log(n)
    assert _quadrature_entropy(mu, sigmas) == pytest.approx(expected, abs=1e-6)


def _reference_entropy_of_mixture(mu, sigma):
    """-integral q log q by 20-point Gauss-Legendre between breakpoints every half sigma within 10 sigmas of
    each mean (beyond them every component is below e^-50 of its peak), q summed over all components."""
    edges = np.unique(np.concatenate([mu + k * sigma for k in np.arange(-10, 10.25, 0.5)]))
    nodes, weights = roots_legendre(20)
    low, high = edges[:-1, None], edges[1:, None]
    x = (low + high) / 2 + (high - low) / 2 * nodes
    q = norm.pdf(x[..., None], mu, sigma).mean(-1)
    return -(weights * (high - low) / 2 * xlogy(q, q)).sum()


def test_reference_integration_against_scipy_quad():
    rng = np.random.default_rng(2)
    mu, sigma = rng.uniform(0, 1, 5), np.exp(rng.uniform(-8, 0, 5))
    points = np.unique(np.concatenate([mu + k * sigma for k in range(-10, 11)]))

    def integrand(x):
        q = norm.pdf(x, mu, sigma).mean()
        return -xlogy(q, q)
    expected = sum(integrate.quad(integrand, a, b, epsabs=1e-14)[0] for a, b in zip(points[:-1], points[1:]))
    assert _reference_entropy_of_mixture(mu, sigma) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("span, smallest", [(1.0, 1e-4), (10.0, 1e-5), (1.0, 1e-7)])
def test_quadrature_with_sigmas_over_four_orders_of_magnitude_in_one_dimension(span, smallest):
    # Broad components overlap narrow ones: no closed form, so a fine Gauss-Legendre quadrature is the reference.
    rng = np.random.default_rng(1)
    mu = rng.uniform(0, span, 30)
    sigma = np.exp(rng.uniform(math.log(smallest), math.log(smallest * 1e4), 30))
    assert _quadrature_entropy(mu, sigma) == pytest.approx(_reference_entropy_of_mixture(mu, sigma), abs=1e-6)


def test_quadrature_of_coincident_components_with_mixed_sigmas():
    # Two values, each taken by several components of sigmas 1e-7 ... 1e-2 (exact copies of a binary factor
    # with uneven confidence), far apart: H = log 2 + the entropy of one value's concentric mixture.
    sigma = np.array([1e-7, 1e-5, 1e-3, 1e-2])
    mu = np.repeat([0.0, 5.0], 4)
    concentric = _reference_entropy_of_mixture(np.zeros(4), sigma)
    assert _quadrature_entropy(mu, np.tile(sigma, 2)) == pytest.approx(concentric + math.log(2), abs=1e-6)


def _kib(key):
    return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1])


def test_quadrature_memory_is_bounded_where_sigmas_span_four_orders_of_magnitude():
    # 2,000 components, sigma from 1e-4 to 1 in one dimension, under an address-space limit 1 GiB above this
    # process's: a grid at the smallest sigma with windows at the largest needs 4 GB at once (the estimator
    # before the octave lattices failed here); the lattices need about 3 kB per component plus fixed chunks.
    g = _gen(3)
    mu = torch.rand(2000, 1, generator=g, dtype=torch.float64)
    logvar = 2 * math.log(1e-4) * torch.rand(2000, 1, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (2000,), generator=g)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, ((_kib("VmSize") + 2 ** 20) * 1024, hard))
    try:
        marginal, (given,) = est.aggregate_entropies_quadrature(mu, logvar, [labels])
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    # Against Chen's estimator with every row sampled: -log q(z) has sd ~1 nat here, so the mean of 2,000 has
    # sd ~0.02 and that of a group of ~500 ~0.04: tolerances of 4 sd.
    sampled, (sampled_given,) = est.aggregate_entropies_sampled(mu, logvar, [labels], 2000, g)
    assert marginal.item() == pytest.approx(sampled.item(), abs=0.1)
    torch.testing.assert_close(given, sampled_given, atol=0.16, rtol=0)


def test_quadrature_refuses_sigmas_below_its_resolution():
    mu = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="below the quadrature's resolution"):
        est.aggregate_entropies_quadrature(mu, torch.full_like(mu, 2 * math.log(1e-14)))
    with pytest.raises(ValueError, match="finite"):
        est.aggregate_entropies_quadrature(mu, torch.tensor([[0.0], [math.nan]]))


# --- MIG -------------------------------------------------------------------------------------------------

def _mig(mu, logvar, method="quadrature"):
    information = dis.gaussian_mutual_information(mu, logvar, GRID, method, 300, _gen())
    return dis.mutual_information_gap(information, dis.factor_entropies(GRID))


def test_factor_entropies_are_log_sizes_on_a_full_grid():
    torch.testing.assert_close(dis.factor_entropies(GRID), torch.tensor(SIZES, dtype=torch.float64).log())


@pytest.mark.parametrize("method", ["quadrature", "sampling"])
def test_mig_of_perfect_codes_is_one(method):
    # Separated components (sigma 0.01, values 1/6 apart): I(z_j; v_j) = H(v_j); on a full grid z_i is
    # independent of v_j (i != j), so I = 0 up to estimator noise (sampling: 300 samples, sd ~ 0.05 nats).
    assert _mig(*_perfect_codes(), method) > (0.999 if method == "quadrature" else 0.9)


FACTOR_GRID_SIZES = (3, 5, 8, 4, 6)
FACTOR_GRID = torch.tensor(list(itertools.product(*[range(s) for s in FACTOR_GRID_SIZES])))


@pytest.mark.parametrize("span, sigma", [(8.0, 1e-5), (1.0, 1e-6), (1.0, 1e-7), (10.0, 1e-7), (1.0, 1e-3)])
def test_mig_of_exact_copies_of_the_factors_at_small_sigma(span, sigma):
    # z_j = factor j scaled to the span: I(z_j; v_j) = H(v_j) and I(z_i; v_j) = 0 on the full grid, so MIG = 1
    # (the 3x5x8x4x6 grid: a fixed-size grid gave 1.087 at span 8, sigma 1e-5, and 0.015 at 1e-7).
    mu = FACTOR_GRID.double() / (torch.tensor(FACTOR_GRID_SIZES) - 1) * span
    information = dis.gaussian_mutual_information(mu, torch.full_like(mu, 2 * math.log(sigma)), FACTOR_GRID)
    entropies = dis.factor_entropies(FACTOR_GRID)
    torch.testing.assert_close(information, torch.diag(entropies), atol=1e-6, rtol=0)
    assert dis.mutual_information_gap(information, entropies) == pytest.approx(1.0, abs=1e-6)


def test_mig_above_one_is_an_error_and_sampling_noise_is_clipped_with_a_warning(caplog):
    entropies = torch.tensor([math.log(2), math.log(3)], dtype=torch.float64)
    with pytest.raises(ValueError, match="exceed H"):
        dis.mutual_information_gap(torch.tensor([[0.8, 0.1], [0.0, 0.0]], dtype=torch.float64), entropies)
    with pytest.raises(ValueError, match="two or more code dimensions"):
        dis.mutual_information_gap(torch.tensor([[0.5, 0.1]], dtype=torch.float64), entropies)
    # Perfect codes by sampling with few samples: I(z_j; v_j) estimates scatter around H(v_j), some above.
    mu, logvar = _perfect_codes()
    with caplog.at_level(logging.WARNING, logger="imae.disentanglement"):
        information = dis.gaussian_mutual_information(mu, logvar, GRID, "sampling", 300, _gen())
    assert "clipped to H(v_k)" in caplog.text
    assert (information <= dis.factor_entropies(GRID)).all()
    assert 0.9 < dis.mutual_information_gap(information, dis.factor_entropies(GRID)) <= 1.0


def test_mig_of_constant_duplicated_and_rotated_codes():
    mu, logvar = _perfect_codes()
    assert _mig(torch.zeros_like(mu), torch.zeros_like(logvar)) == pytest.approx(0.0, abs=1e-9)
    assert _mig(torch.cat([mu, mu], 1), torch.cat([logvar, logvar], 1)) == pytest.approx(0.0, abs=1e-6)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=_gen(2), dtype=torch.float64))
    # Each rotated code mixes all factors; the best code of a factor is not much better than the second.
    assert _mig(mu @ rotation, logvar) < 0.3


def test_categorical_mutual_information_brute_force():
    g = _gen(3)
    factors = GRID[torch.randperm(len(GRID), generator=g)[:300]]
    logits = torch.randn(300, 4, generator=g, dtype=torch.float64) * 2
    p = torch.softmax(logits, 1).numpy()
    for k, column in enumerate(factors.T.numpy()):
        joint = np.stack([p[column == v].sum(0) for v in range(SIZES[k])]) / len(p)  # p(v, y)
        marginal_product = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
        nonzero = joint > 0
        expected = (joint[nonzero] * np.log(joint[nonzero] / marginal_product[nonzero])).sum()
        assert dis.categorical_mutual_information(logits, factors)[k].item() == pytest.approx(expected, rel=1e-10)


def test_mig_with_y_when_y_is_the_shape():
    mu, logvar = _perfect_codes()
    logits = 30.0 * torch.nn.functional.one_hot(GRID[:, 0], 3)
    metrics = dis.disentanglement_metrics(mu[:, 1:], logvar[:, 1:], logits, GRID, SIZES, _gen(), dci_estimator="forest")
    assert metrics["mig_with_y"] > 0.999  # y carries the shape, z the other factors: every gap is H(v_k)
    assert metrics["mig"] > 0.999


def test_histogram_mig_against_brute_force_counts():
    g = _gen(4)
    factors = GRID[torch.randperm(len(GRID), generator=g)[:200]]
    codes = torch.cat([factors[:, :2].double() + 0.3 * torch.randn(200, 2, generator=g, dtype=torch.float64),
                       torch.randn(200, 1, generator=g, dtype=torch.float64)], 1)
    x, v = codes.numpy(), factors.numpy()

    def bins(c):  # 20 equal-width bins over [min, max], the maximum in the last one
        return np.minimum(((c - c.min()) / (c.max() - c.min()) * 20).astype(int), 19)

    def information(a, b):
        joint = np.zeros((a.max() + 1, b.max() + 1))
        np.add.at(joint, (a, b), 1.0 / len(a))
        outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
        return (joint[joint > 0] * np.log(joint[joint > 0] / outer[joint > 0])).sum()
    gaps = []
    for f in v.T:
        top = sorted((information(bins(c), f) for c in x.T), reverse=True)
        gaps.append((top[0] - top[1]) / information(f, f))
    assert dis.histogram_mig(codes, factors, g) == pytest.approx(np.mean(gaps), abs=1e-10)


# --- FactorVAE, DCI, SAP ---------------------------------------------------------------------------------

def test_factor_vae_score_perfect_and_noise():
    mu, _ = _perfect_codes()
    assert dis.factor_vae_score(mu, GRID, _gen()) == 1.0  # the fixed factor's code has zero variance
    noise = torch.randn(len(GRID), 5, generator=_gen(5))
    # No dimension knows any factor: votes are uniform, so accuracy is chance 1/5 plus the majority
    # vote's small overfit; 0.35 leaves many standard deviations (sd of 5000 votes at 0.2: 0.006).
    assert dis.factor_vae_score(noise, GRID, _gen()) < 0.35


def test_dci_scores_of_known_importance_matrices():  # disentanglement_lib's dci_test cases
    diagonal = np.diag(5.0 * np.ones(5))
    assert dis.dci_scores(diagonal) == pytest.approx((1.0, 1.0))
    assert dis.dci_scores(np.vstack([diagonal, diagonal])) == pytest.approx((1.0, 1 - math.log(2) / math.log(10)))
    assert dis.dci_scores(np.hstack([diagonal, diagonal])) == pytest.approx((1 - math.log(2) / math.log(10), 1.0))
    assert dis.dci_scores(np.zeros((4, 4))) == pytest.approx((0.0, 0.0), abs=1e-7)


def test_dci_forest_perfect_duplicated_and_noise():
    # Bounds as disentanglement_lib's dci_test: perfect in [0.9, 1]; duplicated codes split each factor's
    # importance between two of 10 codes: completeness 1 - log 2 / log 10 (+-0.1); noise below 0.2.
    mu, _ = _perfect_codes()
    forest = {"estimator": "forest", "num_trees": 10}
    perfect = dis.dci(mu, GRID, _gen(), num_train=1500, num_test=1000, **forest)
    assert perfect["disentanglement"] > 0.9 and perfect["completeness"] > 0.9 and perfect["informativeness"] > 0.99
    duplicated = dis.dci(torch.cat([mu, mu], 1), GRID, _gen(), num_train=1500, num_test=1000, **forest)
    assert duplicated["completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.1)
    noise = dis.dci(torch.randn(len(GRID), 5, generator=_gen(6)), GRID, _gen(), 1500, 1000, **forest)
    assert noise["disentanglement"] < 0.2 and noise["completeness"] < 0.2
    assert noise["informativeness"] < 1.5 / min(SIZES)  # near chance for every factor, at most 1/3


BINARY = torch.tensor(list(itertools.product(range(2), repeat=3))).repeat(50, 1)  # 400 rows, three binary factors


def test_dci_by_default_is_disentanglement_libs_gradient_boosting():
    # dci() against scikit-learn's GradientBoostingClassifier with its defaults, fitted here on the same rows,
    # its importances scored by disentanglement_lib's formulas (scipy.stats.entropy; the forest's differ).
    g = _gen(14)
    codes = torch.cat([BINARY.double() + 0.3 * torch.randn(400, 3, generator=g, dtype=torch.float64),
                       torch.randn(400, 1, generator=g, dtype=torch.float64)], 1)
    got = dis.dci(codes, BINARY, _gen(15), num_train=240, num_test=160)
    replay = _gen(15)
    x, v, x_test, v_test = dis._train_test(codes, BINARY, replay, 240, 160)
    importance, accuracy = np.zeros((4, 3)), []
    for k in range(3):
        model = GradientBoostingClassifier(random_state=dis._seed(replay)).fit(x, v[:, k])
        importance[:, k] = model.feature_importances_
        accuracy.append(np.mean(model.predict(x_test) == v_test[:, k]))
    per_code = 1 - scipy_entropy(importance.T + 1e-11, base=3)
    per_factor = 1 - scipy_entropy(importance + 1e-11, base=4)
    expected = {"disentanglement": per_code @ importance.sum(1) / importance.sum(),
                "completeness": per_factor @ importance.sum(0) / importance.sum(),
                "informativeness": np.mean(accuracy)}
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("estimator", ["gbt", "forest"])
def test_dci_of_exact_rotated_and_mixed_codes(estimator):
    codes = BINARY.double()
    exact = dis.dci(codes, BINARY, _gen(), 240, 160, estimator=estimator)
    assert exact == pytest.approx({"disentanglement": 1.0, "completeness": 1.0, "informativeness": 1.0}, abs=0.01)
    # Codes v0 + v1, v0 - v1, v2: each of v0, v1 needs both first codes, each with half the importance (by
    # symmetry), v2 only the third: D = C = (2 (1 - log 2 / log 3) + 1) / 3, every factor still decodable.
    rotated = torch.stack([codes[:, 0] + codes[:, 1], codes[:, 0] - codes[:, 1], codes[:, 2]], 1)
    expected = (2 * (1 - math.log(2) / math.log(3)) + 1) / 3
    scores = dis.dci(rotated, BINARY, _gen(), 240, 160, estimator=estimator)
    assert scores == pytest.approx({"disentanglement": expected, "completeness": expected, "informativeness": 1.0},
                                   abs=0.03)
    # Every code the sum of two factors: each factor spreads over all three codes, D and C near 0.
    mixed = dis.dci(codes @ torch.tensor([[1.0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float64), BINARY, _gen(),
                    240, 160, estimator=estimator)
    assert mixed["disentanglement"] < 0.2 and mixed["completeness"] < 0.2 and mixed["informativeness"] > 0.99
    with pytest.raises(ValueError, match="estimator"):
        dis.dci(codes, BINARY, _gen(), 240, 160, estimator="svm")


def test_sap_continuous_against_a_hand_computed_case():
    # Codes c0 = v0, c1 = (0, 1, 0, 2), c2 constant; factors v0 = (0, 0, 1, 1), v1 = (0, 1, 0, 1).
    # Squared correlations: c0 with v0 1, with v1 0; c1 with v0 (0.5)^2 / (1 * 2.75) = 1/11, with v1
    # 1.5^2 / (1 * 2.75) = 9/11 (sums of centred products and squares); c2 scores 0 (no variance).
    # Gaps: v0 1 - 1/11, v1 9/11 - 0: SAP = 19/22.
    factors = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = torch.tensor([[0.0, 0, 5], [0, 1, 5], [1, 0, 5], [1, 2, 5]])
    assert dis.sap_continuous(codes, factors, _gen()) == pytest.approx(19 / 22, abs=1e-12)
    with pytest.raises(ValueError, match="two or more code dimensions"):
        dis.sap_continuous(codes[:, :1], factors, _gen())


def test_sap_perfect_and_noise_on_binary_factors():
    # The discrete SAP scores are accuracies: a perfect code's own dimension classifies a binary factor exactly
    # (a threshold), every other dimension is at chance 1/2 on a balanced grid, so the gap is 1/2. (A linear
    # classifier on one dimension cannot isolate the middle values of a many-class factor, hence binary
    # factors for a known answer.) Noise codes: all dimensions at chance, gap ~0.
    sizes = (2, 2, 2, 2)
    factors = torch.tensor(list(itertools.product(*[range(s) for s in sizes]))).repeat(100, 1)
    mu, _ = _perfect_codes(factors, sizes)
    assert dis.sap_score(mu, factors, _gen(), 1000, 600) == pytest.approx(0.5, abs=0.05)
    noise = torch.randn(len(factors), 4, generator=_gen(7))
    assert dis.sap_score(noise, factors, _gen(), 1000, 600) < 0.1  # gap of two chance accuracies (sd ~0.02)


# --- whole-split statistics of z ------------------------------------------------------------------------

def test_split_total_correlation_of_independent_and_correlated_gaussians():
    # mu ~ N(0, C), z = mu + s eps: the aggregate tends to N(0, C + s^2 I), whose TC is -1/2 log det(correlation).
    # s = 0.5 makes each component broad against the spacing of 3000 means, so the finite mixture is close to
    # its Gaussian limit; the remaining error (sampling of mu and of z) is about 0.01 (seen over seeds): tol 0.03.
    n, s = 3000, 0.5
    for rho in (0.0, 0.8):
        cov = torch.tensor([[1.0, rho], [rho, 1.0]])
        mu = torch.randn(n, 2, generator=_gen(8)) @ torch.linalg.cholesky(cov).T
        aggregate = cov + s ** 2 * torch.eye(2)
        scale = aggregate.diagonal().sqrt()
        expected = -0.5 * torch.logdet(aggregate / torch.outer(scale, scale)).item()
        got, stderr = dis.split_total_correlation(mu, torch.full_like(mu, 2 * math.log(s)), _gen(9))
        assert got == pytest.approx(expected, abs=0.03) and stderr == 0.0
        # A subsample of the z's estimates the same expectation, within a few standard errors.
        part, part_stderr = dis.split_total_correlation(mu, torch.full_like(mu, 2 * math.log(s)), _gen(9), 500)
        assert 0 < part_stderr < 0.05 and abs(part - got) < 4 * part_stderr + 0.01


def test_shuffled_dimensions_keep_each_dimension_and_remove_dependence():
    mu = torch.randn(3000, 3, generator=_gen(10))
    mu[:, 1] = mu[:, 0]  # z_1 = z_0: the most dependent code
    logvar = torch.randn(3000, 3, generator=_gen(11))
    shuffled_mu, shuffled_logvar = dis.shuffled_dimensions(mu, logvar, _gen(12))
    for k in range(3):  # each image's (mu_k, logvar_k) pair travels together: the same multiset per dimension
        pairs = sorted(zip(mu[:, k].tolist(), logvar[:, k].tolist()))
        assert sorted(zip(shuffled_mu[:, k].tolist(), shuffled_logvar[:, k].tolist())) == pairs
    assert abs(torch.corrcoef(shuffled_mu.T)[0, 1].item()) < 0.06  # 3 sd of a correlation over 3000 pairs


def test_total_correlation_null_resolves_broad_codes_but_not_near_deterministic_ones():
    # Broad posteriors (s = 0.5 against means spread 1): the null is near 0 and a dependent code reads its TC,
    # that of N(0, C + s^2 I): correlation 0.8 / 1.25, TC = -1/2 log(1 - 0.64^2) = 0.264 (as the test above).
    n = 3000
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    mu = torch.randn(n, 2, generator=_gen(8)) @ torch.linalg.cholesky(cov).T
    broad = torch.full_like(mu, 2 * math.log(0.5))
    tc, _ = dis.split_total_correlation(mu, broad, _gen(9))
    null, _ = dis.split_total_correlation(*dis.shuffled_dimensions(mu, broad, _gen(13)), _gen(9))
    assert abs(null) < 0.03 and tc == pytest.approx(-0.5 * math.log(1 - 0.64 ** 2), abs=0.03)
    # Spikes (sigma = 0.003, far below the 2-D spacing of the means, about 0.02, and above the 1-D one, 0.001):
    # independent dimensions read about as much TC as the dependent ones, and both sit
    # at the null, near the mixture-of-spikes value sum_k H(z_k) - [log N + H(z | x)] (brute force below).
    spiky = torch.full_like(mu, 2 * math.log(0.003))
    independent = torch.randn(n, 2, generator=_gen(14))
    tc_dependent, _ = dis.split_total_correlation(mu, spiky, _gen(9))
    tc_independent, _ = dis.split_total_correlation(independent, spiky, _gen(9))
    null, _ = dis.split_total_correlation(*dis.shuffled_dimensions(independent, spiky, _gen(13)), _gen(9))
    gaussian_entropy = 0.5 * (1 + math.log(2 * math.pi))
    spikes = 2 * gaussian_entropy - (math.log(n) + 2 * (gaussian_entropy + math.log(0.003)))
    for value in (tc_dependent, tc_independent, null):
        assert value == pytest.approx(spikes, rel=0.1)
    # The 0.51 nats the dependent code's dimensions share are invisible: it reads what the independent one reads.
    assert abs(tc_dependent - tc_independent) < 0.1 and abs(tc_independent - null) < 0.1


def test_per_dimension_information_of_a_gaussian_aggregate():
    # mu ~ N(0, 1), sigma fixed: the aggregate is N(0, 1 + sigma^2) and I(x; z_k) = 1/2 log(1 + 1/sigma^2),
    # where the Gaussian bound (eq 5) is tight. sd of the sample variance of 20000 mu: 0.01, i.e. < 0.005 nats.
    sigma = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    mu = torch.randn(20_000, 3, generator=_gen(10), dtype=torch.float64)
    logvar = (2 * sigma.log()).repeat(20_000, 1)
    stats = dis.per_dimension_information(mu, logvar)
    expected = 0.5 * torch.log1p(1 / sigma ** 2)
    torch.testing.assert_close(torch.tensor(stats["mutual_info_xz"], dtype=torch.float64), expected, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.tensor(stats["gaussian_bound"], dtype=torch.float64), expected, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.tensor(stats["mean_posterior_variance"], dtype=torch.float64), sigma ** 2)
    torch.testing.assert_close(torch.tensor(stats["variance_of_posterior_mean"], dtype=torch.float64), mu.var(0, unbiased=False))


def test_per_dimension_information_of_separated_codes_at_tiny_sigma():
    # 1000 distinct means 0.01 apart (span 10), sigma 1e-7: the aggregate is 1000 separated spikes, so
    # I(x; z_k) = H(z_k) - H(z_k | x) = log 1000 exactly (a fixed-size grid gave nonsense here).
    mu = torch.linspace(0, 10, 1000, dtype=torch.float64)[torch.randperm(1000, generator=_gen())][:, None]
    stats = dis.per_dimension_information(mu, torch.full_like(mu, 2 * math.log(1e-7)))
    assert stats["mutual_info_xz"][0] == pytest.approx(math.log(1000), abs=1e-6)


# --- the entry function ------------------------------------------------------------------------------------

def test_disentanglement_metrics_deterministic_and_keys():
    sizes = (2, 3, 4)
    grid = torch.tensor(list(itertools.product(*[range(s) for s in sizes]))).repeat(20, 1)
    mu, logvar = _perfect_codes(grid, sizes)
    mu = mu + 0.05 * torch.randn(mu.shape, generator=_gen(11), dtype=torch.float64)
    logits = torch.randn(len(grid), 3, generator=_gen(12))
    first = dis.disentanglement_metrics(mu, logvar, logits, grid, sizes, _gen(13))
    assert set(first) == {"mig", "mig_with_y", "mig_histogram", "factor_vae_score", "dci_disentanglement",
                          "dci_completeness", "dci_informativeness", "sap", "sap_continuous"}
    assert first == dis.disentanglement_metrics(mu, logvar, logits, grid, sizes, _gen(13))
    with pytest.raises(ValueError, match="factors"):
        dis.disentanglement_metrics(mu, logvar, logits, grid[:, :2], sizes, _gen())
    with pytest.raises(ValueError, match="method"):
        dis.gaussian_mutual_information(mu, logvar, grid, "histogram")


def test_disentanglement_metrics_of_a_one_dimensional_code_are_null_with_reasons():
    sizes = (3, 6, 4)
    grid = torch.tensor(list(itertools.product(*[range(s) for s in sizes]))).repeat(10, 1)
    mu = grid[:, 1:2].double() + 0.1 * torch.randn(len(grid), 1, generator=_gen(16), dtype=torch.float64)
    metrics = dis.disentanglement_metrics(mu, torch.full_like(mu, -4.0), torch.randn(len(grid), 3, generator=_gen()),
                                          grid, sizes, _gen(), dci_estimator="forest")
    undefined = {"mig", "mig_histogram", "sap", "sap_continuous", "dci_completeness"}
    assert set(metrics["undefined"]) == undefined and all(metrics[key] is None for key in undefined)
    assert all("one code dimension" in reason for reason in metrics["undefined"].values())
    for key in ("mig_with_y", "factor_vae_score", "dci_disentanglement", "dci_informativeness"):
        assert 0.0 <= metrics[key] <= 1.0, key

