"""`imae download` against a local file:// mirror: checksums verified, nothing half-written."""

import gzip
import hashlib

import pytest

from imae.cli import main
from imae.data import mnist
from imae.errors import DataError

from conftest import write_mnist_like


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A mirror holding a generated data set, with the checksum tables pointed at its files."""
    source = write_mnist_like(tmp_path / "mirror")
    md5 = {s: hashlib.md5((source / f"{s}.gz").read_bytes()).hexdigest() for s in mnist.ALL_FILES}
    sha = {s: hashlib.sha256(gzip.decompress((source / f"{s}.gz").read_bytes())).hexdigest() for s in mnist.ALL_FILES}
    monkeypatch.setitem(mnist.GZ_MD5, "mnist", md5)
    monkeypatch.setitem(mnist.CONTENT_SHA256, "mnist", sha)
    monkeypatch.setitem(mnist.MIRRORS, "mnist", ["file:///nonexistent/", source.as_uri() + "/"])
    return source


def test_download_verifies_and_falls_back_to_next_mirror(mirror, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert main(["download", "mnist", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in mnist.ALL_FILES)
    assert "verified" in capsys.readouterr().out
    assert main(["download", "mnist", str(dest)]) == 0  # present and correct: kept


def test_checksum_mismatch_leaves_nothing(mirror, tmp_path, monkeypatch):
    monkeypatch.setitem(mnist.GZ_MD5["mnist"], "train-images-idx3-ubyte", "0" * 32)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="MD5"):
        mnist.download("mnist", dest)
    assert not any(p.name.startswith("train-images") or p.suffix == ".part" for p in dest.iterdir())


def test_existing_file_with_wrong_content_is_reported(mirror, tmp_path, capsys):
    dest = tmp_path / "dest"
    mnist.download("mnist", dest)
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    assert main(["download", "mnist", str(dest)]) == 2
    assert "t10k-labels-idx1-ubyte.gz: content does not match" in capsys.readouterr().err
