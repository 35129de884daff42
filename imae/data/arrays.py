"""Reading .npy and .npz files safely: nothing unpickled, every way a file can be broken one DataError."""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError

# What numpy and zipfile raise for files that are not zips, truncated or tampered members (a flag bit
# marking a member encrypted gives RuntimeError), bad .npy headers (TokenError), absurd claimed sizes.
UNREADABLE = (OSError, ValueError, EOFError, KeyError, NotImplementedError, RuntimeError, MemoryError,
              zipfile.BadZipFile, zlib.error, tokenize.TokenError)


def read_npz(path: Path, choose: Callable[[list[str]], dict[str, str]], what: str = ".npz archive") -> dict:
    """The arrays of an .npz archive that choose(keys in the file) names, as {name: array}; choose
    raises DataError when what it needs is missing."""
    try:
        with open(path, "rb") as file:  # our own handle: numpy leaks its own when a zip header is bad
            npz = np.load(file, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: expected an .npz archive (a zip of arrays), found a single array")
            with npz:
                return {name: npz[key] for name, key in choose(list(npz.files)).items()}
    except UNREADABLE as exc:
        raise DataError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None


def read_npy(path: Path) -> np.ndarray:
    """One array from an .npy file."""
    try:
        with open(path, "rb") as file:
            array = np.load(file, allow_pickle=False)
    except UNREADABLE as exc:
        raise DataError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected an .npy array, found an .npz archive")
    return array
