"""The scikit-learn style estimators: conventions, the code of new images, files, and the shared trainer."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

from imae import IMAE, BetaVAE, InfoVAE, JointVAE
from imae.cli import main
from imae.errors import CheckpointError, ConfigError
from imae.estimator import InputError
from imae.runs import load_checkpoint

# ARI on blobs is not the point of a categorical code that may leave categories unused.
NOT_APPLICABLE = {"check_clustering": "labels must have no gaps (0..k with every value used) and the check sets "
                                      "n_clusters; an IMAE category that no image is assigned to leaves a gap"}
FAST = {"epochs": 1, "device": "cpu"}


def _images(n=24, side=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side), dtype=np.uint8)


def test_scikit_learn_estimator_checks():
    check_estimator(IMAE(**FAST), expected_failed_checks=NOT_APPLICABLE)


def test_fit_predict_on_a_tiny_array_smaller_than_a_batch():
    X = _images()
    model = IMAE(batch_size=256, epochs=2, continuous_dim=3, categories=4, device="cpu").fit(X)
    proba = model.predict_proba(X)
    assert proba.shape == (24, 4) and np.allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(1))
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    assert model.transform(X).shape == (24, 3)
    assert len(model.history_) == 2 and "total_correlation" in model.history_[0]
    assert 0.0 <= model.score(X) <= np.log(4) + 1e-6
    with pytest.raises(InputError, match=r"samples of shape \(8, 9\)"):
        model.predict(np.zeros((2, 8, 9), dtype=np.uint8))


def test_decode_is_the_decoder_behind_the_reconstruction_error():
    X = _images(seed=1)
    model = IMAE(**FAST).fit(X)
    pixels = model.decode(model.transform(X), model.predict(X)) / 255.0  # uint8 X: decoded in 0..255
    assert pixels.shape == X.shape
    x = X.reshape(len(X), -1) / 255.0
    p = np.clip(pixels.reshape(len(X), -1).astype(np.float64), 1e-12, 1 - 1e-12)
    bce = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(1).mean()
    assert model.evaluate(X)["reconstruction_error"] == pytest.approx(bce, rel=1e-4)
    one_hot = np.eye(10)[model.predict(X)]
    np.testing.assert_allclose(model.decode(model.transform(X), one_hot), pixels * 255.0, rtol=1e-6)


def test_the_range_of_x_is_learnt_so_an_affine_copy_trains_the_same_model():
    X = _images(seed=2) / 255.0  # holds 0 and 1 exactly
    X[0, 0, :2] = (0.0, 1.0)
    a = IMAE(**FAST).fit(X)
    b = IMAE(**FAST).fit(3.0 + 10.0 * X)
    np.testing.assert_array_equal(a.transform(X), b.transform(3.0 + 10.0 * X))
    assert b.data_range_ == pytest.approx((3.0, 13.0))


def test_evaluate_with_labels_matches_clusters_to_labels():
    X = _images(seed=3)
    model = IMAE(**FAST).fit(X)
    metrics = model.evaluate(X, model.predict(X))  # its own clusters as labels: a perfect matching
    assert metrics["accuracy"] == 1.0
    assert metrics["mutual_info_xy"] == pytest.approx(model.score(X))


def test_same_training_as_the_command_line_on_the_same_data_and_seed(tmp_path):
    X = _images(n=32, seed=4)
    np.save(tmp_path / "x.npy", X)
    model = IMAE(epochs=2, batch_size=16, random_state=3, device="cpu").fit(X)
    assert main(["train", "--dataset", str(tmp_path / "x.npy"), "--epochs", "2", "--batch-size", "16",
                 "--seed", "3", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    saved = load_checkpoint(tmp_path / "run")["model"]
    for name, value in model.model_.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0, msg=name)


def test_clone_pipeline_and_params():
    model = IMAE(beta=2.0, **FAST)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin is not model
    X = _images(seed=5)
    pipe = Pipeline([("to_unit", FunctionTransformer(lambda v: v / 255.0)), ("imae", clone(model))]).fit(X)
    np.testing.assert_array_equal(pipe.predict(X), model.fit(X).predict(X))
    assert pipe.transform(X).shape == (len(X), 10)
    assert model.set_params(categories=3).fit(X).predict_proba(X).shape == (len(X), 3)


def test_save_and_load_give_the_same_codes(tmp_path):
    X = _images(seed=6)
    model = JointVAE(continuous_dim=2, **FAST).fit(X)
    model.save(tmp_path / "m.pt")
    loaded = JointVAE.load(tmp_path / "m.pt")
    assert type(loaded) is JointVAE and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with pytest.raises(CheckpointError, match="holds a JointVAE, not a IMAE"):
        IMAE.load(tmp_path / "m.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt: not an estimator saved by imae"):
        IMAE.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("kind, model, term", [(BetaVAE, "beta-vae", "kl_z"), (InfoVAE, "info-vae", "divergence_z"),
                                               (JointVAE, "joint-vae", "capacity_z")])
def test_baselines_train_their_own_objective(kind, model, term):
    fitted = kind(**FAST).fit(_images(seed=7))
    assert fitted.config_.model == model and term in fitted.history_[0]


def test_conv_network_on_colour_arrays_and_its_size_check():
    X = np.random.default_rng(8).random((8, 3, 32, 32)).astype(np.float32)
    model = IMAE(architecture="conv", batch_size=4, **FAST).fit(X)
    assert model.transform(X).shape == (8, 10) and model.decode(model.transform(X), model.predict(X)).shape == X.shape
    with pytest.raises(ConfigError, match="conv expects square 32x32 or 64x64"):
        IMAE(architecture="conv", **FAST).fit(_images())
