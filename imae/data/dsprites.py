"""dSprites (Matthey et al., 2017), rendered here from its factor grid, or read from the official .npz.

The grid (METHOD.md section 7) is that of the official `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`:
737,280 binary 64x64 images, one for every combination of shape (square, ellipse, heart), 6 scales
linspace(0.5, 1), 40 orientations linspace(0, 2 pi) (so orientation 39 repeats orientation 0, as in the
official file), 32 x 32 positions linspace(0, 1); colour is constant and left out of `factors`.
Image n has the classes np.unravel_index(n, FACTOR_SIZES): position y varies fastest, shape slowest,
the official order (index = classes . (245760, 40960, 1024, 32, 1)).

The rendering is a faithful re-rendering, not a pixel-identical copy of the official file, whose
generator was never published. The choices, with the evidence for each:
- Position: consecutive positions are exactly one pixel apart. The official README says the latent
  values were chosen "to have the smallest step changes while ensuring that all pixel outputs were
  different", which for a binary image is one pixel. The 32 positions put the sprite's centre on the
  centres of pixels 16..47 (position 0 -> pixel 16, 1 -> pixel 47), a range symmetric about the image
  centre (32) and half the image wide, as re-implementations of dSprites place it (e.g. sbdzdz/disco's
  InfiniteDSprites: centre = 64 * (0.25 + 0.5 * position)). x is the column, y the row (y = 0 at the top).
- Size at scale 1: a square of 21 x 21 pixels; an ellipse with semi-axes 11.1 and 5.55 pixels, major axis
  horizontal at orientation 0; a heart 19 pixels high and 19.4 wide, upright (lobes up) at
  orientation 0. Every shape stays within 16 pixels of its centre at every orientation, so no sprite is
  ever cut by the border. The sizes are set so that the mean pixel is ~0.043, the value published for the
  official images (mean 0.043, std 0.202, e.g. in the data_lib DSPRITES loader); see
  bench/dsprites_generation.py for the value measured here.
- Heart outline: Taubin's algebraic heart (x^2 + y^2 - 1)^3 - x^2 y^3 < 0 (lobes, a notch and a
  pointed tip, no mirror symmetry top-bottom), centred on its bounding box.
- Orientation turns the shape counter-clockwise as the image is displayed (rows downwards).
- A pixel is on when its centre is inside the shape (point sampling, no anti-aliasing: binary images).
  Pixel centres are at integer offsets from the sprite's centre and the sizes are chosen so that no
  scaled half-side or semi-axis is an integer (the square's half-side is 10.5 * scale pixels), so no
  pixel of an upright sprite sits on the boundary and depends on rounding.

Because positions move in whole pixels, each of the 720 (shape, scale, orientation) sprites is
rendered once, on a 33 x 33 patch, and then copied to its 1,024 positions. The set is generated once
into an .npy cache (uint8 0/255, 3.0 GB), written through a temporary file and renamed, and opened
memory-mapped copy-on-write: loading takes no time, pages are read on first use, and parallel runs on one
machine share them in the page cache (bench/dsprites_generation.py measures this against bit-packing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import DataError
from ..runs import atomic_write
from .arrays import read_npz
from .batches import ImageSet

FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
SIDE = 64
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280

# Official latent values (the README's grid); the shape's value is 1, 2, 3 as in latents_values.
SHAPE_VALUES = np.array([1.0, 2.0, 3.0])
SCALE_VALUES = np.linspace(0.5, 1.0, 6)
ORIENTATION_VALUES = np.linspace(0.0, 2 * np.pi, 40)
POSITION_VALUES = np.linspace(0.0, 1.0, 32)

PATCH_RADIUS = 16  # a sprite is drawn on the 33 x 33 pixels around its centre; position k puts it on pixel 16 + k
SQUARE_HALF_SIDE = 10.5  # pixels at scale 1
ELLIPSE_SEMI_AXES = (11.1, 5.55)
HEART_PIXELS_PER_UNIT = 8.5
HEART_Y_RANGE = (-1.0, 5 ** 0.5 - 1)  # vertical extent of Taubin's heart: tip at -1, lobes' tops at sqrt(5) - 1

OFFICIAL_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CACHE_FILE = "dsprites-generated-v1.npy"  # bump the version whenever the rendering changes


def factor_classes(indices) -> np.ndarray:
    """Image indices -> int64 factor classes [M, 5] in the official order (position y fastest)."""
    return np.stack(np.unravel_index(np.asarray(indices, dtype=np.int64), FACTOR_SIZES), axis=1)


def all_factor_classes() -> torch.Tensor:
    return torch.from_numpy(factor_classes(np.arange(NUM_IMAGES)))


def factor_values(factors) -> np.ndarray:
    """Factor classes [M, 5] -> float64 values [M, 5] as in the official latents_values (without colour):
    shape 1..3, scale 0.5..1, orientation in radians 0..2pi, positions 0..1."""
    factors = np.asarray(factors)
    tables = (SHAPE_VALUES, SCALE_VALUES, ORIENTATION_VALUES, POSITION_VALUES, POSITION_VALUES)
    return np.stack([table[factors[:, k]] for k, table in enumerate(tables)], axis=1)


def inside(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x right, y up; pixels at scale 1, centre at 0) lie inside an upright shape."""
    if SHAPE_NAMES[shape] == "square":
        return np.maximum(np.abs(x), np.abs(y)) < SQUARE_HALF_SIDE
    if SHAPE_NAMES[shape] == "ellipse":
        a, b = ELLIPSE_SEMI_AXES
        return (x / a) ** 2 + (y / b) ** 2 < 1
    u = x / HEART_PIXELS_PER_UNIT
    v = y / HEART_PIXELS_PER_UNIT + sum(HEART_Y_RANGE) / 2  # from bounding-box centre to the curve's origin
    return (u ** 2 + v ** 2 - 1) ** 3 - u ** 2 * v ** 3 < 0


def render_sprite(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The (2R+1) x (2R+1) uint8 patch (0/255) around the sprite's centre pixel, R = PATCH_RADIUS."""
    offsets = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1, dtype=np.float64)
    right, down = np.meshgrid(offsets, offsets)  # pixel centres relative to the centre pixel's centre
    up = -down
    angle = ORIENTATION_VALUES[orientation]
    c, s = np.cos(angle), np.sin(angle)
    size = SCALE_VALUES[scale]
    # Rotating the shape by +angle is testing the points rotated by -angle; scaling likewise by 1/size.
    x = (c * right + s * up) / size
    y = (-s * right + c * up) / size
    return inside(shape, x, y).astype(np.uint8) * np.uint8(255)


def place(sprite: np.ndarray, position_x: int, position_y: int) -> np.ndarray:
    """One 64 x 64 image with the sprite's centre on pixel (row 16 + position_y, column 16 + position_x)."""
    image = np.zeros((SIDE, SIDE), np.uint8)
    width = sprite.shape[0]
    image[position_y:position_y + width, position_x:position_x + width] = sprite
    return image


def render(factors) -> np.ndarray:
    """Images uint8 [M, 64, 64] (0/255) for factor classes [M, 5], one at a time (for tests and samples)."""
    factors = np.asarray(factors, dtype=np.int64).reshape(-1, len(FACTOR_SIZES))
    if len(factors) and ((factors < 0).any() or (factors >= np.array(FACTOR_SIZES)).any()):
        raise ValueError(f"factor classes out of range: sizes are {FACTOR_SIZES}")
    images = [place(render_sprite(*row[:3]), *row[3:]) for row in factors.tolist()]
    return np.stack(images) if images else np.zeros((0, SIDE, SIDE), np.uint8)


def position_block(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The 1,024 consecutive images [1024, 64, 64] of one sprite at every position, in file order.

    Image (x, y) is a 64 x 64 window onto a zero-padded canvas holding the sprite, shifted by (x, y):
    all windows at once are one strided view, copied once."""
    sprite = render_sprite(shape, scale, orientation)
    n = FACTOR_SIZES[3]
    width = sprite.shape[0]
    canvas = np.zeros((SIDE + n - 1, SIDE + n - 1), np.uint8)
    canvas[n - 1:n - 1 + width, n - 1:n - 1 + width] = sprite
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (SIDE, SIDE))  # [row shift, column shift, 64, 64]
    # Window (n-1-y, n-1-x) holds the sprite at row y, column x; the file's order is x-major, y fastest.
    return windows[::-1, ::-1].transpose(1, 0, 2, 3).reshape(n * n, SIDE, SIDE)


def sprite_classes() -> list[tuple[int, int, int]]:
    """Every (shape, scale, orientation) in file order."""
    return [tuple(int(c) for c in row) for row in np.ndindex(*FACTOR_SIZES[:3])]


def generate(path: str | Path, log: Callable = print, sprites: Sequence[tuple[int, int, int]] | None = None,
             progress: bool = True) -> Path:
    """Render the whole set into an .npy file at `path`, block by block (4 MiB in memory at a time).
    The file appears complete or not at all (temporary file + rename). `sprites` restricts the
    (shape, scale, orientation) blocks written, in that order (tests write a few)."""
    path = Path(path)
    sprites = sprite_classes() if sprites is None else list(sprites)
    block = FACTOR_SIZES[3] * FACTOR_SIZES[4]
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(sprites) * block, SIDE, SIDE)}
    log(f"dsprites: generating {len(sprites) * block} images into {path} (once)")

    def write(f) -> None:
        np.lib.format.write_array_header_1_0(f, header)
        for classes in tqdm(sprites, desc="dsprites", unit="sprite", disable=not progress, leave=False):
            f.write(position_block(*classes).tobytes())

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return path


def read_cache(path: str | Path, expected: int | None = None) -> np.ndarray:
    """The generated images, memory-mapped copy-on-write (writes stay in memory, the file is untouched)."""
    expected = NUM_IMAGES if expected is None else expected
    try:
        images = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy cache ({exc}); delete it to regenerate") from None
    if images.dtype != np.uint8 or images.shape != (expected, SIDE, SIDE):
        raise DataError(f"{path}: expected uint8 images of shape ({expected}, {SIDE}, {SIDE}), got "
                        f"{images.dtype} {images.shape}; delete it to regenerate")
    return images


def cache_dir(data_dir: str | Path | None = None) -> Path:
    """data_dir if given, else $IMAE_DATA/dsprites, else $XDG_CACHE_HOME/imae/dsprites (~/.cache/...)."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("IMAE_DATA"):
        return Path(os.environ["IMAE_DATA"]) / "dsprites"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imae" / "dsprites"


def image_set(images: np.ndarray, factors: np.ndarray | torch.Tensor, name: str) -> ImageSet:
    """Labels are the shape class, so clustering accuracy can be measured against shape."""
    factors = torch.as_tensor(factors, dtype=torch.int64)
    return ImageSet(torch.from_numpy(images), factors[:, 0].clone(), name, factors)


def load_dsprites(data_dir: str | Path | None = None, log: Callable = print) -> ImageSet:
    """All of dSprites: the official .npz if data_dir's folder holds it, else the generated cache
    (generated first if missing). Images uint8 [737280, 64, 64] 0/255, labels = shape, factors [N, 5]."""
    directory = cache_dir(data_dir)
    if (directory / OFFICIAL_NPZ).is_file():
        return load_official_npz(directory / OFFICIAL_NPZ)
    path = directory / CACHE_FILE
    if not path.is_file():
        generate(path, log)
    return image_set(read_cache(path), all_factor_classes(), "dsprites")


REQUIRED_KEYS = {"imgs": 3, "latents_classes": 2, "latents_values": 2}
def load_official_npz(path: str | Path) -> ImageSet:
    """The official file (imgs uint8 0/1 [N, 64, 64], latents_classes [N, 6], latents_values [N, 6],
    colour first) as an ImageSet like load_dsprites'. Nothing in it is unpickled."""
    path = Path(path)
    arrays = _read_npz(path)
    imgs, classes, values = arrays["imgs"], arrays["latents_classes"], arrays["latents_values"]
    if imgs.dtype != np.uint8 or imgs.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{path}: 'imgs' should be uint8 of shape [N, {SIDE}, {SIDE}], got {imgs.dtype} {imgs.shape}")
    for key, array in (("latents_classes", classes), ("latents_values", values)):
        if array.shape[1:] != (1 + len(FACTOR_SIZES),):
            raise DataError(f"{path}: '{key}' should have shape [N, 6] (colour, {', '.join(FACTOR_NAMES)}), "
                            f"got {array.shape}")
        if len(array) != len(imgs):
            raise DataError(f"{path}: '{key}' has {len(array)} rows for {len(imgs)} images")
    if not np.issubdtype(classes.dtype, np.integer):
        raise DataError(f"{path}: 'latents_classes' should be integers, got {classes.dtype}")
    if not np.issubdtype(values.dtype, np.floating):
        raise DataError(f"{path}: 'latents_values' should be floats, got {values.dtype}")
    factors = classes[:, 1:]
    if len(factors) and ((factors < 0).any() or (factors >= np.array(FACTOR_SIZES)).any()):
        raise DataError(f"{path}: 'latents_classes' out of range (sizes {FACTOR_SIZES} after colour)")
    if imgs.size and imgs.max() > 1:
        raise DataError(f"{path}: 'imgs' should hold 0/1 pixels, found {imgs.max()}")
    np.multiply(imgs, np.uint8(255), out=imgs)  # 0/1 -> 0/255 like every loader here, in place
    return image_set(imgs, factors.astype(np.int64), "dsprites")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    def choose(files: list[str]) -> dict[str, str]:
        missing = sorted(set(REQUIRED_KEYS) - set(files))
        if missing:
            raise DataError(f"{path}: missing {', '.join(missing)} (expected keys {', '.join(REQUIRED_KEYS)})")
        return {key: key for key in REQUIRED_KEYS}

    arrays = read_npz(path, choose, "dSprites .npz")
    for key, ndim in REQUIRED_KEYS.items():
        if arrays[key].ndim != ndim:
            raise DataError(f"{path}: '{key}' should have {ndim} dimensions, got shape {arrays[key].shape}")
    return arrays

