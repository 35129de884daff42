"""dSprites: the official grid and order, hand-checked pixels, the atomic cache, the official-npz loader."""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imae.data import dsprites
from imae.errors import DataError

# The official README's index formula: latents_classes (colour first) . these bases.
OFFICIAL_BASES = np.array([737280, 245760, 40960, 1024, 32, 1])


def with_colour(classes: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(classes), 1), np.int64), classes], axis=1)


def on(image: np.ndarray) -> np.ndarray:
    return image > 0


def test_grid_size_and_order_match_the_official_index_formula():
    assert dsprites.NUM_IMAGES == 737280 == 3 * 6 * 40 * 32 * 32
    indices = np.random.default_rng(0).integers(0, dsprites.NUM_IMAGES, 200)
    classes = dsprites.factor_classes(np.concatenate([[0, dsprites.NUM_IMAGES - 1], indices]))
    assert classes.dtype == np.int64 and classes.shape == (202, 5)
    np.testing.assert_array_equal(with_colour(classes) @ OFFICIAL_BASES, np.concatenate([[0, 737279], indices]))
    np.testing.assert_array_equal(classes[1], np.array(dsprites.FACTOR_SIZES) - 1)
    assert dsprites.FACTOR_NAMES == ("shape", "scale", "orientation", "position_x", "position_y")


def test_factor_values_are_the_official_linear_grids():
    k = np.arange(40)
    classes = np.stack([k % 3, k % 6, k, k % 32, (k + 5) % 32], axis=1)
    values = dsprites.factor_values(classes)
    np.testing.assert_allclose(values[:, 0], k % 3 + 1)
    np.testing.assert_allclose(values[:, 1], 0.5 + 0.1 * (k % 6))
    np.testing.assert_allclose(values[:, 2], 2 * math.pi * k / 39)
    np.testing.assert_allclose(values[:, 3], (k % 32) / 31)
    np.testing.assert_allclose(values[:, 4], ((k + 5) % 32) / 31)


def test_square_at_scale_one_fills_a_21_pixel_box_centred_on_pixel_16_plus_position():
    # Half-side 10.5 px around the centre of pixel (row 16 + y, column 16 + x): pixels centre-10 .. centre+10.
    for x, y in [(0, 0), (31, 10), (7, 31)]:
        image = dsprites.render([(0, 5, 0, x, y)])[0]
        expected = np.zeros((64, 64), bool)
        expected[6 + y:27 + y, 6 + x:27 + x] = True
        np.testing.assert_array_equal(on(image), expected)


def test_square_at_scale_half_is_11_pixels_wide():
    # Half-side 10.5 * 0.5 = 5.25 px: pixel centres at offsets -5 .. 5.
    rows, cols = np.nonzero(dsprites.render([(0, 0, 0, 4, 20)])[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (31, 41, 15, 25) and len(rows) == 121


def test_upright_ellipse_is_wider_than_high_and_mirror_symmetric():
    sprite = on(dsprites.render_sprite(1, 5, 0))
    np.testing.assert_array_equal(sprite, sprite[::-1, :])
    np.testing.assert_array_equal(sprite, sprite[:, ::-1])
    rows, cols = np.nonzero(sprite)
    # Semi-axes 11.1 and 5.55 px: pixel centres at offsets -11 .. 11 across, -5 .. 5 up and down.
    assert (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1) == (23, 11)


def test_heart_is_left_right_symmetric_but_not_top_bottom_and_points_down():
    sprite = on(dsprites.render_sprite(2, 5, 0))
    np.testing.assert_array_equal(sprite, sprite[:, ::-1])
    assert (sprite != sprite[::-1, :]).sum() > 20
    rows, _ = np.nonzero(sprite)
    top_width, bottom_width = sprite[rows.min() + 2].sum(), sprite[rows.max() - 2].sum()
    assert top_width > 2 * bottom_width  # two lobes at the top, a tip at the bottom


def test_orientation_turns_counter_clockwise_on_screen():
    # A quarter turn (orientation 10 of 39 steps is 92 degrees) moves the heart's tip from the bottom to the right.
    sprite = on(dsprites.render_sprite(2, 5, 10))
    column_mass = sprite.sum(axis=0)
    centre = dsprites.PATCH_RADIUS
    assert column_mass[:centre].sum() > column_mass[centre + 1:].sum()  # lobes on the left, tip on the right


def test_images_are_binary_and_sprites_are_never_cut_by_the_patch():
    rng = np.random.default_rng(1)
    classes = np.stack([rng.integers(0, n, 60) for n in dsprites.FACTOR_SIZES], axis=1)
    assert set(np.unique(dsprites.render(classes))) == {0, 255}
    for shape in range(3):
        for orientation in range(40):
            sprite = dsprites.render_sprite(shape, 5, orientation)
            border = np.concatenate([sprite[0], sprite[-1], sprite[:, 0], sprite[:, -1]])
            assert not border.any(), (shape, orientation)


def test_rotation_by_two_pi_gives_orientation_zero():
    for shape in range(3):
        for scale in range(6):
            first, last = on(dsprites.render_sprite(shape, scale, 0)), on(dsprites.render_sprite(shape, scale, 39))
            assert (first != last).sum() <= 0.01 * first.sum()


def test_mean_pixel_is_near_the_published_value_of_the_official_images():
    # Official images: mean 0.043 (std 0.202); every sprite appears at 1,024 positions, so the mean of the
    # set is the mean over the 720 sprites.
    on_pixels = sum(on(dsprites.render_sprite(*c)).sum() for c in dsprites.sprite_classes())
    assert abs(on_pixels / (720 * 64 * 64) - 0.043) < 0.002


def test_position_block_matches_images_rendered_one_by_one():
    rng = np.random.default_rng(2)
    for sprite in [(0, 5, 0), (2, 1, 17), (1, 3, 33)]:
        block = dsprites.position_block(*sprite)
        assert block.shape == (1024, 64, 64)
        picks = rng.integers(0, 1024, 25)
        classes = [(*sprite, i // 32, i % 32) for i in picks]
        np.testing.assert_array_equal(block[picks], dsprites.render(classes))


def test_generate_writes_blocks_in_order_and_reloads_them(tmp_path):
    sprites = [(0, 5, 0), (2, 3, 7)]
    path = dsprites.generate(tmp_path / "cache.npy", log=lambda _: None, sprites=sprites, progress=False)
    images = dsprites.read_cache(path, expected=2048)
    assert images.dtype == np.uint8 and images.shape == (2048, 64, 64)
    picks = np.random.default_rng(3).integers(0, 2048, 30)
    classes = [(*sprites[i // 1024], (i % 1024) // 32, i % 32) for i in picks]
    np.testing.assert_array_equal(images[picks], dsprites.render(classes))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npy"]
    with pytest.raises(DataError, match="cache.npy"):
        dsprites.read_cache(path)  # the full set's size is expected by default


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
    real_block, calls = dsprites.position_block, []

    def dies_on_second_block(*sprite):
        calls.append(sprite)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_block(*sprite)

    monkeypatch.setattr(dsprites, "position_block", dies_on_second_block)
    with pytest.raises(KeyboardInterrupt):
        dsprites.generate(tmp_path / "cache.npy", log=lambda _: None, sprites=[(0, 0, 0), (0, 0, 1)], progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_grid(monkeypatch):
    """A grid of 2 sprites (one shape, one scale, two orientations) standing in for the full set."""
    monkeypatch.setattr(dsprites, "FACTOR_SIZES", (1, 1, 2, 32, 32))
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 2048)


def test_load_dsprites_generates_once_then_reads_the_cache(tiny_grid, tmp_path):
    logs = []
    first = dsprites.load_dsprites(tmp_path, log=logs.append)
    assert len(logs) == 1 and (tmp_path / dsprites.CACHE_FILE).is_file()
    second = dsprites.load_dsprites(tmp_path, log=logs.append)
    assert len(logs) == 1
    assert torch.equal(first.images, second.images) and first.name == "dsprites"
    assert first.images.dtype == torch.uint8 and first.factors.dtype == torch.int64
    np.testing.assert_array_equal(first.factors.numpy(), dsprites.factor_classes(np.arange(2048)))
    assert torch.equal(first.labels, first.factors[:, 0])
    np.testing.assert_array_equal(first.images[1024 + 40].numpy(), dsprites.render([(0, 0, 1, 1, 8)])[0])


def test_cache_location_follows_data_dir_then_imae_data_then_xdg(monkeypatch, tmp_path):
    assert dsprites.cache_dir(tmp_path / "mine") == tmp_path / "mine"
    assert dsprites.cache_dir() == tmp_path / "cache" / "imae" / "dsprites"  # conftest sets XDG_CACHE_HOME
    monkeypatch.setenv("IMAE_DATA", str(tmp_path / "data"))
    assert dsprites.cache_dir() == tmp_path / "data" / "dsprites"


def fake_official(n: int = 50, seed: int = 4) -> dict[str, np.ndarray]:
    """What the official file holds, for a few random images: colour column first, imgs 0/1."""
    rng = np.random.default_rng(seed)
    classes = dsprites.factor_classes(rng.integers(0, dsprites.NUM_IMAGES, n))
    values = np.concatenate([np.ones((n, 1)), dsprites.factor_values(classes)], axis=1)
    return {"imgs": dsprites.render(classes) // 255, "latents_classes": with_colour(classes), "latents_values": values}


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_official_npz_round_trip(tmp_path):
    arrays = fake_official()
    path = tmp_path / dsprites.OFFICIAL_NPZ
    path.write_bytes(npz_bytes(arrays))
    data = dsprites.load_official_npz(path)
    np.testing.assert_array_equal(data.images.numpy(), arrays["imgs"] * 255)
    np.testing.assert_array_equal(data.factors.numpy(), arrays["latents_classes"][:, 1:])
    np.testing.assert_array_equal(data.labels.numpy(), arrays["latents_classes"][:, 1])
    loaded = dsprites.load_dsprites(tmp_path, log=pytest.fail)  # found by name: nothing is generated
    assert torch.equal(loaded.images, data.images) and torch.equal(loaded.factors, data.factors)


def bad_variants() -> dict[str, tuple[bytes, str]]:
    good = fake_official(n=6)

    def changed(**changes) -> bytes:
        return npz_bytes({k: v for k, v in {**good, **changes}.items() if v is not None})

    single = io.BytesIO()
    np.save(single, good["imgs"])
    return {
        "missing key": (changed(latents_values=None), "missing latents_values"),
        "float images": (changed(imgs=good["imgs"].astype(np.float32)), "'imgs' should be uint8"),
        "wrong image side": (changed(imgs=good["imgs"][:, :32]), "'imgs' should be uint8"),
        "flat images": (changed(imgs=good["imgs"].reshape(6, -1)), "'imgs' should have 3 dimensions"),
        "five columns": (changed(latents_classes=good["latents_classes"][:, 1:]), "shape \\[N, 6\\]"),
        "lengths differ": (changed(latents_values=good["latents_values"][:4]), "4 rows for 6 images"),
        "float classes": (changed(latents_classes=good["latents_classes"] * 1.0), "should be integers"),
        "string values": (changed(latents_values=good["latents_values"].astype(str)), "should be floats"),
        "class out of range": (changed(latents_classes=good["latents_classes"] + 40), "out of range"),
        "pixels not 0/1": (changed(imgs=good["imgs"] * 255), "0/1 pixels"),
        "pickled objects": (changed(imgs=np.array([None, 1], dtype=object)), "not a readable"),
        "not a zip": (b"this is not an npz file\n", "not a readable"),
        "single array": (single.getvalue(), "expected an .npz archive"),
        "truncated": (npz_bytes(good)[:300], "not a readable"),
    }


@pytest.mark.parametrize("case", list(bad_variants()))
def test_bad_npz_gives_a_data_error_naming_the_file(tmp_path, case):
    content, message = bad_variants()[case]
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as error:
        dsprites.load_official_npz(path)
    assert str(path) in str(error.value)


VALID_NPZ = npz_bytes(fake_official(n=3))


def load_or_data_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.npz"
        path.write_bytes(content)
        try:
            dsprites.load_official_npz(path)
        except DataError:
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_data_error(content):
    load_or_data_error(content)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 8), st.booleans())
def test_mutated_npz_never_raises_anything_but_data_error(seed, edits, truncate):
    # Positions drawn uniformly (hypothesis' own integers favour the first bytes): every part of the
    # archive (zip headers, .npy headers, compressed data, central directory) gets hit.
    rng = np.random.default_rng(seed)
    content = np.frombuffer(VALID_NPZ, np.uint8).copy()
    content[rng.integers(0, len(content), edits)] = rng.integers(0, 256, edits, dtype=np.uint8)
    load_or_data_error(content[:int(rng.integers(1, len(content)))].tobytes() if truncate else content.tobytes())
