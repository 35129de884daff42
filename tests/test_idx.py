import gzip
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from imae.data import load_dataset
from imae.data.idx import parse_idx, read_idx
from imae.errors import DataError

from conftest import write_idx, write_mnist_like


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array, compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_big_endian_int32(tmp_path):
    data = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big", signed=True) for v in (1, -2, 70000))
    np.testing.assert_array_equal(parse_idx(data), [1, -2, 70000])


def test_loads_split_with_labels(tiny_mnist):
    train = load_dataset("mnist", "train", tiny_mnist)
    assert train.images.shape == (256, 28, 28) and str(train.images.dtype) == "torch.uint8"
    assert train.labels.shape == (256,) and int(train.labels.max()) < 4


def _one_line_error(excinfo, path_fragment):
    message = str(excinfo.value)
    assert "\n" not in message and path_fragment in message
    return message


def test_truncated_file_names_file(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((5, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    assert "truncated" in _one_line_error(excinfo, str(path))


def test_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    assert "gzip" in _one_line_error(excinfo, str(path))


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    assert "magic" in _one_line_error(excinfo, str(path))


def test_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x-idx1-ubyte", np.zeros(10, np.uint8), compress=False)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)


def test_label_count_mismatch(tmp_path):
    directory = write_mnist_like(tmp_path / "d")
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_dataset("mnist", "train", directory)
    assert "7 labels" in _one_line_error(excinfo, "train-labels")


def test_missing_file(tmp_path):
    directory = write_mnist_like(tmp_path / "d")
    (directory / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: missing"):
        load_dataset("mnist", "test", directory)


def test_nothing_found_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="no IDX files found"):
        load_dataset("mnist", "train", tmp_path / "empty")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(data):
    try:
        parse_idx(data)
    except DataError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_fuzz_mutated_file(position, value, compressed):
    """A mutated file, raw or gzip, either reads or raises the project's DataError."""
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    data = bytearray(gzip.compress(raw) if compressed else raw)
    data[position % len(data)] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f-idx3-ubyte"
        path.write_bytes(bytes(data))
        try:
            read_idx(path)
        except DataError:
            pass
