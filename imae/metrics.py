"""Evaluation metrics of the categorical code and the reconstruction on a whole split."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import disentanglement as dis
from . import estimators as est
from .data.batches import ImageSet, ordered_batches
from .networks import HybridAutoencoder, Posterior
from .objectives import reconstruction_nll

# z's drawn for the whole-split total correlation: each log q(z) is exact over all N encodings, the mean
# over z's is a Monte Carlo estimate (standard error reported); all N z's cost O(N^2 K), days on dSprites.
TOTAL_CORRELATION_SAMPLES = 2000
# DCI's classifiers: disentanglement_lib's gradient boosting ("gbt"), so that DCI compares with published numbers;
# "forest" is ~45 times faster on dSprites (bench/mig_speed.py: 12 s against 9 minutes) but gives other numbers.
DCI_ESTIMATOR = "gbt"


def clustering_accuracy(predicted, labels) -> float:
    """Unsupervised accuracy: the best one-to-one matching of clusters to labels
    (Hungarian algorithm on the contingency table); unmatched clusters count as wrong."""
    predicted = np.asarray(predicted, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if predicted.shape != labels.shape or predicted.ndim != 1 or len(labels) == 0:
        raise ValueError("predicted and labels must be non-empty 1-D arrays of the same length")
    _, cluster_index = np.unique(predicted, return_inverse=True)
    _, label_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((cluster_index.max() + 1, label_index.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_index, label_index), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


@torch.no_grad()
def encode(model: HybridAutoencoder, images: torch.Tensor, batch_size: int) -> Posterior:
    """The posterior parameters of every image, in evaluation mode."""
    was_training = model.training
    model.eval()
    parts = [model.encoder(x) for x in ordered_batches(images, batch_size)]
    model.train(was_training)
    return Posterior(*(torch.cat([getattr(p, f) for p in parts]) for f in ("mu", "logvar", "logits")))


@torch.no_grad()
def reconstruction_error(model: HybridAutoencoder, images: torch.Tensor, post: Posterior, batch_size: int) -> float:
    """Mean per-image BCE (nats) of decoding the evaluation code (z = mu, y = argmax)."""
    total = 0.0
    for start, x in zip(range(0, images.shape[0], batch_size), ordered_batches(images, batch_size)):
        part = Posterior(*(getattr(post, f)[start:start + batch_size] for f in ("mu", "logvar", "logits")))
        z, y = model.mean_code(part)
        total += reconstruction_nll(model.decoder(z, y), x).item() * x.shape[0]
    return total / images.shape[0]


@torch.no_grad()
def evaluate(model: HybridAutoencoder, split: ImageSet, batch_size: int = 2000, complete: bool = False,
             seed: int = 0) -> dict:
    """accuracy (if labelled), I(x;y) over the whole split (eq 7) with its two entropies, and the
    reconstruction error, all in nats. complete: also the statistics of z (code_statistics) and, where
    the split has known factors (dSprites), every disentanglement metric."""
    post = encode(model, split.images, batch_size)
    metrics = {
        "mutual_info_xy": est.mutual_information_xy(post.logits).item(),
        "marginal_entropy_y": est.marginal_entropy(post.logits).item(),
        "conditional_entropy_y": est.conditional_entropy(post.logits).item(),
        "reconstruction_error": reconstruction_error(model, split.images, post, batch_size),
    }
    if split.labels is not None:
        predicted = post.logits.argmax(1).cpu().numpy()
        metrics["accuracy"] = clustering_accuracy(predicted, split.labels.cpu().numpy())
    if complete:
        post = Posterior(*(getattr(post, f).float().cpu() for f in ("mu", "logvar", "logits")))
        metrics.update(code_statistics(post, seed))
        if split.factors is not None:
            factors = split.factors.cpu()
            sizes = tuple(int(size) for size in factors.max(0).values + 1)
            metrics.update(dis.disentanglement_metrics(post.mu, post.logvar, post.logits, factors, sizes,
                                                       torch.Generator().manual_seed(seed),
                                                       dci_estimator=DCI_ESTIMATOR))
    return metrics


def code_statistics(post: Posterior, seed: int = 0) -> dict:
    """Per-dimension I(x;z_k), E[sigma_k^2], Var[mu_k] and the eq (5) bound (Figure 2a), and the total
    correlation of z over the split, estimated with TOTAL_CORRELATION_SAMPLES z's (and its standard error)."""
    generator = torch.Generator().manual_seed(seed)
    samples = TOTAL_CORRELATION_SAMPLES if len(post.mu) > TOTAL_CORRELATION_SAMPLES else None
    total_correlation, stderr = dis.split_total_correlation(post.mu, post.logvar, generator, samples)
    return {"per_dimension": dis.per_dimension_information(post.mu, post.logvar),
            "total_correlation": total_correlation, "total_correlation_stderr": stderr}
