"""Encoders to the hybrid code (y, z) and Bernoulli decoders: Appendix G's MLPs, and JointVAE's convolutions."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ARCHITECTURES
from .errors import ConfigError

# Appendix G, Table 1: (encoder hidden widths, decoder hidden widths, BatchNorm in the encoder).
MLP_WIDTHS = {"mlp": ((500, 1000), (500, 500), True),  # MNIST, Fashion-MNIST
              "mlp-large": ((1200, 1200, 2400), (1200, 1200, 1200), False),  # dSprites
              # IMSAT's encoder 784-1200-1200-10 (Hu et al. 2017); a model with a decoder gets the MNIST one.
              "mlp-imsat": ((1200, 1200), (500, 500), True)}
CONV_SIDES = (32, 64)


@dataclass
class Posterior:
    """p(y, z | x) = Cat(y; softmax(logits)) * prod_k N(z_k; mu_k, exp(logvar_k))."""

    mu: torch.Tensor
    logvar: torch.Tensor
    logits: torch.Tensor


def mlp(widths, batch_norm: bool) -> list[nn.Module]:
    """FC (+ BatchNorm) + ReLU for each consecutive pair of widths."""
    layers = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers.append(nn.Linear(width_in, width_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width_out))
        layers.append(nn.ReLU())
    return layers


def conv_encoder_body(channels: int, side: int) -> tuple[nn.Sequential, int]:
    """JointVAE's encoder (Dupont 2018): 4x4 stride-2 convolutions down to 4x4, then FC 256."""
    layers, width = [], channels
    for out in [32, 32, 64] + [64] * (side == 64):
        layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.ReLU()]
        width = out
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, 256), nn.ReLU()]
    return nn.Sequential(*layers), 256


def conv_decoder(code_dim: int, channels: int, side: int) -> nn.Sequential:
    """Mirror of conv_encoder_body: FC 256, FC 64x4x4, 4x4 stride-2 transposed convolutions."""
    layers = [nn.Linear(code_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (64, 4, 4))]
    widths = [64] * (side == 64) + [64, 32, 32, channels]
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1), nn.ReLU()]
    layers[-1] = nn.Flatten()  # no ReLU on the pixel logits
    return nn.Sequential(*layers)


def scaled_normal_init(layer: nn.Module, scale: float) -> None:
    """Chainer's `wscale` initialisation, as in IMSAT's code: weights N(0, scale^2 / fan_in), biases 0
    (chainer 1.21's Linear draws N(0, wscale / fan_in): scale = sqrt(wscale))."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, std=scale / math.sqrt(fan_in))
    nn.init.zeros_(layer.bias)


class Encoder(nn.Module):
    """x (flat, in [0, 1]) -> (mu, log sigma^2, logits): a body, then one linear head. The init scales,
    if given, replace PyTorch's initialisation of the body's layers and of the head (scaled_normal_init)."""

    def __init__(self, input_shape: tuple[int, int, int], continuous_dim: int, categories: int, architecture: str,
                 hidden_init_scale: float | None = None, output_init_scale: float | None = None):
        super().__init__()
        if architecture == "conv":
            body, width = conv_encoder_body(input_shape[0], input_shape[1])
            self.body = nn.Sequential(nn.Unflatten(1, input_shape), body)
        else:
            hidden, _, batch_norm = MLP_WIDTHS[architecture]
            self.body = nn.Sequential(*mlp((math.prod(input_shape),) + hidden, batch_norm))
            width = hidden[-1]
        self.head = nn.Linear(width, 2 * continuous_dim + categories)
        self.continuous_dim = continuous_dim
        if hidden_init_scale is not None:
            for layer in self.body.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    scaled_normal_init(layer, hidden_init_scale)
        if output_init_scale is not None:
            scaled_normal_init(self.head, output_init_scale)

    def forward(self, x: torch.Tensor) -> Posterior:
        out = self.head(self.body(x)).float()  # float32 under bf16 autocast too (precision.py)
        k = self.continuous_dim
        return Posterior(mu=out[:, :k], logvar=out[:, k:2 * k], logits=out[:, 2 * k:])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).logits


class Decoder(nn.Module):
    """(z, one-hot y) -> Bernoulli logits of every pixel, flat (sigmoid gives the image)."""

    def __init__(self, input_shape: tuple[int, int, int], code_dim: int, architecture: str):
        super().__init__()
        if architecture == "conv":
            self.net = conv_decoder(code_dim, input_shape[0], input_shape[1])
        else:
            _, hidden, _ = MLP_WIDTHS[architecture]
            self.net = nn.Sequential(*mlp((code_dim,) + hidden, False), nn.Linear(hidden[-1], math.prod(input_shape)))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, y], dim=1)).float()  # float32 under bf16 autocast too (precision.py)


def check_input_shape(input_shape: tuple[int, ...], architecture: str) -> tuple[int, int, int]:
    """(C, H, W) from an image shape [H, W] or [C, H, W]; the conv networks need square 32 or 64."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"images of shape {input_shape}: expected [H, W] or [C, H, W]")
    if architecture == "conv" and not (shape[1] == shape[2] and shape[1] in CONV_SIDES):
        raise ConfigError(f"option architecture: conv expects square 32x32 or 64x64 images, got "
                          f"{shape[1]}x{shape[2]} (resize them, or use --architecture mlp)")
    return shape


class HybridAutoencoder(nn.Module):
    """The stochastic encoder p(y, z | x) and the decoder q(x | y, z) of every model; decoder=False
    leaves the decoder out (IMSAT: self.decoder is None, and continuous_dim is 0)."""

    def __init__(self, input_shape: tuple[int, ...], continuous_dim: int = 10, categories: int = 10,
                 architecture: str = "mlp", decoder: bool = True, hidden_init_scale: float | None = None,
                 output_init_scale: float | None = None):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ConfigError(f"option architecture: expected one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
        self.input_shape = check_input_shape(input_shape, architecture)
        self.encoder = Encoder(self.input_shape, continuous_dim, categories, architecture, hidden_init_scale,
                               output_init_scale)
        self.decoder = Decoder(self.input_shape, continuous_dim + categories, architecture) if decoder else None
        self.categories = categories

    def sample_code(self, post: Posterior, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Training code: z = mu + sigma * eps, y a relaxed one-hot by Gumbel-softmax."""
        z = post.mu + torch.exp(0.5 * post.logvar) * torch.randn_like(post.mu)
        y = F.gumbel_softmax(post.logits, tau=temperature, hard=False)
        return z, y

    def mean_code(self, post: Posterior) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation code: z = mu, y = one-hot argmax."""
        return post.mu, F.one_hot(post.logits.argmax(dim=1), self.categories).to(post.mu.dtype)


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module):
    """Forward passes inside use batch statistics but leave the running statistics untouched
    (for VAT's perturbed passes, as in the reference implementation)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
