"""Shared fixtures: tiny generated IDX data sets written by an independent writer."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest


def bench_script(name: str):
    """bench/NAME.py imported as a module (the bench scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write an uint8 IDX file by the format's definition (magic 0x0000, type 0x08, ndim, dims)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    payload += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def blob_images(n: int, classes: int, rng: np.random.Generator, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Images of a bright square whose position encodes the class, with pixel noise."""
    labels = rng.integers(0, classes, size=n)
    images = (rng.random((n, side, side)) * 40).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 4)
        images[i, 2 + 6 * r: 8 + 6 * r, 2 + 6 * col: 8 + 6 * col] = 255
    return images, labels.astype(np.uint8)


def write_mnist_like(directory: Path, n_train: int = 256, n_test: int = 128, classes: int = 4,
                     seed: int = 0, compress: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images, labels = blob_images(n, classes, rng)
        write_idx(directory / f"{stem}-images-idx3-ubyte", images, compress)
        write_idx(directory / f"{stem}-labels-idx1-ubyte", labels, compress)
    return directory


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    return write_mnist_like(tmp_path / "tiny-mnist")


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch, tmp_path):
    """Tests never see the user's data or cache: $IMAE_DATA and the cache point into tmp."""
    monkeypatch.delenv("IMAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
