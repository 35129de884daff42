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
    backward: autograd would keep and revisit a dozen [M, N, K] intermediates; this keeps
    three (the differences and the two softmax weights). Checked by gradcheck in the tests."""

    @staticmethod
    def forward(ctx, z, mu, logvar):
        precision = torch.exp(-logvar)
        diff = z.unsqueeze(1) - mu.unsqueeze(0)  # [M, N, K]
        log_q = diff.square().mul_(precision).add_(logvar).add_(LOG_2PI).mul_(-0.5)
        log_marginals = torch.logsumexp(log_q, dim=1)  # [M, K]
        joint_terms = log_q.sum(2)  # [M, N]
        log_joint = torch.logsumexp(joint_terms, dim=1)  # [M]
        if any(ctx.needs_input_grad):
            marginal_weights = log_q.sub_(log_marginals.unsqueeze(1)).exp_()  # softmax over j
            joint_weights = joint_terms.sub_(log_joint.unsqueeze(1)).exp_()
            ctx.save_for_backward(diff, precision, marginal_weights, joint_weights)
        return log_joint, log_marginals

    @staticmethod
    def backward(ctx, grad_joint, grad_marginals):
        diff, precision, marginal_weights, joint_weights = ctx.saved_tensors
        # dLoss/dlog_q[i, j, k]; then d log_q / d(z, mu, logvar) = (-d*p, d*p, (d^2 p - 1) / 2).
        grad_log_q = marginal_weights * grad_marginals.unsqueeze(1)
        grad_log_q += (joint_weights * grad_joint.unsqueeze(1)).unsqueeze(2)
        scaled = diff * precision
        scaled *= grad_log_q
        grad_logvar = 0.5 * ((scaled * diff).sum(0) - grad_log_q.sum(0))
        return -scaled.sum(1), scaled.sum(0), grad_logvar


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
