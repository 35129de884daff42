"""Information-theoretic estimators, written once and shared by every objective and metric.

All quantities are in nats. Batch estimators follow Appendix B of the paper: the aggregate
posterior p(z) = E_x p(z|x) is replaced by its average over the batch's encodings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(Cat(softmax(logits))) for each row."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def marginal_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """p(y) = mean_n p(y | x_n)."""
    return F.softmax(logits, dim=-1).mean(0)


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    """H(p) of a probability vector, with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(-1)


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(y) with p(y) = mean_n p(y | x_n): the balance term of eq (7)."""
    return entropy_of(marginal_probabilities(logits))


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(y | x) = mean_n H(p(y | x_n)): the separation term of eq (7)."""
    return categorical_entropy(logits).mean()


def mutual_information_xy(logits: torch.Tensor) -> torch.Tensor:
    """I(x; y) = H(mean_n p(y|x_n)) - mean_n H(p(y|x_n)), eq (7); at most log K2."""
    return marginal_entropy(logits) - conditional_entropy(logits)


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(p) || Cat(q)) for each row, from logits."""
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)), elementwise."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar))


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """[M, N, K] matrix of log N(z_ik; mu_jk, sigma_jk^2): each sample under each encoding."""
    return gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))


class _AggregateLogDensities(torch.autograd.Function):
    """logsumexp_j log N(z_i; mu_j, sigma_j^2), per dimension and jointly, with a hand-written
    backward: autograd would keep and revisit a dozen [K, M, N] intermediates; this keeps
    three (the differences and the two softmax weights). Laid out [K, M, N] so that every
    reduction over the encodings j runs along contiguous memory (twice as fast as [M, N, K]).
    Checked by gradcheck in the tests."""

    @staticmethod
    def forward(ctx, z, mu, logvar):
        z_t, mu_t, logvar_t = z.T.contiguous(), mu.T.contiguous(), logvar.T.contiguous()  # [K, M], [K, N]
        precision = torch.exp(-logvar_t).unsqueeze(1)  # [K, 1, N]
        diff = z_t.unsqueeze(2) - mu_t.unsqueeze(1)  # [K, M, N]
        log_q = diff.square().mul_(precision.mul(-0.5)).add_((logvar_t + LOG_2PI).mul_(-0.5).unsqueeze(1))
        joint_terms = log_q.sum(0)  # [M, N]
        log_joint = torch.logsumexp(joint_terms, dim=1)  # [M]
        # logsumexp over j by hand, in place: its exponentials are the softmax weights the backward needs.
        peak = log_q.amax(dim=2, keepdim=True)
        marginal_weights = log_q.sub_(peak).exp_()
        total = marginal_weights.sum(dim=2, keepdim=True)
        log_marginals = (peak + total.log()).squeeze(2)  # [K, M]
        if any(ctx.needs_input_grad):
            marginal_weights.div_(total)
            joint_weights = joint_terms.sub_(log_joint.unsqueeze(1)).exp_()
            ctx.save_for_backward(diff, precision, marginal_weights, joint_weights)
        return log_joint, log_marginals.T

    @staticmethod
    def backward(ctx, grad_joint, grad_marginals):
        diff, precision, marginal_weights, joint_weights = ctx.saved_tensors
        # G = dLoss/dlog_q[k, i, j]; then d log_q / d(z, mu, logvar) = (-d*p, d*p, (d^2 p - 1) / 2).
        grad_log_q = marginal_weights * grad_marginals.T.unsqueeze(2)
        grad_log_q += (joint_weights * grad_joint.unsqueeze(1)).unsqueeze(0)
        scaled = diff * precision
        scaled *= grad_log_q
        grad_logvar = 0.5 * ((scaled * diff).sum(1) - grad_log_q.sum(1))  # [K, N]
        return -scaled.sum(2).T, scaled.sum(1).T, grad_logvar.T


def aggregate_log_densities(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                            chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(z_i) and log p(z_ik) under the aggregate posterior p = mean_j N(mu_j, sigma_j^2)
    (Appendix B, eq 34): logsumexp over the N encodings minus log N.

    Returns (joint [M], per-dimension [M, K]). `chunk` bounds memory to chunk * N * K for
    whole-split metrics; the batch objective uses one chunk."""
    log_n = math.log(mu.shape[0])
    step = chunk or z.shape[0]
    parts = [_AggregateLogDensities.apply(z[start:start + step], mu, logvar)
             for start in range(0, z.shape[0], step)]
    return (torch.cat([joint for joint, _ in parts]) - log_n,
            torch.cat([marginals for _, marginals in parts]) - log_n)


def marginal_kl_to_standard_normal(z: torch.Tensor, log_marginals: torch.Tensor) -> torch.Tensor:
    """sum_k KL(p(z_k) || N(0, 1)), eq (6), as the sample mean of log p(z_k) - log N(z_k; 0, 1)."""
    log_prior = -0.5 * (LOG_2PI + z ** 2)
    return (log_marginals - log_prior).sum(1).mean()


def total_correlation(log_joint: torch.Tensor, log_marginals: torch.Tensor) -> torch.Tensor:
    """TC(z) = KL(p(z) || prod_k p(z_k)) = mean_i [log p(z_i) - sum_k log p(z_ik)]."""
    return (log_joint - log_marginals.sum(1)).mean()


def gaussian_kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per row, closed form."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(-1)


def categorical_kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(p(y|x) || Uniform(K)) = log K - H(p(y|x)) per row, closed form."""
    return math.log(logits.shape[-1]) - categorical_entropy(logits)


def marginal_categorical_kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(p(y) || Uniform(K)) with p(y) the batch mean of p(y|x): log K - H(y)."""
    return math.log(logits.shape[-1]) - marginal_entropy(logits)


def aggregate_kl_to_standard_normal(z: torch.Tensor, log_joint: torch.Tensor) -> torch.Tensor:
    """KL(p(z) || N(0, I)) by the minibatch estimator: mean_i [log p(z_i) - log N(z_i; 0, I)]."""
    return (log_joint + 0.5 * (LOG_2PI + z ** 2).sum(1)).mean()


def _kernel(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    squared = torch.cdist(a, b).pow(2)
    dim = a.shape[1]
    if kind == "rbf":  # bandwidth from the code's dimension, as in InfoVAE
        return torch.exp(-squared / (2.0 * dim))
    if kind == "imq":  # inverse multiquadratic with C = 2 * dim, as in WAE
        return (2.0 * dim) / (2.0 * dim + squared)
    raise ValueError(f"unknown kernel {kind!r}")


def maximum_mean_discrepancy(z: torch.Tensor, prior: torch.Tensor, kind: str = "rbf") -> torch.Tensor:
    """Unbiased estimate of MMD^2 between samples z and samples of the prior."""
    n, m = z.shape[0], prior.shape[0]
    k_zz, k_pp, k_zp = _kernel(z, z, kind), _kernel(prior, prior, kind), _kernel(z, prior, kind)
    within_z = (k_zz.sum() - k_zz.diagonal().sum()) / (n * (n - 1))
    within_p = (k_pp.sum() - k_pp.diagonal().sum()) / (m * (m - 1))
    return within_z + within_p - 2.0 * k_zp.mean()


# Entropies of the 1-D aggregate posteriors q(z_k) = mean_n N(mu_nk, sigma_nk^2), of the whole split and of
# the groups of a partition (the images sharing a factor value): MIG's H(z_k) and H(z_k | v), and I(x; z_k).
# Two estimators of the same quantity: Chen et al. (2018)'s Monte Carlo one, and quadrature on a grid.


def aggregate_entropies_sampled(mu: torch.Tensor, logvar: torch.Tensor, partitions=(), num_samples: int = 10_000,
                                generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Chen et al. (2018), `estimate_entropies`: H(q(z_k)) ~ -mean_s log q(z_sk), z_s ~ q(z | x_n) for
    num_samples rows n drawn without replacement, each log q(z_sk) by logsumexp over all the group's rows.

    partitions: int64 label vectors [N] (values 0..V-1). Returns (H [K], one [V, K] per partition)
    where row v is the entropy of the aggregate over the rows labelled v. Cost: (1 + P) * S * N * K."""
    def entropy(m, lv):
        rows = torch.randperm(m.shape[0], generator=generator)[:num_samples]
        z = m[rows] + torch.exp(0.5 * lv[rows]) * torch.randn(m[rows].shape, generator=generator, dtype=m.dtype)
        chunk = max(1, 2 ** 24 // m.numel())  # two [chunk, N, K] intermediates of at most 2^24 elements
        return -aggregate_log_densities(z, m, lv, chunk)[1].mean(0)

    with torch.no_grad():
        conditionals = [torch.stack([entropy(mu[labels == v], logvar[labels == v]) if (labels == v).any()
                                     else torch.full_like(mu[0], float("nan"))
                                     for v in range(int(labels.max()) + 1)]) for labels in partitions]
        return entropy(mu, logvar), conditionals


def aggregate_entropies_quadrature(mu: torch.Tensor, logvar: torch.Tensor, partitions=(), points_per_sigma: float = 2.0,
                                   tail: float = 6.0, max_grid_points: int = 2 ** 18,
                                   chunk: int = 8192) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same entropies as aggregate_entropies_sampled, by numerical integration of -q log q on a grid.

    Per dimension, the grid spacing is the smallest sigma / points_per_sigma (coarser only if that needs more
    than max_grid_points), and each component is evaluated within tail sigmas of its mean. One pass over
    the components fills every density: the whole aggregate and, by scatter-adding each component into the
    row of its label, the aggregate of every group of every partition. Results in float64."""
    labels = [torch.zeros(mu.shape[0], dtype=torch.long)] + [p.long() for p in partitions]
    sizes = [int(p.max()) + 1 for p in labels]
    offsets = torch.tensor([0] + sizes[:-1]).cumsum(0)
    groups = torch.stack(labels, 1) + offsets  # [N, 1 + P]: each row's group in each partition
    counts = torch.bincount(groups.flatten(), minlength=sum(sizes)).double()
    with torch.no_grad():
        entropies = torch.stack([_grid_entropies(mu[:, k].double(), 0.5 * logvar[:, k].double(), groups, counts,
                                                 points_per_sigma, tail, max_grid_points, chunk)
                                 for k in range(mu.shape[1])], 1)  # [groups, K]
    entropies[counts == 0] = float("nan")
    parts = torch.split(entropies, sizes)
    return parts[0][0], list(parts[1:])


def _grid_entropies(mu, log_sigma, groups, counts, points_per_sigma, tail, max_grid_points, chunk):
    """Entropy of every group's mixture of the 1-D Gaussians N(mu_n, sigma_n^2), on one shared grid."""
    sigma = log_sigma.exp()
    reach = (tail * sigma.max()).item()
    span = (mu.max() - mu.min()).item() + 2 * reach
    step = max(sigma.min().item() / points_per_sigma, span / (max_grid_points - 5))
    low = mu.min().item() - reach - 2 * step  # two spare cells each side absorb the rounding of windows
    size = math.ceil(span / step) + 5
    density = torch.zeros(counts.shape[0] * size, dtype=torch.float64)
    order = torch.argsort(sigma)  # chunks of similar sigma share a window width
    for start in range(0, order.shape[0], chunk):
        rows = order[start:start + chunk]
        m, s = mu[rows, None], sigma[rows, None]
        half = math.ceil(tail * s.max().item() / step)
        cells = torch.round((m - low) / step).long() + torch.arange(-half, half + 1)  # [C, W], inside the grid
        values = torch.exp(-0.5 * ((low + step * cells - m) / s) ** 2 - log_sigma[rows, None] - 0.5 * LOG_2PI)
        for column in groups[rows].T:  # one scatter per partition (the first is the whole split)
            density.index_add_(0, (column[:, None] * size + cells).flatten(), values.flatten())
    density = density.view(-1, size) / counts.clamp(min=1)[:, None]
    return -torch.special.xlogy(density, density).sum(1) * step
