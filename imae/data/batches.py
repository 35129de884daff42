"""Images held in memory as uint8 tensors, and minibatches made without per-sample Python work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass
class ImageSet:
    """A split of a data set: uint8 images [N, H, W] (or [N, C, H, W]), optional int64 labels [N],
    and, for data sets with known generative factors (dSprites), int64 factor classes [N, F]."""

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str = ""
    factors: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def input_dim(self) -> int:
        return int(self.images[0].numel())

    def subset(self, n: int) -> "ImageSet":
        """The first n images."""
        return self.select(slice(0, n))

    def select(self, index) -> "ImageSet":
        """The images at index (a slice or an index tensor), with their labels and factors."""
        return ImageSet(self.images[index], _pick(self.labels, index), self.name, _pick(self.factors, index))

    def concat(self, other: "ImageSet") -> "ImageSet":
        """These images followed by other's (labels and factors kept only where both have them)."""
        return ImageSet(torch.cat([self.images, other.images]), _join(self.labels, other.labels), self.name,
                        _join(self.factors, other.factors))

    def to(self, device: torch.device | str) -> "ImageSet":
        return ImageSet(self.images.to(device), _move(self.labels, device), self.name, _move(self.factors, device))


def _pick(tensor: torch.Tensor | None, index) -> torch.Tensor | None:
    return None if tensor is None else tensor[index]


def _join(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    return None if first is None or second is None else torch.cat([first, second])


def _move(tensor: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device)


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> flat float vectors in [0, 1]."""
    return images.reshape(images.shape[0], -1).float().div_(255.0)


def shuffled_indices(n: int, batch_size: int, generator: torch.Generator, device=None) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches; the last incomplete batch is dropped, since the
    batch estimators of I(x;y) and of the aggregate posterior need full batches."""
    batch_size = min(batch_size, n)
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start:start + batch_size]


def shuffled_batches(images: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of shuffled float batches (see shuffled_indices)."""
    for index in shuffled_indices(images.shape[0], batch_size, generator, images.device):
        yield as_float(images[index])


def batches_per_epoch(n: int, batch_size: int) -> int:
    return n // min(batch_size, n)


def ordered_batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """The whole split in order, in float batches (for evaluation)."""
    for start in range(0, images.shape[0], batch_size):
        yield as_float(images[start:start + batch_size])
