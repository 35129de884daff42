"""Consistency of p(y|x) under small random affine transforms (--augment-consistency)."""

import json

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from imae.augment import augmentation_consistency, random_affine
from imae.cli import main

from conftest import blob_images

SHAPE = (1, 28, 28)


def _blobs(n=16, seed=0):
    images, _ = blob_images(n, 4, np.random.default_rng(seed))
    return torch.from_numpy(images).float().div(255).reshape(n, -1)


def test_a_uniform_image_stays_uniform_and_a_blob_moves():
    torch.manual_seed(0)
    uniform = torch.full((8, 784), 0.3)
    torch.testing.assert_close(random_affine(uniform, SHAPE), uniform)
    blobs = _blobs()
    moved = random_affine(blobs, SHAPE)
    assert moved.shape == blobs.shape and (moved - blobs).abs().amax(1).min() > 0.1
    assert moved.min() >= 0 and moved.max() <= 1  # bilinear resampling stays within the pixel range


def test_zero_for_an_invariant_classifier_and_positive_otherwise():
    torch.manual_seed(0)
    weights = torch.randn(784, 5)
    position = lambda x: 20 * x @ weights  # noqa: E731 - depends on where the ink is
    uniform = torch.rand(16, 1) * torch.ones(16, 784)  # uniform images, each its own grey
    # invariant: on uniform images any classifier is, since the transform leaves them as they are
    assert augmentation_consistency(position, uniform, position(uniform), SHAPE).abs() < 1e-6
    # invariant on any image: a classifier of the image's brightest pixel, which bilinear resampling
    # of a blob (bright 6x6 square) keeps at 1
    brightest = lambda x: torch.stack([x.amax(1), -x.amax(1)], 1)  # noqa: E731
    blobs = _blobs()
    assert augmentation_consistency(brightest, blobs, brightest(blobs), SHAPE).abs() < 1e-6
    assert augmentation_consistency(position, blobs, position(blobs), SHAPE) > 1e-2


def test_the_term_is_the_kl_to_the_transformed_images_prediction():
    blobs, weights = _blobs(), torch.randn(784, 5, generator=torch.Generator().manual_seed(1))
    classify = lambda x: 10 * x @ weights  # noqa: E731
    torch.manual_seed(3)
    value = augmentation_consistency(classify, blobs, classify(blobs), SHAPE)
    torch.manual_seed(3)
    transformed = random_affine(blobs, SHAPE)
    log_p = log_softmax(classify(blobs).double().numpy(), 1)
    log_q = log_softmax(classify(transformed).double().numpy(), 1)
    assert value.item() == pytest.approx(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), 1)), rel=1e-5)


def test_training_with_the_term_logs_it(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1",
                 "--batch-size", "64", "--no-progress", "--augment-consistency", "2"]) == 0
    row = json.loads((out / "history.jsonl").read_text().splitlines()[0])
    assert row["train"]["augment_consistency"] > 0
