"""Training configuration: one dataclass, validated, saved with every run as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DATASETS = ("mnist", "fashion-mnist", "dsprites")
MODELS = ("imae", "beta-vae", "info-vae", "joint-vae")
ARCHITECTURES = ("mlp", "mlp-large", "conv")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the hardware runs it fast (precision.py)
INFOVAE_DIVERGENCES = ("kl", "mmd-rbf", "mmd-imq")
# JointVAE's published schedules (Dupont 2018): (C_y target, C_z target, iterations to reach them);
# a user's own data gets MNIST's.
JOINTVAE_CAPACITIES = {"mnist": (5.0, 5.0, 25_000), "fashion-mnist": (10.0, 5.0, 50_000),
                       "dsprites": (1.1, 40.0, 300_000)}
# Appendix G: K2 = 3 and the larger MLP on dSprites; K2 = 10 and the smaller MLP elsewhere.
DATASET_DEFAULTS = {"dsprites": {"categories": 3, "architecture": "mlp-large"}}
GENERIC_DEFAULTS = {"categories": 10, "architecture": "mlp"}
OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults are documented in the README."""

    dataset: str = "mnist"  # a name in DATASETS, or a path to an image folder, a .npy or a .npz file
    data_dir: str | None = None
    image_size: int | None = None  # own data: resize images to image_size x image_size
    model: str = "imae"
    # Code shape: K1 Gaussian dimensions, one K2-way categorical (None: the data set's default).
    continuous_dim: int = 10
    categories: int | None = None
    architecture: str | None = None  # mlp | mlp-large | conv (None: the data set's default)
    # Objective weights, eq (10): recon + beta*L(y) + beta*L(z) - gamma*TC. The three w_* weights
    # are 1 in the paper; the defaults were chosen by measurement on MNIST (README, "Defaults").
    beta: float = 5.0
    gamma: float | None = None  # None means 2 * beta, the paper's rule
    reconstruction_weight: float = 0.1
    marginal_entropy_weight: float = 4.0  # weight of H(y) against H(y|x) in I(x;y), eq (7)
    # Virtual adversarial training on p(y|x), eq (11).
    vat: bool = True
    vat_weight: float = 10.0
    vat_eps: float = 1.0
    vat_eps_neighbours: int | None = None  # if set: radius = vat_eps x distance to the k-th neighbour (IMSAT)
    vat_xi: float = 1.0
    temperature: float = 0.67
    # Baselines (section 3 of METHOD.md): InfoVAE's divergence on p(z); JointVAE's capacities,
    # raised linearly from 0 to the target over capacity_iterations (None: data set default).
    infovae_divergence: str = "kl"
    capacity_y: float | None = None
    capacity_z: float | None = None
    capacity_iterations: int | None = None
    # Optimisation. Appendix G: SGD with momentum 0.9, lr 1e-3, x0.98 per epoch (optimizer="sgd");
    # Adam with the same lr and decay reached a higher accuracy (README, "Defaults").
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    lr_decay: float = 0.98
    batch_size: int = 256
    epochs: int = 20
    seed: int = 0
    train_subset: int | None = None  # train on N training images chosen at random by the seed (quick looks)
    eval_batch_size: int = 2000
    device: str = "auto"  # auto: CUDA when available, else CPU
    precision: str = "auto"  # the networks' matmuls; a run resolves auto once and keeps it (training.py)

    @property
    def gamma_value(self) -> float:
        return 2.0 * self.beta if self.gamma is None else self.gamma

    def validate(self) -> "TrainConfig":
        """Check every setting; fill the data-set-dependent defaults so the saved config is complete."""
        if not isinstance(self.dataset, str) or not (self.dataset in DATASETS or is_data_path(self.dataset)):
            raise ConfigError(f"option dataset: expected one of {', '.join(DATASETS)}, or a path to an image "
                              f"folder, a .npy or a .npz file, got {self.dataset!r}")
        _choice("model", self.model, MODELS)
        _choice("infovae_divergence", self.infovae_divergence, INFOVAE_DIVERGENCES)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        defaults = DATASET_DEFAULTS.get(self.dataset, GENERIC_DEFAULTS)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        _choice("architecture", self.architecture, ARCHITECTURES)
        if self.image_size is not None:
            _integer_at_least("image_size", self.image_size, 4)
        if self.model == "joint-vae":
            c_y, c_z, iterations = JOINTVAE_CAPACITIES.get(self.dataset, JOINTVAE_CAPACITIES["mnist"])
            self.capacity_y = c_y if self.capacity_y is None else self.capacity_y
            self.capacity_z = c_z if self.capacity_z is None else self.capacity_z
            self.capacity_iterations = iterations if self.capacity_iterations is None else self.capacity_iterations
            _at_least("capacity_y", self.capacity_y, 0.0)
            _at_least("capacity_z", self.capacity_z, 0.0)
            _integer_at_least("capacity_iterations", self.capacity_iterations, 1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("beta", "reconstruction_weight", "marginal_entropy_weight", "vat_weight",
                     "vat_eps", "momentum"):
            _at_least(name, getattr(self, name), 0.0)
        if self.gamma is not None:
            _at_least("gamma", self.gamma, 0.0)
        for name in ("vat_xi", "temperature", "lr"):
            _positive(name, getattr(self, name))
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"option lr_decay: expected a number in (0, 1], got {self.lr_decay}")
        _integer_at_least("continuous_dim", self.continuous_dim, 1)
        _integer_at_least("categories", self.categories, 2)
        _integer_at_least("batch_size", self.batch_size, 2)
        _integer_at_least("epochs", self.epochs, 1)
        _integer_at_least("eval_batch_size", self.eval_batch_size, 1)
        if self.vat_eps_neighbours is not None:
            _integer_at_least("vat_eps_neighbours", self.vat_eps_neighbours, 1)
        if self.train_subset is not None:
            _integer_at_least("train_subset", self.train_subset, 2)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"option data_dir: expected a path, got {self.data_dir!r}")
        if not isinstance(self.vat, bool):
            raise ConfigError(f"option vat: expected true or false, got {self.vat!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object of settings")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        try:
            return cls(**values).validate()
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON config ({exc})") from None
        return cls.from_dict(values, source=str(path))


def is_data_path(dataset: str) -> bool:
    """A user's data set: a path (it need not exist yet; loading says so if it does not)."""
    return "/" in dataset or dataset.endswith((".npy", ".npz")) or Path(dataset).exists()


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"option {name}: expected one of {', '.join(allowed)}, got {value!r}")


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"option {name}: expected a finite number, got {value!r}")


def _at_least(name, value, low):
    _number(name, value)
    if value < low:
        raise ConfigError(f"option {name}: expected a number >= {low}, got {value}")


def _positive(name, value):
    _number(name, value)
    if value <= 0:
        raise ConfigError(f"option {name}: expected a number > 0, got {value}")


def _integer_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"option {name}: expected an integer >= {low}, got {value!r}")
