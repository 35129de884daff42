"""bench/protocol_tables.py's restarts table on hand-written runs: each restart run beside the single run of its
seed, and the means over the seeds that have both."""
import json

from conftest import bench_script
from test_figures import write_run

SINGLE = {0: (0.62, 0.61), 1: (0.63, 0.64)}       # seed: (validation, test) of the single runs at w_rec 0.3
RESTARTED = {0: (0.62, 0.61), 1: (0.70, 0.69), 2: (0.66, 0.65)}  # seed 2 has no single run


def test_restarts_table_pairs_each_seed_with_its_single_run(tmp_path, capsys):
    tables = bench_script("protocol_tables")
    for seed, (validation, test) in SINGLE.items():
        for weight in (0.3, 1.0):  # the w_rec 1 runs are not the restarts' single runs
            write_run(tmp_path / "imsat-vat-reconstruction" / f"s{seed}-w{weight}",
                      {"accuracy": test - (weight == 1.0) * 0.3, "validation_accuracy": validation},
                      dataset="fashion-mnist", seed=seed, reconstruction_weight=weight)
    for seed, (validation, test) in RESTARTED.items():
        run = write_run(tmp_path / "restarts" / f"s{seed}", {"accuracy": test, "validation_accuracy": validation},
                        dataset="fashion-mnist", seed=seed, reconstruction_weight=0.3, restarts=2)
        (run / "restarts.json").write_text(json.dumps({"restart_chosen": seed % 2, "restart_candidates": [
            {"seed": seed, "train_mutual_info_xy": 1.5}, {"seed": seed + 10_000, "train_mutual_info_xy": 1.25}]}))
    tables.restarts_table(tables.finished(tmp_path / "restarts"), tmp_path)
    out = capsys.readouterr().out
    assert "| fashion-mnist | 1 | 1.5000 / 1.2500 | seed 10001 | 0.7000 | 0.6900 | 0.6300 | 0.6400 |" in out
    assert "| fashion-mnist | 2 | 1.5000 / 1.2500 | seed 2 | 0.6600 | 0.6500 | – | – |" in out
    # Means over seeds 0 and 1 only: restarts 0.66 (sd 0.0566) and 0.65; single runs 0.625 and 0.625.
    assert ("| fashion-mnist | mean ± sd | | | 0.6600 ± 0.0566 | 0.6500 ± 0.0566 | 0.6250 ± 0.0071 | "
            "0.6250 ± 0.0212 |") in out


def _history(run_dir, test_accuracies):
    rows = [{"epoch": epoch, "test": {"accuracy": accuracy}} for epoch, accuracy in enumerate(test_accuracies, 1)]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_imsat_ablation_table_names_each_change_from_the_published_recipe(tmp_path, capsys):
    tables = bench_script("protocol_tables")
    published = write_run(tmp_path / "imsat" / "published", {"accuracy": 0.84, "mutual_info_xy": 2.2}, model="imsat",
                          hidden_init_scale=0.1, output_init_scale=1e-4)
    _history(published, [0.8] * 25)
    init = write_run(tmp_path / "imsat-init" / "published", {"accuracy": 0.9, "mutual_info_xy": 2.25}, model="imsat")
    _history(init, [0.97] * 25)
    on_all = write_run(tmp_path / "imsat" / "all", {"accuracy": 0.99, "mutual_info_xy": 2.3}, model="imsat",
                       train_split="all")  # trained on the test images too: not the published baseline here
    _history(on_all, [0.99] * 25)
    radius = write_run(tmp_path / "imsat-ablation" / "radius", {"accuracy": 0.98, "mutual_info_xy": 2.27},
                       model="imsat", vat_eps=1.0, vat_eps_neighbours=0, seed=1)
    _history(radius, [0.8] * 19 + [0.9, 0.96, 0.98])
    optimiser = write_run(tmp_path / "imsat-ablation" / "sgd", {"accuracy": 0.85, "mutual_info_xy": 2.1},
                          model="imsat", optimizer="sgd", lr=0.01, lr_decay=0.98, grad_clip=5.0)
    _history(optimiser, [0.85] * 20)
    tables.imsat_ablation_table(tables.finished(tmp_path / "imsat-ablation"), tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[1:] == [
        "| none (the published recipe) | 0.1 / 0.0001 | 0 | 0.8000 | 0.8400 | never | 2.200 |",
        "| none (the published recipe) | 0.316 / 0.01 | 0 | 0.9700 | 0.9000 | 1 | 2.250 |",
        "| optimizer sgd, lr 0.01, lr_decay 0.98, grad_clip 5 | 0.316 / 0.01 | 0 | 0.8500 | 0.8500 | never | 2.100 |",
        "| vat_eps 1, vat_eps_neighbours 0 | 0.316 / 0.01 | 1 | 0.9000 | 0.9800 | 21 | 2.270 |"]


def test_screen_table_pairs_each_seed_with_the_run_without_the_change(tmp_path, capsys):
    tables = bench_script("protocol_tables")
    for seed, (validation, test) in SINGLE.items():
        write_run(tmp_path / "imsat-vat-reconstruction" / f"s{seed}", {"accuracy": test, "validation_accuracy": validation},
                  dataset="mnist", seed=seed, reconstruction_weight=0.3)
    for seed, (validation, test) in RESTARTED.items():
        write_run(tmp_path / "augment" / f"s{seed}", {"accuracy": test, "validation_accuracy": validation},
                  dataset="mnist", seed=seed, reconstruction_weight=0.3, augment_consistency=10.0)
    tables.screen_table(tables.finished(tmp_path / "augment"), tmp_path)
    out = capsys.readouterr().out
    assert "| mnist | 1 | 0.7000 | 0.6900 | 0.6300 | 0.6400 |" in out
    assert "| mnist | 2 | 0.6600 | 0.6500 | – | – |" in out
    assert "| mnist | mean ± sd | 0.6600 ± 0.0566 | 0.6500 ± 0.0566 | 0.6250 ± 0.0071 | 0.6250 ± 0.0212 |" in out


def test_imsat_recipes_table_names_each_recipe(tmp_path, capsys):
    tables = bench_script("protocol_tables")
    write_run(tmp_path / "imsat-all" / "published", {"accuracy": 0.92, "mutual_info_xy": 2.25}, model="imsat",
              train_split="all")
    write_run(tmp_path / "imsat-all" / "recipe", {"accuracy": 0.99, "mutual_info_xy": 2.28}, model="imsat",
              train_split="all", vat_eps=1.0, vat_eps_neighbours=0, hidden_init_scale=0.1, output_init_scale=1e-4)
    tables.imsat_recipes_table(tables.finished(tmp_path / "imsat-all"))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[1:] == ["| none (the published recipe) | 0.316 / 0.01 | 0 | all | 0.9200 | 2.250 |",
                         "| vat_eps 1, vat_eps_neighbours 0 | 0.1 / 0.0001 | 0 | all | 0.9900 | 2.280 |"]
