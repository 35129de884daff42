"""The protocol tables of docs/method.md (and the README's recipe table), printed as Markdown from the
run directories of results/protocol/: the recipes on MNIST (test numbers, 3 seeds), the variants behind
the tuned recipe (validation numbers only: the choice is made there), InfoVAE's divergence (MMD
against KL, under the tuned recipe then and now), the VAT weight over seeds, IMSAT's VAT in IMAE (variants,
then seeds, the reconstruction weight, Fashion-MNIST), IMSAT itself, IMSAT's published recipe with one change
at a time, and restarts, the augmentation consistency, xi 10 and IMSAT's initialisation in IMAE against single
runs.

    python bench/protocol_tables.py [--root results/protocol]

Unfinished runs are left out and counted, so the tables can be printed while a study still runs."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from imae.config import TrainConfig
from imae.results import aggregate_variance, results_table

# The settings in which the two IMSAT recipes differ (results/protocol/imsat-ablation.toml).
IMSAT_RECIPE_KEYS = ("vat_eps", "vat_eps_neighbours", "vat_xi", "beta", "vat_weight", "optimizer", "lr",
                     "momentum", "lr_decay", "grad_clip", "batch_size")


def finished(study_dir: Path) -> list[dict]:
    if not study_dir.is_dir():
        return []
    rows = results_table(study_dir)
    missing = sum(row["status"] != "finished" for row in rows)
    if missing:
        print(f"({study_dir}: {missing} run(s) not finished, left out)\n")
    return [row for row in rows if row["status"] == "finished"]


def spread(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def recipes_table(rows: list[dict]) -> None:
    print("| recipe | seed | validation accuracy | test accuracy | test I(x;y) | test reconstruction |")
    print("|---|---|---|---|---|---|")
    for recipe in ("tuned", "paper"):
        seed_rows([r for r in rows if r["recipe"] == recipe], f"| {recipe} ")
    print()


def seed_rows(rows: list[dict], prefix: str = "") -> None:
    """One table row per seed and, for several, the mean ± sd: validation and test accuracy, test I(x;y) and
    reconstruction; each row begins with prefix (a first column)."""
    group = sorted(rows, key=lambda r: r["seed"])
    for r in group:
        print(f"{prefix}| {r['seed']} | {r['validation_accuracy']:.4f} | {r['accuracy']:.4f} | "
              f"{r['mutual_info_xy']:.3f} | {r['reconstruction_error']:.1f} |")
    if len(group) > 1:
        print(f"{prefix}| mean ± sd | {spread([r['validation_accuracy'] for r in group], 4)} | "
              f"{spread([r['accuracy'] for r in group], 4)} | {spread([r['mutual_info_xy'] for r in group], 3)} | "
              f"{spread([r['reconstruction_error'] for r in group], 1)} |")


def defaults_table(rows: list[dict]) -> None:
    print("| optimiser | w_rec | w_H | w_vat | validation accuracy | validation I(x;y) | validation reconstruction |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: -r["validation_accuracy"]):
        print(f"| {r['optimizer']} | {r['reconstruction_weight']:g} | {r['marginal_entropy_weight']:g} | "
              f"{r['vat_weight']:g} | {r['validation_accuracy']:.4f} | {r['validation_mutual_info_xy']:.3f} | "
              f"{r['validation_reconstruction_error']:.1f} |")
    if rows:
        best = max(rows, key=lambda r: r["validation_accuracy"])
        print(f"\nChosen on validation: {best['run']}; its test numbers: accuracy {best['accuracy']:.4f}, "
              f"I(x;y) {best['mutual_info_xy']:.3f}, reconstruction {best['reconstruction_error']:.1f}\n")


def infovae_table(rows: list[dict]) -> None:
    print("| divergence | β | seeds | validation accuracy | test accuracy | test I(x;y) | test reconstruction | "
          "aggregate Var[z_k] |")
    print("|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["infovae_divergence"], r["beta"]) for r in rows}, key=lambda k: (k[0] != "mmd-rbf", k))
    for divergence, beta in keys:
        group = [r for r in rows if (r["infovae_divergence"], r["beta"]) == (divergence, beta)]
        print(f"| {divergence} | {beta:g} | {len(group)} | {spread([r['validation_accuracy'] for r in group], 4)} | "
              f"{spread([r['accuracy'] for r in group], 4)} | {spread([r['mutual_info_xy'] for r in group], 3)} | "
              f"{spread([r['reconstruction_error'] for r in group], 1)} | "
              f"{spread([aggregate_variance(r) for r in group], 2)} |")
    divergences = dict.fromkeys(divergence for divergence, _ in keys)  # in the table's order, once each
    if divergences:
        means = [statistics.mean(r["validation_accuracy"] for r in rows if r["infovae_divergence"] == divergence)
                 for divergence in divergences]
        print("\nMean validation accuracy over β: " + ", ".join(f"{d} {m:.4f}" for d, m in zip(divergences, means)))
    print()


def at_epoch(run_dir: Path, epoch: int, key: str = "accuracy", split: str = "validation") -> float | None:
    """A monitored number of a run at one epoch of its history (None if the run has no such epoch)."""
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["epoch"] == epoch:
            return row[split][key]
    return None


def vat_variant(r: dict) -> str:
    radius = (f"{r['vat_eps']:g} x 10th neighbour" if r["vat_eps_neighbours"] else f"{r['vat_eps']:g}")
    init = "" if r.get("hidden_init_scale") is None else f", init {r['hidden_init_scale']:g}/{r['output_init_scale']:g}"
    decay = "" if r["lr_decay"] == 0.98 else f", lr decay {r['lr_decay']:g}"
    return f"w_vat {r['vat_weight']:g}, ξ {r['vat_xi']:g}, radius {radius}{init}{decay}"


def imsat_vat_table(rows: list[dict], root: Path) -> None:
    print("| variant (IMAE, tuned recipe, seed 0) | validation accuracy at epoch 20 | at epoch 50 | "
          "test accuracy | test reconstruction |")
    print("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: -r["validation_accuracy"]):
        print(f"| {vat_variant(r)} | {at_epoch(root / r['run'], 20):.4f} | {r['validation_accuracy']:.4f} | "
              f"{r['accuracy']:.4f} | {r['reconstruction_error']:.1f} |")
    print()


def seeds_table(rows: list[dict]) -> None:
    print("| seed | validation accuracy | test accuracy | test I(x;y) | test reconstruction |")
    print("|---|---|---|---|---|")
    seed_rows(rows)
    print()


def grouped_seeds_table(rows: list[dict], variant: Callable[[dict], str], name: str) -> None:
    """The seed table of each variant (its name in the first column), best mean validation accuracy first."""
    print(f"| {name} | seed | validation accuracy | test accuracy | test I(x;y) | test reconstruction |")
    print("|---|---|---|---|---|---|")
    variants = {variant(r) for r in rows}
    for v in sorted(variants, key=lambda v: -statistics.mean(r["validation_accuracy"] for r in rows if variant(r) == v)):
        seed_rows([r for r in rows if variant(r) == v], f"| {v} ")
    print()


def imsat_table(rows: list[dict]) -> None:
    print("| seed | trained on | test accuracy | test I(x;y) |")
    print("|---|---|---|---|")
    for split in sorted({r["train_split"] for r in rows}, reverse=True):  # train, then all
        group = sorted((r for r in rows if r["train_split"] == split), key=lambda r: r["seed"])
        for r in group:
            print(f"| {r['seed']} | {split} | {r['accuracy']:.4f} | {r['mutual_info_xy']:.3f} |")
        if len(group) > 1:
            print(f"| mean ± sd | {split} | {spread([r['accuracy'] for r in group], 4)} | "
                  f"{spread([r['mutual_info_xy'] for r in group], 3)} |")
    print()


def imsat_recipes_table(rows: list[dict]) -> None:
    """IMSAT runs of several recipes (imsat-all: the published one and the re-implementation's), one row each."""
    print("| change from the published recipe | init scales (hidden / output) | seed | trained on | test accuracy | "
          "test I(x;y) |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (changes_from_published(r), r["seed"])):
        print(f"| {changes_from_published(r)} | {init_scales(r)} | {r['seed']} | {r['train_split']} | "
              f"{r['accuracy']:.4f} | {r['mutual_info_xy']:.3f} |")
    print()


def changes_from_published(r: dict) -> str:
    """The settings in which an IMSAT run differs from IMSAT's published recipe (its model defaults)."""
    published = TrainConfig(model="imsat").validate().to_dict()
    values = {key: r.get(key, published[key]) for key in IMSAT_RECIPE_KEYS}  # older runs lack newer settings
    changed = [f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
               for key, value in values.items() if value != published[key]]
    return ", ".join(changed) or "none (the published recipe)"


def first_epoch_at(run_dir: Path, target: float = 0.95) -> int | None:
    """The first epoch whose monitored test accuracy reaches target (None: never)."""
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["test"]["accuracy"] >= target:
            return row["epoch"]
    return None


def init_scales(r: dict) -> str:
    """The encoder's init scales, hidden / output: 0.1 / 0.0001 is our first reading of IMSAT's chainer wscale,
    0.316 / 0.01 chainer 1.21's (imae/config.py)."""
    return f"{r['hidden_init_scale']:.3g} / {r['output_init_scale']:g}"


def imsat_ablation_table(rows: list[dict], root: Path) -> None:
    """IMSAT's published recipe (the imsat and imsat-init studies, trained on the 60,000) and each run of the
    ablation, which changes it one setting group at a time: test accuracy at epoch 20 and at the end, and when it
    reached 0.95. The init scales are a column of their own: the two readings of the published initialisation."""
    runs = [(root / study / r["run"], r) for study in ("imsat", "imsat-init") for r in finished(root / study)
            if r["train_split"] == "train"]
    runs += [(root / "imsat-ablation" / r["run"], r) for r in rows]
    print("| change from the published recipe | init scales (hidden / output) | seed | test accuracy at epoch 20 | "
          "test accuracy | first epoch at 0.95 | test I(x;y) |")
    print("|---|---|---|---|---|---|---|")
    for run_dir, r in sorted(runs, key=lambda pair: (changes_from_published(pair[1]) != "none (the published recipe)",
                                                      changes_from_published(pair[1]), init_scales(pair[1]),
                                                      pair[1]["seed"])):
        first = first_epoch_at(run_dir)
        print(f"| {changes_from_published(r)} | {init_scales(r)} | {r['seed']} | "
              f"{at_epoch(run_dir, 20, split='test'):.4f} | {r['accuracy']:.4f} | {'never' if first is None else first} "
              f"| {r['mutual_info_xy']:.3f} |")
    print()


def single_runs(root: Path) -> dict[tuple[str, int], dict]:
    """The runs of the tuned recipe as the restarts and augment studies pin it (w_rec 0.3 in
    imsat-vat-reconstruction), by (data set, seed): what each of their runs is compared with."""
    return {(r["dataset"], r["seed"]): r for r in finished(root / "imsat-vat-reconstruction")
            if r["reconstruction_weight"] == 0.3}


def paired_means(first_cells: str, paired: list[tuple[dict, dict]]) -> None:
    """The mean ± sd row over the seeds that have both a run and its single run, after first_cells."""
    if len(paired) > 1:
        print(f"{first_cells} {spread([r['validation_accuracy'] for r, _ in paired], 4)} | "
              f"{spread([r['accuracy'] for r, _ in paired], 4)} | "
              f"{spread([s['validation_accuracy'] for _, s in paired], 4)} | "
              f"{spread([s['accuracy'] for _, s in paired], 4)} |")


def screen_table(rows: list[dict], root: Path) -> None:
    """Each run of a screen (one change to the tuned recipe: the augmentation consistency, xi 10, the
    initialisation) beside the single run of its seed without the change."""
    singles = single_runs(root)
    print("| data set | seed | validation accuracy | test accuracy | without: validation | without: test |")
    print("|---|---|---|---|---|---|")
    for dataset in sorted({r["dataset"] for r in rows}, reverse=True):  # mnist, then fashion-mnist
        group = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["seed"])
        for r in group:
            single = singles.get((dataset, r["seed"]))
            without = f"{single['validation_accuracy']:.4f} | {single['accuracy']:.4f}" if single else "– | –"
            print(f"| {dataset} | {r['seed']} | {r['validation_accuracy']:.4f} | {r['accuracy']:.4f} | {without} |")
        paired_means(f"| {dataset} | mean ± sd |",
                     [(r, singles[(dataset, r["seed"])]) for r in group if (dataset, r["seed"]) in singles])
    print()


def restarts_table(rows: list[dict], root: Path) -> None:
    """Each --restarts 2 run beside the single run of its seed: the candidates' training I(x;y) that chose,
    then the accuracies."""
    singles = single_runs(root)
    print("| data set | seed | training I(x;y) of the candidates | continued | validation accuracy | test accuracy "
          "| single run: validation | single run: test |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in sorted({r["dataset"] for r in rows}, reverse=True):  # mnist, then fashion-mnist
        group = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["seed"])
        for r in group:
            record = json.loads((root / "restarts" / r["run"] / "restarts.json").read_text())
            scores = " / ".join(f"{c['train_mutual_info_xy']:.4f}" for c in record["restart_candidates"])
            chosen = record["restart_candidates"][record["restart_chosen"]]["seed"]
            single = singles.get((dataset, r["seed"]))
            single_columns = (f"{single['validation_accuracy']:.4f} | {single['accuracy']:.4f}" if single
                              else "– | –")
            print(f"| {dataset} | {r['seed']} | {scores} | seed {chosen} | {r['validation_accuracy']:.4f} | "
                  f"{r['accuracy']:.4f} | {single_columns} |")
        paired_means(f"| {dataset} | mean ± sd | | |",
                     [(r, singles[(dataset, r["seed"])]) for r in group if (dataset, r["seed"]) in singles])
    print()


def reconstruction_weight(r: dict) -> str:
    return f"{r['dataset']}, w_rec {r['reconstruction_weight']:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("results/protocol"))
    root = parser.parse_args().root
    studies = (("recipes", recipes_table), ("defaults", defaults_table), ("infovae", infovae_table),
               ("infovae-tuned", infovae_table),
               ("vat-weight", seeds_table), ("imsat-vat", lambda rows: imsat_vat_table(rows, root / "imsat-vat")),
               ("imsat-vat-seeds", seeds_table),
               ("imsat-vat-reconstruction",
                lambda rows: grouped_seeds_table(rows, reconstruction_weight, "data set, reconstruction weight")),
               ("imsat-vat-fashion", lambda rows: grouped_seeds_table(rows, vat_variant, "VAT")),
               ("imsat", imsat_table), ("imsat-init", imsat_table), ("imsat-all", imsat_recipes_table),
               ("imsat-vat-weight", imsat_table), ("imsat-recipe", imsat_table),
               ("imsat-ablation", lambda rows: imsat_ablation_table(rows, root)),
               ("restarts", lambda rows: restarts_table(rows, root)), ("augment", lambda rows: screen_table(rows, root)),
               ("imae-xi", lambda rows: screen_table(rows, root)), ("imae-init", lambda rows: screen_table(rows, root)))
    for name, table in studies:
        print(f"### {name}\n")
        table(finished(root / name))


if __name__ == "__main__":
    main()
