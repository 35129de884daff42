"""Restarts chosen by the unsupervised objective: I(x;y) on the training images, no labels."""

import json

import numpy as np
import pytest
import torch

from imae import IMAE, training
from imae.cli import main
from imae.data import load_dataset
from imae.estimators import mutual_information_xy
from imae.metrics import encode
from imae.runs import load_checkpoint
from imae.training import RESTART_SEED_STRIDE, load_trained

FAST = ["--epochs", "3", "--batch-size", "64", "--no-progress", "--categories", "4", "--continuous-dim", "2"]


def _train(data, out, *extra):
    return main(["train", "--dataset", "mnist", "--data-dir", str(data), "--out", str(out), *FAST, *extra])


def test_the_candidate_of_highest_score_is_continued_exactly_as_a_run_of_its_seed(tiny_mnist, tmp_path, monkeypatch):
    """With scores set by candidate (the second best), the run continues the second candidate: its weights
    and history end as those of a plain run of that candidate's seed."""
    scores = {0: 0.2, RESTART_SEED_STRIDE: 0.9, 2 * RESTART_SEED_STRIDE: 0.5}
    order = list(scores.values())
    monkeypatch.setattr(training, "unsupervised_score", lambda model, train_set, cfg: order.pop(0))
    assert _train(tiny_mnist, tmp_path / "restarts", "--restarts", "3", "--restart-epochs", "1") == 0
    monkeypatch.undo()
    assert _train(tiny_mnist, tmp_path / "plain", "--seed", str(RESTART_SEED_STRIDE)) == 0

    metrics = json.loads((tmp_path / "restarts" / "metrics.json").read_text())
    assert metrics["restart_chosen"] == 1
    assert [c["seed"] for c in metrics["restart_candidates"]] == list(scores)
    assert [c["train_mutual_info_xy"] for c in metrics["restart_candidates"]] == list(scores.values())
    assert all("accuracy" in c["test"] for c in metrics["restart_candidates"])  # reported, never chosen by
    chosen, plain = (load_checkpoint(tmp_path / name)["model"] for name in ("restarts", "plain"))
    assert all(torch.equal(chosen[key], plain[key]) for key in plain)
    rows = [[json.loads(line) for line in (tmp_path / name / "history.jsonl").read_text().splitlines()]
            for name in ("restarts", "plain")]
    assert [r["epoch"] for r in rows[0]] == [1, 2, 3]
    assert [r["test"] for r in rows[0]] == [r["test"] for r in rows[1]]


def test_each_score_is_the_candidates_i_xy_on_the_training_images_and_the_highest_wins(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_mnist, out, "--restarts", "2", "--restart-epochs", "2") == 0
    record = json.loads((out / "restarts.json").read_text())
    scores = [c["train_mutual_info_xy"] for c in record["restart_candidates"]]
    assert scores[0] != scores[1] and record["restart_chosen"] == scores.index(max(scores))
    assert json.loads((out / "metrics.json").read_text())["restart_candidates"] == record["restart_candidates"]
    # Each score, recomputed from a plain run of the candidate's seed stopped after restart_epochs.
    train = load_dataset("mnist", "train", tiny_mnist)
    for candidate in record["restart_candidates"]:
        plain = tmp_path / f"seed{candidate['seed']}"
        assert _train(tiny_mnist, plain, "--seed", str(candidate["seed"]), "--epochs", "2") == 0
        _, model, _ = load_trained(plain)
        expected = mutual_information_xy(encode(model, train.images, 100).logits).item()
        assert candidate["train_mutual_info_xy"] == pytest.approx(expected, rel=1e-5)


def test_resumed_after_the_choice_the_run_ends_as_an_uninterrupted_one(tiny_mnist, tmp_path):
    assert _train(tiny_mnist, tmp_path / "full", "--restarts", "2", "--restart-epochs", "1") == 0
    assert _train(tiny_mnist, tmp_path / "part", "--restarts", "2", "--restart-epochs", "1", "--epochs", "2") == 0
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    (tmp_path / "part" / "config.json").write_text(json.dumps({**config, "epochs": 3}))
    assert main(["train", "--resume", str(tmp_path / "part"), "--no-progress"]) == 0
    full, part = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("full", "part"))
    assert part["restart_chosen"] == full["restart_chosen"]
    assert part["accuracy"] == full["accuracy"] and part["mutual_info_xy"] == pytest.approx(full["mutual_info_xy"])


def test_the_python_api_restarts_too():
    X = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    model = IMAE(epochs=2, restarts=2, restart_epochs=1, batch_size=16, categories=3, device="cpu").fit(X)
    scores = [c["train_mutual_info_xy"] for c in model.restarts_["restart_candidates"]]
    assert model.restarts_["restart_chosen"] == scores.index(max(scores)) and len(model.history_) == 1
