"""The one trainer every model shares: data, forward pass, objective, optimiser, logging, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from . import runs
from .config import TrainConfig
from .data import load_dataset
from .data.batches import ImageSet, as_float, batches_per_epoch, shuffled_indices
from .data.mnist import ensure_available
from .errors import ImaeError
from .metrics import evaluate
from .networks import HybridAutoencoder, frozen_batchnorm_statistics
from .objectives import ForwardPass, build_objective
from .vat import nearest_neighbour_radius, virtual_adversarial_loss

IMAGE_SIDE = {"mnist": 28, "fashion-mnist": 28}


class NumericalError(ImaeError):
    """A loss term became NaN or infinite."""


def load_splits(cfg: TrainConfig, log: Callable = print) -> tuple[ImageSet, ImageSet]:
    ensure_available(cfg.dataset, cfg.data_dir, log=log)
    train = load_dataset(cfg.dataset, "train", cfg.data_dir)
    test = load_dataset(cfg.dataset, "test", cfg.data_dir)
    if cfg.train_subset is not None:
        train = train.subset(cfg.train_subset)
    side = IMAGE_SIDE[cfg.dataset]
    for split in (train, test):
        if tuple(split.images.shape[1:]) != (side, side):
            raise ImaeError(f"{split.name}: images are {tuple(split.images.shape[1:])}, "
                            f"the {cfg.dataset} network expects {side}x{side}")
    return train, test


def build_model(cfg: TrainConfig, input_dim: int) -> HybridAutoencoder:
    return HybridAutoencoder(input_dim, cfg.continuous_dim, cfg.categories, family="mnist")


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module):
    """Appendix G: SGD with momentum (MNIST family) or Adam, lr decayed by lr_decay per epoch."""
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)


def forward_pass(model: HybridAutoencoder, x: torch.Tensor, cfg: TrainConfig, step: int = 0,
                 vat_eps: float | torch.Tensor | None = None) -> ForwardPass:
    """Encode, sample the code, decode, and the VAT term (radius vat_eps, default cfg.vat_eps)."""
    post = model.encoder(x)
    z, y = model.sample_code(post, cfg.temperature)
    if cfg.vat:
        with frozen_batchnorm_statistics(model.encoder):
            eps = cfg.vat_eps if vat_eps is None else vat_eps
            vat = virtual_adversarial_loss(model.encoder.logits, x, post.logits, eps, cfg.vat_xi)
    else:
        vat = x.new_zeros(())
    return ForwardPass(x, post, z, y, model.decoder(z, y), vat, step)


def check_finite(terms: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise NumericalError(f"loss term '{name}' became {value.item()} at epoch {epoch}, step {step}; "
                                 f"the last good checkpoint is kept (try a smaller --lr)")


def train_epoch(model, objective, optimizer, train: ImageSet, cfg: TrainConfig, generator: torch.Generator,
                epoch: int, progress: bool, vat_radius: torch.Tensor | None = None) -> dict[str, float]:
    """One pass over the training set; returns the mean of every loss term. vat_radius: one
    VAT radius per training image, or None for cfg.vat_eps."""
    model.train()
    sums: dict[str, float] = {}
    steps = batches_per_epoch(len(train), cfg.batch_size)
    batches = shuffled_indices(len(train), cfg.batch_size, generator, train.images.device)
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress,
               leave=False, unit="batch")
    for step, index in enumerate(bar, 1):
        eps = None if vat_radius is None else vat_radius[index]
        fp = forward_pass(model, as_float(train.images[index]), cfg, (epoch - 1) * steps + step - 1, eps)
        terms = objective(fp)
        check_finite(terms, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{terms['loss'].item():.1f}", I_xy=f"{terms['mutual_info_xy'].item():.2f}")
    return {name: total / steps for name, total in sums.items()}


def format_epoch(epoch: int, cfg: TrainConfig, train_terms: dict, test: dict, seconds: float) -> str:
    loss = " ".join(f"{k}={v:.3f}" for k, v in train_terms.items())
    acc = f" accuracy={test['accuracy']:.4f}" if "accuracy" in test else ""
    return (f"epoch {epoch}/{cfg.epochs} [{seconds:.1f}s] train: {loss} | test:{acc} "
            f"I(x;y)={test['mutual_info_xy']:.3f} reconstruction_error={test['reconstruction_error']:.2f}")


def checkpoint_state(epoch: int, model, optimizer, scheduler, generator: torch.Generator) -> dict:
    """Everything a resumed run needs to continue exactly: weights, optimiser, schedule, RNGs."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch,
            "torch_rng": torch.get_rng_state(), "data_rng": generator.get_state()}


def restore(state: dict, model, optimizer, scheduler, generator: torch.Generator) -> int:
    """Load a checkpoint_state into the training objects; returns the epoch it was taken after."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["data_rng"])
        return int(state["epoch"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ImaeError(f"checkpoint does not fit the run's config ({type(exc).__name__}: {exc})") from None


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print) -> dict[str, float]:
    """Train (or resume) the run in run_dir; returns the final test metrics, also written
    to run_dir/metrics.json."""
    from torch.utils.tensorboard import SummaryWriter  # slow import; only needed here

    run_dir = Path(run_dir)
    train_set, test_set = load_splits(cfg, log)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg, train_set.input_dim)
    objective = build_objective(cfg)
    optimizer, scheduler = build_optimizer(cfg, model)
    training_state = (model, optimizer, scheduler, generator)
    start_epoch = 1
    if not resume:
        runs.prepare(run_dir, cfg)
    elif (run_dir / runs.CHECKPOINT).exists():
        start_epoch = restore(runs.load_checkpoint(run_dir), *training_state) + 1
        runs.truncate_history(run_dir, start_epoch - 1)
        log(f"resuming {run_dir} after epoch {start_epoch - 1}")
    else:  # killed before its first checkpoint: start again from its saved config
        runs.truncate_history(run_dir, 0)
    vat_radius = None
    if cfg.vat and cfg.vat_eps_neighbours is not None:
        log(f"VAT radius: {cfg.vat_eps} x distance to the {cfg.vat_eps_neighbours}-th nearest training image")
        vat_radius = nearest_neighbour_radius(as_float(train_set.images), cfg.vat_eps_neighbours, cfg.vat_eps)
    writer = SummaryWriter(log_dir=str(run_dir))
    test_metrics = {}
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            started = time.perf_counter()
            train_terms = train_epoch(model, objective, optimizer, train_set, cfg, generator, epoch, progress,
                                      vat_radius)
            seconds = time.perf_counter() - started
            scheduler.step()
            test_metrics = evaluate(model, test_set, cfg.eval_batch_size)
            log(format_epoch(epoch, cfg, train_terms, test_metrics, seconds))
            for name, value in train_terms.items():
                writer.add_scalar(f"train/{name}", value, epoch)
            for name, value in test_metrics.items():
                writer.add_scalar(f"test/{name}", value, epoch)
            writer.flush()
            # History first: a kill between the two leaves a row that resuming drops and redoes.
            runs.append_history(run_dir, {"epoch": epoch, "seconds": seconds,
                                          "samples_per_second": len(train_set) / seconds,
                                          "train": train_terms, "test": test_metrics})
            runs.save_checkpoint(run_dir, checkpoint_state(epoch, *training_state))
    finally:
        writer.close()
    if not test_metrics:  # resumed a finished run: nothing trained, evaluate what is there
        test_metrics = evaluate(model, test_set, cfg.eval_batch_size)
    metrics = {**test_metrics, "epochs": cfg.epochs}
    runs.write_json(run_dir / runs.METRICS, metrics)
    return metrics


def load_trained(run_dir: Path) -> tuple[TrainConfig, HybridAutoencoder, dict]:
    """The config and the model of a run directory, from its latest checkpoint."""
    cfg = runs.load_config(run_dir)
    state = runs.load_checkpoint(run_dir)
    input_dim = IMAGE_SIDE[cfg.dataset] ** 2
    model = build_model(cfg, input_dim)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise ImaeError(f"{Path(run_dir) / runs.CHECKPOINT}: does not fit the run's config ({exc})") from None
    model.eval()
    return cfg, model, state


def evaluate_run(run_dir: Path, data_dir: str | None = None, log: Callable = print) -> dict[str, float]:
    """Recompute the run's test metrics from its checkpoint and write metrics.json."""
    cfg, model, state = load_trained(run_dir)
    if data_dir is not None:
        cfg.data_dir = data_dir
    ensure_available(cfg.dataset, cfg.data_dir, log=log)
    test = load_dataset(cfg.dataset, "test", cfg.data_dir)
    metrics = {**evaluate(model, test, cfg.eval_batch_size), "epochs": state["epoch"]}
    runs.write_json(Path(run_dir) / runs.METRICS, metrics)
    return metrics
