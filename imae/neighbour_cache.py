"""A disk cache of the nearest-neighbour distances behind IMSAT's VAT radius (imae.vat.nearest_neighbour_radius).

They cost N^2 D multiply-adds (about 3 minutes for MNIST's 60,000 training images on one core) and are the same
for every run on the same training images, so a sweep of 50 runs computes them once. The key holds everything
the floating-point result depends on: the images' bytes, k, the thread count (a matmul's rounding may depend on
how it is split) and the CPU kernels and torch version; a run therefore gives the same numbers whether the cache
was warm or cold. Directory: $IMAE_CACHE_DIR, else $XDG_CACHE_HOME/imae (~/.cache/imae); IMAE_CACHE_DIR="" turns the cache
off.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from .data.batches import as_float
from .runs import atomic_write
from .vat import nearest_neighbour_radius

CACHE_ENV = "IMAE_CACHE_DIR"


def cache_dir() -> Path | None:
    """Where the distances are kept, or None when the cache is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is None:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imae"
    return Path(chosen) if chosen else None


def cache_key(images: torch.Tensor, neighbours: int) -> str:
    digest = hashlib.sha256(images.cpu().contiguous().numpy().tobytes())
    digest.update(f"{tuple(images.shape)} {images.dtype} k={neighbours} threads={torch.get_num_threads()} "
                  f"{torch.backends.cpu.get_cpu_capability()} torch={torch.__version__}".encode())
    return digest.hexdigest()[:32]


def neighbour_distance(images: torch.Tensor, neighbours: int) -> torch.Tensor:
    """The L2 distance from each image (uint8, [N, ...]) to its k-th nearest other one, as float32 [N] on the
    images' device: read from the cache when there, else computed and stored. An unreadable cache file is
    recomputed and replaced."""
    directory = cache_dir()
    if directory is None:
        return nearest_neighbour_radius(as_float(images), neighbours, 1.0)
    path = directory / f"neighbour-distance-{cache_key(images, neighbours)}.pt"
    try:
        distance = torch.load(path, map_location=images.device, weights_only=True)
        if distance.shape == (images.shape[0],):
            return distance
    except Exception:  # missing, or damaged in any way torch.load can fail: recomputed below
        pass
    distance = nearest_neighbour_radius(as_float(images), neighbours, 1.0)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(distance.cpu(), buffer)
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
    except OSError:
        pass  # a read-only home: the run goes on without the cache
    return distance
