"""The numbers that judge the paper's claims (EXPERIMENTS.md), printed as Markdown from a study's runs
(results/paper-cpu): C1 accuracy across beta on MNIST and Fashion-MNIST (Fig. 3), C2 Prop. 1's informative
z_k (Fig. 2a), C3 MIG, reconstruction and total correlation on dSprites (Fig. 5), C4 the VAT ablation
(Fig. 6, Appendix D), JointVAE's local optima and capacity targets (Fig. 8; in the progress table JointVAE
is named with its targets (C_y, C_z)), and InfoVAE with eq (5)'s KL against MMD (named with its divergence).

    python bench/paper_claims.py STUDY_DIR

First, where STUDY_DIR holds its study file as STUDY_DIR/<its name>.toml (results/paper-cpu/paper-cpu.toml),
how many of its runs have finished, by data set, recipe, VAT and model.

An interval is the 80% Student-t interval of a mean over seeds (imae.plots.mean_interval, the paper's
"80% confidence intervals"), written "mean [low, high]"; one value has none. Runs of two recipes are never
averaged together: every table is per recipe. Unfinished runs are left out and counted, so the tables can
be printed while a study still runs."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from scipy import stats

from imae.config import AUTOENCODERS
from imae.figures import (DSPRITES, IMAGE_DATASETS, beta_or_gamma, capacities, finished, has_recipe_divergence,
                          paper_settings, recipe_of)
from imae.plots import finite, mean_interval
from imae.results import aggregate_variance, per_dimension, results_table
from imae.study import load_study

BETA_RULE = "with VAT, IMAE at γ = 2β, JointVAE at its published capacity targets"
# The per-dimension metrics of Prop. 1, flattened by results_table to "per_dimension.NAME.k".
INFORMATION, SPREAD, NOISE = "mutual_info_xz", "variance_of_posterior_mean", "mean_posterior_variance"


def finished_runs(study_dir: Path) -> list[dict]:
    rows = results_table(study_dir)
    left_out = sum(row["status"] != "finished" for row in rows)
    if left_out:
        print(f"({study_dir}: {left_out} run(s) not finished, left out)\n")
    return [row for row in rows if row["status"] == "finished"]


def note(message: str) -> None:
    """paper_settings' log: what it left out, as a line above the tables it feeds."""
    print(f"({message})\n")


# Formatting


def cell(values: Iterable, digits: int = 3, interval: bool = True) -> str:
    """'mean [low, high]' over the finite values (80% Student-t interval of the mean); the mean alone for
    one value or without interval; '–' for none."""
    values = [v for v in values if finite(v)]
    if not values:
        return "–"
    mean, low, high = mean_interval(values)
    if len(values) == 1 or not interval:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def number(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if finite(value) else "–"


def table(header: str, columns: list[str], lines: list[list]) -> None:
    print(header + "\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for line in lines:
        print("| " + " | ".join(str(x) for x in line) + " |")
    print()


def counts(sizes: Iterable[int]) -> str:
    """'3' or '2–3': how many runs each cell averages."""
    sizes = sorted(set(sizes))
    return "0" if not sizes else str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"


# Grouping and pairing


def autoencoders(rows: list[dict]) -> list[dict]:
    """The paper's four models; IMSAT (no decoder, no z) is in none of its claims."""
    return [r for r in rows if r.get("model") in AUTOENCODERS]


def by_recipe(rows: list[dict]) -> dict[str, list[dict]]:
    return {recipe: [r for r in rows if recipe_of(r) == recipe] for recipe in sorted({recipe_of(r) for r in rows})}


def group_by(rows: list, key_of: Callable) -> dict:
    """Rows grouped by key_of, the groups in the order of their keys."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(key_of(row), []).append(row)
    return {key: groups[key] for key in sorted(groups)}


def models_of(rows: list[dict]) -> list[str]:
    present = {r["model"] for r in rows}
    return [m for m in AUTOENCODERS if m in present]


def metric(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if finite(r.get(key))]


def paired(rows_a: list[dict], rows_b: list[dict], key_of: Callable) -> list[tuple[dict, dict]]:
    """(a, b) for every key that exactly one run of rows_a and exactly one of rows_b hold: a run without a
    partner is not used, and a key held by several runs on one side is ambiguous, left out and said."""
    side_a, side_b = group_by(rows_a, key_of), group_by(rows_b, key_of)
    shared = sorted(side_a.keys() & side_b.keys())
    ambiguous = [k for k in shared if len(side_a[k]) > 1 or len(side_b[k]) > 1]
    if ambiguous:
        note(f"left out of a pairing, each held by several runs: {ambiguous}")
    return [(side_a[k][0], side_b[k][0]) for k in shared if k not in ambiguous]


def paired_values(pairs: list[tuple[dict, dict]], key: str) -> tuple[list[float], list[float]]:
    """The values of key in a and in b, over the pairs where both hold a finite value."""
    both = [(a[key], b[key]) for a, b in pairs if finite(a.get(key)) and finite(b.get(key))]
    return [a for a, _ in both], [b for _, b in both]


def differences(pairs: list[tuple[dict, dict]], key: str) -> list[float]:
    """b - a per pair."""
    values_a, values_b = paired_values(pairs, key)
    return [b - a for a, b in zip(values_a, values_b)]


# C1: accuracy across beta


def with_vat_groups(rows: list[dict], section: str):
    """(data set, recipe, the runs paper_settings keeps) per image data set and recipe, autoencoders with VAT;
    a data set without such runs gets one line saying so."""
    for dataset in IMAGE_DATASETS:
        runs = autoencoders(finished(rows, dataset=dataset, vat=True))
        if not runs:
            print(f"{section} ({dataset}): no finished runs with VAT\n")
            continue
        for recipe, group in by_recipe(runs).items():
            yield dataset, recipe, paper_settings(group, note)


def c1_tables(rows: list[dict]) -> None:
    for dataset, recipe, kept in with_vat_groups(rows, "C1"):
        for key, what in (("accuracy", "test accuracy"), ("mutual_info_xy", "test I(x;y) (nats)")):
            beta_table(kept, key, f"C1 ({dataset}, recipe {recipe}): {what} by model and β")
        accuracy_change_table(kept, f"C1 ({dataset}, recipe {recipe})")


def beta_table(rows: list[dict], key: str, title: str) -> None:
    """Models as rows, betas as columns, the mean [interval] of key over seeds in each cell."""
    betas = sorted({r["beta"] for r in rows})
    cells = group_by(rows, lambda r: (r["model"], r["beta"]))
    lines = [[model] + [cell(metric(cells.get((model, beta), []), key)) for beta in betas]
             for model in models_of(rows)]
    seeds = counts(map(len, cells.values()))
    table(f"{title}, {BETA_RULE}; {len(rows)} runs, {seeds} seed{'' if seeds == '1' else 's'} per cell",
          ["model"] + [f"β = {beta:g}" for beta in betas], lines)


def accuracy_change(rows: list[dict]) -> tuple[float, float, list[float]]:
    """One model's runs: (smallest beta, largest beta, accuracy at the largest minus at the smallest, per
    seed that ran at both); no differences where the model ran at one beta only."""
    smallest, largest = min(r["beta"] for r in rows), max(r["beta"] for r in rows)
    if smallest == largest:
        return smallest, largest, []
    pairs = paired([r for r in rows if r["beta"] == smallest], [r for r in rows if r["beta"] == largest],
                   lambda r: r["seed"])
    return smallest, largest, differences(pairs, "accuracy")


def accuracy_change_table(rows: list[dict], title: str) -> None:
    lines = []
    for model in models_of(rows):
        smallest, largest, change = accuracy_change([r for r in rows if r["model"] == model])
        lines.append([model, f"{smallest:g} → {largest:g}", len(change), cell(change)])
    table(f"{title}: change of test accuracy from the smallest to the largest β, paired by seed "
          f"(mean [interval] of the per-seed differences), {BETA_RULE}; {len(rows)} runs",
          ["model", "β", "seeds paired", "accuracy change"], lines)


# C2: Prop. 1, informative z_k have dispersed means and small variances


def prop1_correlations(row: dict) -> tuple[float, float] | None:
    """Spearman correlations across the K1 dimensions of one run: I(x;z_k) with Var[mu_k], and I(x;z_k)
    with E[sigma_k^2]; None when the run lacks them (nan where one is constant)."""
    information, spread, noise = (per_dimension(row, name) for name in (INFORMATION, SPREAD, NOISE))
    if len(information) < 2 or not len(information) == len(spread) == len(noise):
        return None
    if not np.isfinite(np.concatenate([information, spread, noise])).all():
        return None
    if np.ptp(information) == 0:  # no ranking of the dimensions by information; spearmanr would warn
        return math.nan, math.nan
    return tuple(float(stats.spearmanr(information, other)[0]) if np.ptp(other) > 0 else math.nan
                 for other in (spread, noise))


def variants(rows: list[dict]) -> dict[str, list[dict]]:
    """One model's runs by variant: InfoVAE's with another divergence than their recipe's apart, named by it."""
    return group_by(rows, lambda r: r["model"] if r["model"] != "info-vae" or has_recipe_divergence(r)
                    else f"info-vae ({r.get('infovae_divergence')})")


def c2_tables(rows: list[dict]) -> None:
    runs = autoencoders(rows)
    with_metrics = {id(r): prop1_correlations(r) for r in runs}
    runs = [r for r in runs if with_metrics[id(r)] is not None]
    if not runs:
        print("C2: no finished runs with per-dimension metrics\n")
        return
    groups = group_by(runs, lambda r: r["dataset"])
    rank = {d: i for i, d in enumerate((*IMAGE_DATASETS, DSPRITES))}  # the paper's order, then the user's data
    for dataset in sorted(groups, key=lambda d: (rank.get(d, len(rank)), d)):
        group = groups[dataset]
        lines = []
        for recipe, recipe_rows in by_recipe(group).items():
            for model in models_of(recipe_rows):
                for label, model_rows in variants([r for r in recipe_rows if r["model"] == model]).items():
                    spread, noise = zip(*(with_metrics[id(r)] for r in model_rows))
                    lines.append([recipe, label, len(spread), cell(spread), cell(noise)])
        table(f"C2 ({dataset}): Spearman correlation across the K1 dimensions of a run, mean [interval] over "
              f"runs (every β, with and without VAT); Prop. 1 predicts the first > 0, the second < 0; "
              f"{len(group)} runs", ["recipe", "model", "runs", "ρ(I(x;z_k), Var[μ_k])", "ρ(I(x;z_k), E[σ_k²])"],
              lines)


# C3: dSprites, MIG against reconstruction and total correlation


def c3_tables(rows: list[dict]) -> None:
    runs = autoencoders(finished(rows, dataset=DSPRITES, vat=True))
    if not runs:
        print("C3: no finished dSprites runs with VAT\n")
        return
    for recipe, group in by_recipe(runs).items():
        kept = paper_settings(group, note)
        dsprites_means_table(kept, f"C3 (dsprites, recipe {recipe})")
        mig_tc_table(kept, f"C3 (dsprites, recipe {recipe})")


def dsprites_means_table(rows: list[dict], title: str) -> None:
    lines = []
    for model in models_of(rows):
        for x, seeds in group_by([r for r in rows if r["model"] == model], beta_or_gamma).items():
            lines.append([model, f"{x:g}", len(seeds), cell(metric(seeds, "mig")), cell(metric(seeds, "mig_with_y")),
                          cell(metric(seeds, "reconstruction_error"), 1), cell(metric(seeds, "total_correlation")),
                          cell(metric(seeds, "total_correlation_null"))])
    table(f"{title}: mean [interval] over seeds, at γ for IMAE (β = γ/2) and β for the others, with VAT; "
          f"{len(rows)} runs. The null is TC of the same code with its dimensions shuffled apart: a TC near it "
          f"is not resolved (docs/usage.md)", ["model", "γ (IMAE) or β", "seeds", "MIG", "MIG over (y, z)",
                                               "reconstruction error", "total correlation", "its null"], lines)


# A TC within this factor of its null (the same code, dimensions shuffled apart) is not resolved: over N images a
# near-deterministic code reads a large TC whatever its dependence (EXPERIMENTS.md, "How total correlation is read").
RESOLVED_TC_RATIO = 2.0


def tc_resolved(row: dict) -> bool:
    null = row.get("total_correlation_null")
    return finite(null) and row["total_correlation"] >= RESOLVED_TC_RATIO * null


def mig_tc_correlation(rows: list[dict]) -> tuple[int, float, float]:
    """(n, Pearson r, its p-value) between MIG and total correlation over the runs holding both; r and p are
    nan below 3 runs (two points always lie on a line)."""
    both = [(r["mig"], r["total_correlation"]) for r in rows
            if finite(r.get("mig")) and finite(r.get("total_correlation"))]
    if len(both) < 3 or np.ptp(np.array(both), axis=0).min() == 0:
        return len(both), math.nan, math.nan
    result = stats.pearsonr(*zip(*both))
    return len(both), float(result[0]), float(result[1])


def mig_tc_table(rows: list[dict], title: str) -> None:
    lines = []
    for model in models_of(rows):
        runs = [row for row in rows if row["model"] == model]
        n, r, p = mig_tc_correlation(runs)
        n_resolved, r_resolved, p_resolved = mig_tc_correlation(
            [row for row in runs if finite(row.get("total_correlation")) and tc_resolved(row)])
        lines.append([model, n, number(r), number(p), n_resolved, number(r_resolved), number(p_resolved)])
    table(f"{title}: Pearson correlation between MIG and total correlation across each model's runs "
          f"(every γ or β and seed; the claim predicts r < 0); {len(rows)} runs. \"resolved\": only the runs whose "
          f"TC is at least {RESOLVED_TC_RATIO:g} times its null",
          ["model", "runs", "r", "p", "resolved runs", "r", "p"], lines)


# C4: VAT ablation


def vat_pair_key(row: dict) -> tuple:
    return row["dataset"], row["model"], row["beta"], row["seed"], recipe_of(row)


def c4_tables(rows: list[dict]) -> None:
    for dataset in IMAGE_DATASETS:
        runs = autoencoders(finished(rows, dataset=dataset))
        if not finished(runs, vat=False):
            print(f"C4 ({dataset}): no finished runs without VAT\n")
            continue
        for recipe, group in by_recipe(runs).items():
            vat_table(paper_settings(group, note), f"C4 ({dataset}, recipe {recipe})")


def vat_table(rows: list[dict], title: str) -> None:
    pairs = paired(finished(rows, vat=False), finished(rows, vat=True), vat_pair_key)
    if not pairs:
        print(f"{title}: no runs with and without VAT that pair\n")
        return
    lines = []
    for model in models_of([a for a, _ in pairs]):
        for beta, group in group_by([p for p in pairs if p[0]["model"] == model], lambda p: p[0]["beta"]).items():
            without, with_vat = paired_values(group, "accuracy")
            information_without, information_with = paired_values(group, "mutual_info_xy")
            lines.append([model, f"{beta:g}", len(without), cell(with_vat, 3, interval=False),
                          cell(without, 3, interval=False), cell(differences(group, "accuracy")),
                          cell(information_with, 3, interval=False), cell(information_without, 3, interval=False)])
    # I(x;y) beside the accuracy: a y that carries nothing (beta-VAE's) can still sort a few digits by its argmax.
    table(f"{title}: test accuracy with VAT minus without, paired by seed (same data set, model, β, seed, "
          f"recipe; IMAE at γ = 2β), and the mean accuracies and I(x;y) of the paired runs; {2 * len(pairs)} runs",
          ["model", "β", "pairs", "with VAT", "without VAT", "with − without", "I(x;y) with VAT",
           "I(x;y) without VAT"], lines)


# JointVAE's local optima (Fig. 8)


def seed_spread(rows: list[dict]) -> tuple[float, int]:
    """The standard deviation of test accuracy across seeds at each beta (betas with 2 or more seeds),
    averaged over beta; and how many betas it averages."""
    spreads = [statistics.stdev(metric(group, "accuracy")) for group in group_by(rows, lambda r: r["beta"]).values()
               if len(metric(group, "accuracy")) >= 2]
    return (statistics.mean(spreads) if spreads else math.nan), len(spreads)


def collapsed(rows: list[dict]) -> tuple[int, int]:
    """(runs whose y collapsed: I(x;y) below half of log K2, runs with I(x;y))."""
    measured = [r for r in rows if finite(r.get("mutual_info_xy"))]
    return sum(r["mutual_info_xy"] < 0.5 * math.log(r["categories"]) for r in measured), len(measured)


def local_optima_tables(rows: list[dict]) -> None:
    for dataset, recipe, kept in with_vat_groups(rows, "Local optima"):
        lines = []
        for model in models_of(kept):
            model_rows = [r for r in kept if r["model"] == model]
            spread, betas = seed_spread(model_rows)
            down, measured = collapsed(model_rows)
            lines.append([model, len(model_rows), betas, number(spread),
                          f"{down} of {measured} ({down / measured:.0%})" if measured else "–"])
        table(f"Local optima ({dataset}, recipe {recipe}): spread of test accuracy across seeds and runs whose "
              f"y collapsed, {BETA_RULE}; {len(kept)} runs",
              ["model", "runs", "βs with ≥ 2 seeds", "sd of accuracy across seeds (mean over β)",
               "I(x;y) < ½ log K2"], lines)


def capacity_tables(rows: list[dict]) -> None:
    """Fig. 8 itself: JointVAE with VAT at each capacity target (C_y, C_z) and beta, per data set and recipe."""
    for dataset in IMAGE_DATASETS:
        runs = finished(rows, dataset=dataset, model="joint-vae", vat=True)
        if not runs:
            print(f"Fig. 8 ({dataset}): no finished JointVAE runs with VAT\n")
        for recipe, group in by_recipe(runs).items():
            targets = group_by(group, capacities)
            if len(targets) < 2:
                print(f"Fig. 8 ({dataset}, recipe {recipe}): JointVAE at one capacity target so far, {list(targets)}\n")
                continue
            lines = []
            for (c_y, c_z), target_rows in targets.items():
                for beta, runs in group_by(target_rows, lambda r: r["beta"]).items():
                    down, measured = collapsed(runs)
                    lines.append([f"({c_y:g}, {c_z:g})", f"{beta:g}", len(runs), cell(metric(runs, "accuracy")),
                                  cell(metric(runs, "mutual_info_xy")), f"{down} of {measured}"])
            table(f"Fig. 8 ({dataset}, recipe {recipe}): JointVAE with VAT at each capacity target (C_y, C_z), "
                  f"test accuracy and I(x;y) (nats), mean [interval] over seeds; {len(group)} runs",
                  ["(C_y, C_z)", "β", "seeds", "accuracy", "I(x;y)", "I(x;y) < ½ log K2"], lines)


# InfoVAE: eq (5)'s KL, as the paper writes it, against MMD (RBF kernel), InfoVAE's own


def infovae_divergence_tables(rows: list[dict]) -> None:
    for dataset in IMAGE_DATASETS:
        runs = finished(rows, dataset=dataset, model="info-vae")
        for (recipe, vat), group in group_by(runs, lambda r: (recipe_of(r), r.get("vat"))).items():
            if len({r.get("infovae_divergence") for r in group}) < 2:
                continue
            lines = []
            for (divergence, beta), cell_rows in sorted(group_by(group, lambda r: (r.get("infovae_divergence"),
                                                                                   r["beta"])).items()):
                lines.append([divergence, f"{beta:g}", len(cell_rows), cell(metric(cell_rows, "accuracy")),
                              cell(metric(cell_rows, "mutual_info_xy")),
                              cell(metric(cell_rows, "reconstruction_error"), 1),
                              cell([aggregate_variance(r) for r in cell_rows], 2)])
            table(f"InfoVAE ({dataset}, recipe {recipe}, {'with' if vat else 'without'} VAT): its divergence on "
                  f"p(z), eq (5)'s KL by the minibatch estimator (the paper's) or MMD (InfoVAE's own, RBF kernel), "
                  f"mean [interval] over seeds; Var[z_k] is the aggregate posterior's, mean over k (N(0, I): 1); "
                  f"{len(group)} runs", ["divergence", "β", "seeds", "accuracy", "I(x;y)", "reconstruction error",
                                         "Var[z_k]"], lines)


def progress_table(study_dir: Path) -> None:
    """Finished runs against the study file's, by data set, recipe, VAT and model (nothing without the file)."""
    study_file = study_dir / f"{study_dir.resolve().name}.toml"
    if not study_file.is_file():
        return
    groups: dict[tuple, list[int]] = {}
    for run in load_study(str(study_file)):
        c = run.config
        recipe = "IMSAT's own" if c.model == "imsat" else c.recipe
        model = (f"{c.model} ({c.capacity_y:g}, {c.capacity_z:g})" if c.model == "joint-vae" else
                 f"{c.model} ({c.infovae_divergence})" if c.model == "info-vae" else c.model)
        done = groups.setdefault((c.dataset, recipe, "with" if c.vat else "without", model), [0, 0])
        done[0] += (study_dir / run.name / "metrics.json").is_file()
        done[1] += 1
    total = [sum(done[i] for done in groups.values()) for i in (0, 1)]
    table(f"## Progress\n\n{total[0]} of the {total[1]} runs of {study_file} have finished.",
          ["data set", "recipe", "VAT", "model", "finished", "planned"],
          [[*key, done, planned] for key, (done, planned) in groups.items()])


SECTIONS = (("C1: IMAE keeps its accuracy across β", c1_tables),
            ("C2: informative z_k have dispersed means and small variances (Prop. 1)", c2_tables),
            ("C3: dSprites, MIG against reconstruction and total correlation", c3_tables),
            ("C4: VAT is needed to learn y", c4_tables),
            ("JointVAE's local optima (Fig. 8)", local_optima_tables),
            ("Fig. 8: JointVAE's capacity targets", capacity_tables),
            ("InfoVAE: the paper's KL on p(z) against MMD", infovae_divergence_tables))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    study_dir = parser.parse_args().study_dir
    if not study_dir.is_dir():
        parser.error(f"{study_dir}: not a directory")
    progress_table(study_dir)
    rows = finished_runs(study_dir)
    for title, tables in SECTIONS:
        print(f"## {title}\n")
        tables(rows)


if __name__ == "__main__":
    main()
