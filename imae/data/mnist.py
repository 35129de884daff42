"""MNIST and Fashion-MNIST: where the IDX files are looked for, how they are fetched and verified."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .batches import ImageSet
from .idx import read_bytes, parse_idx

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# Published MD5 of the distributed .gz files (what a download must match).
GZ_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# SHA-256 of the decompressed IDX content: Debian recompressed its copies, so files already
# on disk are checked by content, not by their .gz bytes.
CONTENT_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
ALL_FILES = tuple(f for pair in SPLIT_FILES.values() for f in pair)


def candidate_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    """Where the files are looked for, in order: --data-dir, $IMAE_DATA, standard places."""
    roots = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("IMAE_DATA"):
        roots.append(Path(os.environ["IMAE_DATA"]))
    dirs = [d for root in roots for d in (root, root / name)]
    dirs += [Path("/usr/share/datasets") / name, default_download_dir(name)]
    return dirs


def default_download_dir(name: str) -> Path:
    base = os.environ.get("IMAE_DATA") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imae"
    return Path(base) / name


def file_in(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first candidate directory holding any of the data set's files, or None."""
    for directory in candidate_dirs(name, data_dir):
        if any(file_in(directory, stem) for stem in ALL_FILES):
            return directory
    return None


def load_split(name: str, split: str, data_dir: str | Path | None = None) -> ImageSet:
    """One split of MNIST or Fashion-MNIST as uint8 images [N, 28, 28] and int64 labels."""
    directory = locate(name, data_dir)
    if directory is None:
        looked = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
        raise DataError(f"{name}: no IDX files found (looked in {looked}); "
                        f"run 'imae download {name} DIR' and pass --data-dir DIR")
    image_stem, label_stem = SPLIT_FILES[split]
    image_path = _require(directory, image_stem)
    label_path = _require(directory, label_stem)
    images = parse_idx(read_bytes(image_path), image_path)
    labels = parse_idx(read_bytes(label_path), label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected uint8 images of shape [N, H, W], got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected a 1-D array of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{label_path}: {len(labels)} labels do not match the {len(images)} images of {image_path}")
    return ImageSet(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), f"{name}/{split}")


def _require(directory: Path, stem: str) -> Path:
    path = file_in(directory, stem)
    if path is None:
        raise DataError(f"{directory / stem}: missing (neither {stem} nor {stem}.gz exists)")
    return path


def verify_content(name: str, path: Path, stem: str | None = None) -> None:
    """Check a file's decompressed bytes against the known SHA-256."""
    stem = stem or path.name.removesuffix(".gz")
    digest = hashlib.sha256(read_bytes(path)).hexdigest()
    if digest != CONTENT_SHA256[name][stem]:
        raise DataError(f"{path}: content does not match the published {name} file (SHA-256 {digest[:12]}...)")


def download(name: str, dest: str | Path, mirrors: list[str] | None = None) -> Path:
    """Fetch the four files into dest, verifying MD5 of each .gz and SHA-256 of its content.
    Files already present with the right content are kept; nothing half-written is left."""
    if name not in GZ_MD5:
        raise DataError(f"unknown data set {name!r}: expected one of {', '.join(GZ_MD5)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for stem in ALL_FILES:
        existing = file_in(dest, stem)
        if existing is not None:
            verify_content(name, existing)
            continue
        _fetch_verified(name, stem, dest, mirrors or MIRRORS[name])
    return dest


def _fetch_verified(name: str, stem: str, dest: Path, mirrors: list[str]) -> None:
    errors = []
    for mirror in mirrors:
        url = f"{mirror}{stem}.gz"
        with tempfile.NamedTemporaryFile(dir=dest, prefix=f".{stem}.", suffix=".part", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp_path, "wb") as out:
                shutil.copyfileobj(response, out)
            md5 = hashlib.md5(tmp_path.read_bytes()).hexdigest()
            if md5 != GZ_MD5[name][stem]:
                raise DataError(f"{url}: MD5 {md5} does not match the published {GZ_MD5[name][stem]}")
            verify_content(name, tmp_path, stem)  # content checked before the file lands
            os.replace(tmp_path, dest / f"{stem}.gz")
            return
        except (OSError, DataError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            tmp_path.unlink(missing_ok=True)
    raise DataError(f"{dest / stem}.gz: download failed ({'; '.join(errors)})")


def ensure_available(name: str, data_dir: str | Path | None = None, log=print) -> None:
    """Make the data set findable: install Debian's package where it exists and apt works
    (Fashion-MNIST), else download it into the default directory."""
    if locate(name, data_dir) is not None:
        return
    package = DEBIAN_PACKAGES.get(name)
    if package and shutil.which("apt-get") and os.geteuid() == 0:
        log(f"{name}: not found; installing Debian's {package}")
        if _apt_install(package) and locate(name, data_dir) is not None:
            return
    target = Path(data_dir) if data_dir else default_download_dir(name)
    log(f"{name}: not found; downloading into {target}")
    download(name, target)


def _apt_install(package: str) -> bool:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "-qq", package], **quiet).returncode == 0:
        return True
    subprocess.run(["apt-get", "update", "-qq"], **quiet)
    return subprocess.run(["apt-get", "install", "-y", "-qq", package], **quiet).returncode == 0
