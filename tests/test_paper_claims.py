"""bench/paper_claims.py on a fake study (config.json and metrics.json written by hand) whose numbers are
known: intervals against a hand computation with Student's t, pairing by seed, Spearman and Pearson
correlations against independent computations, recipes kept apart, the lines for sections without runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import bench_script
from imae.results import aggregate_variance
from test_figures import write_run


@pytest.fixture(scope="module")
def claims():
    return bench_script("paper_claims")


def hand_cell(values, digits: int = 3) -> str:
    """mean [mean -+ t(0.9, n-1) sd / sqrt(n)], sd with n-1, written as the script writes it."""
    values = np.asarray(values, dtype=float)
    mean, n = values.mean(), len(values)
    half = stats.t.ppf(0.9, n - 1) * math.sqrt(((values - mean) ** 2).sum() / (n - 1)) / math.sqrt(n)
    return f"{mean:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"


INFORMATION = [0.1, 0.5, 0.9, 2.0]
# Ranks against INFORMATION's (1, 2, 3, 4): the same ranks give +1, reversed -1; (2, 1, 3, 4) gives
# 1 - 6 * 2 / (4 * 15) = 0.8 and (3, 4, 2, 1) gives 1 - 6 * 18 / 60 = -0.8 (Spearman's formula, no ties).
SPREAD_RANKED = {1.0: [0.01, 0.3, 0.31, 5.0], 0.8: [0.3, 0.01, 0.31, 5.0]}
NOISE_RANKED = {-1.0: [0.9, 0.5, 0.2, 0.01], -0.8: [0.5, 0.9, 0.2, 0.01]}

PAPER_ACCURACY = {  # (model, beta, vat): accuracy per seed
    ("imae", 1.0, True): {0: 0.80, 1: 0.84, 2: 0.86},
    ("imae", 10.0, True): {0: 0.78, 1: 0.85, 2: 0.83, 3: 0.10},  # seed 3 has no beta-1 partner
    ("beta-vae", 1.0, True): {0: 0.70, 1: 0.72, 2: 0.74},
    ("beta-vae", 10.0, True): {0: 0.40, 1: 0.30, 2: 0.50},
    ("imae", 1.0, False): {0: 0.50, 1: 0.60, 5: 0.99},  # seed 5 has no with-VAT partner
}
TUNED_ACCURACY = {("imae", 1.0, True): {0: 0.97, 1: 0.98, 2: 0.99}, ("imae", 10.0, True): {0: 0.96, 1: 0.95}}
# JointVAE at MNIST's published targets (5, 5): (beta, seed): (accuracy, I(x;y)); half of log 10 is 1.151.
JOINT = {(1.0, 0): (0.60, 0.5), (1.0, 1): (0.90, 2.0), (10.0, 0): (0.50, 1.0), (10.0, 1): (0.55, 2.2)}
DSPRITES_VALUES = {  # (model, gamma or beta): [(MIG, TC) per seed]
    ("imae", 1.0): [(0.30, 0.9), (0.28, 1.1)], ("imae", 4.0): [(0.35, 0.5), (0.40, 0.45)],
    ("imae", 10.0): [(0.45, 0.2), (0.38, 0.3)],
    ("beta-vae", 1.0): [(0.10, 2.0), (0.12, 1.5)], ("beta-vae", 4.0): [(0.20, 1.2), (0.15, 1.4)],
    ("beta-vae", 10.0): [(0.22, 0.7), (0.25, 0.9)]}


def per_dimension(spread: float, noise: float) -> dict:
    return {"mutual_info_xz": INFORMATION, "variance_of_posterior_mean": SPREAD_RANKED[spread],
            "mean_posterior_variance": NOISE_RANKED[noise]}


def write_accuracies(root: Path, recipe: str, accuracies: dict) -> None:
    for (model, beta, vat), by_seed in accuracies.items():
        for seed, accuracy in by_seed.items():
            write_run(root / recipe / f"{model}-b{beta:g}-s{seed}-vat{int(vat)}",
                      {"accuracy": accuracy, "mutual_info_xy": 2.0 if vat else 1.5, "per_dimension": None},
                      dataset="mnist", model=model, beta=beta, seed=seed, vat=vat, recipe=recipe)


def write_dsprites(root: Path) -> None:
    for (model, x), seeds in DSPRITES_VALUES.items():
        for seed, (mig, tc) in enumerate(seeds):
            beta, gamma = (x / 2, x) if model == "imae" else (x, None)
            write_run(root / "dsprites" / f"{model}-{x:g}-s{seed}",
                      {"mig": mig, "mig_with_y": mig + 0.1, "total_correlation": tc,
                       "total_correlation_null": tc / 10 + seed, "reconstruction_error": 30.0 + seed, "accuracy": 0.5},
                      dataset="dsprites", model=model, beta=beta, gamma=gamma, seed=seed, recipe="paper",
                      categories=3)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """MNIST under both recipes (no Fashion-MNIST runs at all), dSprites, runs that paper_settings leaves
    out, per-dimension metrics in three runs, one unfinished run."""
    root = tmp_path_factory.mktemp("study")
    write_accuracies(root, "paper", PAPER_ACCURACY)
    write_accuracies(root, "tuned", TUNED_ACCURACY)
    for (beta, seed), (accuracy, information) in JOINT.items():
        write_run(root / "paper" / f"joint-b{beta:g}-s{seed}", {"accuracy": accuracy, "mutual_info_xy": information},
                  dataset="mnist", model="joint-vae", beta=beta, seed=seed, recipe="paper")
    # Left out by paper_settings: JointVAE off its published targets, IMAE off gamma = 2 beta.
    write_run(root / "paper" / "joint-c2", {"accuracy": 0.0, "mutual_info_xy": 0.0}, model="joint-vae", beta=1.0,
              capacity_y=2.0, capacity_z=2.0, recipe="paper")
    write_run(root / "paper" / "imae-g5", {"accuracy": 0.0, "mutual_info_xy": 0.0}, model="imae", beta=1.0,
              gamma=5.0, recipe="paper")
    write_run(root / "paper" / "unfinished", model="imae", beta=1.0, seed=9, recipe="paper")
    for seed, (spread, noise) in enumerate(((1.0, -1.0), (1.0, -1.0), (0.8, -0.8))):
        metrics = {"accuracy": 0.9, "per_dimension": per_dimension(spread, noise)}
        write_run(root / "paper" / f"imae-dims-s{seed}", metrics,
                  model="imae", beta=3.0, seed=seed, recipe="paper", vat=False)
    write_dsprites(root)
    return root


def tables(output: str) -> dict[str, list[list[str]]]:
    """Every printed table by the line above it: its rows (header row and rule left out) as lists of cells."""
    found, lines = {}, output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and (i < 2 or not lines[i - 1].startswith("|")):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip("|").split("|")])
            found[lines[i - 2]] = rows
    return found


def table_of(output: str, title_start: str) -> list[list[str]]:
    matches = [rows for title, rows in tables(output).items() if title.startswith(title_start)]
    assert len(matches) == 1, (title_start, list(tables(output)))
    return matches[0]


def row_of(rows: list[list[str]], *first: str) -> list[str]:
    matches = [row for row in rows if row[:len(first)] == list(first)]
    assert len(matches) == 1, (first, rows)
    return matches[0]


def run_section(claims, study: Path, section, capsys) -> str:
    rows = claims.finished_runs(study)
    capsys.readouterr()
    section(rows)
    return capsys.readouterr().out


def test_unfinished_runs_are_counted(claims, study, capsys):
    rows = claims.finished_runs(study)
    assert "1 run(s) not finished, left out" in capsys.readouterr().out
    assert all(row["status"] == "finished" for row in rows) and not any(r["run"].endswith("unfinished") for r in rows)


def test_c1_cells_are_the_80_percent_t_interval_per_recipe(claims, study, capsys):
    out = run_section(claims, study, claims.c1_tables, capsys)
    paper = table_of(out, "C1 (mnist, recipe paper): test accuracy")
    # The betas of the with-VAT runs paper_settings keeps; the IMAE run at gamma 5 (accuracy 0) is not in them.
    assert row_of(paper, "imae") == ["imae", hand_cell([0.80, 0.84, 0.86]), hand_cell([0.78, 0.85, 0.83, 0.10])]
    assert row_of(paper, "joint-vae") == ["joint-vae", hand_cell([0.60, 0.90]), hand_cell([0.50, 0.55])]
    tuned = table_of(out, "C1 (mnist, recipe tuned): test accuracy")
    assert row_of(tuned, "imae") == ["imae", hand_cell([0.97, 0.98, 0.99]), hand_cell([0.96, 0.95])]
    assert len(tuned) == 1  # no other model ran under the tuned recipe
    information = table_of(out, "C1 (mnist, recipe paper): test I(x;y)")
    assert row_of(information, "joint-vae") == ["joint-vae", hand_cell([0.5, 2.0]), hand_cell([1.0, 2.2])]
    assert row_of(information, "imae")[1] == "2.000 [2.000, 2.000]"
    assert "C1 (fashion-mnist): no finished runs with VAT" in out


def test_c1_change_is_paired_by_seed(claims, study, capsys):
    out = run_section(claims, study, claims.c1_tables, capsys)
    paper = table_of(out, "C1 (mnist, recipe paper): change of test accuracy")
    # Seed 3 ran only at beta 10: not paired. Differences beta 10 minus beta 1, seeds 0, 1, 2.
    assert row_of(paper, "imae") == ["imae", "1 → 10", "3", hand_cell([0.78 - 0.80, 0.85 - 0.84, 0.83 - 0.86])]
    assert row_of(paper, "beta-vae") == ["beta-vae", "1 → 10", "3", hand_cell([-0.30, -0.42, -0.24])]
    tuned = table_of(out, "C1 (mnist, recipe tuned): change of test accuracy")
    assert row_of(tuned, "imae") == ["imae", "1 → 10", "2", hand_cell([0.96 - 0.97, 0.95 - 0.98])]
    one_beta = [{"beta": 3.0, "seed": seed, "accuracy": 0.5 + seed} for seed in (0, 1)]
    assert claims.accuracy_change(one_beta) == (3.0, 3.0, [])  # not the runs paired with themselves


def test_paired_leaves_out_partnerless_and_ambiguous_runs(claims, capsys):
    a = [{"seed": 0, "x": 1.0}, {"seed": 1, "x": 2.0}, {"seed": 2, "x": 3.0}, {"seed": 2, "x": 9.0}]
    b = [{"seed": 0, "x": 1.5}, {"seed": 1, "x": 1.0}, {"seed": 2, "x": 4.0}, {"seed": 7, "x": 0.0}]
    pairs = claims.paired(a, b, lambda r: r["seed"])
    assert claims.differences(pairs, "x") == [0.5, -1.0]
    assert "left out of a pairing" in capsys.readouterr().out


def test_c2_spearman_on_constructed_dimensions(claims, study, capsys):
    rows = claims.finished_runs(study)
    by_seed = {r["seed"]: r for r in rows if r["run"].startswith("paper/imae-dims")}
    assert claims.prop1_correlations(by_seed[0]) == pytest.approx((1.0, -1.0))
    assert claims.prop1_correlations(by_seed[2]) == pytest.approx((0.8, -0.8))
    without = next(r for r in rows if "per_dimension" in r and r["per_dimension"] is None)
    assert claims.prop1_correlations(without) is None
    assert claims.prop1_correlations(next(r for r in rows if r["model"] == "joint-vae")) is None  # no such metric
    out = run_section(claims, study, claims.c2_tables, capsys)
    mnist = table_of(out, "C2 (mnist)")
    assert mnist == [["paper", "imae", "3", hand_cell([1.0, 1.0, 0.8]), hand_cell([-1.0, -1.0, -0.8])]]


def test_c3_means_and_pearson_against_corrcoef(claims, study, capsys):
    rows = [r for r in claims.finished_runs(study) if r["dataset"] == "dsprites"]
    for model in ("imae", "beta-vae"):
        pairs = [pair for (m, _), seeds in DSPRITES_VALUES.items() if m == model for pair in seeds]
        n, r, p = claims.mig_tc_correlation([row for row in rows if row["model"] == model])
        assert n == 6 and r == pytest.approx(np.corrcoef(np.array(pairs).T)[0, 1])
        assert 0 < p < 1
    out = run_section(claims, study, claims.c3_tables, capsys)
    means = table_of(out, "C3 (dsprites, recipe paper): mean")
    # IMAE at gamma 10 (beta 5), beta-VAE at beta 10: both are the row "10".
    assert row_of(means, "imae", "10") == ["imae", "10", "2", hand_cell([0.45, 0.38]), hand_cell([0.55, 0.48]),
                                           hand_cell([30.0, 31.0], 1), hand_cell([0.2, 0.3]),
                                           hand_cell([0.02, 1.03])]
    assert row_of(means, "beta-vae", "1")[3] == hand_cell([0.10, 0.12])
    correlation = table_of(out, "C3 (dsprites, recipe paper): Pearson")
    r = np.corrcoef(np.array([pair for (m, _), s in DSPRITES_VALUES.items() if m == "imae" for pair in s]).T)[0, 1]
    assert row_of(correlation, "imae")[:3] == ["imae", "6", f"{r:.3f}"]
    # The fixture's seed-1 nulls (TC / 10 + 1) are over half their TC: only seed 0's runs are resolved.
    seed0 = np.array([seeds[0] for (m, _), seeds in DSPRITES_VALUES.items() if m == "imae"])
    assert row_of(correlation, "imae")[4:6] == ["3", f"{np.corrcoef(seed0.T)[0, 1]:.3f}"]


def test_pearson_needs_three_runs(claims):
    two = [{"mig": 0.1, "total_correlation": 1.0}, {"mig": 0.2, "total_correlation": 0.5}]
    n, r, p = claims.mig_tc_correlation(two)
    assert n == 2 and math.isnan(r) and math.isnan(p)


def test_c4_pairs_by_seed_within_a_recipe(claims, study, capsys):
    out = run_section(claims, study, claims.c4_tables, capsys)
    paper = table_of(out, "C4 (mnist, recipe paper)")
    # Seeds 0 and 1 ran with and without VAT; seed 5 (without) and seed 2 (with) have no partner.
    assert row_of(paper, "imae", "1") == ["imae", "1", "2", "0.820", "0.550", hand_cell([0.80 - 0.50, 0.84 - 0.60]),
                                          "2.000", "1.500"]
    assert len(paper) == 1  # beta-VAE and the beta-3 runs ran only one way
    # The tuned recipe has no run without VAT: its with-VAT runs of seeds 0 and 1 pair with nothing.
    assert "C4 (mnist, recipe tuned): no runs with and without VAT that pair" in out
    assert "C4 (fashion-mnist): no finished runs without VAT" in out


def test_local_optima_spread_and_collapsed_y(claims, study, capsys):
    out = run_section(claims, study, claims.local_optima_tables, capsys)
    paper = table_of(out, "Local optima (mnist, recipe paper)")
    spread = (np.std([0.60, 0.90], ddof=1) + np.std([0.50, 0.55], ddof=1)) / 2
    # The run at targets (2, 2) is left out; I(x;y) 0.5 and 1.0 are below 0.5 log 10 = 1.151.
    assert row_of(paper, "joint-vae") == ["joint-vae", "4", "2", f"{spread:.3f}", "2 of 4 (50%)"]
    imae_spread = (np.std([0.80, 0.84, 0.86], ddof=1) + np.std([0.78, 0.85, 0.83, 0.10], ddof=1)) / 2
    assert row_of(paper, "imae") == ["imae", "7", "2", f"{imae_spread:.3f}", "0 of 7 (0%)"]


def test_capacity_targets_each_get_their_rows(claims, study, capsys):
    out = run_section(claims, study, claims.capacity_tables, capsys)
    fig8 = table_of(out, "Fig. 8 (mnist, recipe paper)")
    # MNIST's published targets (5, 5) and the one run at (2, 2), which the other tables leave out.
    assert row_of(fig8, "(5, 5)", "1") == ["(5, 5)", "1", "2", hand_cell([0.60, 0.90]), hand_cell([0.5, 2.0]), "1 of 2"]
    assert row_of(fig8, "(5, 5)", "10") == ["(5, 5)", "10", "2", hand_cell([0.50, 0.55]), hand_cell([1.0, 2.2]),
                                            "1 of 2"]
    assert row_of(fig8, "(2, 2)", "1")[2:] == ["1", "0.000", "0.000", "1 of 1"]
    assert len(fig8) == 3
    assert "Fig. 8 (fashion-mnist): no finished JointVAE runs with VAT" in out


def test_sections_without_runs_say_so(claims, tmp_path, capsys):
    write_run(tmp_path / "only-unfinished", model="imae", beta=1.0)
    rows = claims.finished_runs(tmp_path)
    assert rows == []
    for section in (claims.c1_tables, claims.c2_tables, claims.c3_tables, claims.c4_tables,
                    claims.local_optima_tables, claims.capacity_tables):
        section(rows)
    out = capsys.readouterr().out
    for line in ("1 run(s) not finished", "C1 (mnist): no finished runs with VAT",
                 "C1 (fashion-mnist): no finished runs with VAT", "C2: no finished runs with per-dimension metrics",
                 "C3: no finished dSprites runs with VAT", "C4 (mnist): no finished runs without VAT",
                 "Local optima (fashion-mnist): no finished runs with VAT",
                 "Fig. 8 (mnist): no finished JointVAE runs with VAT"):
        assert line in out
    assert "|" not in out  # no empty tables


def test_progress_counts_the_study_files_runs_with_metrics(claims, tmp_path, capsys):
    root = tmp_path / "grow"
    root.mkdir()
    (root / "grow.toml").write_text('[settings]\nepochs = 1\n[[grid]]\nmodel = ["imae", "beta-vae"]\nbeta = [1, 3]\n'
                                    '[[grid]]\nmodel = "imae"\nbeta = 1\nvat = false\n'
                                    '[[grid]]\nmodel = "joint-vae"\nbeta = 1\ncapacity_y = [5.0, 2.0]\n'
                                    '[[grid]]\nmodel = "info-vae"\nbeta = 1\nrecipe = "paper"\n')
    write_run(root / "mnist/imae/beta1-seed0", {"accuracy": 0.5}, model="imae", beta=1.0)
    write_run(root / "mnist/imae/beta3-seed0", model="imae", beta=3.0)  # started, not finished
    write_run(root / "mnist/imae/beta1-seed0-novat", {"accuracy": 0.1}, model="imae", beta=1.0, vat=False)
    claims.progress_table(root)
    out = capsys.readouterr().out
    assert f"2 of the 8 runs of {root / 'grow.toml'} have finished." in out
    progress = {tuple(row[:4]): row[4:] for row in tables(out)[next(k for k in tables(out) if "have finished" in k)]}
    assert progress == {("mnist", "tuned", "with", "imae"): ["1", "2"], ("mnist", "tuned", "with", "beta-vae"): ["0", "2"],
                        ("mnist", "tuned", "without", "imae"): ["1", "1"],
                        ("mnist", "tuned", "with", "joint-vae (5, 5)"): ["0", "1"],
                        ("mnist", "tuned", "with", "joint-vae (2, 5)"): ["0", "1"],
                        ("mnist", "paper", "with", "info-vae (kl)"): ["0", "1"]}
    claims.progress_table(tmp_path)  # no study file of that name: nothing
    assert capsys.readouterr().out == ""


def test_infovae_divergence_table_compares_kl_and_mmd_per_beta(claims, capsys):
    def run(divergence, beta, seed, accuracy, spread):
        return {"status": "finished", "dataset": "mnist", "model": "info-vae", "recipe": "paper", "vat": True,
                "infovae_divergence": divergence, "beta": beta, "seed": seed, "accuracy": accuracy,
                "mutual_info_xy": accuracy * 2, "reconstruction_error": 100.0 + seed,
                "per_dimension.variance_of_posterior_mean.0": spread, "per_dimension.variance_of_posterior_mean.1": 0.0,
                "per_dimension.mean_posterior_variance.0": 0.0, "per_dimension.mean_posterior_variance.1": 1.0}
    rows = [run("kl", 1.0, 0, 0.6, 1.0), run("kl", 1.0, 1, 0.8, 3.0), run("mmd-rbf", 1.0, 0, 0.4, 99.0)]
    claims.infovae_divergence_tables(rows)
    out = capsys.readouterr().out
    lines = table_of(out, "InfoVAE (mnist, recipe paper, with VAT)")
    # Var[z_k] = Var[mu_k] + E[sigma_k^2] averaged over k: (1 + 1) / 2 = 1 and (3 + 1) / 2 = 2 for the KL runs.
    assert row_of(lines, "kl", "1") == ["kl", "1", "2", hand_cell([0.6, 0.8]), hand_cell([1.2, 1.6]),
                                        hand_cell([100.0, 101.0], 1), hand_cell([1.0, 2.0], 2)]
    assert row_of(lines, "mmd-rbf", "1") == ["mmd-rbf", "1", "1", "0.400", "0.800", "100.0", "50.00"]
    claims.infovae_divergence_tables([r for r in rows if r["infovae_divergence"] == "kl"])
    assert capsys.readouterr().out == ""  # one divergence: nothing to compare


def test_c2_keeps_infovae_with_another_divergence_apart(claims, capsys):
    def run(divergence, spread, noise):
        row = {"status": "finished", "dataset": "mnist", "model": "info-vae", "recipe": "paper",
               "infovae_divergence": divergence}
        for name, values in per_dimension(spread, noise).items():
            row.update({f"per_dimension.{name}.{k}": v for k, v in enumerate(values)})
        return row
    claims.c2_tables([run("kl", 1.0, -1.0), run("mmd-rbf", 0.8, -0.8)])
    lines = table_of(capsys.readouterr().out, "C2 (mnist)")
    assert row_of(lines, "paper", "info-vae") == ["paper", "info-vae", "1", "1.000", "-1.000"]
    assert row_of(lines, "paper", "info-vae (mmd-rbf)") == ["paper", "info-vae (mmd-rbf)", "1", "0.800", "-0.800"]


def test_aggregate_variance_is_the_variance_of_sampled_codes():
    """Var[z_k] by the law of total variance against the variance of codes drawn from each posterior."""
    rng = np.random.default_rng(0)
    means, variances = rng.normal(0.0, [1.0, 3.0], size=(200_000, 2)), np.array([0.5, 0.01])
    codes = means + np.sqrt(variances) * rng.normal(size=means.shape)
    row = {**{f"per_dimension.variance_of_posterior_mean.{k}": means[:, k].var() for k in range(2)},
           **{f"per_dimension.mean_posterior_variance.{k}": variances[k] for k in range(2)}}
    assert aggregate_variance(row) == pytest.approx(codes.var(axis=0).mean(), rel=0.01)
    assert math.isnan(aggregate_variance({}))
