"""Seconds of each disentanglement metric on 737,280 synthetic posteriors laid out on the dSprites grid
(encoding time excluded), and of the split total correlation; DCI with both estimators; the quadrature's
time and peak memory (Linux: VmHWM) there and on two hard cases of one dimension each: codes that never
overlap (sigma 1e-7 to 1e-6 over a span of 10) and sigmas over four decades (1e-4 to 1).

    flock /tmp/imae-cpu.lock env OMP_NUM_THREADS=1 PYTHONPATH=. python bench/mig_speed.py [--chen-samples 100]

Chen et al.'s sampling estimator costs (1 + F) * S * N * K density evaluations, linear in S: it is timed
with a few samples and extrapolated to theirs (10,000); likewise the whole-split TC (N * N * K) from a subset.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import torch

from imae import disentanglement as dis
from imae import estimators as est

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


def _status_mib(key: str) -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key))
    return int(line.split()[1]) / 1024


def timed_with_peak(name: str, fn):
    """timed(name, fn), then the peak resident memory it added (the high-water mark is reset first)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mib("VmRSS")
    value = timed(name, fn)
    print(f"  peak memory above the start: {_status_mib('VmHWM') - before:.0f} MiB", flush=True)
    return value


def hard_cases(factors: torch.Tensor, generator: torch.Generator) -> None:
    """The quadrature's entropies (whole split and every factor value) of one dimension, in two hard cases."""
    n, partitions = len(factors), list(factors.T)
    isolated = 10 * torch.rand(n, 1, generator=generator), \
        2 * math.log(1e-7) + 2 * math.log(10) * torch.rand(n, 1, generator=generator)
    timed_with_peak("entropies, sigma 1e-7..1e-6, span 10 (1 dim)",
                    lambda: est.aggregate_entropies_quadrature(*isolated, partitions) and None)
    decades = torch.rand(n, 1, generator=generator), 2 * math.log(1e-4) * torch.rand(n, 1, generator=generator)
    timed_with_peak("entropies, sigma 1e-4..1, span 1 (1 dim)",
                    lambda: est.aggregate_entropies_quadrature(*decades, partitions) and None)


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

    hard_cases(factors, g)
    info = timed_with_peak("I(z_j; v_k), quadrature (all 5 factors)",
                           lambda: dis.gaussian_mutual_information(mu, logvar, factors))
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
    gbt = timed("dci, gradient boosting (10,000 / 5,000 points)", lambda: dis.dci(mu, factors, g))
    forest = timed("dci, random forest (25 trees)", lambda: dis.dci(mu, factors, g, estimator="forest"))
    for name, scores in (("gradient boosting", gbt), ("random forest", forest)):
        print(f"  {name}: " + ", ".join(f"{key} {value:.3f}" for key, value in scores.items()))
    timed("sap (10,000 / 5,000 points)", lambda: dis.sap_score(mu, factors, g))
    timed("sap_continuous (10,000 points)", lambda: dis.sap_continuous(mu, factors, g))
    timed("per_dimension_information", lambda: dis.per_dimension_information(mu, logvar))
    timed("disentanglement_metrics (all of the above, DCI by forest)", lambda: dis.disentanglement_metrics(
        mu, logvar, logits, factors, SIZES, g, dci_estimator="forest") and None)
    timed(f"split_total_correlation, {args.tc_samples} z of N", lambda: dis.split_total_correlation(
        mu, logvar, g, num_samples=args.tc_samples), scale=n / args.tc_samples)
    subset = torch.randperm(n, generator=g)[:10_000]
    timed("split_total_correlation on 10,000 points", lambda: dis.split_total_correlation(mu[subset], logvar[subset], g))


if __name__ == "__main__":
    main()
