import itertools

import numpy as np
import pytest
import torch

from imae.data.batches import ImageSet
from imae.data.batches import as_float
from imae.metrics import clustering_accuracy, confusion_matrix, encode, evaluate
from imae.networks import HybridAutoencoder


def test_permuted_labelling_is_perfect():
    labels = np.random.default_rng(0).integers(0, 10, size=500)
    permutation = np.random.default_rng(1).permutation(10)
    assert clustering_accuracy(permutation[labels], labels) == 1.0


def _brute_force_accuracy(predicted, labels, k):
    return max(np.mean(np.array(perm)[predicted] == labels) for perm in itertools.permutations(range(k)))


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_over_all_matchings(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=60)
    predicted = np.where(rng.random(60) < 0.6, labels, rng.integers(0, 5, size=60))
    assert clustering_accuracy(predicted, labels) == pytest.approx(_brute_force_accuracy(predicted, labels, 5))


def test_more_clusters_than_labels_counts_unmatched_as_wrong():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([0, 1, 2, 3])  # four clusters, two labels: at best two right
    assert clustering_accuracy(predicted, labels) == 0.5


def test_encode_in_batches_matches_one_pass_and_restores_the_mode():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    model = HybridAutoencoder((28, 28), continuous_dim=3, categories=4, architecture="mlp-imsat")  # batch norm
    post = encode(model, images, 16)  # 16 does not divide 50: the last batch is short
    assert model.training
    model.eval()
    with torch.no_grad():
        whole = model.encoder(as_float(images))
    for field, width in (("mu", 3), ("logvar", 3), ("logits", 4)):
        assert getattr(post, field).shape == (50, width)
        torch.testing.assert_close(getattr(post, field), getattr(whole, field), rtol=1e-5, atol=1e-5)


def test_evaluate_reports_all_keys():
    torch.manual_seed(0)
    split = ImageSet(torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (50,)))
    metrics = evaluate(HybridAutoencoder((28, 28)), split, batch_size=16)
    assert set(metrics) >= {"accuracy", "mutual_info_xy", "reconstruction_error"}
    assert 0 <= metrics["mutual_info_xy"] <= np.log(10) + 1e-6
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["reconstruction_error"] > 0


def test_confusion_matrix_of_a_known_prediction():
    # labels 3, 5, 7; four categories: 3 -> y=2 (2 of 2), 5 -> y=0 (2 of 3, one in y=2), 7 -> y=1 (4 of 4); y=3 unused
    labels = np.array([3, 3, 5, 5, 5, 7, 7, 7, 7])
    predicted = np.array([2, 2, 2, 0, 0, 1, 1, 1, 1])
    table = confusion_matrix(predicted, labels, categories=4)
    assert table["confusion_matrix_labels"] == [3, 5, 7]
    assert table["confusion_matrix_categories"] == [2, 0, 1, 3]
    assert table["confusion_matrix"] == [[2, 0, 0, 0], [1, 2, 0, 0], [0, 0, 4, 0]]
    assert np.trace(table["confusion_matrix"]) / len(labels) == clustering_accuracy(predicted, labels)


def test_complete_evaluation_stores_the_confusion_matrix():
    torch.manual_seed(0)
    split = ImageSet(torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8), torch.randint(0, 3, (50,)))
    metrics = evaluate(HybridAutoencoder((28, 28), continuous_dim=2, categories=4), split, 16, complete=True)
    counts = np.array(metrics["confusion_matrix"])
    assert counts.shape == (3, 4) and counts.sum() == 50
    assert np.trace(counts) / 50 == pytest.approx(metrics["accuracy"])
    assert "true label (rows" in metrics["confusion_matrix_note"]
