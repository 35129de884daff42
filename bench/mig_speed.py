"""Seconds of each disentanglement metric on 737,280 synthetic posteriors laid out on the dSprites grid
(encoding time excluded), and of the split total correlation.

    flock /tmp/imae-cpu.lock env OMP_NUM_THREADS=1 PYTHONPATH=. python bench/mig_speed.py [--chen-samples 100]

Chen et al.'s sampling estimator costs (1 + F) * S * N * K density evaluations, linear in S: it is timed
with a few samples and extrapolated to theirs (10,000); likewise the whole-split TC (N * N * K) from a subset.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import torch

from imae import disentanglement as dis

SIZES = (3, 6, 40, 32, 32)  # shape, scale, orientation, position x, position y: the official dSprites order


def synthetic_posteriors(generator: torch.Generator, latent_dim: int = 10):
    """Factor classes in the official order (index = classes . [245760, 40960, 1024, 32, 1]), and mu a smooth
    function of the normalised factors plus noise, sigma spread over a decade, logits that know the shape."""
    factors = torch.tensor(list(itertools.product(*[range(s) for s in SIZES])))
    unit = factors.float() / (torch.tensor(SIZES) - 1)
    angle = 2 * math.pi * unit[:, 2]
    signals = torch.stack([unit[:, 1], torch.cos(angle), torch.sin(angle), unit[:, 3], unit[:, 4]], 1) * 2 - 1
    mixing = torch.eye(5, latent_dim) + 0.2 * torch.randn(5, latent_dim, generator=generator)
    mu = torch.tanh(signals @ mixing) + 0.05 * torch.randn(len(factors), latent_dim, generator=generator)
    logvar = 2 * math.log(0.05) + 2 * torch.rand(len(factors), latent_dim, generator=generator) * math.log(3)
    logvar[:, -2:] = 0.0  # two collapsed dimensions, as a trained model has
    mu[:, -2:] *= 0.01
    logits = 3 * torch.nn.functional.one_hot(factors[:, 0], 3).float() + torch.randn(len(factors), 3, generator=generator)
    return mu, logvar, logits, factors


def timed(name: str, fn, scale: float = 1.0):
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    extrapolated = f"  (x{scale:g} extrapolated: {seconds * scale:.0f} s)" if scale != 1.0 else ""
    shown = f"{value:.4f}" if isinstance(value, float) else ""
    print(f"{name:42s} {seconds:8.2f} s  {shown}{extrapolated}", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chen-samples", type=int, default=100, help="S for the timed run of Chen's estimator")
    parser.add_argument("--tc-samples", type=int, default=200, help="z samples for the timed whole-split TC")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    mu, logvar, logits, factors = synthetic_posteriors(g)
    n, k = mu.shape
    print(f"N = {n}, K1 = {k}, torch threads = {torch.get_num_threads()}")
    entropies = dis.factor_entropies(factors)
    continuous = [1, 2, 3, 4]

    info = timed("I(z_j; v_k), quadrature (all 5 factors)", lambda: dis.gaussian_mutual_information(mu, logvar, factors))
    timed("  mig (quadrature)", lambda: dis.mutual_information_gap(info[:, continuous], entropies[continuous]))
    info_y = timed("  I(y; v_k)", lambda: dis.categorical_mutual_information(logits, factors))
    timed("  mig_with_y", lambda: dis.mutual_information_gap(torch.cat([info_y[None], info]), entropies))
    chen = timed(f"I(z_j; v_k), Chen sampling, S = {args.chen_samples}",
                 lambda: dis.gaussian_mutual_information(mu, logvar, factors, "sampling", args.chen_samples, g),
                 scale=10_000 / args.chen_samples)
    print(f"  largest |quadrature - sampling| over the [K, F] matrix: {(info - chen).abs().max():.4f} nats")
    timed("  mig (Chen, S as above)", lambda: dis.mutual_information_gap(chen[:, continuous], entropies[continuous]))
    timed("mig_histogram (10,000 points)", lambda: dis.histogram_mig(mu, factors, g))
    timed("factor_vae_score", lambda: dis.factor_vae_score(mu, factors, g))
    timed("dci (random forest, 10,000 / 5,000 points)", lambda: dis.dci(mu, factors, g))
    timed("sap (10,000 / 5,000 points)", lambda: dis.sap_score(mu, factors, g))
    timed("per_dimension_information", lambda: dis.per_dimension_information(mu, logvar))
    timed("disentanglement_metrics (all of the above)",
          lambda: dis.disentanglement_metrics(mu, logvar, logits, factors, SIZES, g) and None)
    timed(f"split_total_correlation, {args.tc_samples} z of N", lambda: dis.split_total_correlation(
        mu, logvar, g, num_samples=args.tc_samples), scale=n / args.tc_samples)
    subset = torch.randperm(n, generator=g)[:10_000]
    timed("split_total_correlation on 10,000 points", lambda: dis.split_total_correlation(mu[subset], logvar[subset], g))


if __name__ == "__main__":
    main()
