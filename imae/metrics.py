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
from .precision import autocast

# z's drawn for the whole-split total correlation: each log q(z) is exact over all N encodings, the mean
# over z's is a Monte Carlo estimate (standard error reported); all N z's cost O(N^2 K), days on dSprites.
TOTAL_CORRELATION_SAMPLES = 2000


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


CONFUSION_MATRIX_NOTE = ("confusion_matrix: test images counted by true label (rows, the values in "
                         "confusion_matrix_labels) and learnt category y (columns, the categories in "
                         "confusion_matrix_categories): the category matched to each label by the Hungarian matching "
                         "in the labels' order, then the unmatched ones; the diagonal holds the matched counts")


def confusion_matrix(predicted, labels, categories: int) -> dict:
    """The contingency table of labels (rows, sorted) and the `categories` learnt categories (columns, every
    one, used or not), its columns ordered by the matching of clustering_accuracy: the category matched to
    each label in the labels' order, then the unmatched ones in increasing order. metrics.json's keys."""
    predicted = np.asarray(predicted, dtype=np.int64)
    label_values, label_index = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
    counts = np.zeros((len(label_values), categories), dtype=np.int64)
    np.add.at(counts, (label_index, predicted), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)  # rows come sorted
    order = [int(c) for c in cols] + [c for c in range(categories) if c not in set(cols.tolist())]
    return {"confusion_matrix": counts[:, order].tolist(), "confusion_matrix_labels": label_values.tolist(),
            "confusion_matrix_categories": order, "confusion_matrix_note": CONFUSION_MATRIX_NOTE}


@torch.no_grad()
def encode(model: HybridAutoencoder, images: torch.Tensor, batch_size: int, precision: str = "fp32") -> Posterior:
    """The posterior parameters (float32) of every image, in evaluation mode, the encoder at `precision`.
    Written into tensors allocated once: keeping every batch's small outputs alive between its large freed
    activations fragments glibc's heap (750 MB more RSS per 100,000 dSprites images, docs/studies.md)."""
    was_training = model.training
    model.eval()
    k, n = model.encoder.continuous_dim, images.shape[0]
    post = Posterior(*(torch.empty(n, width, device=images.device) for width in (k, k, model.categories)))
    with autocast(precision, images.device):
        for start, x in zip(range(0, n, batch_size), ordered_batches(images, batch_size)):
            part = model.encoder(x)
            for field in ("mu", "logvar", "logits"):
                getattr(post, field)[start:start + x.shape[0]] = getattr(part, field)
    model.train(was_training)
    return post


@torch.no_grad()
def reconstruction_error(model: HybridAutoencoder, images: torch.Tensor, post: Posterior, batch_size: int,
                         precision: str = "fp32") -> float:
    """Mean per-image BCE (nats) of decoding the evaluation code (z = mu, y = argmax), the decoder at `precision`."""
    total = 0.0
    for start, x in zip(range(0, images.shape[0], batch_size), ordered_batches(images, batch_size)):
        part = Posterior(*(getattr(post, f)[start:start + batch_size] for f in ("mu", "logvar", "logits")))
        z, y = model.mean_code(part)
        with autocast(precision, images.device):
            logits = model.decoder(z, y)
        total += reconstruction_nll(logits, x).item() * x.shape[0]
    return total / images.shape[0]


@torch.no_grad()
def evaluate(model: HybridAutoencoder, split: ImageSet, batch_size: int = 2000, complete: bool = False,
             seed: int = 0, precision: str = "fp32", dci_estimator: str = "gbt", mig: bool = False) -> dict:
    """accuracy (if labelled), I(x;y) over the whole split (eq 7) with its two entropies, and the
    reconstruction error (models with a decoder), all in nats. complete: also the confusion matrix (if
    labelled), the statistics of z (code_statistics) and, where the split has known factors (dSprites),
    every disentanglement metric; what a model without decoder or z (IMSAT) cannot have is null, its
    reason in "undefined". precision: the networks' (the estimators
    are float32 either way). mig: also the two MIGs (disentanglement.information_gaps) where the split has
    known factors and the model a z, without the slower metrics: the per-epoch MIG curve (monitor_mig)."""
    post = encode(model, split.images, batch_size, precision)
    metrics = {
        "mutual_info_xy": est.mutual_information_xy(post.logits).item(),
        "marginal_entropy_y": est.marginal_entropy(post.logits).item(),
        "conditional_entropy_y": est.conditional_entropy(post.logits).item(),
    }
    if model.decoder is not None:
        metrics["reconstruction_error"] = reconstruction_error(model, split.images, post, batch_size, precision)
    if split.labels is not None:
        predicted = post.logits.argmax(1).cpu().numpy()
        metrics["accuracy"] = clustering_accuracy(predicted, split.labels.cpu().numpy())
    if mig and not complete and split.factors is not None and post.mu.shape[1] > 0:
        metrics.update(dis.information_gaps(post.mu.float().cpu(), post.logvar.float().cpu(),
                                            post.logits.float().cpu(), split.factors.cpu(),
                                            torch.Generator().manual_seed(seed)))
    if not complete:
        return metrics
    if split.labels is not None:
        metrics.update(confusion_matrix(predicted, split.labels.cpu().numpy(), model.categories))
    not_applicable = {}
    if model.decoder is None:
        metrics["reconstruction_error"] = None
        not_applicable["reconstruction_error"] = "the model has no decoder"
    if post.mu.shape[1] == 0:
        no_z = "the model has no continuous code z"
        metrics.update(per_dimension=None, total_correlation=None, total_correlation_stderr=None,
                       total_correlation_null=None)
        not_applicable.update(per_dimension=no_z, total_correlation=no_z, total_correlation_stderr=no_z,
                              total_correlation_null=no_z)
        if split.factors is not None:
            not_applicable["disentanglement"] = no_z
    else:
        post = Posterior(*(getattr(post, f).float().cpu() for f in ("mu", "logvar", "logits")))
        metrics.update(code_statistics(post, seed))
        if split.factors is not None:
            factors = split.factors.cpu()
            sizes = tuple(int(size) for size in factors.max(0).values + 1)
            metrics.update(dis.disentanglement_metrics(post.mu, post.logvar, post.logits, factors, sizes,
                                                       torch.Generator().manual_seed(seed),
                                                       dci_estimator=dci_estimator))
    if not_applicable:  # one key for every null metric's reason, as disentanglement_metrics writes it
        metrics["undefined"] = {**metrics.get("undefined", {}), **not_applicable}
    return metrics


def code_statistics(post: Posterior, seed: int = 0) -> dict:
    """Per-dimension I(x;z_k), E[sigma_k^2], Var[mu_k] and the eq (5) bound (Figure 2a), and the total
    correlation of z over the split, estimated with TOTAL_CORRELATION_SAMPLES z's (and its standard error),
    beside the same estimate for the code with its dimensions shuffled apart (its null: what TC reads with
    no dependence; a TC near its null is not resolved by N images, see dis.shuffled_dimensions)."""
    generator = torch.Generator().manual_seed(seed)
    samples = TOTAL_CORRELATION_SAMPLES if len(post.mu) > TOTAL_CORRELATION_SAMPLES else None
    total_correlation, stderr = dis.split_total_correlation(post.mu, post.logvar, generator, samples)
    null, _ = dis.split_total_correlation(*dis.shuffled_dimensions(post.mu, post.logvar, generator), generator,
                                          samples)
    return {"per_dimension": dis.per_dimension_information(post.mu, post.logvar),
            "total_correlation": total_correlation, "total_correlation_stderr": stderr,
            "total_correlation_null": null}
