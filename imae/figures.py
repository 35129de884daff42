"""The paper's data figures, drawn from a study's results table (METHOD.md section 6):
Fig. 3 (tracked quantities against beta), Fig. 5 and 7 (MIG on dSprites, without and with y),
Fig. 6 (VAT ablation), Fig. 8 (JointVAE capacity targets); and `write_figures`, which also
draws the model pictures of Fig. 2 and 4 (imae.pictures), a confusion matrix per labelled run, and
the learning curves that show whether the runs were trained long enough (not a figure of the paper).
The paper's figures compare its four models; IMSAT runs (no decoder, no z) appear only in their
confusion matrices.

Curves are the mean over seeds at each beta, shaded with the 80% confidence interval of that mean
(Student t, imae.plots.mean_interval), as the paper's "80% confidence intervals".
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from . import pictures, runs
from .config import AUTOENCODERS, JOINTVAE_CAPACITIES, RECIPES
from .errors import ImaeError
from .plots import BAND, MODEL_COLOURS, MODEL_LABELS, Log, caption, finite, note_missing, save, seed_band
from .results import results_table

IMAGE_DATASETS = ("mnist", "fashion-mnist")
DSPRITES = "dsprites"
BETA = r"$\beta$"
BETA_GAMMA = r"$\beta$ ($\gamma$ for IMAE)"
# (metric key, axis label, sign): the paper plots the negative reconstruction error.
RECONSTRUCTION = ("reconstruction_error", "-Reconstruction error", -1)
TOTAL_CORRELATION = ("total_correlation", "Total correlation", 1)
CONFUSION_PREFIX = "confusion "  # a run's confusion matrix job: this prefix, then the run's path below the study
# The learning curves' quantity: what the study must have stopped improving when its runs stop.
CURVE_METRIC = {"mnist": ("accuracy", "Accuracy"), "fashion-mnist": ("accuracy", "Accuracy"),
                DSPRITES: ("mig", "Disentanglement score (MIG)")}
TRACKED = (("accuracy", "Accuracy", 1), ("mutual_info_xy", "I(x;y)", 1), RECONSTRUCTION,
           ("marginal_entropy_y", "H(y)", 1), ("conditional_entropy_y", "H(y|x)", 1), TOTAL_CORRELATION)


def finished(table: list[dict], **match) -> list[dict]:
    return [r for r in table if r.get("status") == "finished" and all(r.get(k) == v for k, v in match.items())]


def effective_gamma(row: dict) -> float:
    return 2 * row["beta"] if row.get("gamma") is None else row["gamma"]


def paper_settings(rows: list[dict], log: Log) -> list[dict]:
    """The runs a beta sweep compares: IMAE with gamma = 2 beta, InfoVAE with its recipe's divergence,
    JointVAE at its published capacity targets for the data set if it has runs there, else at its most
    common ones (Fig. 8 shows the others)."""
    imae_off_rule = [r for r in rows if r["model"] == "imae" and not math.isclose(effective_gamma(r), 2 * r["beta"])]
    if imae_off_rule:
        log(f"left out {len(imae_off_rule)} imae run(s) with gamma != 2 beta")
    infovae_other = [r for r in rows if r["model"] == "info-vae" and not has_recipe_divergence(r)]
    if infovae_other:
        log(f"left out {len(infovae_other)} info-vae run(s) with another divergence than their recipe's")
    rows = [r for r in rows if r not in imae_off_rule and r not in infovae_other]
    joint = [r for r in rows if r["model"] == "joint-vae"]
    counts = Counter(capacities(r) for r in joint)
    published = {JOINTVAE_CAPACITIES.get(r["dataset"], JOINTVAE_CAPACITIES["mnist"])[:2] for r in joint}
    kept_targets = max(counts, key=lambda targets: (targets in published, counts[targets]), default=None)
    kept = [r for r in rows if r["model"] != "joint-vae" or capacities(r) == kept_targets]
    if len(kept) < len(rows):
        log(f"joint-vae: kept capacity targets (C_y, C_z) = {kept_targets}; Fig. 8 compares the others")
    return kept


def has_recipe_divergence(row: dict) -> bool:
    """An InfoVAE run with its recipe's divergence on p(z) (eq (5)'s KL in both; MMD runs are variants)."""
    return row.get("infovae_divergence") == RECIPES[recipe_of(row)]["infovae_divergence"]


def capacities(row: dict) -> tuple:
    return row.get("capacity_y"), row.get("capacity_z")


def plot_metric(ax, rows: list[dict], metric: tuple, x_of, curves: dict[str, list[dict]], colours: dict,
                log: Log) -> None:
    """One panel: metric against x, one mean curve with its 80% confidence band per entry of curves."""
    key, label, sign = metric
    missing = []
    for name, curve_rows in curves.items():
        x, mean, low, high = seed_band(curve_rows, x_of, lambda r: sign * r[key] if finite(r.get(key)) else None)
        if len(x) == 0:
            missing.append(f"{name} ({'no runs' if not curve_rows else key + ' not in metrics.json'})")
            continue
        line, = ax.plot(x, mean, marker="o", markersize=3, color=colours.get(name), label=name)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)  # a curve's own colour
    ax.set_ylabel(label)
    note_missing(ax, [f"{label}: {', '.join(missing)}"] if missing else [], log)


def by_model(rows: list[dict]) -> dict[str, list[dict]]:
    return {MODEL_LABELS[m]: [r for r in rows if r["model"] == m] for m in AUTOENCODERS}


def model_colours() -> dict:
    return {MODEL_LABELS[m]: MODEL_COLOURS[m] for m in AUTOENCODERS}


def legend(fig: Figure, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for h, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, h)
    labels = list(handles)
    if labels:
        fig.legend([handles[n] for n in labels], labels, loc="upper center", ncol=len(labels),
                   bbox_to_anchor=(0.5, 1.06), frameon=False)


def figure_3(table: list[dict], out_dir: Path, dataset: str, log: Log = print) -> list[Path]:
    """Fig. 3: accuracy, I(x;y), -reconstruction error, H(y), H(y|x) and TC against beta, four models."""
    rows = paper_settings(finished(table, dataset=dataset, vat=True), log)
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(2, 3, gridspec_kw={"wspace": 0.35, "hspace": 0.35}).ravel()
    for ax, metric in zip(axes, TRACKED):
        plot_metric(ax, rows, metric, lambda r: r["beta"], by_model(rows), model_colours(), log)
        ax.set_xlabel(BETA)
    legend(fig, axes)
    fig.suptitle(f"Fig. 3 ({dataset}): tracking the key quantities against {BETA}", y=1.1)
    caption(fig, r"$\gamma = 2\beta$ for IMAE; all models with VAT. " + BAND + ".")
    return save(fig, out_dir, f"fig3_{dataset}")


def beta_or_gamma(row: dict) -> float:
    """The x axis of the dSprites figures: gamma for IMAE (beta = gamma / 2), beta for the others."""
    return effective_gamma(row) if row["model"] == "imae" else row["beta"]


def mig_figure(table: list[dict], out_dir: Path, mig_key: str, number: int, log: Log = print) -> list[Path]:
    """Fig. 5 (MIG over z) or Fig. 7 (over y and z) on dSprites: (a) MIG, -reconstruction error and TC
    against beta (gamma for IMAE); (b) MIG against -reconstruction error and against TC."""
    rows = paper_settings(finished(table, dataset=DSPRITES, vat=True), log)
    mig = (mig_key, "Disentanglement score (MIG)" if mig_key == "mig" else "MIG over (y, z)", 1)
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(2, 3, gridspec_kw={"wspace": 0.35, "hspace": 0.35}).ravel()
    for ax, metric in zip(axes[:3], (mig, RECONSTRUCTION, TOTAL_CORRELATION)):
        plot_metric(ax, rows, metric, beta_or_gamma, by_model(rows), model_colours(), log)
        ax.set_xlabel(BETA_GAMMA)
    for ax, metric in zip(axes[3:5], (RECONSTRUCTION, TOTAL_CORRELATION)):
        plot_pairs(ax, rows, metric, mig, beta_or_gamma, log)
    tc_values = [x for line in axes[4].lines for x in line.get_xdata()]
    # The paper's log axis; symlog if a minibatch-free TC estimate came out <= 0.
    if all(x > 0 for x in tc_values):
        axes[4].set_xscale("log")
    else:
        axes[4].set_xscale("symlog", linthresh=0.1)
    axes[5].axis("off")
    legend(fig, axes)
    what = "z" if mig_key == "mig" else "y and z"
    fig.suptitle(f"Fig. {number} (dSprites): disentanglement with respect to {what}", y=1.1)
    caption(fig, r"x axis: $\beta$, and $\gamma$ for IMAE ($\beta = \gamma / 2$). " + BAND +
                 "; (b) one point per value, the means over seeds.")
    return save(fig, out_dir, f"fig{number}_{DSPRITES}")


def plot_pairs(ax, rows: list[dict], x_metric: tuple, y_metric: tuple, group_of, log: Log) -> None:
    """y_metric against x_metric: per model one point per value of group_of (means over seeds)."""
    missing = []
    for model in AUTOENCODERS:
        model_rows = [r for r in rows if r["model"] == model]
        _, x_mean, _, _ = seed_band(model_rows, group_of, lambda r: x_metric[2] * r[x_metric[0]]
                                    if finite(r.get(x_metric[0])) and finite(r.get(y_metric[0])) else None)
        _, y_mean, _, _ = seed_band(model_rows, group_of, lambda r: y_metric[2] * r[y_metric[0]]
                                    if finite(r.get(x_metric[0])) and finite(r.get(y_metric[0])) else None)
        if len(x_mean) == 0:
            missing.append(MODEL_LABELS[model])
            continue
        ax.plot(x_mean, y_mean, marker="o", markersize=3, color=MODEL_COLOURS[model], label=MODEL_LABELS[model])
    ax.set_xlabel(x_metric[1])
    ax.set_ylabel(y_metric[1])
    note_missing(ax, [f"{m} ({x_metric[0]} and {y_metric[0]})" for m in missing], log)


def figure_6(table: list[dict], out_dir: Path, dataset: str, log: Log = print) -> list[Path]:
    """Fig. 6: VAT ablation, accuracy and I(x;y) against beta with and without VAT, per model."""
    rows = paper_settings(finished(table, dataset=dataset), log)
    fig = Figure(figsize=(14, 6))
    axes = fig.subplots(2, len(AUTOENCODERS))
    colours = {"with VAT": "C3", "without VAT": "C7"}
    for col, model in enumerate(AUTOENCODERS):
        curves = {"with VAT": [r for r in rows if r["model"] == model and r.get("vat") is True],
                  "without VAT": [r for r in rows if r["model"] == model and r.get("vat") is False]}
        for row, metric in enumerate(TRACKED[:2]):
            plot_metric(axes[row, col], rows, metric, lambda r: r["beta"], curves, colours,
                        lambda msg, m=model: log(f"{m}: {msg}"))
            axes[row, col].set_xlabel(BETA)
        axes[0, col].set_title(MODEL_LABELS[model])
    legend(fig, axes.ravel())
    fig.suptitle(f"Fig. 6 ({dataset}): VAT stabilizes the learning of categorical representations", y=1.08)
    caption(fig, r"$\gamma = 2\beta$ for IMAE. " + BAND + ".")
    return save(fig, out_dir, f"fig6_{dataset}")


def figure_8(table: list[dict], out_dir: Path, dataset: str, log: Log = print) -> list[Path]:
    """Fig. 8: JointVAE with several capacity targets (C_y, C_z), against beta."""
    rows = finished(table, dataset=dataset, model="joint-vae", vat=True)
    targets = sorted({(r.get("capacity_y"), r.get("capacity_z")) for r in rows},
                     key=lambda target: [value if finite(value) else math.inf for value in target])
    curves = {f"$C_y$={cy:g}, $C_z$={cz:g}" if finite(cy) and finite(cz) else f"{(cy, cz)}":
              [r for r in rows if (r.get("capacity_y"), r.get("capacity_z")) == (cy, cz)] for cy, cz in targets}
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3, gridspec_kw={"wspace": 0.35})
    for ax, metric in zip(axes, TRACKED[:3]):
        plot_metric(ax, rows, metric, lambda r: r["beta"], curves or {"JointVAE": []}, {}, log)
        ax.set_xlabel(BETA)
    legend(fig, axes)
    fig.suptitle(f"Fig. 8 ({dataset}): JointVAE with different capacity targets ($C_y$, $C_z$)", y=1.15)
    caption(fig, "JointVAE with VAT. " + BAND + ".")
    return save(fig, out_dir, f"fig8_{dataset}")


def draw_confusion_matrix(metrics: dict, title: str) -> Figure:
    """A run's test confusion matrix from its metrics.json (metrics.confusion_matrix): rows the true labels,
    columns the learnt categories, each label's matched category first (the diagonal holds the matched
    counts); the colour is the fraction of the row, the number the count."""
    counts = np.asarray(metrics["confusion_matrix"], dtype=float)
    labels, categories = metrics["confusion_matrix_labels"], metrics["confusion_matrix_categories"]
    fractions = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(1.6 + 0.45 * counts.shape[1], 1.4 + 0.4 * counts.shape[0]))
    ax = fig.subplots()
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    if counts.size <= 900:  # numbers stay legible up to 30 x 30
        for (r, c), n in np.ndenumerate(counts):
            ax.text(c, r, f"{n:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if fractions[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(categories)), [f"y={c}" for c in categories], fontsize=7, rotation=90)
    ax.set_yticks(range(len(labels)), [str(label) for label in labels], fontsize=7)
    ax.set_xlabel("learnt category y (Hungarian matching order)", fontsize=8)
    ax.set_ylabel("true label", fontsize=8)
    accuracy = metrics.get("accuracy")
    ax.set_title(title + (f"\naccuracy {accuracy:.4f}" if finite(accuracy) else ""), fontsize=8)
    return fig


def confusion_file(run: str) -> str:
    """The file name (no suffix) of a run's confusion matrix: its path below the study, '/' as '_'."""
    return "run" if run == "." else run.replace("/", "_")


def confusion_jobs(study_dir: Path, table: list[dict]) -> dict:
    """One job per finished run whose metrics.json holds a confusion matrix (labelled test images),
    drawn into OUT/confusion/; named CONFUSION_PREFIX + the run."""
    jobs = {}
    for row in finished(table):
        metrics = runs.read_json(Path(study_dir) / row["run"] / runs.METRICS)
        if "confusion_matrix" in metrics:
            jobs[CONFUSION_PREFIX + row["run"]] = lambda out, log, m=metrics, run=row["run"]: save(
                draw_confusion_matrix(m, run), Path(out) / "confusion", confusion_file(run))
    return jobs


def figure_jobs(study_dir: Path, table: list[dict]) -> dict:
    """Every figure by its file name: a function of (out_dir, log) that returns the paths it wrote. A study
    that ran the autoencoders under more than one recipe gets each figure once per recipe, in a folder named
    after it (paper/fig3_mnist.png, tuned/fig3_mnist.png): a curve never mixes recipes."""
    recipes = sorted({recipe_of(r) for r in table if r.get("model") in AUTOENCODERS})
    if len(recipes) <= 1:
        return {**paper_figure_jobs(study_dir, table), **confusion_jobs(study_dir, table)}
    jobs = {}
    for recipe in recipes:
        rows = [r for r in table if recipe_of(r) == recipe]
        for name, job in paper_figure_jobs(study_dir, rows).items():
            jobs[f"{recipe}/{name}"] = lambda out, log, job=job, recipe=recipe: job(out / recipe, log)
    return {**jobs, **confusion_jobs(study_dir, table)}


def learning_curve(history: list[dict], key: str) -> tuple[list[int], list[float], str | None]:
    """(epochs, values, split): metric key per epoch of a run's history, on the validation split if it
    was monitored, else on the test split (dSprites, or a run without validation); split None if neither."""
    for split in ("validation", "test"):
        points = [(row["epoch"], row[split][key]) for row in history if finite(row.get(split, {}).get(key))]
        if points:
            return [e for e, _ in points], [v for _, v in points], split
    return [], [], None


def curve_rows(study_dir: Path, table: list[dict], dataset: str) -> list[tuple[dict, tuple]]:
    """(row, learning_curve) of each finished run of the data set whose curve has two epochs or more."""
    key = CURVE_METRIC[dataset][0]
    curves = [(row, learning_curve(runs.read_history(Path(study_dir) / row["run"]), key))
              for row in finished(table, dataset=dataset)]
    return [(row, curve) for row, curve in curves if len(curve[0]) >= 2]


def learning_curves(curves: list[tuple[dict, tuple]], out_dir: Path, dataset: str) -> list[Path]:
    """Every run's accuracy (dSprites: MIG, monitored with --monitor-mig) against the epoch, a panel per
    model, a colour per beta (gamma for IMAE on dSprites), dashed without VAT: has each run stopped
    rising by its last epoch? (METHOD.md leaves the number of epochs open; issue 16 asks to show it.)"""
    key, label = CURVE_METRIC[dataset]
    models = [m for m in MODEL_LABELS if any(row["model"] == m for row, _ in curves)]
    x_of = beta_or_gamma if dataset == DSPRITES else (lambda r: r["beta"])
    values = sorted({x_of(row) for row, _ in curves})
    colour = dict(zip(values, colormaps["viridis"](np.linspace(0, 0.9, len(values)))))
    fig = Figure(figsize=(3.6 * len(models), 3.4))
    fig.subplots_adjust(bottom=0.18)  # room for the caption under the epoch axis
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    splits = set()
    for ax, model in zip(axes, models):
        for row, (epochs, curve, split) in sorted(((r, c) for r, c in curves if r["model"] == model),
                                                  key=lambda rc: x_of(rc[0])):
            ax.plot(epochs, curve, color=colour[x_of(row)], linewidth=1, alpha=0.8,
                    linestyle="-" if row.get("vat", True) else "--", label=f"{x_of(row):g}")
            splits.add(split)
        ax.set_title(MODEL_LABELS[model])
        ax.set_xlabel("epoch")
    axes[0].set_ylabel(label)
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
    ordered = sorted(handles, key=float)
    fig.legend([handles[n] for n in ordered], ordered, title=BETA_GAMMA if dataset == DSPRITES else BETA,
               loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(f"Learning curves ({dataset}): {key} on the {' and '.join(sorted(splits))} split per epoch",
                 y=1.04)
    caption(fig, "One line per finished run (every seed); dashed: trained without VAT."
                 + (" IMAE: " + BETA + r" = $\gamma$ / 2." if dataset == DSPRITES else ""))
    return save(fig, out_dir, f"curves_{dataset}")


def recipe_of(row: dict) -> str:
    """A run's recipe; runs made before recipes existed trained with what is now "tuned"'s optimiser."""
    return row.get("recipe") or "tuned"


def paper_figure_jobs(study_dir: Path, table: list[dict]) -> dict:
    """Fig. 2-8 of the runs in table, and the learning curves of each data set with a run of two epochs or
    more, by file name. A data set's figures are drawn once an autoencoder has a run on it (finished or not;
    what is missing is noted on the figure), Fig. 6 once one runs without VAT: a study that never trains a
    data set, or never ablates VAT on it, gets no figure that would stay empty."""
    autoencoders = [row for row in table if row.get("model") in AUTOENCODERS]
    datasets = {row.get("dataset") for row in autoencoders}
    images = [dataset for dataset in IMAGE_DATASETS if dataset in datasets]
    ablated = {row.get("dataset") for row in autoencoders if row.get("vat") is False}
    jobs = {}
    for dataset in images:
        jobs[f"fig2_{dataset}"] = lambda out, log, d=dataset: pictures.figure_2(study_dir, table, out, d, log)
        jobs[f"fig3_{dataset}"] = lambda out, log, d=dataset: figure_3(table, out, d, log)
        jobs[f"fig4_{dataset}"] = lambda out, log, d=dataset: pictures.figure_4(study_dir, table, out, d, log)
    if DSPRITES in datasets:
        jobs["fig5_dsprites"] = lambda out, log: mig_figure(table, out, "mig", 5, log)
    for dataset in (d for d in images if d in ablated):
        jobs[f"fig6_{dataset}"] = lambda out, log, d=dataset: figure_6(table, out, d, log)
    if DSPRITES in datasets:
        jobs["fig7_dsprites"] = lambda out, log: mig_figure(table, out, "mig_with_y", 7, log)
    for dataset in images:
        jobs[f"fig8_{dataset}"] = lambda out, log, d=dataset: figure_8(table, out, d, log)
    for dataset in (*IMAGE_DATASETS, DSPRITES):
        curves = curve_rows(study_dir, table, dataset)
        if curves:
            jobs[f"curves_{dataset}"] = lambda out, log, c=curves, d=dataset: learning_curves(c, out, d)
    return jobs


def write_figures(study_dir: Path, out_dir: Path | None = None, log: Log = print) -> dict[str, list[Path]]:
    """Draw every figure of the study into out_dir (default STUDY/figures); returns name -> paths.
    Each log line starts with the figure's name: what it lacks, then what was written."""
    study_dir = Path(study_dir)
    out_dir = Path(out_dir) if out_dir is not None else study_dir / "figures"
    table = results_table(study_dir)
    if not table:  # before anything is written: no empty figures/ folder
        raise ImaeError(f"{study_dir}: no runs (no run directory with a config.json below it); nothing to draw")
    without_decoder = [r for r in table if r.get("model") not in AUTOENCODERS]
    if without_decoder:
        log(f"{len(without_decoder)} run(s) without decoder or z (imsat) left out of Fig. 2-8; "
            f"their confusion matrices are drawn")
    written = {}
    for name, job in figure_jobs(study_dir, table).items():
        written[name] = job(out_dir, lambda msg, n=name: log(f"{n}: {msg}"))
        log(f"{name}: written {', '.join(str(p) for p in written[name])}")
    return written
