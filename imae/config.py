"""Training configuration: one dataclass, validated, saved with every run as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DATASETS = ("mnist", "fashion-mnist", "dsprites")
# The paper's four models: an encoder p(y, z | x) and a decoder q(x | y, z). IMSAT (Hu et al. 2017) has
# only the encoder to p(y|x): no z, no decoder (imae/objectives.py, IMSATObjective).
AUTOENCODERS = ("imae", "beta-vae", "info-vae", "joint-vae")
MODELS = AUTOENCODERS + ("imsat",)
ARCHITECTURES = ("mlp", "mlp-large", "mlp-imsat", "conv")
TRAIN_SPLITS = ("train", "all")
DEVICES = ("auto", "cpu", "cuda")
DCI_ESTIMATORS = ("gbt", "forest")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the hardware runs it fast (precision.py)
INFOVAE_DIVERGENCES = ("kl", "mmd-rbf", "mmd-imq")
# JointVAE's published schedules (Dupont 2018): (C_y target, C_z target, iterations to reach them);
# a user's own data gets MNIST's.
JOINTVAE_CAPACITIES = {"mnist": (5.0, 5.0, 25_000), "fashion-mnist": (10.0, 5.0, 50_000),
                       "dsprites": (1.1, 40.0, 300_000)}
# Settings left unset (None) are filled from layers, the first that has them winning: the model's
# (MODEL_DEFAULTS), the recipe's for the data set, the recipe's, the data set's, the generic ones.
# Appendix G: K2 = 3 and the larger MLP on dSprites; K2 = 10 and the smaller MLP elsewhere.
GENERIC_DEFAULTS = {"categories": 10, "architecture": "mlp", "continuous_dim": 10, "beta": 5.0, "vat_eps": 1.0,
                    "vat_eps_neighbours": 0, "vat_xi": 1.0, "batch_size": 256, "epochs": 20}
DATASET_DEFAULTS = {"dsprites": {"categories": 3, "architecture": "mlp-large"}}
OPTIMIZERS = ("sgd", "adam")
# Two named recipes fill the settings a user leaves unset (docs/method.md, "Recipes"). `paper` is eq (10)-(11) as
# written (unit weights) with Appendix G's optimisers; `tuned` is ours, chosen by measurement on a validation
# split of MNIST: IMSAT's weight of H(y), a light reconstruction, Adam, and IMSAT's VAT (xi 5, a radius of 0.25 x
# the distance to the 10th nearest training image) three times as strong as IMSAT weighs it, for 50 epochs: what
# splits 4 from 9 (docs/method.md, "IMSAT's VAT in IMAE").
RECIPES = {
    "paper": {"reconstruction_weight": 1.0, "marginal_entropy_weight": 1.0, "vat_weight": 1.0,
              "optimizer": "sgd", "lr": 1e-3, "lr_decay": 0.98, "infovae_divergence": "kl"},
    "tuned": {"reconstruction_weight": 0.3, "marginal_entropy_weight": 4.0, "vat_weight": 30.0,
              "vat_xi": 5.0, "vat_eps": 0.25, "vat_eps_neighbours": 10,
              "optimizer": "adam", "lr": 1e-3, "lr_decay": 0.98, "epochs": 50, "infovae_divergence": "kl"},
}
# Appendix G: "dSprites: We use Adam to train all models. The learning rate is set as 1e-3" (no decay stated).
# The tuned recipe keeps the fixed VAT radius there: nearest neighbours of 737,280 images of 4,096 pixels would
# take days (training.NEIGHBOUR_RADIUS_LIMIT), and 20 epochs, as before.
RECIPE_DATASET_DEFAULTS = {("paper", "dsprites"): {"optimizer": "adam", "lr": 1e-3, "lr_decay": 1.0},
                           ("tuned", "dsprites"): {"vat_xi": 1.0, "vat_eps": 1.0, "vat_eps_neighbours": 0,
                                                   "epochs": 20}}
# IMSAT's published MNIST recipe (Hu et al. 2017, and the authors' chainer code, weihua916/imsat), whatever the
# recipe: VAT + 0.1 (H(y|x) - 4 H(y)) is -beta L(y) with beta 0.1, w_H 4, w_vat 10 (IMSATObjective); xi 10 on
# their [-1, 1] inputs is 5 on ours in [0, 1] (a perturbation halves with the input range), the radius 0.25 x the
# distance to the 10th neighbour is scale-free, and the first layer's batch norm makes the network itself blind
# to the affine change of input range; 784-1200-1200-10 with batch norm; weights N(0, wscale / fan_in) with their
# wscale 0.1 (hidden) and 1e-4 (output): chainer 1.21's Linear scales its default N(0, 1 / fan_in) by sqrt(wscale),
# so our init scales are sqrt(0.1) and 0.01; Adam 2e-3 without decay, batches of 250, 50 epochs.
MODEL_DEFAULTS = {
    "imsat": {"continuous_dim": 0, "architecture": "mlp-imsat", "beta": 0.1, "marginal_entropy_weight": 4.0,
              "vat_weight": 10.0, "reconstruction_weight": 0.0, "vat_xi": 5.0, "vat_eps": 0.25,
              "vat_eps_neighbours": 10, "hidden_init_scale": 0.1 ** 0.5, "output_init_scale": 0.01, "optimizer": "adam",
              "lr": 2e-3, "lr_decay": 1.0, "batch_size": 250, "epochs": 50},
}


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults are documented in docs/method.md and docs/usage.md."""

    dataset: str = "mnist"  # a name in DATASETS, or a path to an image folder, a .npy or a .npz file
    data_dir: str | None = None
    image_size: int | None = None  # own data: resize images to image_size x image_size
    model: str = "imae"
    # Code shape: K1 Gaussian dimensions (0 for imsat, which has no z), one K2-way categorical.
    # None here and below: filled from the layered defaults (GENERIC_DEFAULTS ... MODEL_DEFAULTS).
    continuous_dim: int | None = None
    categories: int | None = None
    architecture: str | None = None  # mlp | mlp-large | mlp-imsat | conv
    # Initial weights of the encoder's hidden layers and of its output layer: N(0, scale^2 / fan_in), biases 0
    # (chainer's wscale is scale^2; IMSAT: sqrt(0.1) and 0.01, so p(y|x) starts near uniform). None: PyTorch's default.
    hidden_init_scale: float | None = None
    output_init_scale: float | None = None
    # The recipe fills the settings below that it lists and that are None (RECIPES): "paper" or "tuned";
    # a model's own defaults (MODEL_DEFAULTS: imsat's recipe) win over it.
    recipe: str = "tuned"
    # Objective weights, eq (10): recon + beta*L(y) + beta*L(z) - gamma*TC. The three w_* weights
    # are 1 in the paper (recipe "paper"); recipe "tuned" chose them on a validation split (docs/method.md).
    beta: float | None = None  # 5 (imsat: 0.1)
    gamma: float | None = None  # None means 2 * beta, the paper's rule
    reconstruction_weight: float | None = None
    marginal_entropy_weight: float | None = None  # weight of H(y) against H(y|x) in I(x;y), eq (7)
    # Virtual adversarial training on p(y|x), eq (11).
    vat: bool = True
    vat_weight: float | None = None
    vat_eps: float | None = None  # tuned and imsat: 0.25 (x the neighbour distance); paper: 1
    # If not 0: radius = vat_eps x distance to the k-th nearest training image (IMSAT: 10); 0: vat_eps itself.
    vat_eps_neighbours: int | None = None
    vat_xi: float | None = None  # tuned and imsat: 5; paper: 1
    # Consistency of p(y|x) under small random affine transforms of the image, weighted like VAT (0: off).
    augment_consistency: float = 0.0
    temperature: float = 0.67
    # Baselines (section 3 of METHOD.md): InfoVAE's divergence on p(z); JointVAE's capacities,
    # raised linearly from 0 to the target over capacity_iterations (None: data set default).
    # None: the recipe's: "kl" in both, eq (5)'s KL(p(z) || r(z)) by Appendix B's minibatch estimator, as the
    # paper writes InfoVAE; the tuned recipe chose it on validation over InfoVAE's own MMD, whose RBF kernel
    # saturates on a spread code (docs/method.md, "InfoVAE: MMD against the minibatch KL").
    infovae_divergence: str | None = None
    capacity_y: float | None = None
    capacity_z: float | None = None
    capacity_iterations: int | None = None
    # Optimisation (None: the recipe's). Appendix G: SGD with momentum 0.9, lr 1e-3, x0.98 per epoch on
    # MNIST and Fashion-MNIST, Adam lr 1e-3 on dSprites.
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    lr_decay: float | None = None
    grad_clip: float | None = None  # clip the gradient's global L2 norm to this before each step (None: never)
    batch_size: int | None = None  # 256 (imsat: 250)
    epochs: int | None = None  # tuned and imsat: 50; paper: 20
    seed: int = 0
    # Restarts: train `restarts` initialisations for restart_epochs epochs each, continue the one of highest
    # I(x;y) on the training images (no labels). 1: a single initialisation, no restarts.
    restarts: int = 1
    restart_epochs: int = 5
    train_subset: int | None = None  # train on N training images chosen at random by the seed (quick looks)
    # "all": train on the test images too (IMSAT's protocol); the test metrics are then not held out.
    train_split: str = "train"
    # Held out of the training split before anything else, chosen by validation_seed (not the run's seed, so
    # every run of a comparison is scored on the same images): settings are chosen on it, never on test.
    validation_size: int = 0
    validation_seed: int = 0
    eval_batch_size: int = 2000
    device: str = "auto"  # auto: CUDA when available, else CPU
    # DCI's classifiers: disentanglement_lib's gradient boosting ("gbt": comparable with published DCI, ~9 min
    # on dSprites here) or a random forest ("forest": ~12 s, other numbers; bench/mig_speed.py).
    dci_estimator: str = "gbt"
    # After every epoch, also the MIGs of the monitored images (data with known factors: dSprites), so that
    # history.jsonl shows whether MIG has stopped rising; costs about a minute per epoch on dSprites' 10,000.
    monitor_mig: bool = False
    # The networks' matmuls; a run resolves auto once, keeps it, and its config.json records what it resolved to.
    precision: str = "auto"
    # Torch threads the run trains with (None: torch's default); config.json records the count used, since
    # the last bits of a result change with it, and re-running a run's config.json re-uses it (imae reproduce).
    threads: int | None = None

    @property
    def gamma_value(self) -> float:
        return 2.0 * self.beta if self.gamma is None else self.gamma

    @property
    def has_decoder(self) -> bool:
        return self.model in AUTOENCODERS

    def validate(self) -> "TrainConfig":
        """Check every setting; fill the data-set-dependent defaults so the saved config is complete."""
        if not isinstance(self.dataset, str) or not (self.dataset in DATASETS or is_data_path(self.dataset)):
            raise ConfigError(f"option dataset: expected one of {', '.join(DATASETS)}, or a path to an image "
                              f"folder, a .npy or a .npz file, got {self.dataset!r}")
        _choice("model", self.model, MODELS)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("dci_estimator", self.dci_estimator, DCI_ESTIMATORS)
        _choice("recipe", self.recipe, tuple(RECIPES))
        defaults = {**GENERIC_DEFAULTS, **DATASET_DEFAULTS.get(self.dataset, {}), **RECIPES[self.recipe],
                    **RECIPE_DATASET_DEFAULTS.get((self.recipe, self.dataset), {}),
                    **MODEL_DEFAULTS.get(self.model, {})}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        _choice("architecture", self.architecture, ARCHITECTURES)
        _choice("infovae_divergence", self.infovae_divergence, INFOVAE_DIVERGENCES)
        _choice("train_split", self.train_split, TRAIN_SPLITS)
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
                     "vat_eps", "momentum", "augment_consistency"):
            _at_least(name, getattr(self, name), 0.0)
        if self.gamma is not None:
            _at_least("gamma", self.gamma, 0.0)
        for name in ("hidden_init_scale", "output_init_scale", "grad_clip"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name in ("vat_xi", "temperature", "lr"):
            _positive(name, getattr(self, name))
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"option lr_decay: expected a number in (0, 1], got {self.lr_decay}")
        if self.model in AUTOENCODERS:
            _integer_at_least("continuous_dim", self.continuous_dim, 1)
        elif self.continuous_dim != 0 or isinstance(self.continuous_dim, bool):
            raise ConfigError(f"option continuous_dim: {self.model} has no continuous code z; expected 0, "
                              f"got {self.continuous_dim!r}")
        _integer_at_least("categories", self.categories, 2)
        _integer_at_least("batch_size", self.batch_size, 2)
        _integer_at_least("epochs", self.epochs, 1)
        _integer_at_least("eval_batch_size", self.eval_batch_size, 1)
        if self.vat_eps_neighbours is not None:
            _integer_at_least("vat_eps_neighbours", self.vat_eps_neighbours, 0)
        _integer_at_least("restarts", self.restarts, 1)
        _integer_at_least("restart_epochs", self.restart_epochs, 1)
        if self.restarts > 1 and self.restart_epochs > self.epochs:
            raise ConfigError(f"option restart_epochs: {self.restart_epochs} is more than the run's "
                              f"{self.epochs} epochs")
        if self.train_subset is not None:
            _integer_at_least("train_subset", self.train_subset, 2)
        _integer_at_least("validation_size", self.validation_size, 0)
        _integer_at_least("validation_seed", self.validation_seed, 0)
        if self.threads is not None:
            _integer_at_least("threads", self.threads, 1)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"option data_dir: expected a path, got {self.data_dir!r}")
        for name in ("vat", "monitor_mig"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"option {name}: expected true or false, got {getattr(self, name)!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object of settings")
        values = upgraded(values)
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


def upgraded(saved: dict) -> dict:
    """A saved config as today's code reads it. config.json files written before vat_eps_neighbours had a
    default hold null for it, which meant the fixed radius: read as 0, so that a default for it (a recipe's)
    never changes what an existing run was."""
    if "vat_eps_neighbours" in saved and saved["vat_eps_neighbours"] is None:
        return {**saved, "vat_eps_neighbours": 0}
    return saved


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
