"""Data sets: one loader per family, all returning in-memory uint8 ImageSets."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import mnist
from .batches import ImageSet

IDX_DATASETS = ("mnist", "fashion-mnist")


def load_dataset(name: str, split: str, data_dir: str | Path | None = None) -> ImageSet:
    """Load one split ('train' or 'test') of a named data set."""
    if name in IDX_DATASETS:
        return mnist.load_split(name, split, data_dir)
    raise DataError(f"unknown data set {name!r}: expected one of {', '.join(IDX_DATASETS)}")


__all__ = ["ImageSet", "load_dataset", "IDX_DATASETS"]
