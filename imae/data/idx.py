"""Reader for the IDX format of MNIST and Fashion-MNIST (gzip-compressed or raw)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX type codes -> big-endian numpy dtypes (yann.lecun.com/exdb/mnist, "THE IDX FILE FORMAT").
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, gzip or raw, with a clear error if unreadable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def parse_idx(data: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, checking the header against the payload size."""
    if len(data) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path}: unsupported IDX element type 0x{type_code:02x}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares no dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(f"{path}: {kind}: header {shape} needs {expected} data bytes, found {actual}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or raw) into a native-endian numpy array."""
    return parse_idx(read_bytes(path), path)
