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


def load_splits(name: str, data_dir: str | Path | None = None, image_size: int | None = None,
                log=print) -> tuple[ImageSet, ImageSet]:
    """The training and the test split, read once where both are the same images (dSprites; an image
    folder or .npy file of the user's, which have no test split)."""
    train = load_dataset(name, "train", data_dir, image_size, log)
    return train, load_dataset(name, "test", data_dir, image_size, log) if has_test_split(name) else train


def has_test_split(name: str) -> bool:
    """Whether the data set's test images are other than its training images (not so for dSprites, nor an
    image folder or a .npy file of the user's)."""
    from ..config import is_data_path
    return not (name == "dsprites" or (is_data_path(name) and Path(name).suffix != ".npz"))


__all__ = ["ImageSet", "load_dataset", "load_splits", "has_test_split", "IDX_DATASETS"]
