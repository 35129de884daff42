"""scikit-learn style estimators: IMAE and its baselines on arrays of images, trained by the project's one loop.

    from imae import IMAE
    model = IMAE(epochs=20).fit(X)          # X: [N, D], [N, H, W] or [N, C, H, W]
    categories = model.predict(X)           # the categorical code y = argmax p(y|x)
    codes = model.transform(X)              # the continuous code z: posterior means mu(x)
    images = model.decode(codes, categories)

Inputs. The models have Bernoulli decoders: each pixel is a probability in [0, 1]. The range of X
is learnt in fit and mapped onto [0, 1]: uint8 arrays are read as 0..255, arrays within [0, 1]
are taken as they are, any other array (e.g. the standardised features scikit-learn's checks use)
is min-max scaled with the minimum and maximum of the training X; later inputs are mapped with
the same range and clipped to [0, 1]. The scaled values are stored as uint8 (256 levels), the
project's image format. A 2-D X is one row of D pixels per sample (the MLPs); the convolutional
networks (architecture="conv") need square 32x32 or 64x64 images [N, H, W] or [N, C, H, W].

Every constructor parameter is a TrainConfig field of the same name and default (random_state is
the seed); None leaves the setting to the layered defaults (the model's, e.g. IMSAT's recipe, the
recipe's, the generic ones), as on the command line. infovae_divergence only acts in InfoVAE and the
capacities only in JointVAE. IMSAT has no decoder and no z: its transform is p(y|x)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import estimators as est
from .config import TrainConfig
from .data.batches import ImageSet
from .errors import CheckpointError, DataError
from .metrics import encode, evaluate
from .runs import atomic_write
from .training import (build_model, choose_restart, fit, hold_out, new_training_state, per_sample_vat_radius,
                       resolve_device, validation_metrics)

_DEFAULTS = TrainConfig()
# TrainConfig needs a data set; the array passed to fit is the user's own data (generic defaults).
ARRAY_DATASET = "in-memory/X"


class InputError(DataError, ValueError):
    """An X that does not fit: the project's DataError, and the ValueError scikit-learn expects."""


class HybridCodeEstimator(TransformerMixin, ClusterMixin, BaseEstimator):
    """A hybrid code (y: one categorical of `categories` values, z: `continuous_dim` Gaussians) learnt
    from unlabelled images by the objective of `model_name` (a TrainConfig model)."""

    model_name = "imae"

    def __init__(self, continuous_dim=_DEFAULTS.continuous_dim, categories=_DEFAULTS.categories,
                 architecture=_DEFAULTS.architecture, hidden_init_scale=_DEFAULTS.hidden_init_scale,
                 output_init_scale=_DEFAULTS.output_init_scale, recipe=_DEFAULTS.recipe, beta=_DEFAULTS.beta,
                 gamma=_DEFAULTS.gamma,
                 reconstruction_weight=_DEFAULTS.reconstruction_weight,
                 marginal_entropy_weight=_DEFAULTS.marginal_entropy_weight, vat=_DEFAULTS.vat,
                 vat_weight=_DEFAULTS.vat_weight, vat_eps=_DEFAULTS.vat_eps,
                 vat_eps_neighbours=_DEFAULTS.vat_eps_neighbours, vat_xi=_DEFAULTS.vat_xi,
                 augment_consistency=_DEFAULTS.augment_consistency, temperature=_DEFAULTS.temperature,
                 infovae_divergence=_DEFAULTS.infovae_divergence,
                 capacity_y=_DEFAULTS.capacity_y, capacity_z=_DEFAULTS.capacity_z,
                 capacity_iterations=_DEFAULTS.capacity_iterations, optimizer=_DEFAULTS.optimizer, lr=_DEFAULTS.lr,
                 momentum=_DEFAULTS.momentum, lr_decay=_DEFAULTS.lr_decay, batch_size=_DEFAULTS.batch_size,
                 epochs=_DEFAULTS.epochs, restarts=_DEFAULTS.restarts, restart_epochs=_DEFAULTS.restart_epochs,
                 validation_size=_DEFAULTS.validation_size, validation_seed=_DEFAULTS.validation_seed,
                 device=_DEFAULTS.device, precision=_DEFAULTS.precision, random_state=_DEFAULTS.seed, verbose=False):
        self.continuous_dim = continuous_dim
        self.categories = categories
        self.architecture = architecture
        self.hidden_init_scale = hidden_init_scale
        self.output_init_scale = output_init_scale
        self.recipe = recipe
        self.beta = beta
        self.gamma = gamma
        self.reconstruction_weight = reconstruction_weight
        self.marginal_entropy_weight = marginal_entropy_weight
        self.vat = vat
        self.vat_weight = vat_weight
        self.vat_eps = vat_eps
        self.vat_eps_neighbours = vat_eps_neighbours
        self.vat_xi = vat_xi
        self.augment_consistency = augment_consistency
        self.temperature = temperature
        self.infovae_divergence = infovae_divergence
        self.capacity_y = capacity_y
        self.capacity_z = capacity_z
        self.capacity_iterations = capacity_iterations
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.restarts = restarts
        self.restart_epochs = restart_epochs
        self.validation_size = validation_size
        self.validation_seed = validation_seed
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32
        return tags

    # Training

    def fit(self, X, y=None):
        """Train on the images X (y is ignored: the training is unsupervised). With validation_size = N,
        N images of X (chosen by validation_seed) are held out of training; validation_metrics_ holds
        their I(x;y) and reconstruction error, and their accuracy if y is given."""
        images = self._images(X, reset=True)
        self.config_ = self._config()
        train, validation = ImageSet(images, None, "X"), None
        if self.config_.validation_size:
            if y is not None:  # any label values: only their grouping counts for accuracy
                train.labels = torch.from_numpy(np.unique(np.asarray(y), return_inverse=True)[1].reshape(-1))
            if self.config_.validation_size > len(train) - 2:
                raise InputError(f"validation_size: {self.config_.validation_size} of {len(train)} samples of X "
                                 f"leaves fewer than 2 to train on")
            train, validation = hold_out(train, self.config_.validation_size, self.config_.validation_seed)
        input_shape = self.sample_shape_ if len(self.sample_shape_) > 1 else (1,) + self.sample_shape_
        self.history_ = []
        start_epoch, radius = 1, per_sample_vat_radius(self.config_, train)
        if self.config_.restarts > 1:  # restarts_: every candidate's I(x;y) on X and the one continued
            state, self.restarts_ = choose_restart(self.config_, train, input_shape, radius, bool(self.verbose),
                                                   log=print if self.verbose else lambda line: None)
            start_epoch = self.config_.restart_epochs + 1
        else:
            state = new_training_state(self.config_, input_shape)
        self.config_ = dataclasses.replace(self.config_, precision=state.precision)  # auto, as chosen
        fit(self.config_, state, train, start_epoch, bool(self.verbose), self._log, radius)
        self.model_ = state.model.eval()
        self.labels_ = self._predict_images(images)
        if validation is not None:
            self.validation_metrics_ = validation_metrics(self.model_, validation, self.config_)
        return self

    def _config(self) -> TrainConfig:
        params = self.get_params()
        seed = params.pop("random_state")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        del params["verbose"]
        return TrainConfig(dataset=ARRAY_DATASET, model=self.model_name, seed=int(seed), **params).validate()

    def _log(self, epoch: int, train_terms: dict, seconds: float) -> None:
        self.history_.append(train_terms)
        if self.verbose:
            terms = " ".join(f"{name}={value:.3f}" for name, value in train_terms.items())
            print(f"epoch {epoch}/{self.config_.epochs} [{seconds:.1f}s] {terms}")

    def _images(self, X, reset: bool) -> torch.Tensor:
        """X as uint8 images on the model's device (see the module docstring for the scaling)."""
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype="numeric", ensure_min_samples=2 if reset else 1)
        if X.ndim > 4:
            raise InputError(f"X: expected [N, D], [N, H, W] or [N, C, H, W], got an array of shape {X.shape}")
        if reset:
            self.sample_shape_ = tuple(X.shape[1:])
            self.data_range_ = data_range(X)
        elif tuple(X.shape[1:]) != self.sample_shape_:
            raise InputError(f"X: samples of shape {tuple(X.shape[1:])}, but {type(self).__name__} was fitted on "
                             f"samples of shape {self.sample_shape_}")
        low, high = self.data_range_
        unit = np.clip((X.astype(np.float64) - low) / (high - low), 0.0, 1.0)
        images = torch.from_numpy(np.rint(unit * 255.0).astype(np.uint8))
        return images.to(resolve_device(self.device) if reset else next(self.model_.parameters()).device)

    # The code of new images

    def _posterior(self, X):
        check_is_fitted(self)
        return encode(self.model_, self._images(X, reset=False), self.config_.eval_batch_size)

    def _predict_images(self, images: torch.Tensor) -> np.ndarray:
        return encode(self.model_, images, self.config_.eval_batch_size).logits.argmax(1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """The category of each image: argmax_y p(y|x), int64 [N]."""
        check_is_fitted(self)
        return self._predict_images(self._images(X, reset=False))

    def predict_proba(self, X) -> np.ndarray:
        """p(y|x) for each image, float32 [N, categories]."""
        return torch.softmax(self._posterior(X).logits, 1).cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """The continuous code: the posterior means mu(x), float32 [N, continuous_dim]."""
        return self._posterior(X).mu.cpu().numpy()

    def decode(self, z, y) -> np.ndarray:
        """Images decoded from continuous codes z [N, continuous_dim] and categories y (int [N], or
        probabilities [N, categories]): the decoder's pixel means, in X's units and sample shape."""
        check_is_fitted(self)
        device = next(self.model_.parameters()).device
        continuous_dim, categories = self.config_.continuous_dim, self.config_.categories
        z = torch.as_tensor(check_array(z, dtype=np.float32), device=device)
        y = np.asarray(y)
        if y.ndim == 1:
            y = np.eye(categories, dtype=np.float32)[check_array(y[:, None], dtype=np.int64)[:, 0]]
        y = torch.as_tensor(check_array(y, dtype=np.float32), device=device)
        if z.shape[1] != continuous_dim or y.shape != (z.shape[0], categories):
            raise InputError(f"decode: expected z [N, {continuous_dim}] and y [N] or [N, {categories}], "
                             f"got {tuple(z.shape)} and {tuple(y.shape)}")
        with torch.no_grad():
            pixels = torch.sigmoid(self.model_.decoder(z, y)).cpu().numpy()
        low, high = self.data_range_
        return (low + pixels * (high - low)).reshape((-1,) + self.sample_shape_)

    # Scores

    def evaluate(self, X, y=None) -> dict[str, float]:
        """The project's metrics on X: I(x;y) and its entropies, the reconstruction error (nats per
        image; not for IMSAT), and with labels y the unsupervised accuracy (Hungarian matching)."""
        check_is_fitted(self)
        labels = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.int64))
        return evaluate(self.model_, ImageSet(self._images(X, reset=False), labels), self.config_.eval_batch_size)

    def score(self, X, y=None) -> float:
        """I(x;y) on X, eq (7), in nats (at most log categories); higher is better. y is ignored."""
        return est.mutual_information_xy(self._posterior(X).logits).item()

    # Files

    def save(self, path) -> None:
        """Write the fitted estimator to path (torch.save; atomic). A random_state that is not an
        int is saved as the seed it gave."""
        check_is_fitted(self)
        params = {**self.get_params(), "random_state": self.config_.seed}
        saved = {"estimator": type(self).__name__, "params": params, "config": self.config_.to_dict(),
                 "model": {k: v.cpu() for k, v in self.model_.state_dict().items()},
                 "input_shape": list(self.model_.input_shape), "sample_shape": list(self.sample_shape_),
                 "data_range": list(self.data_range_), "n_features_in": self.n_features_in_,
                 "labels": torch.from_numpy(self.labels_), "history": self.history_}
        atomic_write(Path(path), lambda f: torch.save(saved, f))

    @classmethod
    def load(cls, path) -> HybridCodeEstimator:
        """An estimator written by save (loaded with weights_only=True: no pickled code runs)."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            kind = ESTIMATORS[saved["estimator"]]
        except Exception as exc:  # noqa: BLE001 (torch raises many types for truncated or foreign files)
            raise CheckpointError(f"{path}: not an estimator saved by imae ({type(exc).__name__})") from None
        if cls is not HybridCodeEstimator and kind is not cls:
            raise CheckpointError(f"{path}: holds a {kind.__name__}, not a {cls.__name__} "
                                  f"(use {kind.__name__}.load or HybridCodeEstimator.load)")
        estimator = kind(**saved["params"])
        estimator.config_ = TrainConfig.from_dict(saved["config"], source=str(path))
        model = build_model(estimator.config_, tuple(saved["input_shape"]))
        model.load_state_dict(saved["model"])
        estimator.model_ = model.to(resolve_device(estimator.device)).eval()
        estimator.sample_shape_ = tuple(saved["sample_shape"])
        estimator.data_range_ = tuple(saved["data_range"])
        estimator.n_features_in_ = saved["n_features_in"]
        estimator.labels_ = saved["labels"].numpy()
        estimator.history_ = saved["history"]
        return estimator


def data_range(X: np.ndarray) -> tuple[float, float]:
    """The values mapped to pixel intensities 0 and 1: 0..255 for uint8, 0..1 for data within
    [0, 1], else the data's minimum and maximum."""
    if X.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(X.min()), float(X.max())
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, high if high > low else low + 1.0


class IMAE(HybridCodeEstimator):
    """Information Maximization Auto-Encoding (eq 10)."""

    model_name = "imae"


class BetaVAE(HybridCodeEstimator):
    """beta-VAE on the hybrid code (a baseline of Figure 1)."""

    model_name = "beta-vae"


class InfoVAE(HybridCodeEstimator):
    """InfoVAE on the hybrid code (a baseline of Figure 1)."""

    model_name = "info-vae"


class JointVAE(HybridCodeEstimator):
    """JointVAE with its capacity schedule (a baseline of Figure 1)."""

    model_name = "joint-vae"


class IMSAT(HybridCodeEstimator):
    """IMSAT (Hu et al. 2017): p(y|x) alone by I(x;y) and VAT, no decoder and no z; its published recipe
    is the default (config.MODEL_DEFAULTS). transform gives p(y|x); there is nothing to decode."""

    model_name = "imsat"

    def transform(self, X) -> np.ndarray:
        """The code of IMSAT: p(y|x) for each image, float32 [N, categories] (as predict_proba)."""
        return self.predict_proba(X)

    def decode(self, z, y) -> np.ndarray:
        raise NotImplementedError("IMSAT has no decoder: it learns p(y|x) only")


ESTIMATORS = {kind.__name__: kind for kind in (IMAE, BetaVAE, InfoVAE, JointVAE, IMSAT)}
