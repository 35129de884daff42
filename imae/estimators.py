"""Information-theoretic estimators, written once and shared by every objective and metric.

All quantities are in nats. Batch estimators follow Appendix B of the paper: the aggregate
posterior p(z) = E_x p(z|x) is replaced by its average over the batch's encodings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def _log_where_positive(p: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """log_p with 0 where p = 0 (logit -inf), so that p * log_p is 0 log 0 = 0 there, and so is its gradient."""
    return torch.where(p > 0, log_p, 0.0)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(Cat(softmax(logits))) for each row; a -inf logit is a category of probability 0 (0 log 0 = 0)."""
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    return -(p * _log_where_positive(p, log_p)).sum(-1)


def marginal_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """p(y) = mean_n p(y | x_n)."""
    return F.softmax(logits, dim=-1).mean(0)


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    """H(p) of a probability vector, with 0 log 0 = 0 (and a zero gradient there, where xlogy's is infinite)."""
    return -(p * torch.where(p > 0, p, 1.0).log()).sum(-1)


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
    """KL(Cat(p) || Cat(q)) for each row, from logits; categories with p = 0 add nothing (0 log 0 = 0)."""
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    p = log_p.exp()
    return (p * _log_where_positive(p, log_p - log_q)).sum(-1)


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
    whole-split metrics; the batch objective uses one chunk. The chunks' results are written into outputs
    allocated once: a list of thousands of small results kept between the chunks' large freed intermediates
    fragments glibc's heap (1.9 GB more RSS for 200 z's against dSprites' 737,280 codes, docs/studies.md)."""
    log_n = math.log(mu.shape[0])
    if chunk is None or chunk >= z.shape[0]:
        log_joint, log_marginals = _AggregateLogDensities.apply(z, mu, logvar)
        return log_joint - log_n, log_marginals - log_n
    log_joint, log_marginals = z.new_empty(z.shape[0]), z.new_empty(z.shape)
    for start in range(0, z.shape[0], chunk):
        part = slice(start, start + chunk)
        log_joint[part], log_marginals[part] = _AggregateLogDensities.apply(z[part], mu, logvar)
    return log_joint.sub_(log_n), log_marginals.sub_(log_n)


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
# Two estimators of the same quantity: Chen et al. (2018)'s Monte Carlo one, and quadrature on lattices.


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
                                   tail: float = 6.0, chunk: int = 2 ** 16) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same entropies as aggregate_entropies_sampled, by numerical integration of -q log q on lattices
    adapted to the components' sigmas (below): to ~1e-7 nats for any sigma down to about 4e-12 of max |mu|
    (smaller ones: ValueError). Each component is evaluated within tail sigmas or more.

    partitions as aggregate_entropies_sampled; a label value no row has gets NaN. Results in float64.
    Memory: at most 5 kB per encoding whatever the sigmas (when no two codes overlap), under 1 kB when they
    overlap, plus about 150 MB of chunks; see bench/mig_speed.py for dSprites."""
    if not (torch.isfinite(mu).all() and torch.isfinite(logvar).all()):
        raise ValueError("aggregate entropies: mu and logvar must be finite")
    if tail * points_per_sigma < 4:  # keeps every run of lattice cells longer than an interpolation stencil
        raise ValueError("aggregate entropies: tail * points_per_sigma must be at least 4")
    labels = [torch.zeros(mu.shape[0], dtype=torch.long)] + [p.long() for p in partitions]
    sizes = [int(p.max()) + 1 for p in labels]
    with torch.no_grad():
        columns = []  # per dimension: one [V] vector of entropies per partition
        for k in range(mu.shape[1]):
            order = torch.argsort(mu[:, k])
            octaves = _octaves(mu[order, k].double(), 0.5 * logvar[order, k].double(), points_per_sigma, tail, chunk)
            columns.append([_group_entropies(octaves, p[order], size, tail, chunk) for p, size in zip(labels, sizes)])
    per_partition = [torch.stack([column[i] for column in columns], 1) for i in range(len(labels))]
    return per_partition[0][0], per_partition[1:]


# Quadrature of H(q_v) = -integral q_v log q_v, q_v = mean_{n in group v} N(mu_n, sigma_n^2), every group at once.
# The components of a dimension are split into octaves of sigma, [2^o s, 2^(o+1) s) with s the smallest sigma.
# Octave o lives on a lattice of step (its smallest sigma) / points_per_sigma made only of the cells within
# tail * (its largest sigma) of its components' means: at most 2 * half + 1 <= 4 * tail * points_per_sigma + 1
# cells per component, however small sigma is against the span of the codes.
# With Q_o the density of the octaves broader than or equal to o and F(Q) = -integral Q log Q, H telescopes:
#     H = sum_o [F(Q_o) - F(Q_prev)],   Q_prev = Q_o - q_o  (the broader octaves only),
# and each increment's integrand Q_o log Q_o - Q_prev log Q_prev vanishes away from octave o's components and
# is smooth at octave o's scale (the broader octaves are smoother still), so the trapezoid rule on octave o's
# lattice integrates it to spectral accuracy. Q_prev at octave o's cells is interpolated from each broader
# octave b's own lattice, exactly: with s0 = (b's smallest sigma) / sqrt(2) and r_n^2 = sigma_n^2 - s0^2,
#     q_b(z) = integral g_b(x) N(z; x, s0^2) dx,   g_b = sum_{n in b} w_n N(mu_n, r_n^2),
# which the trapezoid rule on b's lattice computes to ~1e-8 relative (its integrand is at least s0 / sqrt(2)
# wide against a step of s0 sqrt(2) / points_per_sigma).

_GROUP_SHIFT = 41  # lattice keys: group << 41 | cell, one sorted int64 array for every group
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass
class _Octave:
    """The components of one octave of sigma (rows of the mu-sorted input) and their densities at the lattice
    cells (cell_n + j) * step, j = -half..half: N(mu_n, sigma_n^2) and the smoothed N(mu_n, r_n^2)."""
    rows: torch.Tensor
    cell: torch.Tensor
    step: float
    half: int
    values: torch.Tensor  # [2 half + 1, n]
    smoothing: float
    smoothed: torch.Tensor | None  # [2 half + 1, n]; None for the narrowest octave, which nothing interpolates


def _octaves(mu, log_sigma, points_per_sigma, tail, chunk) -> list[_Octave]:
    """The octaves of a dimension's components, broad to narrow, with their window densities."""
    octave = torch.floor((log_sigma - log_sigma.min()) / math.log(2.0)).long()
    levels = torch.unique(octave).flip(0).tolist()
    octaves = []
    for o in levels:
        rows = torch.nonzero(octave == o).squeeze(1)
        m, sigma = mu[rows], log_sigma[rows].exp()
        step = sigma.min().item() / points_per_sigma
        half, smoothing = math.ceil(tail * sigma.max().item() / step), sigma.min().item() / math.sqrt(2)
        if m.abs().max().item() / step + half >= 2 ** (_GROUP_SHIFT - 2):  # cells (and keys) must fit 41 bits
            raise ValueError(f"aggregate entropies: sigma {sigma.min().item():.3g} is below the quadrature's "
                             f"resolution (about 4e-12 of max |mu| = {m.abs().max().item():.3g})")
        cell = torch.round(m / step)
        residual = (sigma.square() - smoothing ** 2).sqrt()
        octaves.append(_Octave(rows, cell.long(), step, half, _window_densities(m, sigma, cell, step, half, chunk),
                               smoothing, None if o == levels[-1] else
                               _window_densities(m, residual, cell, step, half, chunk)))
    return octaves


def _window_densities(mu, sigma, cell, step, half, chunk) -> torch.Tensor:
    """[2 half + 1, N]: N((cell_n + j) * step; mu_n, sigma_n^2) for j = -half..half, in place per chunk."""
    out = torch.empty(2 * half + 1, mu.shape[0], dtype=torch.float64)
    window = torch.arange(-half, half + 1, dtype=torch.float64)[:, None]
    for start in range(0, mu.shape[0], chunk):
        part = slice(start, start + chunk)
        s = sigma[part]
        standardised = torch.addcmul((cell[part] * step - mu[part]) / s, window, step / s)  # (z - mu) / sigma
        out[:, part] = standardised.square_().mul_(-0.5).exp_().div_(s * _SQRT_2PI)
    return out


def _group_entropies(octaves: list[_Octave], labels: torch.Tensor, groups: int, tail: float,
                     chunk: int) -> torch.Tensor:
    """[groups] entropies of the mixtures of the rows labelled v (NaN where none): the telescoping sum above."""
    counts = torch.bincount(labels, minlength=groups)
    weights = 1.0 / counts.double()  # each group's mixture weights
    entropy = torch.zeros(groups, dtype=torch.float64)
    broader = []
    for octave in octaves:
        lattice = _Lattice(octave, labels[octave.rows])
        group = lattice.group()
        previous = torch.zeros(group.shape[0], dtype=torch.float64)
        for source in broader:
            previous += source.interpolate(lattice, tail, chunk)
        total = lattice.scatter(octave.values).mul_(weights[group]).add_(previous)
        increment = torch.special.xlogy(total, total).sub_(torch.special.xlogy(previous, previous))
        entropy.index_add_(0, group, increment, alpha=-octave.step)
        if octave.smoothed is not None:
            mass = lattice.scatter(octave.smoothed).mul_(weights[group] * octave.step)
            broader.append(_Smoothed(lattice, mass, octave.smoothing))
    entropy[counts == 0] = float("nan")
    return entropy


class _Lattice:
    """The cells of one octave within half cells of a component of the same group: sorted int64 keys
    (group << 41 | cell - origin), and the index of each component's first window cell."""

    def __init__(self, octave: _Octave, labels: torch.Tensor):
        self.step, self.origin = octave.step, int(octave.cell.min()) - octave.half
        width = 2 * octave.half + 1
        order = torch.argsort(labels, stable=True)  # group-major; cells stay ascending within a group
        labels = labels[order]
        start = (labels << _GROUP_SHIFT) + (octave.cell[order] - octave.half - self.origin)
        new = torch.ones_like(start, dtype=torch.bool)
        new[1:] = (start[1:] >= start[:-1] + width + 1) | (labels[1:] != labels[:-1])
        interval = new.cumsum(0) - 1
        first, last = start[new], start[torch.cat([new[1:], new[:1]])]  # each run of overlapping windows
        lengths = last + width - first
        offsets = lengths.cumsum(0) - lengths
        self.first_cell = torch.empty_like(start)
        self.first_cell[order] = offsets[interval] + (start - first[interval])
        self.run_keys, self.run_lengths = first, lengths  # the runs of contiguous cells
        size = int(lengths.sum())
        self.keys = torch.repeat_interleave(first - offsets, lengths, output_size=size) + torch.arange(size)

    def group(self) -> torch.Tensor:
        return self.keys >> _GROUP_SHIFT

    def positions(self, keys: torch.Tensor | None = None) -> torch.Tensor:
        keys = self.keys if keys is None else keys
        return ((keys & (2 ** _GROUP_SHIFT - 1)) + self.origin).double() * self.step

    def holds_any(self, groups: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Whether any cell of this lattice lies in [low, high] (positions) of the same group."""
        cells = [(torch.round(edge / self.step).long() - self.origin).clamp_(0, 2 ** _GROUP_SHIFT - 1)
                 for edge in (low, high)]
        keys = [(groups << _GROUP_SHIFT) + cell for cell in cells]
        return torch.searchsorted(self.keys, keys[0]) < torch.searchsorted(self.keys, keys[1], right=True)

    def scatter(self, window_values: torch.Tensor) -> torch.Tensor:
        """The sum over components of their [2 half + 1, n] window values, at every cell."""
        total = torch.zeros(self.keys.shape[0], dtype=torch.float64)
        for j, values in enumerate(window_values):
            total[j:].index_add_(0, self.first_cell, values)  # the j-th cell of every window
        return total


class _Smoothed:
    """A broader octave's density as sum_k mass_k N(z; x_k, smoothing^2) over its lattice cells x_k."""

    def __init__(self, lattice: _Lattice, mass: torch.Tensor, smoothing: float):
        self.lattice, self.mass, self.smoothing = lattice, mass, smoothing

    def interpolate(self, target: _Lattice, tail: float, chunk: int) -> torch.Tensor:
        """This density at every cell of target (group by group), from its cells within tail * smoothing;
        only on the runs of target cells that come that close to one of its cells (the others stay 0)."""
        source = self.lattice
        reach = math.ceil(tail * self.smoothing / source.step)
        run_low = target.positions(target.run_keys)
        near = source.holds_any(target.run_keys >> _GROUP_SHIFT, run_low - (reach + 1) * source.step,
                                run_low + (target.run_lengths - 1) * target.step + (reach + 1) * source.step)
        cells = torch.nonzero(torch.repeat_interleave(near, target.run_lengths)).squeeze(1)
        out = torch.zeros(target.keys.shape[0], dtype=torch.float64)
        for start in range(0, cells.shape[0], chunk):
            keys = target.keys[cells[start:start + chunk]]
            out[cells[start:start + chunk]] = self._density_at(target.positions(keys), keys >> _GROUP_SHIFT, reach)
        return out

    def _density_at(self, z: torch.Tensor, groups: torch.Tensor, reach: int) -> torch.Tensor:
        """sum_k mass_k N(z; x_k, smoothing^2) over the source cells x_k within reach cells of each z.

        The 2 * reach + 1 neighbouring cells of z hold at most two runs of source cells, one from each end:
        a run is at least 2 * half + 1 cells and half > reach (tail * points_per_sigma >= 4), so two searches
        find them all."""
        source, keys = self.lattice, self.lattice.keys
        neighbours = torch.arange(2 * reach + 1)
        first = torch.round(z / source.step).long() - reach - source.origin
        first_key = (groups << _GROUP_SHIFT) + first
        key = first_key[:, None] + neighbours
        from_left = torch.searchsorted(keys, first_key)[:, None] + neighbours
        from_right = torch.searchsorted(keys, first_key + 2 * reach, right=True)[:, None] - 2 * reach - 1 + neighbours
        at_left = keys[from_left.clamp_(max=keys.shape[0] - 1)] == key
        at_right = keys[from_right.clamp_(min=0)] == key
        cell = first[:, None] + neighbours  # keys outside [0, 2^41) would belong to another group
        hit = (at_left | at_right) & (cell >= 0) & (cell < 2 ** _GROUP_SHIFT)
        mass = torch.where(hit, self.mass[torch.where(at_left, from_left, from_right)], 0.0)
        x = (cell + source.origin).double() * source.step
        kernel = torch.exp(-0.5 * ((z[:, None] - x) / self.smoothing) ** 2) / (self.smoothing * _SQRT_2PI)
        return (mass * kernel).sum(1)
