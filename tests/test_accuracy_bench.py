"""bench/accuracy.py on hand-written runs: the time to a target accuracy, and reuse of a study's finished runs."""
import argparse
import json

from conftest import bench_script


def history(accuracies, seconds=10.0):
    return [{"epoch": i + 1, "seconds": seconds, "test": {"accuracy": a}} for i, a in enumerate(accuracies)]


def test_seconds_to_sums_the_epochs_up_to_the_first_that_reaches_the_target():
    accuracy = bench_script("accuracy")
    rows = history([0.5, 0.94, 0.96, 0.93, 0.97])
    assert accuracy.seconds_to(0.95, rows, {}, 5) == 30.0
    assert accuracy.seconds_to(0.99, rows, {}, 5) is None


def test_seconds_to_with_restarts_counts_every_candidate_and_waits_for_the_choice():
    accuracy = bench_script("accuracy")
    restarts = {"restart_chosen": 1, "restart_candidates": [{"seconds": 7.0}, {"seconds": 9.0}]}
    # The chosen candidate's 2 epochs (inside its 9 s) reach 0.96 at epoch 1, but the choice waits for both.
    rows = history([0.96, 0.5, 0.6], seconds=4.0)
    assert accuracy.seconds_to(0.95, rows, restarts, 2) == 16.0
    assert accuracy.training_seconds(rows, restarts) == 12.0 + 7.0


def test_table_reuses_a_finished_run_named_with_the_suffix(tmp_path, capsys):
    accuracy = bench_script("accuracy")
    run = tmp_path / "mnist" / "imae" / "beta5-seed3-reconstruction_weight=0.3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"beta": 5.0, "epochs": 2, "restart_epochs": 5}))
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.9825, "mutual_info_xy": 2.2,
                                                  "reconstruction_error": 109.7}))
    (run / "history.jsonl").write_text("\n".join(json.dumps(r) for r in history([0.9, 0.96])))
    args = argparse.Namespace(out=tmp_path, data_dir=None, seeds=[3], target=0.95,
                              suffix="-reconstruction_weight=0.3")
    accuracy.table(args, "mnist", "imae", None, {"reconstruction_weight": 0.3})
    assert "| 3 | 0.9825 | 2.200 | 109.70 | 20 | 20 |" in capsys.readouterr().out
