"""Disentanglement metrics of a code against known generative factors, and whole-split statistics of z.

Every metric takes the codes of a whole split and the factor classes of its images ([N, F] int64, e.g.
dSprites's full grid), as disentanglement_lib does, so any model meets any metric; batches with one factor
fixed are drawn from the split by index instead of re-encoding images. Information in nats.

- MIG as Chen et al. (2018): I(z_j; v_k) = H(z_j) - H(z_j | v_k) from the aggregate posteriors of the
  Gaussian encoder (estimators.aggregate_entropies_*), MIG = mean_k (I_top1 - I_top2) / H(v_k).
  The IMAE paper reports it over z against the continuous factors (footnote 4) and, in Appendix E, over
  (y, z) against all factors, with y one categorical code variable (`mig_with_y`).
- The disentanglement_lib metrics on mean codes: histogram MIG, FactorVAE score, DCI (gradient boosting, as
  disentanglement_lib, or a faster random forest), SAP (discrete, as disentanglement_lib's study) and the
  continuous SAP.
Metrics that need two code dimensions (the gap between the best two, DCI completeness) are None on a
one-dimensional code, with the reason under "undefined".
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from . import estimators as est
from .config import DCI_ESTIMATORS

METHODS = ("quadrature", "sampling")
# How far an information estimate may pass its bound (I(z; v_k) <= H(v_k), 0 <= I(x; z_k) <= log N) before it
# is an error: the quadrature is accurate to ~1e-7 nats.
BOUND_TOLERANCE = 1e-6
_log = logging.getLogger(__name__)


def factor_entropies(factors: torch.Tensor) -> torch.Tensor:
    """H(v_k) of each factor column under the split's empirical distribution: log |v_k| on a full grid."""
    return torch.stack([est.entropy_of(torch.bincount(column).double() / len(column)) for column in factors.T])


def _value_weights(column: torch.Tensor) -> torch.Tensor:
    return torch.bincount(column).double() / len(column)


def gaussian_mutual_information(mu: torch.Tensor, logvar: torch.Tensor, factors: torch.Tensor,
                                method: str = "quadrature", num_samples: int = 10_000,
                                generator: torch.Generator | None = None) -> torch.Tensor:
    """[K, F] matrix of I(z_j; v_k) = H(z_j) - sum_v p(v) H(z_j | v_k = v), over the aggregate posteriors.

    method "sampling" is Chen et al.'s estimator with num_samples samples per entropy (theirs: 10,000), whose
    noise can lift I(z_j; v_k) above H(v_k): such values are clipped to H(v_k), with a warning in the log;
    "quadrature" integrates the same densities to ~1e-7 nats for any sigma, and is much faster
    (bench/mig_speed.py)."""
    partitions = list(factors.T)
    if method == "quadrature":
        marginal, conditionals = est.aggregate_entropies_quadrature(mu, logvar, partitions)
    elif method == "sampling":
        marginal, conditionals = est.aggregate_entropies_sampled(mu, logvar, partitions, num_samples, generator)
    else:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    information = torch.stack([marginal.double() - _value_weights(column) @ cond.double().nan_to_num()
                               for column, cond in zip(partitions, conditionals)], 1)
    if method == "sampling":
        bound = factor_entropies(factors)
        excess = (information - bound).max().item()
        if excess > BOUND_TOLERANCE:
            _log.warning("MIG by sampling: I(z_j; v_k) above H(v_k) by up to %.3g nats (Monte Carlo noise of "
                         "%d samples); clipped to H(v_k)", excess, num_samples)
        information = torch.minimum(information, bound)
    return information


def categorical_mutual_information(logits: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """[F] vector of I(y; v_k) = H(q(y)) - sum_v p(v) H(q(y | v)), q(y | v) the mean of softmax(logits)
    over the images with v_k = v: exact entropies of categorical mixtures."""
    probabilities = F.softmax(logits.double(), dim=1)
    information = []
    for column in factors.T:
        sums = torch.zeros(int(column.max()) + 1, probabilities.shape[1], dtype=torch.float64)
        sums.index_add_(0, column, probabilities)
        weights = _value_weights(column)
        conditional = sums / (weights[:, None] * len(column)).clamp(min=1e-300)
        information.append(est.entropy_of(probabilities.mean(0)) - weights @ est.entropy_of(conditional))
    return torch.stack(information)


def mutual_information_gap(information: torch.Tensor, entropies: torch.Tensor) -> float:
    """mean_k (I(c_top1; v_k) - I(c_top2; v_k)) / H(v_k) of a [codes, factors] matrix; negative
    estimates count as 0, as in Chen et al.'s code. A gap above H(v_k) is an estimator failure: ValueError."""
    _check_two_codes(information.shape[0], "MIG")
    top = torch.sort(information.clamp(min=0), dim=0, descending=True).values
    gaps = (top[0] - top[1]) / entropies
    if (gaps > 1 + BOUND_TOLERANCE).any():
        raise ValueError(f"MIG: information estimates exceed H(v_k) (normalised gaps {gaps.tolist()}): the "
                         "entropy estimator cannot resolve these codes")
    return gaps.mean().item()


def _check_two_codes(codes: int, metric: str) -> None:
    if codes < 2:
        raise ValueError(f"{metric} needs two or more code dimensions (the gap between the best two), not {codes}")


def histogram_mig(codes: torch.Tensor, factors: torch.Tensor, generator: torch.Generator,
                  num_points: int = 10_000, num_bins: int = 20) -> float:
    """disentanglement_lib's `discrete_mig` on num_points random rows: each code dimension cut into num_bins
    equal-width bins (np.histogram edges, np.digitize), discrete I by sklearn's mutual_info_score,
    normalised by each factor's discrete entropy."""
    _check_two_codes(codes.shape[1], "histogram MIG")
    rows = torch.randperm(len(codes), generator=generator)[:num_points]
    codes, factors = codes[rows].double().numpy(), factors[rows].numpy()
    binned = [np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T]
    information = torch.tensor([[mutual_info_score(f, b) for f in factors.T] for b in binned], dtype=torch.float64)
    entropies = torch.tensor([mutual_info_score(f, f) for f in factors.T], dtype=torch.float64)
    return mutual_information_gap(information, entropies)


def _rows_with_value(factors: torch.Tensor, factor: torch.Tensor, value: torch.Tensor, size: int,
                     generator: torch.Generator) -> torch.Tensor:
    """[B, size] random rows (with replacement) whose column factor[b] equals value[b]."""
    rows = torch.empty(len(factor), size, dtype=torch.long)
    for k in range(factors.shape[1]):
        chosen = factor == k
        order = torch.argsort(factors[:, k], stable=True)  # rows grouped by their value of factor k
        counts = torch.bincount(factors[:, k])
        starts = counts.cumsum(0) - counts
        v = value[chosen]
        offset = (torch.rand(len(v), size, generator=generator, dtype=torch.float64) * counts[v, None]).long()
        rows[chosen] = order[starts[v, None] + offset]
    return rows


def _factor_vae_votes(codes, factors, scale, active, num_points, batch_size, generator) -> torch.Tensor:
    """[F, D] votes: for each point, a factor k fixed at the value of a random row, batch_size rows sharing
    it, and the active dimension of least variance (normalised by its global variance)."""
    factor = torch.randint(factors.shape[1], (num_points,), generator=generator)
    anchor = torch.randint(len(factors), (num_points,), generator=generator)
    rows = _rows_with_value(factors, factor, factors[anchor, factor], batch_size, generator)
    local = codes[rows].var(1) / scale  # [num_points, D], ddof 1 as np.var(ddof=1)
    dim = torch.where(active, local, torch.inf).argmin(1)
    votes = torch.zeros(factors.shape[1], codes.shape[1], dtype=torch.long)
    votes.index_put_((factor, dim), torch.ones_like(factor), accumulate=True)
    return votes


def factor_vae_score(codes: torch.Tensor, factors: torch.Tensor, generator: torch.Generator, batch_size: int = 64,
                     num_train: int = 10_000, num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                     prune_threshold: float = 0.05) -> float:
    """Kim & Mnih (2018) as disentanglement_lib (`factor_vae.py`, its gin defaults): a majority-vote classifier
    from the least-varying normalised dimension to the fixed factor; its accuracy on fresh votes.
    Dimensions with global standard deviation below prune_threshold are ignored (collapsed)."""
    codes = codes.double()
    sample = torch.randint(len(codes), (num_variance_estimate,), generator=generator)
    scale = codes[sample].var(0)
    active = scale.sqrt() >= prune_threshold
    if not active.any():
        return 0.0
    train = _factor_vae_votes(codes, factors, scale, active, num_train, batch_size, generator)
    evaluation = _factor_vae_votes(codes, factors, scale, active, num_eval, batch_size, generator)
    classifier = train.argmax(0)  # each dimension votes for its most frequent factor
    return (evaluation[classifier, torch.arange(codes.shape[1])].sum() / evaluation.sum()).item()


def _train_test(codes, factors, generator, num_train, num_test):
    """Disjoint random train and test rows; on a split smaller than both, shared in the same proportion."""
    if num_train + num_test > len(codes):
        num_train = len(codes) * num_train // (num_train + num_test)
    rows = torch.randperm(len(codes), generator=generator)[:num_train + num_test]
    x, v = codes[rows].double().numpy(), factors[rows].numpy()
    return x[:num_train], v[:num_train], x[num_train:], v[num_train:]


def _seed(generator: torch.Generator) -> int:
    return int(torch.randint(2 ** 31 - 1, (1,), generator=generator))


def _one_minus_normalised_entropy(weights: np.ndarray) -> np.ndarray | None:
    """1 - H(w / sum w) / log(len) along axis 0, as dlib's scipy.stats.entropy(w + 1e-11, base=len);
    None for one row, where log(len) = 0 leaves it undefined."""
    if weights.shape[0] < 2:
        return None
    p = (weights + 1e-11) / (weights + 1e-11).sum(0)
    return 1.0 + (p * np.log(p)).sum(0) / math.log(weights.shape[0])


def dci_scores(importance: np.ndarray) -> tuple[float | None, float | None]:
    """Eastwood & Williams (2018) disentanglement and completeness of a [codes, factors] importance matrix,
    as disentanglement_lib: per-code (per-factor) 1 - normalised entropy, weighted by total importance.
    Disentanglement is None for one factor, completeness None for one code (normalised by log 1 = 0)."""
    total = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code, per_factor = _one_minus_normalised_entropy(importance.T), _one_minus_normalised_entropy(importance)
    disentanglement = None if per_code is None else float(per_code @ (total.sum(1) / total.sum()))
    completeness = None if per_factor is None else float(per_factor @ (total.sum(0) / total.sum()))
    return disentanglement, completeness


def _dci_classifier(estimator: str, seed: int, num_trees: int):
    if estimator == "gbt":  # disentanglement_lib's: scikit-learn's defaults (100 rounds of depth-3 trees)
        return GradientBoostingClassifier(random_state=seed)
    if estimator == "forest":
        return RandomForestClassifier(num_trees, max_features=None, min_samples_leaf=2, random_state=seed)
    raise ValueError(f"dci estimator must be one of {DCI_ESTIMATORS}, not {estimator!r}")


def dci(codes: torch.Tensor, factors: torch.Tensor, generator: torch.Generator, num_train: int = 10_000,
        num_test: int = 5_000, estimator: str = "gbt", num_trees: int = 25) -> dict[str, float | None]:
    """DCI as disentanglement_lib (`dci.py`, its num_train / num_test): importances are the impurity-based
    feature_importances_ of one classifier per factor, a GradientBoostingClassifier with scikit-learn's
    defaults ("gbt", disentanglement_lib's) or, faster but not comparable with published DCI, a random forest
    of num_trees trees trying every dimension at each split ("forest"); informativeness = mean test accuracy
    of the per-factor classifiers."""
    x, v, x_test, v_test = _train_test(codes, factors, generator, num_train, num_test)
    importance, accuracy = np.zeros((x.shape[1], v.shape[1])), []
    for k in range(v.shape[1]):
        classifier = _dci_classifier(estimator, _seed(generator), num_trees)
        classifier.fit(x, v[:, k])
        importance[:, k] = np.abs(classifier.feature_importances_)
        accuracy.append(np.mean(classifier.predict(x_test) == v_test[:, k]))
    disentanglement, completeness = dci_scores(importance)
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(np.mean(accuracy))}


def sap_score(codes: torch.Tensor, factors: torch.Tensor, generator: torch.Generator, num_train: int = 10_000,
              num_test: int = 5_000) -> float:
    """Kumar et al. (2018) SAP as disentanglement_lib's discrete version (`sap_score.py`): the test accuracy
    of a LinearSVC(C=0.01, balanced) from each single code dimension to each factor; mean over factors of
    the gap between the two best dimensions."""
    _check_two_codes(codes.shape[1], "SAP")
    x, v, x_test, v_test = _train_test(codes, factors, generator, num_train, num_test)
    scores = np.zeros((x.shape[1], v.shape[1]))
    for j in range(x.shape[1]):
        for k in range(v.shape[1]):
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=_seed(generator))
            classifier.fit(x[:, j:j + 1], v[:, k])
            scores[j, k] = np.mean(classifier.predict(x_test[:, j:j + 1]) == v_test[:, k])
    return _mean_gap_of_top_two(scores)


def sap_continuous(codes: torch.Tensor, factors: torch.Tensor, generator: torch.Generator,
                   num_train: int = 10_000) -> float:
    """SAP as disentanglement_lib's continuous version (`sap_score.py`, continuous_factors=True) on num_train
    random rows: the score of code dimension j for factor k is the squared correlation of the two
    (R^2 of a linear regression of one on the other; 0 for a dimension or factor of variance <= 1e-12);
    mean over factors of the gap between the two best dimensions."""
    _check_two_codes(codes.shape[1], "SAP")
    rows = torch.randperm(len(codes), generator=generator)[:num_train]
    x, v = codes[rows].double().numpy(), factors[rows].double().numpy()
    x, v = x - x.mean(0), v - v.mean(0)
    variance_x, variance_v = (x * x).sum(0) / (len(x) - 1), (v * v).sum(0) / (len(v) - 1)  # np.cov's ddof 1
    covariance = x.T @ v / (len(x) - 1)
    defined = (variance_x[:, None] > 1e-12) & (variance_v[None] > 1e-12)
    scores = np.where(defined, covariance ** 2 / np.where(defined, np.outer(variance_x, variance_v), 1.0), 0.0)
    return _mean_gap_of_top_two(scores)


def _mean_gap_of_top_two(scores: np.ndarray) -> float:
    top = np.sort(scores, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def disentanglement_metrics(mu: torch.Tensor, logvar: torch.Tensor, logits: torch.Tensor, factors: torch.Tensor,
                            factor_sizes, generator: torch.Generator, categorical_factors=(0,),
                            method: str = "quadrature", num_samples: int = 10_000,
                            dci_estimator: str = "gbt") -> dict:
    """Every metric of this module on one split. mig: z against the factors not in categorical_factors
    (dSprites: shape is column 0); mig_with_y: (y, z) against all factors. The other metrics use the
    mean codes mu, as disentanglement_lib does. On a one-dimensional z, the metrics that need two code
    dimensions are None, and "undefined" maps each to the reason."""
    factors = factors.long()
    if factors.shape != (len(mu), len(factor_sizes)) or (factors >= torch.tensor(factor_sizes)).any():
        raise ValueError(f"factors must be [N, {len(factor_sizes)}] classes below {tuple(factor_sizes)}")
    metrics = information_gaps(mu, logvar, logits, factors, generator, categorical_factors, method, num_samples)
    scores = dci(mu, factors, generator, estimator=dci_estimator)
    metrics.update({
        "factor_vae_score": factor_vae_score(mu, factors, generator),
        "dci_disentanglement": scores["disentanglement"],
        "dci_completeness": scores["completeness"],
        "dci_informativeness": scores["informativeness"],
    })
    if mu.shape[1] >= 2:
        metrics.update({
            "mig_histogram": histogram_mig(mu, factors, generator),
            "sap": sap_score(mu, factors, generator),
            "sap_continuous": sap_continuous(mu, factors, generator),
        })
    else:
        gap = "one code dimension: no gap between the best two dimensions"
        undefined = dict.fromkeys(("mig", "mig_histogram", "sap", "sap_continuous"), gap)
        undefined["dci_completeness"] = "one code dimension: normalised by log(number of codes) = 0"
        metrics.update({**dict.fromkeys(undefined), "undefined": undefined})
    return metrics


def information_gaps(mu: torch.Tensor, logvar: torch.Tensor, logits: torch.Tensor, factors: torch.Tensor,
                     generator: torch.Generator, categorical_factors=(0,), method: str = "quadrature",
                     num_samples: int = 10_000) -> dict:
    """The two MIGs: "mig_with_y", (y, z) against every factor, and "mig", z against the factors not in
    categorical_factors (the paper's, footnote 4); "mig" is None for a one-dimensional z (no second best)."""
    factors = factors.long()
    information_z = gaussian_mutual_information(mu, logvar, factors, method, num_samples, generator)
    information_y = categorical_mutual_information(logits, factors)
    entropies = factor_entropies(factors)
    continuous = [k for k in range(factors.shape[1]) if k not in categorical_factors]
    return {"mig_with_y": mutual_information_gap(torch.cat([information_y[None], information_z]), entropies),
            "mig": (mutual_information_gap(information_z[:, continuous], entropies[continuous])
                    if mu.shape[1] >= 2 else None)}


def per_dimension_information(mu: torch.Tensor, logvar: torch.Tensor, method: str = "quadrature",
                              num_samples: int = 10_000, generator: torch.Generator | None = None) -> dict[str, list]:
    """Figure 2a: per dimension k, I(x; z_k) = H(z_k) - E_x H(z_k | x) with H(z_k | x) = 1/2 log(2 pi e sigma^2),
    E_x[sigma_k^2], Var_x[mu_k], and the Gaussian lower bound 1/2 log(1 + Var[mu_k] / E[sigma_k^2]) (eq 5)."""
    if method == "quadrature":
        marginal, _ = est.aggregate_entropies_quadrature(mu, logvar)
    elif method == "sampling":
        marginal, _ = est.aggregate_entropies_sampled(mu, logvar, (), num_samples, generator)
    else:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    mu, logvar = mu.double(), logvar.double()
    conditional = 0.5 * (est.LOG_2PI + 1.0 + logvar).mean(0)
    information = marginal.double() - conditional
    if method == "quadrature" and not ((information >= -BOUND_TOLERANCE)
                                       & (information <= math.log(len(mu)) + BOUND_TOLERANCE)).all():
        raise ValueError(f"I(x; z_k) = {information.tolist()} outside [0, log N]: the quadrature cannot resolve "
                         "these codes")
    posterior_variance, mean_variance = logvar.exp().mean(0), mu.var(0, unbiased=False)
    return {
        "mutual_info_xz": information.tolist(),
        "mean_posterior_variance": posterior_variance.tolist(),
        "variance_of_posterior_mean": mean_variance.tolist(),
        "gaussian_bound": (0.5 * torch.log1p(mean_variance / posterior_variance)).tolist(),
    }


def split_total_correlation(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator,
                            num_samples: int | None = None) -> tuple[float, float]:
    """TC(z) = E_i [log q(z_i) - sum_k log q(z_ik)] over the whole split, with z_i ~ q(z | x_i) for every
    image (or for a random num_samples of them: a Monte Carlo estimate of the same expectation), each log
    density exact by logsumexp over all N encodings. O(num_samples * N * K), chunked.
    Returns (estimate, its standard error over the samples; 0 when every image is used)."""
    rows = torch.randperm(len(mu), generator=generator)[:num_samples] if num_samples else torch.arange(len(mu))
    with torch.no_grad():  # in the input's dtype: float32 is 4x faster than float64 here, and accurate enough
        z = mu[rows] + torch.exp(0.5 * logvar[rows]) * torch.randn(len(rows), mu.shape[1], generator=generator,
                                                                    dtype=mu.dtype)
        chunk = max(1, 2 ** 24 // mu.numel())
        log_joint, log_marginals = est.aggregate_log_densities(z, mu, logvar, chunk)
        terms = (log_joint - log_marginals.sum(1)).double()
    sampled = len(rows) < len(mu)
    stderr = terms.std().item() / len(terms) ** 0.5 if sampled and len(terms) > 1 else 0.0
    return terms.mean().item(), stderr


def shuffled_dimensions(mu: torch.Tensor, logvar: torch.Tensor,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The code with each dimension's (mu_k, logvar_k) pairs permuted across the images independently: the
    same N posteriors per dimension, hence the same marginals q(z_k), and no dependence between dimensions.
    split_total_correlation of it is what the estimator reads for a code whose dimensions are independent:
    near 0 when each posterior is broad against the spacing of the means, but large for a near-deterministic
    code (a mixture of N isolated spikes has log q(z_i) ~ log q(z_i | x_i) - log N, whatever the dependence),
    where TC over N images cannot tell dependent dimensions from independent ones."""
    columns = [torch.randperm(len(mu), generator=generator) for _ in range(mu.shape[1])]
    index = torch.stack(columns, 1)
    return mu.gather(0, index), logvar.gather(0, index)
