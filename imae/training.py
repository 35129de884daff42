"""The one trainer every model shares: data, forward pass, objective, optimiser, logging, checkpoints."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from . import estimators as est
from . import runs
from .augment import augmentation_consistency
from .config import TrainConfig
from . import data
from .data import IDX_DATASETS, has_test_split, load_dataset
from .data.batches import ImageSet, as_float, batches_per_epoch, shuffled_indices
from .data.mnist import ensure_available
from .errors import CheckpointError, ConfigError, DataError, ImaeError
from .metrics import encode, evaluate
from .networks import HybridAutoencoder, frozen_batchnorm_statistics
from .objectives import ForwardPass, build_objective
from .precision import autocast, choose_precision, hardware
from .neighbour_cache import neighbour_distance
from .vat import virtual_adversarial_loss

MONITOR_SIZE = 10_000  # test images evaluated after every epoch; the final metrics use the whole split
RESTART_SEED_STRIDE = 10_000  # restart candidate i starts from seed + i * RESTART_SEED_STRIDE


class NumericalError(ImaeError):
    """A loss term became NaN or infinite."""


def load_splits(cfg: TrainConfig, log: Callable = print) -> tuple[ImageSet, ImageSet | None, ImageSet]:
    """The training, validation (None without cfg.validation_size) and test splits; their image shape
    decides the network's input. The validation images are held out of the training split first, so
    that no choice of train_split, train_subset or seed can train on them; train_split "all" then adds
    the test images to the training images."""
    if cfg.dataset in IDX_DATASETS:
        ensure_available(cfg.dataset, cfg.data_dir, log=log)
    train, test = data.load_splits(cfg.dataset, cfg.data_dir, cfg.image_size, log)
    validation = None
    if cfg.validation_size:
        if cfg.validation_size > len(train) - 2:
            raise ConfigError(f"option validation_size: {cfg.validation_size} of {len(train)} training images "
                              f"leaves fewer than 2 to train on")
        train, validation = hold_out(train, cfg.validation_size, cfg.validation_seed)
    if cfg.train_split == "all":
        if test is train:
            raise ConfigError(f"option train_split: {cfg.dataset} has no test split apart from its training "
                              f"images; use train_split 'train'")
        log(f"train_split all: training on the {len(train)} training and the {len(test)} test images; the "
            f"test metrics are not held out")
        train = train.concat(test)
    if cfg.train_subset is not None and cfg.train_subset < len(train):
        train = train.select(random_rows(len(train), cfg.train_subset, cfg.seed))
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"{cfg.dataset}: training images are {tuple(train.images.shape[1:])} but test images "
                        f"are {tuple(test.images.shape[1:])}")
    if len(train) < 2:
        raise DataError(f"{cfg.dataset}: {len(train)} training image(s); at least 2 are needed")
    return train, validation, test


def hold_out(split: ImageSet, size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(the rest, `size` images chosen at random by seed), each in the split's order."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return split.select(order[size:].sort().values), split.select(order[:size].sort().values)


def random_rows(n: int, size: int, seed: int) -> torch.Tensor:
    """A seeded random choice of `size` of n rows, in increasing order (memory-mapped data read in order)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def monitor_split(test: ImageSet, seed: int) -> ImageSet:
    """A fixed random subset of at most MONITOR_SIZE test images for the per-epoch log."""
    return test if len(test) <= MONITOR_SIZE else test.select(random_rows(len(test), MONITOR_SIZE, seed))


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available, else CPU; cuda without a GPU is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("option device: cuda was asked for but no CUDA device is available (use --device cpu)")
    return torch.device(name)


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...]) -> HybridAutoencoder:
    return HybridAutoencoder(input_shape, cfg.continuous_dim, cfg.categories, cfg.architecture, cfg.has_decoder,
                             cfg.hidden_init_scale, cfg.output_init_scale)


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module):
    """Appendix G: SGD with momentum (MNIST family) or Adam, lr decayed by lr_decay per epoch."""
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)


def forward_pass(model: HybridAutoencoder, x: torch.Tensor, cfg: TrainConfig, step: int = 0,
                 vat_eps: float | torch.Tensor | None = None) -> ForwardPass:
    """Encode, sample the code and decode (a model without decoder, IMSAT, does neither), the VAT term
    (radius vat_eps, default cfg.vat_eps) and, if switched on, the augmentation consistency; the networks at
    cfg.precision, their outputs and everything computed from them in float32 (precision.py)."""
    z = y = reconstruction = consistency = None
    with autocast(cfg.precision, x.device):
        post = model.encoder(x)
        if model.decoder is not None:
            z, y = model.sample_code(post, cfg.temperature)
        if cfg.vat:
            with frozen_batchnorm_statistics(model.encoder):
                eps = cfg.vat_eps if vat_eps is None else vat_eps
                vat = virtual_adversarial_loss(model.encoder.logits, x, post.logits, eps, cfg.vat_xi)
        else:
            vat = x.new_zeros(())
        if cfg.augment_consistency > 0:
            with frozen_batchnorm_statistics(model.encoder):
                consistency = augmentation_consistency(model.encoder.logits, x, post.logits, model.input_shape)
        if model.decoder is not None:
            reconstruction = model.decoder(z, y)
    return ForwardPass(x, post, z, y, reconstruction, vat, step, consistency)


def check_finite(terms: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    """Stop on NaN or Inf, naming the term that went first (the total loss only if no term did).
    One device synchronisation per step: all terms are tested at once."""
    if bool(torch.isfinite(torch.stack([value.detach().float() for value in terms.values()])).all()):
        return
    for name in sorted(terms, key=lambda name: name == "loss"):
        value = terms[name]
        if not torch.isfinite(value).all():
            raise NumericalError(f"loss term '{name}' became {value.item()} at epoch {epoch}, step {step}; "
                                 f"the last good checkpoint is kept (try a smaller --lr)")


def train_step(model, objective, optimizer, x: torch.Tensor, cfg: TrainConfig, step: int = 0,
               vat_eps: float | torch.Tensor | None = None, check: Callable[[dict], None] | None = None) -> dict:
    """One optimiser step on the float batch x; check(terms) runs before the update (NaN guard)."""
    terms = objective(forward_pass(model, x, cfg, step, vat_eps))
    if check is not None:
        check(terms)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return terms


def train_epoch(model, objective, optimizer, train: ImageSet, cfg: TrainConfig, generator: torch.Generator,
                epoch: int, progress: bool, vat_radius: torch.Tensor | None = None) -> dict[str, float]:
    """One pass over the training set; returns the mean of every loss term. vat_radius: one
    VAT radius per training image, or None for cfg.vat_eps."""
    model.train()
    sums: dict[str, torch.Tensor] = {}
    steps = batches_per_epoch(len(train), cfg.batch_size)
    batches = shuffled_indices(len(train), cfg.batch_size, generator, train.images.device)
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress,
               leave=False, unit="batch")
    for step, index in enumerate(bar, 1):
        eps = None if vat_radius is None else vat_radius[index]
        x = as_float(train.images[index])
        terms = train_step(model, objective, optimizer, x, cfg, (epoch - 1) * steps + step - 1, eps,
                           lambda t: check_finite(t, epoch, step))
        for name, value in terms.items():  # summed on the device: no synchronisation per term
            sums[name] = sums.get(name, 0.0) + value.detach()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{terms['loss'].item():.1f}", I_xy=f"{terms['mutual_info_xy'].item():.2f}")
    return {name: float(total) / steps for name, total in sums.items()}


def format_epoch(epoch: int, cfg: TrainConfig, train_terms: dict, evaluations: dict[str, dict], seconds: float) -> str:
    """One log line: the mean loss terms, then the metrics of each evaluated split (validation, test)."""
    loss = " ".join(f"{k}={v:.3f}" for k, v in train_terms.items())
    return f"epoch {epoch}/{cfg.epochs} [{seconds:.1f}s] train: {loss}" + "".join(
        f" | {split}:" + (f" accuracy={m['accuracy']:.4f}" if "accuracy" in m else "")
        + f" I(x;y)={m['mutual_info_xy']:.3f}"
        + (f" reconstruction_error={m['reconstruction_error']:.2f}" if "reconstruction_error" in m else "")
        + "".join(f" {key}={m[key]:.4f}" for key in ("mig", "mig_with_y") if m.get(key) is not None)
        for split, m in evaluations.items())


VALIDATION_METRICS = ("accuracy", "mutual_info_xy", "reconstruction_error")


def validation_metrics(model: HybridAutoencoder, validation: ImageSet, cfg: TrainConfig) -> dict:
    """metrics.json's validation_accuracy, validation_mutual_info_xy, validation_reconstruction_error."""
    metrics = evaluate(model, validation, cfg.eval_batch_size)
    return {f"validation_{name}": metrics[name] for name in VALIDATION_METRICS if name in metrics}


@dataclass
class TrainingState:
    """The objects a run updates; checkpoint_state/restore save and reload all of them."""

    model: HybridAutoencoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # shuffles the data (CPU, independent of the model's sampling RNG)
    device: torch.device
    precision: str = "fp32"  # fp32 or bf16: chosen once per run (auto resolved), kept by its checkpoints
    precision_reason: str = "asked for"


def new_training_state(cfg: TrainConfig, input_shape: tuple[int, ...]) -> TrainingState:
    """Seeded model, optimiser, schedule and data RNG on cfg's device; cfg's precision, auto chosen here."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, input_shape).to(device)
    optimizer, scheduler = build_optimizer(cfg, model)
    return TrainingState(model, optimizer, scheduler, torch.Generator().manual_seed(cfg.seed), device,
                         *choose_precision(cfg.precision, device))


def checkpoint_state(epoch: int, state: TrainingState) -> dict:
    """Everything a resumed run needs to continue exactly: weights, optimiser, schedule, RNGs."""
    saved = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
             "scheduler": state.scheduler.state_dict(), "epoch": epoch,
             "input_shape": list(state.model.input_shape),
             "torch_rng": torch.get_rng_state(), "data_rng": state.generator.get_state(),
             "precision": state.precision}
    if state.device.type == "cuda":
        saved["cuda_rng"] = torch.cuda.get_rng_state(state.device)
    return saved


def restore(saved: dict, state: TrainingState) -> int:
    """Load a checkpoint_state into the training objects; returns the epoch it was taken after."""
    try:
        state.model.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        state.generator.set_state(saved["data_rng"])
        if state.device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], state.device)
        # A resumed run keeps its precision, whatever auto would choose here; older checkpoints are fp32.
        state.precision, state.precision_reason = saved.get("precision", "fp32"), "kept from the run's checkpoint"
        return int(saved["epoch"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint does not fit the run's config ({type(exc).__name__}: {exc})") from None


# The exact nearest-neighbour radii cost N^2 D multiply-adds: MNIST's 60,000^2 x 784 = 2.8e12 take about
# 3 minutes on one core (then they are cached: imae.neighbour_cache); past this limit (about half an hour) a run
# is refused rather than stalled for hours.
NEIGHBOUR_RADIUS_LIMIT = 3e13


def per_sample_vat_radius(cfg: TrainConfig, train_set: ImageSet) -> torch.Tensor | None:
    """IMSAT's radius of every training image (vat_eps x the distance to its vat_eps_neighbours-th nearest
    training image; on fewer images than that, to the farthest other one), or None for the fixed radius vat_eps."""
    if not (cfg.vat and cfg.vat_eps_neighbours):
        return None
    n, d = len(train_set), train_set.images[0].numel()
    neighbours = min(cfg.vat_eps_neighbours, n - 1)
    if float(n) * n * d > NEIGHBOUR_RADIUS_LIMIT:
        raise ConfigError(f"option vat_eps_neighbours: the nearest-neighbour radii of {n} images of {d} values "
                          f"take {float(n) * n * d:.1e} multiply-adds (MNIST's 2.8e12: about 3 minutes on one "
                          f"core); on data this large use vat_eps_neighbours 0, the fixed radius vat_eps")
    return cfg.vat_eps * neighbour_distance(train_set.images, neighbours)


def fit(cfg: TrainConfig, state: TrainingState, train_set: ImageSet, start_epoch: int = 1, progress: bool = True,
        on_epoch: Callable[[int, dict, float], None] | None = None, vat_radius: torch.Tensor | None = None,
        end_epoch: int | None = None) -> None:
    """The training loop shared by `imae train` and the Python API: epochs start_epoch..end_epoch (default
    cfg.epochs), on_epoch(epoch, mean train terms, seconds) after each (evaluation, logging, checkpoints).
    vat_radius: per_sample_vat_radius of train_set if already computed."""
    cfg = dataclasses.replace(cfg, precision=state.precision)
    objective = build_objective(cfg)
    train_set = train_set.to(state.device)
    if vat_radius is None:
        vat_radius = per_sample_vat_radius(cfg, train_set)
    for epoch in range(start_epoch, (cfg.epochs if end_epoch is None else end_epoch) + 1):
        started = time.perf_counter()
        train_terms = train_epoch(state.model, objective, state.optimizer, train_set, cfg, state.generator, epoch,
                                  progress, vat_radius)
        seconds = time.perf_counter() - started
        state.scheduler.step()
        if on_epoch is not None:
            on_epoch(epoch, train_terms, seconds)


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print) -> dict[str, float]:
    """Train (or resume) the run in run_dir; returns the final test metrics, also written
    to run_dir/metrics.json."""
    from torch.utils.tensorboard import SummaryWriter  # slow import; only needed here

    run_dir = Path(run_dir)
    cfg = with_threads(cfg)
    train_set, validation_set, test_set = load_splits(cfg, log)
    input_shape = tuple(train_set.images.shape[1:])
    state = new_training_state(cfg, input_shape)
    train_set, test_set = train_set.to(state.device), test_set.to(state.device)
    monitors = {"test": monitor_split(test_set, cfg.seed)}
    if validation_set is not None:
        validation_set = validation_set.to(state.device)
        monitors = {"validation": monitor_split(validation_set, cfg.seed), **monitors}
        log(f"validation split: {len(validation_set)} training images held out (validation_seed "
            f"{cfg.validation_seed}); {len(train_set)} left to train on")
    if cfg.monitor_mig and test_set.factors is None:
        raise ConfigError(f"option monitor_mig: {cfg.dataset} has no known generative factors to compute MIG "
                          f"against (dSprites has)")
    vat_radius = per_sample_vat_radius(cfg, train_set)  # before the run directory: it may refuse the data
    start_epoch = 1
    # config.json records the threads and the precision auto resolved to: re-running it trains the same way.
    recorded = dataclasses.replace(cfg, precision=state.precision)
    if not resume:
        runs.prepare(run_dir, recorded)
    else:
        start_epoch = resume_point(run_dir, state, log)
        if start_epoch == 1:  # a directory prepared by a sweep, or killed before its first checkpoint
            runs.write_json(run_dir / runs.CONFIG, recorded.to_dict())
    device = next(state.model.parameters()).device
    log(f"precision: {state.precision} ({state.precision_reason}); hardware: {hardware(device)}")
    if vat_radius is not None:
        log(f"VAT radius: {cfg.vat_eps} x distance to the {cfg.vat_eps_neighbours}-th nearest training image")
    writer = SummaryWriter(log_dir=str(run_dir))

    def evaluated(model: HybridAutoencoder, epoch: int, train_terms: dict, seconds: float, prefix: str = "") -> dict:
        """The epoch's history row: its mean train terms and the metrics of the monitored splits."""
        evaluations = {split: evaluate(model, images, cfg.eval_batch_size, seed=cfg.seed, mig=cfg.monitor_mig)
                       for split, images in monitors.items()}
        log(prefix + format_epoch(epoch, cfg, train_terms, evaluations, seconds))
        return {"epoch": epoch, "seconds": seconds, "samples_per_second": len(train_set) / seconds,
                "train": train_terms, **evaluations}

    def record(row: dict) -> None:
        for split in ("train", *monitors):
            for name, value in row[split].items():
                if value is not None:  # mig of a one-dimensional z
                    writer.add_scalar(f"{split}/{name}", value, row["epoch"])
        writer.flush()
        runs.append_history(run_dir, row)

    def after_epoch(epoch: int, train_terms: dict, seconds: float) -> None:
        # History first: a kill between the two leaves a row that resuming drops and redoes.
        record(evaluated(state.model, epoch, train_terms, seconds))
        runs.save_checkpoint(run_dir, checkpoint_state(epoch, state))

    try:
        if start_epoch == 1 and cfg.restarts > 1:
            state, start_epoch = start_from_restarts(cfg, run_dir, train_set, input_shape, vat_radius, progress,
                                                     evaluated, record, log)
        fit(cfg, state, train_set, start_epoch, progress, after_epoch, vat_radius)
    finally:
        writer.close()
    metrics = {**final_metrics(state.model, test_set, cfg, log), "epochs": cfg.epochs, **restart_record(run_dir),
               "training_precision": state.precision, "training_hardware": hardware(device)}
    if validation_set is not None:
        metrics.update(validation_metrics(state.model, validation_set, cfg))
    runs.write_json(run_dir / runs.METRICS, metrics)
    return metrics


def with_threads(cfg: TrainConfig) -> TrainConfig:
    """Train with cfg.threads torch threads, or record torch's current count where it is None."""
    if cfg.threads is None:
        return dataclasses.replace(cfg, threads=torch.get_num_threads())
    torch.set_num_threads(cfg.threads)
    return cfg


def unsupervised_score(model: HybridAutoencoder, train_set: ImageSet, cfg: TrainConfig) -> float:
    """I(x;y) over the training images, eq (7), in evaluation mode: what restarts are chosen by (no labels)."""
    return est.mutual_information_xy(encode(model, train_set.images, cfg.eval_batch_size).logits).item()


def choose_restart(cfg: TrainConfig, train_set: ImageSet, input_shape: tuple[int, ...],
                   vat_radius: torch.Tensor | None = None, progress: bool = True,
                   on_epoch: Callable[[int, HybridAutoencoder, int, dict, float], None] | None = None,
                   log: Callable[[str], None] = print) -> tuple[TrainingState, dict]:
    """cfg.restarts initialisations (candidate i from seed + i * RESTART_SEED_STRIDE; 0 is the run's own),
    each trained cfg.restart_epochs epochs; the one of highest unsupervised_score is kept. Returns its
    state, RNGs included, as at the end of its epochs (it goes on as a run of its seed would), and the
    record {"restart_chosen": i, "restart_candidates": [{"seed", "train_mutual_info_xy", "seconds"}]}.
    on_epoch(i, model, epoch, mean train terms, seconds) after every epoch of candidate i."""
    candidates, chosen, saved = [], 0, None
    for i in range(cfg.restarts):
        seed = cfg.seed + RESTART_SEED_STRIDE * i
        state = new_training_state(dataclasses.replace(cfg, seed=seed), input_shape)
        seconds = []

        def each_epoch(epoch: int, terms: dict, elapsed: float, i: int = i) -> None:
            seconds.append(elapsed)
            if on_epoch is not None:
                on_epoch(i, state.model, epoch, terms, elapsed)

        fit(cfg, state, train_set, 1, progress, each_epoch, vat_radius, end_epoch=cfg.restart_epochs)
        score = unsupervised_score(state.model, train_set.to(state.device), cfg)
        log(f"restart {i + 1}/{cfg.restarts} (seed {seed}): I(x;y) = {score:.4f} on the training images")
        candidates.append({"seed": seed, "train_mutual_info_xy": score, "seconds": sum(seconds)})
        if saved is None or score > candidates[chosen]["train_mutual_info_xy"]:
            chosen, saved = i, checkpoint_state(cfg.restart_epochs, state)
    state = new_training_state(cfg, input_shape)
    restore(saved, state)
    log(f"restarts: continuing candidate {chosen + 1} (seed {candidates[chosen]['seed']})")
    return state, {"restart_chosen": chosen, "restart_candidates": candidates}


def start_from_restarts(cfg: TrainConfig, run_dir: Path, train_set: ImageSet, input_shape: tuple[int, ...],
                        vat_radius: torch.Tensor | None, progress: bool, evaluated: Callable, record: Callable,
                        log: Callable) -> tuple[TrainingState, int]:
    """choose_restart for `train`: every candidate's epochs are logged, and its last monitored metrics kept
    in restarts.json for the record (the choice never sees them); the history gets the chosen candidate's
    epochs, then its checkpoint. Returns the chosen state and the first epoch still to train."""
    rows: dict[int, list[dict]] = {}

    def each_epoch(i: int, model: HybridAutoencoder, epoch: int, terms: dict, seconds: float) -> None:
        rows.setdefault(i, []).append(evaluated(model, epoch, terms, seconds, f"restart {i + 1}/{cfg.restarts}: "))

    state, restarts = choose_restart(cfg, train_set, input_shape, vat_radius, progress, each_epoch, log)
    for i, candidate in enumerate(restarts["restart_candidates"]):
        candidate.update({split: rows[i][-1][split] for split in rows[i][-1] if split in ("validation", "test")})
    runs.write_json(Path(run_dir) / runs.RESTARTS, restarts)
    for row in rows[restarts["restart_chosen"]]:
        record(row)
    runs.save_checkpoint(run_dir, checkpoint_state(cfg.restart_epochs, state))
    return state, cfg.restart_epochs + 1


def restart_record(run_dir: Path) -> dict:
    """metrics.json's restart keys: the run's restarts.json, or nothing for a run without restarts."""
    path = Path(run_dir) / runs.RESTARTS
    return runs.read_json(path) if path.is_file() else {}


def resume_point(run_dir: Path, state: TrainingState, log: Callable) -> int:
    """Restore the run's last checkpoint (if any) and drop what a killed process left after it;
    returns the first epoch still to train."""
    runs.remove_stale_temporaries(run_dir)
    if not (run_dir / runs.CHECKPOINT).exists():  # killed before its first checkpoint: start again
        runs.truncate_history(run_dir, 0)
        return 1
    epoch = restore(runs.load_checkpoint(run_dir), state)
    runs.truncate_history(run_dir, epoch)
    log(f"resuming {run_dir} after epoch {epoch}")
    return epoch + 1


def final_metrics(model: HybridAutoencoder, test_set: ImageSet, cfg: TrainConfig, log: Callable = print) -> dict:
    """Every metric that applies to the data set and the model, on the whole test split, and whether the
    test images were among the training images (train_split "all", or a data set without a test split).
    In fp32 whatever the run trained in: bf16 encodings did not keep every metric within 1e-3
    (docs/benchmarks.md, "Precision")."""
    if len(test_set) > MONITOR_SIZE:
        log(f"evaluating on all {len(test_set)} test images")
    trained_on = cfg.train_split == "all" or not has_test_split(cfg.dataset)
    if cfg.train_split == "all":
        log("the test images were trained on (train_split all): the test metrics are not held out")
    return {**evaluate(model, test_set, cfg.eval_batch_size, complete=True, seed=cfg.seed,
                       dci_estimator=cfg.dci_estimator),
            "test_images_trained_on": trained_on}


def load_trained(run_dir: Path, device: str = "cpu") -> tuple[TrainConfig, HybridAutoencoder, dict]:
    """The config and the model of a run directory, from its latest checkpoint."""
    cfg = runs.load_config(run_dir)
    saved = runs.load_checkpoint(run_dir)
    try:
        model = build_model(cfg, tuple(saved["input_shape"]))
        model.load_state_dict(saved["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{Path(run_dir) / runs.CHECKPOINT}: does not fit the run's config "
                              f"({type(exc).__name__}: {exc})") from None
    model.to(resolve_device(device)).eval()
    return cfg, model, saved


def evaluate_run(run_dir: Path, data_dir: str | None = None, device: str = "cpu",
                 log: Callable = print) -> dict[str, float]:
    """Recompute the run's test metrics from its checkpoint and write metrics.json."""
    cfg, model, saved = load_trained(run_dir, device)
    if data_dir is not None:
        cfg.data_dir = data_dir
    if cfg.validation_size:  # the validation images are held out of the training split: read it
        _, validation, test = load_splits(cfg, log)
    else:
        if cfg.dataset in IDX_DATASETS:
            ensure_available(cfg.dataset, cfg.data_dir, log=log)
        validation, test = None, load_dataset(cfg.dataset, "test", cfg.data_dir, cfg.image_size, log)
    check_fits(model, test)
    device = next(model.parameters()).device
    previous = runs.read_json(Path(run_dir) / runs.METRICS) if (Path(run_dir) / runs.METRICS).is_file() else {}
    metrics = {**final_metrics(model, test.to(device), cfg, log), "epochs": saved["epoch"], **restart_record(run_dir),
               "training_precision": saved.get("precision", "fp32"),
               **{k: previous[k] for k in ("training_hardware",) if k in previous}}
    if validation is not None:
        metrics.update(validation_metrics(model, validation.to(device), cfg))
    runs.write_json(Path(run_dir) / runs.METRICS, metrics)
    return metrics


def check_fits(model: HybridAutoencoder, images: ImageSet) -> None:
    """Images must have the shape the network was built for."""
    if images.input_dim != math.prod(model.input_shape):
        raise DataError(f"{images.name or 'data'}: images of shape {tuple(images.images.shape[1:])} do not fit "
                        f"the network, built for {'x'.join(map(str, model.input_shape))}")
