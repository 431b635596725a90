import os

import numpy as np
import pytest
from PIL import Image

from deepprior.errors import UserError
from deepprior.io import (
    Picture,
    default_output,
    from_array,
    read_image,
    to_array,
    write_image,
)

rng = np.random.default_rng(0)
CASES = {
    "gray8": rng.integers(0, 256, (20, 30), dtype=np.uint8),
    "gray16": rng.integers(0, 65536, (20, 30), dtype=np.uint16),
    "rgb8": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
    "rgb16": rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16),
    "rgba8": rng.integers(0, 256, (20, 30, 4), dtype=np.uint8),
    "rgba16": rng.integers(0, 65536, (20, 30, 4), dtype=np.uint16),
    "graya8": rng.integers(0, 256, (20, 30, 2), dtype=np.uint8),
    "graya16": rng.integers(0, 65536, (20, 30, 2), dtype=np.uint16),
}


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lossless_round_trip_keeps_mode_and_depth(tmp_path, case, suffix):
    array = CASES[case]
    path = write_image(tmp_path / f"x{suffix}", from_array(array))
    picture = read_image(path)
    assert picture.bit_depth == (16 if array.dtype == np.uint16 else 8)
    modes = {"gray": "L", "graya": "LA", "rgb": "RGB", "rgba": "RGBA"}
    assert picture.mode == modes[case.rstrip("0123456789")]
    back = to_array(picture)
    np.testing.assert_array_equal(back.reshape(array.shape), array)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_lossy_formats_read_back_close(photo, tmp_path, suffix):

    clean = photo(48)
    path = write_image(tmp_path / f"x{suffix}", Picture(clean))
    picture = read_image(path)
    assert picture.mode == "RGB" and picture.bit_depth == 8
    assert np.abs(picture.pixels - clean).mean() < 0.03


def test_exif_orientation_is_honoured(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # white left half, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to view
    Image.fromarray(array).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    picture = read_image(tmp_path / "turned.jpg")
    assert (picture.height, picture.width) == (40, 20)
    assert picture.pixels[:15].mean() > 0.9 and picture.pixels[25:].mean() < 0.1


def test_palette_images_become_rgb(tmp_path):
    Image.fromarray(CASES["rgb8"]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").mode == "RGB"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        ("truncated", "corrupt"),
    ],
)
def test_unreadable_files_raise_a_user_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.fromarray(CASES["rgb8"]).save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_image(path)


def test_directory_and_tiny_images_are_refused(tmp_path):
    with pytest.raises(UserError, match="directory"):
        read_image(tmp_path)
    Image.fromarray(np.zeros((15, 40), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="16 px"):
        read_image(tmp_path / "tiny.png")


def test_unsupported_format_is_named(tmp_path):
    Image.fromarray(CASES["rgb8"]).save(tmp_path / "x.bmp")
    with pytest.raises(UserError, match="BMP"):
        read_image(tmp_path / "x.bmp")


def test_existing_output_needs_force(tmp_path):
    path = write_image(tmp_path / "x.png", from_array(CASES["rgb8"]))
    before = path.read_bytes()
    with pytest.raises(UserError, match="--force"):
        write_image(path, from_array(CASES["gray8"]))
    assert path.read_bytes() == before
    write_image(path, from_array(CASES["gray8"]), force=True)
    assert read_image(path).mode == "L"


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(UserError, match="alpha"):
        write_image(tmp_path / "x.jpg", from_array(CASES["rgba8"]))
    assert os.listdir(tmp_path) == []


def test_bad_output_names_are_refused(tmp_path):
    with pytest.raises(UserError, match="directory"):
        write_image(tmp_path, from_array(CASES["rgb8"]))
    with pytest.raises(UserError, match=r"\.png"):
        write_image(tmp_path / "x.xyz", from_array(CASES["rgb8"]))
    with pytest.raises(UserError, match="does not exist"):
        write_image(tmp_path / "no" / "x.png", from_array(CASES["rgb8"]))


def test_default_output_is_lossless():
    from pathlib import Path

    assert default_output(Path("a/photo.jpg"), "denoised") == Path("a/photo.denoised.png")
    assert default_output(Path("scan.tif"), "denoised") == Path("scan.denoised.tif")


def test_float_arrays_are_taken_as_unit_range():
    picture = from_array(np.full((4, 4, 3), 0.5, np.float64))
    assert picture.bit_depth == 8 and picture.pixels.dtype == np.float32
    with pytest.raises(UserError, match="NaN"):
        from_array(np.full((4, 4), np.nan))
    with pytest.raises(UserError, match="shape"):
        from_array(np.zeros((4, 4, 5)))
