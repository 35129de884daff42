"""The honest protocol: recipes that fill unset settings, and a validation split never trained on."""

import json

import numpy as np
import pytest
import torch

from imae import training
from imae.cli import main
from imae.config import TrainConfig
from imae.errors import ConfigError
from imae.training import load_splits

FAST = ["--epochs", "2", "--batch-size", "64", "--no-progress", "--seed", "0"]


def test_paper_recipe_is_eq_10_with_appendix_g_optimisers():
    mnist = TrainConfig(recipe="paper").validate()
    assert (mnist.reconstruction_weight, mnist.marginal_entropy_weight, mnist.vat_weight) == (1.0, 1.0, 1.0)
    assert (mnist.optimizer, mnist.lr, mnist.momentum, mnist.lr_decay) == ("sgd", 1e-3, 0.9, 0.98)
    assert mnist.gamma_value == 2 * mnist.beta and mnist.vat_eps == 1.0
    dsprites = TrainConfig(recipe="paper", dataset="dsprites").validate()
    assert (dsprites.optimizer, dsprites.lr, dsprites.lr_decay) == ("adam", 1e-3, 1.0)
    # Figure 1's InfoVAE penalises KL(p(z) || r(z)), term (5), which Appendix B estimates on the minibatch.
    assert TrainConfig(recipe="paper", model="info-vae").validate().infovae_divergence == "kl"


def test_tuned_recipe_is_the_default_and_explicit_settings_win():
    tuned = TrainConfig().validate()
    assert tuned.recipe == "tuned"
    assert (tuned.reconstruction_weight, tuned.marginal_entropy_weight, tuned.vat_weight) == (0.3, 4.0, 30.0)
    assert (tuned.vat_xi, tuned.vat_eps, tuned.vat_eps_neighbours, tuned.epochs) == (5.0, 0.25, 10, 50)
    dsprites = TrainConfig(dataset="dsprites").validate()  # no nearest-neighbour radii of 737,280 images
    assert (dsprites.vat_xi, dsprites.vat_eps, dsprites.vat_eps_neighbours, dsprites.epochs) == (1.0, 1.0, 0, 20)
    assert tuned.optimizer == "adam"
    mixed = TrainConfig(recipe="paper", optimizer="adam", vat_weight=3.0).validate()
    assert (mixed.optimizer, mixed.vat_weight, mixed.reconstruction_weight) == ("adam", 3.0, 1.0)
    assert tuned.infovae_divergence == "kl"  # chosen on validation in stop 29 (results/protocol/infovae-tuned)
    assert TrainConfig(recipe="paper", infovae_divergence="mmd-rbf").validate().infovae_divergence == "mmd-rbf"


def test_resolved_config_round_trips_unchanged():
    cfg = TrainConfig(recipe="paper", dataset="dsprites").validate()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unknown_recipe_is_a_one_line_error(capsys):
    with pytest.raises(ConfigError, match="recipe"):
        TrainConfig(recipe="mine").validate()
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "mine"])
    assert "--recipe" in capsys.readouterr().err


def test_command_line_recipe_and_override(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out), *FAST,
                 "--recipe", "paper", "--lr", "0.002"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "paper" and config["optimizer"] == "sgd" and config["lr"] == 0.002
    assert config["reconstruction_weight"] == 1.0


def _row_bytes(images: torch.Tensor) -> set[bytes]:
    return {bytes(row.flatten().tolist()) for row in images}


@pytest.fixture
def trained(monkeypatch) -> list[torch.Tensor]:
    """Every batch the trainer steps on, as uint8 images (filled while a test trains)."""
    batches = []
    real_step = training.train_step

    def recording_step(model, objective, optimizer, x, *args, **kwargs):
        batches.append(torch.round(x * 255).to(torch.uint8))
        return real_step(model, objective, optimizer, x, *args, **kwargs)

    monkeypatch.setattr(training, "train_step", recording_step)
    return batches


def test_validation_images_are_never_trained_on(tiny_mnist, tmp_path, trained):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out), *FAST,
                 "--batch-size", "32", "--validation-size", "64", "--train-subset", "150"]) == 0
    cfg = TrainConfig.load(out / "config.json")
    assert (cfg.validation_size, cfg.validation_seed) == (64, 0)
    _, validation, _ = load_splits(cfg)
    full_train, _, _ = load_splits(TrainConfig(dataset="mnist", data_dir=str(tiny_mnist)).validate())
    held, seen = _row_bytes(validation.images), _row_bytes(torch.cat(trained))
    assert len(validation) == 64 and len(held) == 64  # the generated images are all distinct
    assert not held & seen
    assert seen <= _row_bytes(full_train.images) - held and len(seen) > 64

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("validation_accuracy", "validation_mutual_info_xy", "validation_reconstruction_error"):
        assert key in metrics
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert all({"accuracy", "mutual_info_xy", "reconstruction_error"} <= set(row["validation"]) for row in history)
    # `imae evaluate` recomputes the same validation numbers from the checkpoint.
    assert main(["evaluate", str(out)]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["validation_accuracy"] == pytest.approx(metrics["validation_accuracy"])


def test_validation_split_is_the_same_for_every_run_seed(tiny_mnist):
    splits = [load_splits(TrainConfig(dataset="mnist", data_dir=str(tiny_mnist), validation_size=50,
                                      seed=seed).validate())[1] for seed in (0, 1)]
    assert torch.equal(splits[0].images, splits[1].images)
    other = load_splits(TrainConfig(dataset="mnist", data_dir=str(tiny_mnist), validation_size=50,
                                    validation_seed=1).validate())[1]
    assert not torch.equal(other.images, splits[0].images)


def test_validation_that_leaves_nothing_to_train_on_is_refused(tiny_mnist, tmp_path, capsys):
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "r"),
                 *FAST, "--validation-size", "255"]) == 2
    err = capsys.readouterr().err.strip()
    assert "validation_size" in err and "\n" not in err


def test_training_on_all_images_takes_the_test_images_but_never_the_validation_ones(tiny_mnist, tmp_path, trained,
                                                                                   capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out), *FAST,
                 "--batch-size", "32", "--validation-size", "64", "--train-split", "all"]) == 0
    assert "the test metrics are not held out" in capsys.readouterr().out
    cfg = TrainConfig.load(out / "config.json")
    _, validation, test = load_splits(TrainConfig(dataset="mnist", data_dir=str(tiny_mnist), validation_size=64)
                                      .validate())
    full_train, _, _ = load_splits(TrainConfig(dataset="mnist", data_dir=str(tiny_mnist)).validate())
    assert torch.equal(load_splits(cfg)[1].images, validation.images)  # the same validation split
    held, seen, tests = _row_bytes(validation.images), _row_bytes(torch.cat(trained)), _row_bytes(test.images)
    assert not held & seen
    assert seen == (_row_bytes(full_train.images) - held) | tests  # 2 epochs of full batches see every image
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_images_trained_on"] is True and "validation_accuracy" in metrics


def test_training_on_all_images_needs_a_test_split(tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    assert main(["train", "--dataset", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r"), *FAST,
                 "--train-split", "all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imae: error: option train_split") and err.count("\n") == 1
