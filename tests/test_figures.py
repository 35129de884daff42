"""Figures from a fake study (config.json and metrics.json written by hand) and from tiny trained runs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from imae.cli import main
from imae.config import AUTOENCODERS, RECIPES, TrainConfig
from imae.data import load_dataset
from imae.metrics import encode
from imae.figures import curve_rows, draw_confusion_matrix, learning_curve, learning_curves, paper_settings
from imae.pictures import (FIG4_BETAS, TRAVERSAL, RunPictures, candidates, closest, decode, draw_figure_2, figure_2,
                           figure_4, prototypes, traversal, traversed_dimensions)
from imae.plots import mean_interval, save, seed_band
from imae.results import results_table
from imae.runs import CHECKPOINT, PICTURES
from imae.training import load_trained

K1 = 4


def write_run(run_dir: Path, metrics: dict | None = None, error: str | None = None, **settings) -> Path:
    run_dir.mkdir(parents=True)
    config = TrainConfig(**settings)
    if config.dataset != "dsprites":  # not a TrainConfig choice on every branch
        config.validate()
    config.infovae_divergence = config.infovae_divergence or RECIPES[config.recipe]["infovae_divergence"]
    config = config.to_dict()
    (run_dir / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (run_dir / "error.json").write_text(json.dumps({"error": error, "traceback": "Traceback ..."}))
    return run_dir


def fake_metrics(rng: np.random.Generator, dsprites: bool) -> dict:
    metrics = {"accuracy": rng.random(), "mutual_info_xy": rng.random() * 2, "marginal_entropy_y": 2.2,
               "conditional_entropy_y": rng.random(), "reconstruction_error": 80 + 10 * rng.random(),
               "total_correlation": rng.random(), "epochs": 1,
               "per_dimension": {"mutual_info_xz": list(rng.random(K1)),
                                 "mean_posterior_variance": list(rng.random(K1)),
                                 "variance_of_posterior_mean": list(rng.random(K1)),
                                 "gaussian_bound": list(rng.random(K1))}}
    if dsprites:
        metrics.update(mig=rng.random(), mig_with_y=rng.random())
    return metrics


CONFUSION = {"confusion_matrix": [[40, 2, 0], [5, 30, 12]], "confusion_matrix_labels": [0, 1],
             "confusion_matrix_categories": [1, 0, 2], "confusion_matrix_note": "rows: true labels"}
CONFUSION_FIGURES = {"confusion mnist/imae-b5-s0-vat1", "confusion mnist/imsat"}


def fake_study(root: Path) -> Path:
    """Every model of the paper at two betas and two seeds on MNIST and dSprites, MNIST without VAT, JointVAE
    at two capacity targets; on Fashion-MNIST one unfinished run (beta-VAE with VAT) and nothing else; one failed
    run; one unfinished run; an IMSAT run (no reconstruction, no z); confusion matrices in two runs' metrics."""
    rng = np.random.default_rng(0)
    for dataset in ("mnist", "dsprites"):
        for model in AUTOENCODERS:
            for beta in (1.0, 5.0):
                for seed in (0, 1):
                    for vat in (True, False) if dataset == "mnist" else (True,):
                        write_run(root / dataset / f"{model}-b{beta:g}-s{seed}-vat{int(vat)}",
                                  fake_metrics(rng, dataset == "dsprites"), dataset=dataset, model=model,
                                  beta=beta, seed=seed, vat=vat)
    for seed in (0, 1):
        write_run(root / "mnist" / f"joint-c2-s{seed}", fake_metrics(rng, False), model="joint-vae",
                  capacity_y=2.0, capacity_z=2.0, seed=seed)
    write_run(root / "mnist" / "imsat", {**fake_metrics(rng, False), "reconstruction_error": None,
                                         "total_correlation": None, "per_dimension": None, **CONFUSION},
              model="imsat")
    metrics = root / "mnist" / "imae-b5-s0-vat1" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), **CONFUSION}))
    write_run(root / "mnist" / "failed", error="NumericalError: loss term 'loss' became nan", beta=9.0)
    write_run(root / "mnist" / "running", beta=9.0)
    write_run(root / "fashion-mnist" / "running", dataset="fashion-mnist", model="beta-vae")
    return root


def assert_valid(path: Path) -> None:
    if path.suffix == ".png":
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
    else:
        assert path.read_bytes().startswith(b"%PDF-")


FIGURES = {f"fig{n}_{d}" for n in (2, 3, 4, 8) for d in ("mnist", "fashion-mnist")} | {
    "fig6_mnist", "fig5_dsprites", "fig7_dsprites"}  # Fig. 6 only where a run went without VAT
FILES = {name: name for name in FIGURES} | {name: "confusion/" + name.split(" ")[1].replace("/", "_")
                                            for name in CONFUSION_FIGURES}


@pytest.fixture(scope="module")
def fake_figures(tmp_path_factory):
    """`imae figures STUDY` on the fake study: (study, its printed lines)."""
    study = fake_study(tmp_path_factory.mktemp("study"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["figures", str(study)]) == 0
    return study, printed.getvalue().splitlines()


def test_every_figure_is_written_as_png_and_pdf(fake_figures):
    study, lines = fake_figures
    written = [line for line in lines if ": written " in line]
    assert sorted(line.split(":")[0] for line in written) == sorted(FILES)  # one line per figure
    for name, file in FILES.items():
        for suffix in (".png", ".pdf"):
            path = study / "figures" / (file + suffix)
            assert str(path) in "\n".join(written)
            assert_valid(path)


def test_missing_runs_are_reported(fake_figures):
    _, lines = fake_figures
    text = "\n".join(lines)
    # No finished Fashion-MNIST run: every model is missing in Fig. 3, and Fig. 2 has no IMAE run to draw.
    fig3 = next(line for line in lines if line.startswith("fig3_fashion-mnist: missing: Accuracy:"))
    for model in ("IMAE", "InfoVAE", "JointVAE"):
        assert f"{model} (no runs)" in fig3
    assert "fig2_fashion-mnist: missing: imae on fashion-mnist: no finished run with a checkpoint" in text
    # The fake runs have no checkpoint, so no model picture can be drawn for MNIST either.
    assert "fig4_mnist: missing:" in text
    # Complete data draws without a note.
    assert not any(line.startswith("fig3_mnist: missing") for line in lines)
    assert not any(line.startswith("fig5_dsprites: missing") for line in lines)
    # The IMSAT run is in no figure of the paper, and that is said once.
    assert "1 run(s) without decoder or z (imsat) left out of Fig. 2-8; their confusion matrices are drawn" in lines
    assert not any("IMSAT" in line for line in lines)


def test_confusion_matrix_figure_shows_the_counts_in_the_matching_order():
    fig = draw_confusion_matrix({**CONFUSION, "accuracy": 70 / 89}, "mnist/imsat")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["y=1", "y=0", "y=2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    assert [t.get_text() for t in ax.texts] == ["40", "2", "0", "5", "30", "12"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[40 / 42, 2 / 42, 0], [5 / 47, 30 / 47, 12 / 47]])
    assert "accuracy 0.7865" in ax.get_title()


def test_missing_note_is_drawn_on_the_figure(fake_figures):
    """The figure without runs carries a visible note (dark red, used by nothing else); the full one not."""
    study, _ = fake_figures
    empty = np.asarray(Image.open(study / "figures" / "fig3_fashion-mnist.png").convert("RGB")).astype(int)
    # darkred (139, 0, 0) is the colour of missing-data notes only
    red = (empty[..., 0] > 100) & (empty[..., 1] < 40) & (empty[..., 2] < 40)
    assert red.sum() > 100
    full = np.asarray(Image.open(study / "figures" / "fig3_mnist.png").convert("RGB")).astype(int)
    assert ((full[..., 0] > 100) & (full[..., 1] < 40) & (full[..., 2] < 40)).sum() < red.sum() / 10


def test_a_study_of_two_recipes_gets_each_figure_per_recipe(tmp_path):
    """IMAE under both recipes, beta-VAE under the tuned one only: the paper recipe's Fig. 3 has no beta-VAE."""
    rng = np.random.default_rng(0)
    for recipe, models in (("paper", ("imae",)), ("tuned", ("imae", "beta-vae"))):
        for model in models:
            for seed in (0, 1):
                write_run(tmp_path / f"{recipe}-{model}-{seed}", fake_metrics(rng, False), model=model, seed=seed,
                          recipe=recipe)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["figures", str(tmp_path)]) == 0
    lines = printed.getvalue().splitlines()
    for recipe in ("paper", "tuned"):
        assert_valid(tmp_path / "figures" / recipe / "fig3_mnist.png")
    assert not (tmp_path / "figures" / "fig3_mnist.png").exists()
    assert any(line.startswith("paper/fig3_mnist: missing: Accuracy: beta-VAE (no runs)") for line in lines)
    assert "tuned/fig3_mnist: missing: Accuracy: InfoVAE (no runs), JointVAE (no runs)" in lines


def test_a_study_draws_the_figures_of_its_own_data_sets_only(tmp_path):
    """dSprites runs alone (IMSAT on MNIST beside them, which no figure of the paper shows): Fig. 5 and 7 and the
    confusion matrix, no MNIST or Fashion-MNIST figure that could only ever say "missing"."""
    rng = np.random.default_rng(0)
    for model in ("imae", "beta-vae"):
        write_run(tmp_path / "dsprites" / model, fake_metrics(rng, True), dataset="dsprites", model=model,
                  beta=4.0)
    write_run(tmp_path / "mnist" / "imsat", {**fake_metrics(rng, False), **CONFUSION}, model="imsat")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["figures", str(tmp_path)]) == 0
    drawn = sorted(line.split(":")[0] for line in printed.getvalue().splitlines() if ": written " in line)
    assert drawn == ["confusion mnist/imsat", "fig5_dsprites", "fig7_dsprites"]
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == ["fig5_dsprites.png", "fig7_dsprites.png"]


def test_not_a_directory_is_a_one_line_error(tmp_path, capsys):
    assert main(["figures", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("imae: error:")


def test_a_directory_without_runs_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys):
    (tmp_path / "study" / "notes").mkdir(parents=True)
    assert main(["figures", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imae: error: {tmp_path / 'study'}: no runs") and err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["notes"]


# --- The shaded regions: an 80% confidence interval of the mean over seeds -------------------------------

def test_mean_interval_against_a_hand_computation():
    # 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.2910, sd/sqrt(4) = 0.6455; t(0.9, 3 dof) = 1.638 (a t table).
    mean, low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert (low, high) == pytest.approx((2.5 - 1.638 * 0.6455, 2.5 + 1.638 * 0.6455), abs=1e-3)
    # 0, 2: mean 1, sd sqrt(2), sd/sqrt(2) = 1; t(0.9, 1 dof) = 3.078.
    assert mean_interval([0.0, 2.0]) == pytest.approx((1.0, 1 - 3.078, 1 + 3.078), abs=1e-3)
    mean, low, high = mean_interval([3.0])  # one seed: no interval
    assert mean == 3.0 and np.isnan(low) and np.isnan(high)


def test_mean_interval_covers_the_true_mean_80_percent_of_the_time():
    """An interval of the mean, not of the seeds: 80% of 10-seed samples cover the true mean, where the
    10%-90% spread of the seeds (the earlier band) covers it far more often."""
    samples = np.random.default_rng(0).normal(3.0, 2.0, size=(4000, 10))
    covered = np.mean([low <= 3.0 <= high for _, low, high in map(mean_interval, samples)])
    assert covered == pytest.approx(0.8, abs=0.02)
    spread = np.mean([np.percentile(s, 10) <= 3.0 <= np.percentile(s, 90) for s in samples])
    assert spread > 0.95


def test_seed_band_groups_by_x():
    rows = [{"beta": b, "accuracy": a} for b, a in ((1, 0.5), (5, 0.2), (1, 0.7), (5, 0.4), (9, 0.9))]
    x, mean, low, high = seed_band(rows, lambda r: r["beta"], lambda r: r["accuracy"])
    assert list(x) == [1, 5, 9] and mean == pytest.approx([0.6, 0.3, 0.9])
    assert (low[0], high[0]) == pytest.approx(mean_interval([0.5, 0.7])[1:])
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_beta_sweeps_compare_jointvae_at_its_published_targets():
    def row(cy, cz, seed):
        return {"model": "joint-vae", "dataset": "mnist", "beta": 1.0, "capacity_y": cy, "capacity_z": cz, "seed": seed}
    rows = [row(5.0, 5.0, s) for s in range(2)] + [row(2.0, 5.0, s) for s in range(3)]
    assert paper_settings(rows, print) == rows[:2]  # MNIST's published (5, 5), though fewer runs
    others = [row(2.0, 2.0, 0), row(3.0, 3.0, 0), row(3.0, 3.0, 1)]
    assert paper_settings(others, print) == others[1:]  # else the most common targets


def test_beta_sweeps_compare_infovae_with_its_recipes_divergence():
    rows = [{"model": "info-vae", "dataset": "mnist", "beta": 1.0, "seed": 0, "recipe": recipe,
             "infovae_divergence": divergence}
            for recipe in ("paper", "tuned") for divergence in ("kl", "mmd-rbf")]
    logged = []
    assert paper_settings(rows, logged.append) == [rows[0], rows[2]]  # eq (5)'s KL in both recipes since stop 29
    assert logged == ["left out 2 info-vae run(s) with another divergence than their recipe's"]


# --- Model pictures from really trained tiny runs --------------------------------------------------------

@pytest.fixture(scope="module")
def trained_study(tmp_path_factory):
    from conftest import write_mnist_like
    root = tmp_path_factory.mktemp("trained")
    data = write_mnist_like(root / "data")
    for beta in (1.0, 5.0):
        assert main(["train", "--dataset", "mnist", "--data-dir", str(data), "--out", str(root / "study" / f"b{beta:g}"),
                     "--epochs", "1", "--batch-size", "64", "--train-subset", "128", "--no-progress",
                     "--categories", "4", "--continuous-dim", str(K1), "--beta", str(beta)]) == 0
    return root / "study"


def test_traversal_grid_rows_are_categories_and_columns_steps(trained_study):
    cfg, model, _ = load_trained(trained_study / "b5")
    test = load_dataset("mnist", "test", cfg.data_dir)
    post = encode(model, test.images, 64)
    values = np.linspace(-2, 2, 7)
    grid = traversal(model, post, 1, values, (28, 28))
    assert grid.shape == (cfg.categories, len(values), 28, 28)
    # Decoding uses the model: each cell is the decoder's output at that code, and z changes the image.
    y = post.logits.argmax(1)
    c = int(y[0])
    z = post.mu[0].clone()
    z[1] = values[-1]
    expected = torch.sigmoid(model.decoder(z[None], torch.nn.functional.one_hot(torch.tensor([c]), cfg.categories)
                                           .float())).reshape(28, 28)
    torch.testing.assert_close(grid[c, -1], expected.detach())
    assert (grid[c, 0] - grid[c, -1]).abs().max() > 1e-4
    protos = prototypes(model, post, (28, 28))
    assert protos.shape == (cfg.categories, 28, 28)
    mean_z = post.mu[y == c].mean(0, keepdim=True)
    torch.testing.assert_close(protos[c], decode(model, mean_z, torch.tensor([c]), (28, 28))[0])


def test_model_pictures_from_trained_runs(trained_study, tmp_path):
    lines = []
    table = results_table(trained_study)
    for figure in (figure_2, figure_4):
        for path in figure(trained_study, table, tmp_path, "mnist", lambda msg, f=figure: lines.append(
                f"{f.__name__.replace('figure_', 'fig')}_mnist: {msg}")):
            assert_valid(path)
    text = "\n".join(lines)
    # Fig. 2 draws both runs; its panel (a) says the per-dimension metrics are absent if they are.
    assert "fig2_mnist: missing: imae" not in text and "a second beta value" not in text
    # Fig. 4 finds beta 1 and 5 for IMAE, nothing else for its third column (9), and none of the other models.
    assert "fig4_mnist: missing: IMAE near beta=9: no finished run with a checkpoint or pictures.npz" in text
    assert "IMAE near beta=1" not in text and "IMAE near beta=5" not in text
    assert "fig4_mnist: missing: InfoVAE near beta=1" in text


def test_pictures_are_kept_and_redraw_the_figures_without_checkpoints(trained_study, tmp_path):
    """Decoding writes pictures.npz beside the checkpoint; with the checkpoints gone (a fresh clone) Fig. 2 and 4
    are drawn from it, the same files as before; the kept arrays are the decoded images in 8 bits."""
    study = tmp_path / "study"
    shutil.copytree(trained_study, study, ignore=shutil.ignore_patterns(PICTURES))
    table = results_table(study)
    before = {f.__name__: [p.read_bytes() for p in f(study, table, tmp_path / "a", "mnist", print)]
              for f in (figure_2, figure_4)}
    pictures = RunPictures.read(study / "b5")
    cfg, model, _ = load_trained(study / "b5")
    post = encode(model, load_dataset("mnist", "test", cfg.data_dir).images, 64)
    expected = prototypes(model, post, (28, 28)).numpy()
    assert pictures.prototypes.dtype == np.uint8
    assert np.abs(pictures.prototypes / 255 - expected).max() <= 0.5 / 255 + 1e-6
    most, middle, least = pictures.dimensions
    assert (most, middle, least) == traversed_dimensions(pictures.informativeness)
    expected_traversal = traversal(model, post, least, TRAVERSAL, (28, 28)).numpy()
    assert np.abs(pictures.traversals[2] / 255 - expected_traversal).max() <= 0.5 / 255 + 1e-6
    for run in ("b1", "b5"):
        (study / run / CHECKPOINT).unlink()
    after = {f.__name__: [p.read_bytes() for p in f(study, table, tmp_path / "b", "mnist", print)]
             for f in (figure_2, figure_4)}
    assert after == before


def test_a_garbled_pictures_file_is_named(trained_study, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(trained_study, study)
    figure_2(study, results_table(study), tmp_path, "mnist", print)  # decodes and writes pictures.npz
    good = (study / "b5" / PICTURES).read_bytes()
    for garbled in (b"not a zip", good[:len(good) // 2]):  # not a zip; a zip cut short
        (study / "b5" / PICTURES).write_bytes(garbled)
        lines = []
        figure_2(study, results_table(study), tmp_path, "mnist", lines.append)
        assert any(f"{study / 'b5' / PICTURES}: not a pictures file" in line for line in lines), lines


def test_fig_4_takes_the_closest_beta_in_each_column(tmp_path):
    """Betas 1, 3, 6, 10 (paper-cpu's): columns 1, 5, 9 show 1, 6 and 10, each beta once, lowest seed first."""
    table = []
    for beta in (1.0, 3.0, 6.0, 10.0):
        for seed in (1, 0):
            table.append({"run": f"beta{beta:g}-seed{seed}", "status": "finished", "dataset": "mnist",
                          "model": "imae", "vat": True, "seed": seed, "beta": beta})
    rows = candidates(tmp_path, table, "mnist", "imae")
    assert rows == []  # neither a checkpoint nor pictures.npz yet
    for row in table:
        (tmp_path / row["run"]).mkdir()
        (tmp_path / row["run"] / PICTURES).write_bytes(b"")
    rows = candidates(tmp_path, table, "mnist", "imae")
    shown = []
    for beta in FIG4_BETAS:
        row = closest(rows, beta, exclude=shown)
        shown.append(row["beta"])
        assert row["seed"] == 0
    assert shown == [1.0, 6.0, 10.0]


def test_fig_2_traverses_the_most_a_middle_and_the_least_informative_dimension():
    # The paper's (b)-(d): I = 1.7, 0.9, 0. The middle one is the closest to halfway (0.85), not the median.
    assert traversed_dimensions(np.array([0.1, 1.7, 0.0, 0.9, 0.2, 0.05])) == (1, 3, 2)
    assert traversed_dimensions(np.array([0.4])) == (0, 0, 0)


def test_fig_2_fills_every_panel(trained_study):
    fig = draw_figure_2(trained_study, results_table(trained_study), "mnist", lambda msg: None)
    assert len(fig.axes) == 6
    for ax in fig.axes:  # every panel draws something: (a) its points, (b)-(f) an image
        assert ax.lines or ax.images, ax.get_title()
    titles = [ax.get_title() for ax in fig.axes]
    assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)"]
    # (b)-(d) are the dimensions traversed_dimensions picks from the run's I(x;z_k)
    info = json.loads((trained_study / "b5" / "metrics.json").read_text())["per_dimension"]["mutual_info_xz"]
    assert [f"z_{k})" in t for k, t in zip(traversed_dimensions(np.array(info)), titles[1:4])] == [True] * 3


def test_a_figure_drawn_twice_gives_the_same_files(tmp_path, monkeypatch):
    """Redrawing an unchanged study rewrites nothing in git's eyes (no creation date in the PDF), even a
    day later (matplotlib reads the date from SOURCE_DATE_EPOCH when set)."""
    def draw(out, day):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(1_700_000_000 + 86_400 * day))
        fig = Figure()
        fig.subplots().plot([0, 1], [1, 0])
        return [p.read_bytes() for p in save(fig, out, "line")]
    assert draw(tmp_path / "a", 0) == draw(tmp_path / "b", 1)


def test_fig_2_and_4_draw_from_runs_with_vat_only(tmp_path):
    """A VAT ablation's run (Fig. 6's) is not a candidate for the decoded pictures, even where its name sorts first."""
    table = []
    for name, vat in (("beta6-seed0-novat", False), ("beta6-seed0", True), ("beta6-seed1-unfinished", True)):
        (tmp_path / name).mkdir()
        (tmp_path / name / CHECKPOINT).write_bytes(b"")
        table.append({"run": name, "status": "finished" if "unfinished" not in name else "running",
                      "dataset": "mnist", "model": "imae", "vat": vat, "seed": 0, "beta": 6.0})
    assert [r["run"] for r in candidates(tmp_path, table, "mnist", "imae")] == ["beta6-seed0"]


def test_learning_curve_reads_validation_first_then_test():
    history = [{"epoch": 1, "validation": {"accuracy": 0.5}, "test": {"accuracy": 0.4, "mig": 0.1}},
               {"epoch": 2, "validation": {"accuracy": float("nan")}, "test": {"accuracy": 0.6, "mig": None}},
               {"epoch": 3, "validation": {"accuracy": 0.7}, "test": {"accuracy": 0.8, "mig": 0.3}}]
    assert learning_curve(history, "accuracy") == ([1, 3], [0.5, 0.7], "validation")
    assert learning_curve(history, "mig") == ([1, 3], [0.1, 0.3], "test")
    assert learning_curve(history, "reconstruction_error") == ([], [], None)


def test_learning_curves_are_drawn_from_histories_of_two_epochs_or_more(tmp_path):
    """MNIST runs with 3-epoch histories get curves_mnist; the dSprites run trained one epoch gets none."""
    rng = np.random.default_rng(0)
    for model in ("imae", "beta-vae"):
        for vat in (True, False):
            run = write_run(tmp_path / f"{model}-{vat}", fake_metrics(rng, False), model=model, vat=vat)
            rows = [{"epoch": e, "validation": {"accuracy": 0.1 * e}, "test": {"accuracy": 0.1 * e}} for e in (1, 2, 3)]
            (run / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = write_run(tmp_path / "dsprites", fake_metrics(rng, True), dataset="dsprites", beta=1.0)
    (run / "history.jsonl").write_text(json.dumps({"epoch": 1, "test": {"mig": 0.2}}) + "\n")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["figures", str(tmp_path)]) == 0
    lines = printed.getvalue().splitlines()
    assert any(line.startswith("curves_mnist: written") for line in lines)
    assert_valid(tmp_path / "figures" / "curves_mnist.png")
    assert not any(line.startswith("curves_dsprites") for line in lines)
    assert not (tmp_path / "figures" / "curves_dsprites.png").exists()


def test_learning_curves_plot_each_run_as_its_history_says(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for beta, vat in ((1.0, True), (3.0, False)):
        run = write_run(tmp_path / f"b{beta:g}", fake_metrics(rng, False), model="imae", beta=beta, vat=vat)
        written[run.name] = [float(v) for v in rng.random(4)]
        (run / "history.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "validation": {"accuracy": v}}) + "\n"
                                                   for e, v in enumerate(written[run.name])))
    curves = curve_rows(tmp_path, results_table(tmp_path), "mnist")
    assert {row["run"]: curve for row, curve in curves} == {
        name: ([1, 2, 3, 4], values, "validation") for name, values in written.items()}
    for path in learning_curves(curves, tmp_path / "out", "mnist"):
        assert_valid(path)


def test_a_garbled_history_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    run = write_run(tmp_path / "run", fake_metrics(np.random.default_rng(0), False))
    (run / "history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "valid')
    assert main(["figures", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error:") and str(run / "history.jsonl") in err and "\n" not in err
