"""Data sets: one loader per family, all returning in-memory uint8 ImageSets."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import mnist
from .batches import ImageSet

IDX_DATASETS = ("mnist", "fashion-mnist")


def load_dataset(name: str, split: str, data_dir: str | Path | None = None, image_size: int | None = None,
                 log=print) -> ImageSet:
    """One split ('train' or 'test') of a named data set or of the user's own data (a path).
    dSprites has no test split: both are the whole factor grid, as in the paper's MIG."""
    if name in IDX_DATASETS:
        return mnist.load_split(name, split, data_dir)
    if name == "dsprites":
        from .dsprites import load_dsprites
        return load_dsprites(data_dir, log=log)
    from ..config import is_data_path
    if is_data_path(name):
        from .own import load_own_data
        return load_own_data(name, split, image_size)
    raise DataError(f"unknown data set {name!r}: expected one of {', '.join(IDX_DATASETS)}, dsprites, or a path")


__all__ = ["ImageSet", "load_dataset", "IDX_DATASETS"]
