"""The user's own images: a folder of PNG/JPEG files, a .npy array or a .npz archive.

Formats
- A folder of .png/.jpg/.jpeg files, either flat (no labels) or one subfolder per class
  (labels 0..K-1 = the sorted subfolder names; the mapping is kept in ImageSet.name).
  If every image is grayscale (R = G = B) the set is kept as one channel [N, H, W], else all
  images are converted to RGB [N, 3, H, W] (an alpha channel is dropped).
- .npy: images only. .npz: images under `images`, `x` or `x_train`, optional labels under
  `labels`, `y` or `y_train`, optional test images and labels under `x_test`/`y_test`.
  Loaded with allow_pickle=False. Array layouts: [N, H, W], [N, C, H, W] or [N, H, W, C]
  with C = 1 or 3; values uint8 (or integers in 0..255), booleans, or floats in [0, 1]
  (the Bernoulli decoder reads pixel intensity in [0, 1], as MNIST's). Any other range is
  an error rather than a silent rescaling, since the scale of the pixels changes the model.

Sizes: `image_size` S resizes every image to S x S (bilinear, the aspect ratio is not kept).
Without it all images must already have one size.

Splits: there is no official test split. A .npz with `x_test` uses it (and `y_test`) as the test
split; otherwise the test split is the training images themselves, so the unsupervised metrics
(accuracy by Hungarian matching, I(x;y)) are measured on the training data, as in clustering papers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .arrays import read_npy, read_npz
from .batches import ImageSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_KEYS = ("images", "x", "x_train")
LABEL_KEYS = ("labels", "y", "y_train")


def load_own_data(path: str | Path, split: str, image_size: int | None = None) -> ImageSet:
    """One split ('train' or 'test') of the user's data at path (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected an image folder, a .npy or a .npz file)")
    if path.is_dir():
        images, labels, name = load_folder(path, image_size)
    elif path.suffix == ".npy":
        images, labels, name = as_images(read_npy(path), path, image_size), None, str(path)
    elif path.suffix == ".npz":
        images, labels, name = load_npz(path, split, image_size)
    else:
        raise DataError(f"{path}: expected an image folder, a .npy or a .npz file")
    return ImageSet(torch.from_numpy(images), None if labels is None else torch.from_numpy(labels), name)


def load_npz(path: Path, split: str, image_size: int | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Images and optional labels of one split of a .npz archive."""
    def choose(files: list[str]) -> dict[str, str]:
        image_keys, label_keys = (("x_test",), ("y_test",)) if split == "test" and "x_test" in files \
            else (IMAGE_KEYS, LABEL_KEYS)
        image_key = next((k for k in image_keys if k in files), None)
        if image_key is None:
            raise DataError(f"{path}: no image array; expected one of the keys {', '.join(IMAGE_KEYS)} "
                            f"(found {', '.join(sorted(files)) or 'none'})")
        label_key = next((k for k in label_keys if k in files), None)
        chosen.update(images=image_key, **({"labels": label_key} if label_key else {}))
        return chosen

    chosen: dict[str, str] = {}
    arrays = read_npz(path, choose)
    images = as_images(arrays["images"], f"{path}[{chosen['images']}]", image_size)
    labels = arrays.get("labels")
    if labels is not None:
        labels = as_labels(labels, len(images), f"{path}[{chosen['labels']}]")
    return images, labels, str(path)


def as_images(array: np.ndarray, source, image_size: int | None = None) -> np.ndarray:
    """uint8 images [N, H, W] or [N, 3, H, W] from an array in one of the documented layouts and ranges."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = np.moveaxis(array, -1, 1)  # channels last -> channels first
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[1] == 3)) or 0 in array.shape:
        raise DataError(f"{source}: expected images [N, H, W], [N, C, H, W] or [N, H, W, C] with C = 1 or 3, "
                        f"got an array of shape {array.shape}")
    images = to_uint8(array, source)
    if image_size is not None and images.shape[-2:] != (image_size, image_size):
        images = np.stack([resize(image, image_size) for image in images])
    return images


def to_uint8(array: np.ndarray, source) -> np.ndarray:
    """Pixel values as uint8 0..255: uint8 kept, booleans as 0/255, integers in 0..255 kept,
    floats in [0, 1] scaled by 255; anything else is an error naming the source."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 255:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1:
        return np.rint(array * 255.0).astype(np.uint8)
    low, high = (array.min(), array.max()) if np.issubdtype(array.dtype, np.number) else ("?", "?")
    raise DataError(f"{source}: expected pixel values as uint8 0..255 or floats in [0, 1], got {array.dtype} "
                    f"values from {low} to {high}")


def as_labels(labels: np.ndarray, n: int, source) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: expected {n} integer labels (one per image), got {labels.dtype} of shape "
                        f"{labels.shape}")
    return labels.astype(np.int64)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 image [H, W] or [3, H, W] resized to size x size (bilinear, antialiased by Pillow)."""
    channels_last = image if image.ndim == 2 else np.moveaxis(image, 0, -1)
    resized = np.asarray(Image.fromarray(channels_last).resize((size, size), Image.Resampling.BILINEAR))
    return resized if resized.ndim == 2 else np.moveaxis(resized, -1, 0)


def load_folder(folder: Path, image_size: int | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A flat folder of images (no labels), or one subfolder per class (labels = sorted subfolder names)."""
    files = image_files(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and image_files(p))
    if files and classes:
        raise DataError(f"{folder}: holds both images and class subfolders ({classes[0].name}, ...); "
                        f"expected one or the other")
    if classes:
        files = [f for c in classes for f in image_files(c)]
        labels = np.concatenate([np.full(len(image_files(c)), i, dtype=np.int64) for i, c in enumerate(classes)])
        name = f"{folder} (labels: " + ", ".join(f"{i}={c.name}" for i, c in enumerate(classes)) + ")"
    else:
        labels, name = None, str(folder)
    if not files:
        raise DataError(f"{folder}: no images found (expected .png, .jpg or .jpeg files, directly or in one "
                        f"subfolder per class)")
    return read_images(files, image_size), labels, name


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_images(files: list[Path], image_size: int | None) -> np.ndarray:
    """uint8 [N, H, W] if every image is grayscale, else [N, 3, H, W]; resized if image_size is given."""
    pictures = [read_rgb(f, image_size) for f in files]
    sizes = sorted({p.shape[:2] for p in pictures})
    if len(sizes) > 1:
        raise DataError(f"{files[0].parent}: images of different sizes ({sizes[0][0]}x{sizes[0][1]}, "
                        f"{sizes[1][0]}x{sizes[1][1]}, ...); pass --image-size S to resize them to S x S")
    stacked = np.stack(pictures)  # [N, H, W, 3]
    if (stacked == stacked[..., :1]).all():
        return stacked[..., 0]
    return np.moveaxis(stacked, -1, 1)


def read_rgb(path: Path, image_size: int | None = None) -> np.ndarray:
    """One image file as uint8 [H, W, 3], resized to image_size if given; an unreadable file
    is an error naming it."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image_size is not None:
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from None
