"""Evaluation metrics of the categorical code and the reconstruction on a whole split."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from . import estimators as est
from .data.batches import ImageSet, ordered_batches
from .networks import HybridAutoencoder, Posterior
from .objectives import reconstruction_nll


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
def evaluate(model: HybridAutoencoder, split: ImageSet, batch_size: int = 2000) -> dict[str, float]:
    """accuracy (if labelled), I(x;y) over the whole split (eq 7) with its two entropies,
    and the reconstruction error, all in nats."""
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
    return metrics
