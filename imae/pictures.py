"""Pictures decoded by trained models: Fig. 2 (per-dimension informativeness, traversals of z_k,
class prototypes) and Fig. 4 (prototypes and an "angle" traversal for beta = 1, 5, 9, four models).

Codes come from the test split at evaluation: z = mu(x), y = argmax pi(x) (METHOD.md section 1).
What a run contributes is decoded once from its checkpoint and kept in RUN_DIR/pictures.npz (RunPictures):
a few hundred kB, committed with the run's small files, so that a clone without the checkpoints (which are
not committed) redraws the same figures.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from . import runs
from .config import AUTOENCODERS
from .data import load_dataset
from .errors import ImaeError
from .metrics import encode
from .networks import HybridAutoencoder, Posterior
from .plots import MODEL_LABELS, Log, caption, note_missing, save
from .training import load_trained

TRAVERSAL = np.linspace(-2.0, 2.0, 9)  # the paper traverses each z_k within [-2, 2]
FIG2_BETAS = (5.0, 1.0)  # traversals at the first; prototypes at both, as Fig. 2 (e) and (f)
FIG4_BETAS = (1.0, 5.0, 9.0)
ANGLE_DIGIT = 6  # Fig. 4 traverses the "angle" factor on digit 6
LABEL_NAMES = {"mnist": "digit {}", "fashion-mnist": "label {} (shirt)"}  # Fashion-MNIST's label 6 is "shirt"
PICTURES_VERSION = 1  # bump whenever what RunPictures holds, or how it is decoded, changes


@torch.no_grad()
def decode(model: HybridAutoencoder, z: torch.Tensor, y: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Images (pixel probabilities) [N, *shape] decoded from codes z [N, K1] and categories y [N]."""
    logits = model.decoder(z, F.one_hot(y, model.categories).to(z.dtype))
    return torch.sigmoid(logits).reshape(len(z), *shape)


def assigned(post: Posterior) -> torch.Tensor:
    return post.logits.argmax(1)


def prototypes(model: HybridAutoencoder, post: Posterior, shape: tuple) -> torch.Tensor:
    """[K2, *shape]: each y decoded with the mean z of the images assigned to it (Fig. 2e, 4);
    a y that no image is assigned to is decoded at z = 0, the prior mean."""
    y = assigned(post)
    z = torch.stack([post.mu[y == c].mean(0) if (y == c).any() else post.mu.new_zeros(post.mu.shape[1])
                     for c in range(model.categories)])
    return decode(model, z, torch.arange(model.categories), shape)


def traversal(model: HybridAutoencoder, post: Posterior, dim: int, values, shape: tuple,
              categories=None) -> torch.Tensor:
    """[len(categories), len(values), *shape]: for each y (default all), the code z of the first image
    assigned to it (z = 0 if none) with z_dim set to each value, decoded with that y (Fig. 2b-d)."""
    categories = range(model.categories) if categories is None else categories
    y = assigned(post)
    values = torch.as_tensor(values, dtype=post.mu.dtype)
    rows = []
    for c in categories:
        members = (y == c).nonzero().flatten()
        start = post.mu[members[0]] if len(members) else post.mu.new_zeros(post.mu.shape[1])
        z = start.repeat(len(values), 1)
        z[:, dim] = values
        rows.append(decode(model, z, torch.full((len(values),), c), shape))
    return torch.stack(rows)


def mosaic(grid: torch.Tensor, gap: int = 1) -> np.ndarray:
    """[R, C, H, W] -> one [R*(H+gap)-gap, C*(W+gap)-gap] image, tiles separated by white lines."""
    rows, cols, h, w = grid.shape
    out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap))
    for r in range(rows):
        for c in range(cols):
            out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = grid[r, c].numpy()
    return out


def show(ax, grid: torch.Tensor, title: str, row_labels=None, col_labels=None) -> None:
    rows, cols, h, w = grid.shape
    ax.imshow(mosaic(grid), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([c * (w + 1) + w / 2 for c in range(cols)] if col_labels else [], col_labels or [], fontsize=6)
    ax.set_yticks([r * (h + 1) + h / 2 for r in range(rows)] if row_labels else [], row_labels or [], fontsize=6)


class Trained:
    """A finished run's model with the codes of its test split."""

    def __init__(self, study_dir: Path, row: dict):
        self.row = row
        self.run_dir = Path(study_dir) / row["run"]
        self.cfg, self.model, _ = load_trained(self.run_dir)
        test = load_dataset(self.cfg.dataset, "test", self.cfg.data_dir)
        self.shape = tuple(test.images.shape[1:])
        self.labels = test.labels
        self.post = encode(self.model, test.images, self.cfg.eval_batch_size)
        self.metrics = runs.read_json(self.run_dir / runs.METRICS)

    def informativeness(self) -> tuple[np.ndarray, str]:
        """I(x;z_k) per dimension from metrics.json, or, for runs without it, the Gaussian bound of
        eq (5), 0.5 log(1 + Var[mu_k] / E[sigma_k^2]), on the test codes."""
        per_dim = self.metrics.get("per_dimension", {})
        if "mutual_info_xz" in per_dim:
            return np.asarray(per_dim["mutual_info_xz"], dtype=float), "I(x;z_k)"
        bound = 0.5 * torch.log1p(self.post.mu.var(0) / self.post.logvar.exp().mean(0))
        return bound.numpy(), "Gaussian bound of I(x;z_k), eq (5)"

    def class_of_digit(self, digit: int) -> int:
        """The learnt y most images of a true label are assigned to (the most used y if unlabelled)."""
        y = assigned(self.post)
        if self.labels is not None and (self.labels == digit).any():
            y = y[self.labels == digit]
        return int(torch.bincount(y, minlength=self.model.categories).argmax())


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """Pixel probabilities as 8-bit grey levels, what a PNG shows anyway: 4x smaller than float32."""
    return np.round(images.numpy() * 255).astype(np.uint8)


class RunPictures:
    """What Fig. 2 and 4 show of one run: the prototypes of every y, the traversals of the three z_k of
    Fig. 2 (b)-(d) (traversed_dimensions; the first, the most informative, is also Fig. 4's "angle" row on
    the learnt class of ANGLE_DIGIT), with the run's config and metrics. Made from a checkpoint once
    (from_trained), then read from RUN_DIR/pictures.npz; drawn only from the 8-bit arrays, so that a figure
    is the same whether its pictures were just decoded or read back."""

    def __init__(self, run_dir: Path, arrays: dict):
        self.run_dir = Path(run_dir)
        self.cfg = runs.load_config(run_dir)
        self.metrics = runs.read_json(self.run_dir / runs.METRICS)
        self.prototypes = arrays["prototypes"]  # [K2, H, W] uint8
        self.traversals = arrays["traversals"]  # [3, K2, len(TRAVERSAL), H, W] uint8
        self.dimensions = [int(k) for k in arrays["dimensions"]]
        self.informativeness = arrays["informativeness"]
        self.info_name = str(arrays["info_name"])
        self.angle_category = int(arrays["angle_category"])

    @classmethod
    def from_trained(cls, trained: Trained) -> RunPictures:
        info, info_name = trained.informativeness()
        dimensions = traversed_dimensions(info)
        grids = [traversal(trained.model, trained.post, dim, TRAVERSAL, trained.shape) for dim in dimensions]
        arrays = {"version": PICTURES_VERSION, "traversal_values": TRAVERSAL,
                  "prototypes": to_pixels(prototypes(trained.model, trained.post, trained.shape)),
                  "traversals": to_pixels(torch.stack(grids)), "dimensions": np.array(dimensions),
                  "informativeness": np.asarray(info, dtype=float), "info_name": np.array(info_name),
                  "angle_category": np.array(trained.class_of_digit(ANGLE_DIGIT))}
        runs.atomic_write(trained.run_dir / runs.PICTURES, lambda f: np.savez_compressed(f, **arrays))
        return cls(trained.run_dir, arrays)

    @classmethod
    def read(cls, run_dir: Path) -> RunPictures | None:
        """The run's pictures.npz, or None if it has none or one made by another PICTURES_VERSION."""
        path = Path(run_dir) / runs.PICTURES
        if not path.is_file():
            return None
        try:
            with np.load(path) as saved:
                arrays = {key: saved[key] for key in saved.files}
            if int(arrays.get("version", -1)) != PICTURES_VERSION:
                return None
            return cls(run_dir, arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ImaeError(f"{path}: not a pictures file ({type(exc).__name__}: {exc}); delete it to decode "
                            "again") from None

    def grid(self, pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels.astype(np.float32) / 255)


def candidates(study_dir: Path, table: list[dict], dataset: str, model: str) -> list[dict]:
    """Finished runs with VAT and a checkpoint or pictures.npz, by seed: the paper's Fig. 2 and 4 are drawn
    from models trained with VAT (Section 4.2); a VAT ablation's runs are Fig. 6's."""
    rows = [r for r in table if r.get("status") == "finished" and r.get("dataset") == dataset
            and r.get("model") == model and r.get("vat", True)
            and any((Path(study_dir) / r["run"] / name).is_file() for name in (runs.CHECKPOINT, runs.PICTURES))]
    return sorted(rows, key=lambda r: (r.get("seed", 0), r["run"]))


def load(study_dir: Path, row: dict | None, what: str, missing: list[str]) -> RunPictures | None:
    """The pictures of row's run (read from pictures.npz, else decoded from its checkpoint and saved there),
    or None with the reason added to missing."""
    if row is None:
        missing.append(f"{what}: no finished run with a checkpoint or pictures.npz")
        return None
    run_dir = Path(study_dir) / row["run"]
    try:
        return RunPictures.read(run_dir) or RunPictures.from_trained(Trained(study_dir, row))
    except ImaeError as exc:
        missing.append(f"{what}: {exc}")
        return None


def closest(rows: list[dict], beta: float, exclude=()) -> dict | None:
    rows = [r for r in rows if r["beta"] not in exclude]
    return min(rows, key=lambda r: abs(r["beta"] - beta), default=None)


def plot_per_dimension(ax, pictures: RunPictures, log: Log) -> None:
    """Fig. 2a: dimensions sorted by I(x;z_k), with E[sigma_k^2] and Var[mu_k] from metrics.json."""
    per_dim = pictures.metrics.get("per_dimension", {})
    needed = ("mutual_info_xz", "mean_posterior_variance", "variance_of_posterior_mean")
    absent = [k for k in needed if k not in per_dim]
    if absent:
        note_missing(ax, [f"per_dimension {', '.join(absent)} not in metrics.json (older run?)"], log)
        return
    order = np.argsort(per_dim["mutual_info_xz"])[::-1]
    index = np.arange(1, len(order) + 1)
    for key, label, marker in zip(needed, ("I(x;$z_k$)", r"E[$\sigma_k(x)^2$]", r"Var[$\mu_k(x)$]"), "o*+"):
        ax.plot(index, np.asarray(per_dim[key])[order], marker=marker, linestyle="none", label=label)
    ax.set_xticks(index, [f"$z_{{{k}}}$" for k in order], fontsize=7)
    ax.set_xlabel("Sorted dim index")
    ax.legend(fontsize=7)


def traversed_dimensions(info: np.ndarray) -> tuple[int, int, int]:
    """The z_k that Fig. 2 (b)-(d) traverse: the most, a middle and the least informative, the middle
    one being, of the others, the one whose I(x;z_k) is closest to halfway between the two (the paper's
    (b)-(d): I = 1.7, 0.9, 0). With fewer than three dimensions some panels show the same one."""
    order = [int(k) for k in np.argsort(info, kind="stable")[::-1]]
    most, least = order[0], order[-1]
    halfway = (info[most] + info[least]) / 2
    middle = min(order[1:-1] or order, key=lambda k: abs(info[k] - halfway))
    return most, middle, least


def figure_2_layout(fig: Figure) -> list:
    """Six panels, none empty: (a)-(d) side by side on top, the two prototype strips (e), (f) below."""
    grid = fig.add_gridspec(2, 4, height_ratios=(4, 0.8), wspace=0.3, hspace=0.3, bottom=0.04)
    return [fig.add_subplot(grid[0, c]) for c in range(4)] + [fig.add_subplot(grid[1, 0:2]),
                                                              fig.add_subplot(grid[1, 2:4])]


def draw_figure_2(study_dir: Path, table: list[dict], dataset: str, log: Log = print) -> Figure:
    """Fig. 2 for IMAE at the beta closest to 5: (a) per-dimension informativeness, (b)-(d) traversals
    of the most, a middle and the least informative z_k (traversed_dimensions), (e)-(f) prototypes at
    two betas."""
    rows = candidates(study_dir, table, dataset, "imae")
    fig = Figure(figsize=(16, 5.2))
    axes = figure_2_layout(fig)
    missing: list[str] = []
    first_row = closest(rows, FIG2_BETAS[0])
    pictures = load(study_dir, first_row, f"imae on {dataset}", missing)
    if pictures is None:
        for ax in axes:
            ax.axis("off")
        note_missing(axes[0], missing, log)
    else:
        plot_per_dimension(axes[0], pictures, log)
        axes[0].set_title(rf"(a) IMAE, $\beta$={pictures.cfg.beta:g}", fontsize=9)
        info, info_name = pictures.informativeness, pictures.info_name
        for ax, letter, dim, pixels in zip(axes[1:4], "bcd", pictures.dimensions, pictures.traversals):
            grid = pictures.grid(pixels)
            show(ax, grid, f"({letter}) {info_name.replace('z_k', f'z_{dim}')} = {info[dim]:.2f}",
                 [f"y={c}" for c in range(grid.shape[0])], [f"{v:g}" for v in TRAVERSAL])
        second_row = closest(rows, FIG2_BETAS[1], exclude=(pictures.cfg.beta,))
        for ax, letter, run in zip(axes[4:], "ef", (pictures, None)):
            run = run or load(study_dir, second_row, "a second beta value of imae", missing)
            ax.axis("off")
            if run is None:
                note_missing(ax, missing, log)
                continue
            grid = run.grid(run.prototypes)[None]
            show(ax, grid, rf"({letter}) $\beta$={run.cfg.beta:g}, I(x;y) = {run.metrics['mutual_info_xy']:.2f}")
    fig.suptitle(f"Fig. 2: IMAE on {dataset}")
    caption(fig, "(b)-(d): the most, a middle and the least informative $z_k$ by I(x;$z_k$); rows are the learnt "
                 "y, each started from the code z of a test image assigned to that y; the chosen $z_k$ goes from "
                 "-2 to 2, the other dimensions fixed. (e)-(f): each y decoded from the mean z of its images.")
    return fig


def figure_2(study_dir: Path, table: list[dict], out_dir: Path, dataset: str, log: Log = print) -> list[Path]:
    """Draw Fig. 2 (draw_figure_2) into out_dir as fig2_DATASET.png and .pdf."""
    return save(draw_figure_2(study_dir, table, dataset, log), out_dir, f"fig2_{dataset}")


def figure_4(study_dir: Path, table: list[dict], out_dir: Path, dataset: str, log: Log = print) -> list[Path]:
    """Fig. 4: for beta = 1, 5, 9 (or, where a study has other betas, the closest ones, each column its own) and
    the four models, the prototypes of every y (first row) and the most informative z_k traversed on the learnt
    class of label 6, MNIST's digit 6 and Fashion-MNIST's shirt (second row)."""
    fig = Figure(figsize=(4 * len(FIG4_BETAS), 1.6 * len(AUTOENCODERS)))
    axes = fig.subplots(len(AUTOENCODERS), len(FIG4_BETAS), squeeze=False)
    for r, model in enumerate(AUTOENCODERS):
        rows, shown = candidates(study_dir, table, dataset, model), []
        for c, beta in enumerate(FIG4_BETAS):
            ax = axes[r, c]
            ax.axis("off")
            missing: list[str] = []
            row = closest(rows, beta, exclude=shown)
            pictures = load(study_dir, row, rf"{MODEL_LABELS[model]} near $\beta$={beta:g}", missing)
            if pictures is None:
                note_missing(ax, missing, log)
                continue
            shown.append(pictures.cfg.beta)
            angle = pictures.grid(pictures.traversals[0][pictures.angle_category])
            protos = pictures.grid(pictures.prototypes)
            width = max(len(protos), len(angle))
            grid = torch.ones(2, width, *protos.shape[1:])  # blank (white) where a row is shorter
            grid[0, :len(protos)], grid[1, :len(angle)] = protos, angle
            show(ax, grid, rf"{MODEL_LABELS[model]}, $\beta$={pictures.cfg.beta:g}")
    label = LABEL_NAMES.get(dataset, "label {}").format(ANGLE_DIGIT)
    fig.suptitle(f"Fig. 4 ({dataset}): prototypes of each learnt y, and the most informative $z_k$ "
                 f"traversed on {label}")
    caption(fig, "First row of each panel: every y decoded from the mean z of its test images. Second row: "
                 r"the $z_k$ of largest I(x;$z_k$) from -2 to 2, started from an image of the learnt class of "
                 f"{label} (the most used y if there is none). Columns: for each of the paper's "
                 f"{', '.join(f'{b:g}' for b in FIG4_BETAS)}, the closest " + r"$\beta$ not in an earlier column.")
    return save(fig, out_dir, f"fig4_{dataset}")
