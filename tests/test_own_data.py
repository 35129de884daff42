"""The user's own data: image folders and arrays, loaded, checked, and trained on end to end."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imae.cli import main
from imae.data import load_dataset
from imae.data.own import load_own_data
from imae.errors import DataError


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _gray(rng, n, side=8):
    return rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)


def test_flat_folder_of_grayscale_pngs_is_read_exactly_without_labels(tmp_path):
    images = _gray(np.random.default_rng(0), 3)
    for i, image in enumerate(images):
        _write_png(tmp_path / f"img{i}.png", image)
    loaded = load_dataset(str(tmp_path), "train")
    assert loaded.labels is None
    np.testing.assert_array_equal(loaded.images.numpy(), images)


def test_class_subfolders_give_sorted_labels_and_colour_makes_every_image_rgb(tmp_path):
    rng = np.random.default_rng(1)
    gray = _gray(rng, 1)[0]
    colour = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    _write_png(tmp_path / "zebra" / "a.png", gray)
    _write_png(tmp_path / "ant" / "b.png", colour)
    _write_png(tmp_path / "ant" / "c.png", gray)
    loaded = load_own_data(tmp_path, "train")
    assert loaded.labels.tolist() == [0, 0, 1]  # ant = 0, zebra = 1
    assert "0=ant" in loaded.name and "1=zebra" in loaded.name
    assert loaded.images.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(loaded.images[0].numpy(), np.moveaxis(colour, -1, 0))
    for i in (1, 2):  # a grayscale image in a colour set: three equal channels
        np.testing.assert_array_equal(loaded.images[i].numpy(), np.stack([gray] * 3))


def test_images_of_different_sizes_need_image_size_and_are_resized(tmp_path):
    _write_png(tmp_path / "small.png", np.full((6, 6), 200, dtype=np.uint8))
    _write_png(tmp_path / "large.jpg", np.full((20, 12), 200, dtype=np.uint8))
    with pytest.raises(DataError, match="--image-size"):
        load_own_data(tmp_path, "train")
    loaded = load_own_data(tmp_path, "train", image_size=10)
    assert loaded.images.shape == (2, 10, 10)
    # A constant image stays constant under resizing (JPEG keeps a flat image flat within 1 level).
    assert (loaded.images.int() - 200).abs().max() <= 1


def test_unreadable_image_and_empty_folder_are_clear_errors(tmp_path):
    _write_png(tmp_path / "good.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"broken\.png: not a readable PNG/JPEG image"):
        load_own_data(tmp_path, "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_own_data(empty, "train")
    with pytest.raises(DataError, match="no such file"):
        load_own_data(tmp_path / "missing", "train")


def test_npy_floats_in_unit_interval_become_uint8_and_channels_last_is_moved(tmp_path):
    rng = np.random.default_rng(2)
    floats = rng.random((4, 5, 5))
    np.save(tmp_path / "a.npy", floats)
    loaded = load_own_data(tmp_path / "a.npy", "train")
    np.testing.assert_array_equal(loaded.images.numpy(), np.rint(floats * 255).astype(np.uint8))
    colour = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", colour)
    np.testing.assert_array_equal(load_own_data(tmp_path / "c.npy", "train").images.numpy(),
                                  colour.transpose(0, 3, 1, 2))
    constant = np.full((2, 3, 5, 6), 77, dtype=np.uint8)  # resizing keeps a constant image constant
    np.save(tmp_path / "k.npy", constant)
    np.testing.assert_array_equal(load_own_data(tmp_path / "k.npy", "train", image_size=4).images.numpy(),
                                  np.full((2, 3, 4, 4), 77, dtype=np.uint8))


def test_arrays_out_of_range_or_of_a_wrong_shape_are_errors_naming_the_file(tmp_path):
    np.save(tmp_path / "wide.npy", np.linspace(-1.0, 2.0, 4 * 9).reshape(4, 3, 3))
    with pytest.raises(DataError, match=r"wide\.npy: expected pixel values .* got float64 values from -1.0 to 2.0"):
        load_own_data(tmp_path / "wide.npy", "train")
    np.save(tmp_path / "flat.npy", np.zeros((4, 9), dtype=np.uint8))
    with pytest.raises(DataError, match=r"flat\.npy: expected images"):
        load_own_data(tmp_path / "flat.npy", "train")


def test_npz_splits_keys_and_label_checks(tmp_path):
    rng = np.random.default_rng(3)
    x, y = _gray(rng, 6), rng.integers(0, 3, 6)
    x_test, y_test = _gray(rng, 2), rng.integers(0, 3, 2)
    np.savez(tmp_path / "split.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    test = load_own_data(tmp_path / "split.npz", "test")
    np.testing.assert_array_equal(test.images.numpy(), x_test)
    assert test.labels.tolist() == y_test.tolist()
    np.savez(tmp_path / "one.npz", images=x, labels=y)
    train, test = (load_own_data(tmp_path / "one.npz", split) for split in ("train", "test"))
    np.testing.assert_array_equal(test.images.numpy(), train.images.numpy())  # no test split: the same images
    assert train.labels.tolist() == y.tolist()
    np.savez(tmp_path / "short.npz", x=x, y=y[:-1])
    with pytest.raises(DataError, match=r"short\.npz\[y\]: expected 6 integer labels"):
        load_own_data(tmp_path / "short.npz", "train")
    np.savez(tmp_path / "nokey.npz", pixels=x)
    with pytest.raises(DataError, match="no image array"):
        load_own_data(tmp_path / "nokey.npz", "train")


def test_cli_trains_a_conv_network_on_a_folder_of_pngs_and_evaluates_it(tmp_path):
    rng = np.random.default_rng(4)
    for label in ("a", "b"):
        for i in range(4):  # 20x20 images, resized to the conv network's 32x32
            _write_png(tmp_path / "data" / label / f"{i}.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "data"), "--image-size", "32", "--architecture", "conv",
                 "--epochs", "1", "--batch-size", "4", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "conv" and config["image_size"] == 32 and config["categories"] == 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0  # labels from the subfolders
    (out / "metrics.json").unlink()
    assert main(["evaluate", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == pytest.approx(metrics["accuracy"])


def test_cli_reports_an_unreadable_image_in_one_line(tmp_path, capsys):
    _write_png(tmp_path / "data" / "ok.png", np.zeros((8, 8), dtype=np.uint8))
    (tmp_path / "data" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    assert main(["train", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error: ") and "bad.jpg" in err and "\n" not in err


def _valid_own_npz() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez_compressed(buffer, images=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
                        labels=np.arange(6), x_test=rng.random((2, 8, 8)))
    return buffer.getvalue()


VALID_OWN_NPZ = _valid_own_npz()


def _load_or_data_error(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "data.npz"
    path.write_bytes(content)
    for split in ("train", "test"):
        try:
            load_own_data(path, split)
        except DataError:
            pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 8), st.booleans())
def test_fuzz_mutated_npz_gives_data_error_or_loads(tmp_path_factory, seed, edits, truncate):
    # Random byte edits anywhere in a valid archive (zip and .npy headers, compressed data, directory).
    rng = np.random.default_rng(seed)
    content = np.frombuffer(VALID_OWN_NPZ, np.uint8).copy()
    content[rng.integers(0, len(content), edits)] = rng.integers(0, 256, edits, dtype=np.uint8)
    if truncate:
        content = content[:int(rng.integers(1, len(content)))]
    _load_or_data_error(tmp_path_factory, content.tobytes())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_give_data_error(tmp_path_factory, content):
    _load_or_data_error(tmp_path_factory, content)
