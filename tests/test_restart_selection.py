"""bench/restart_selection.py on hand-written histories: best of k against a count by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import bench_script


@pytest.fixture(scope="module")
def selection():
    return bench_script("restart_selection")


def write_seed(root: Path, seed: int, train_scores: list[float], accuracy: float) -> None:
    run_dir = root / f"beta5-seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"seed": seed}))
    (run_dir / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    rows = [{"epoch": e, "train": {"mutual_info_xy": s}, "validation": {"mutual_info_xy": -s, "accuracy": accuracy / 2}}
            for e, s in enumerate(train_scores, 1)]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_best_of_k_continues_the_highest_score_of_every_subset(selection, tmp_path):
    # epoch 1 ranks seed 2 > 0 > 1; epoch 2 ranks 1 > 0 > 2
    for seed, scores, accuracy in ((0, [2.0, 2.0], 0.9), (1, [1.0, 3.0], 0.6), (2, [3.0, 1.0], 0.3)):
        write_seed(tmp_path, seed, scores, accuracy)
    runs = selection.load_runs(tmp_path)
    # epoch 1: {0,1} -> 0, {0,2} -> 2, {1,2} -> 2; epoch 2: {0,1} -> 1, {0,2} -> 0, {1,2} -> 1
    assert selection.best_of_k(runs, 1, "training I(x;y)", 2) == pytest.approx((0.9 + 0.3 + 0.3) / 3)
    assert selection.best_of_k(runs, 2, "training I(x;y)", 2) == pytest.approx((0.6 + 0.9 + 0.6) / 3)
    assert selection.best_of_k(runs, 2, "training I(x;y)", 3) == pytest.approx(0.6)
    assert selection.best_of_k(runs, 1, "validation I(x;y)", 3) == pytest.approx(0.6)  # -score: seed 1 highest
    assert selection.best_of_k(runs, 1, "training I(x;y)", 1) == pytest.approx(0.6)  # one run: the mean
    assert selection.best_of_k(runs, 2, "training I(x;y)", 2, "validation") == pytest.approx((0.3 + 0.45 + 0.3) / 3)


def test_two_runs_of_one_seed_are_refused(selection, tmp_path):
    write_seed(tmp_path / "a", 0, [1.0], 0.5)
    write_seed(tmp_path / "b", 0, [1.0], 0.5)
    with pytest.raises(SystemExit, match="two runs of seed 0"):
        selection.load_runs(tmp_path)


def test_match_keeps_one_variant_and_too_few_runs_are_refused(selection, tmp_path):
    for variant in ("a", "b"):
        for seed in (0, 1):
            write_seed(tmp_path / variant, seed, [1.0 + seed], 0.5)
    assert sorted(selection.load_runs(tmp_path, "b/")) == [0, 1]
    with pytest.raises(SystemExit, match="1 finished run"):
        selection.load_runs(tmp_path / "a", "seed1")
