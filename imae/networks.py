"""Encoder and decoder of Appendix G: an MLP encoder to a hybrid code, an MLP Bernoulli decoder."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Hidden widths per data set family (Appendix G, Table 1).
ENCODER_HIDDEN = {"mnist": (500, 1000)}
DECODER_HIDDEN = {"mnist": (500, 500)}


@dataclass
class Posterior:
    """p(y, z | x) = Cat(y; softmax(logits)) * prod_k N(z_k; mu_k, exp(logvar_k))."""

    mu: torch.Tensor
    logvar: torch.Tensor
    logits: torch.Tensor


class Encoder(nn.Module):
    """x -> (mu, log sigma^2, logits): FC + BatchNorm + ReLU blocks, then one linear head."""

    def __init__(self, input_dim: int, continuous_dim: int, categories: int, hidden=(500, 1000)):
        super().__init__()
        layers, width = [], input_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * continuous_dim + categories)
        self.continuous_dim = continuous_dim

    def forward(self, x: torch.Tensor) -> Posterior:
        out = self.head(self.body(x))
        k = self.continuous_dim
        return Posterior(mu=out[:, :k], logvar=out[:, k:2 * k], logits=out[:, 2 * k:])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).logits


class Decoder(nn.Module):
    """(z, one-hot y) -> Bernoulli logits of every pixel (sigmoid gives the image)."""

    def __init__(self, output_dim: int, code_dim: int, hidden=(500, 500)):
        super().__init__()
        layers, width = [], code_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, output_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, y], dim=1))


class HybridAutoencoder(nn.Module):
    """The stochastic encoder p(y, z | x) and the decoder q(x | y, z) of every model."""

    def __init__(self, input_dim: int, continuous_dim: int = 10, categories: int = 10, family: str = "mnist"):
        super().__init__()
        self.encoder = Encoder(input_dim, continuous_dim, categories, ENCODER_HIDDEN[family])
        self.decoder = Decoder(input_dim, continuous_dim + categories, DECODER_HIDDEN[family])
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
