"""Property-based checks: any input ends in a result or the package's error, nothing else."""

import io as stdio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import deepprior
from deepprior.errors import UserError
from deepprior.io import Picture, read_image, write_image
from deepprior.masks import from_mask_image, validate

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _png(array: np.ndarray) -> bytes:
    buffer = stdio.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


SEED_FILE = _png(np.zeros((20, 20, 3), np.uint8))
MAGIC = [b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"\xff\xd8\xff", b"RIFF", b""]


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    """A real PNG damaged at random, or a known header followed by random bytes."""
    if draw(st.booleans()):
        data = bytearray(SEED_FILE)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(0, len(data)))])
    return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=300))


@FUZZ
@given(data=image_bytes())
def test_the_image_reader_returns_a_picture_or_a_user_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "input.img"
    path.write_bytes(data)
    try:
        picture = read_image(path)
    except UserError:
        return
    assert picture.pixels.ndim == 3 and picture.pixels.dtype == np.float32


@FUZZ
@given(
    mask=st.one_of(
        st.builds(
            lambda h, w, c, v: np.full((h, w, c), v, np.float32),
            st.integers(0, 20),
            st.integers(0, 20),
            st.integers(1, 4),
            st.floats(0, 1),
        ),
        st.builds(
            lambda h, w: np.random.default_rng(h * 31 + w).random((h, w, 1)) > 0.5,
            st.integers(0, 20),
            st.integers(0, 20),
        ).map(lambda a: a.astype(np.float32)),
    ),
    height=st.integers(0, 20),
    width=st.integers(0, 20),
)
def test_the_mask_reader_returns_a_mask_or_a_user_error(mask, height, width):
    try:
        known = validate(from_mask_image(mask), height, width)
    except UserError:
        return
    assert known.shape == (height, width) and known.any() and not known.all()


ARGUMENT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["auto", "4", "", "lots", "variance", "noise-level", "x4"]),
)


@FUZZ
@given(
    steps=ARGUMENT,
    max_steps=ARGUMENT,
    runs=st.one_of(st.integers(-1, 2), ARGUMENT),
    average=ARGUMENT,
    seed=st.one_of(ARGUMENT, st.integers(2**62 - 2, 2**64)),
    sigma=ARGUMENT,
    stop=ARGUMENT,
)
def test_library_arguments_give_a_result_or_a_user_error(
    fast, noisy32, steps, max_steps, runs, average, seed, sigma, stop
):
    small = replace(fast, steps=3)
    try:
        restored, report = deepprior.denoise(
            noisy32[:16, :16],
            preset=small,
            steps=steps,
            max_steps=max_steps,
            runs=runs,
            average=average,
            seed=seed,
            sigma=sigma,
            stop=stop,
            device="cpu",
        )
    except UserError:
        return
    assert restored.shape == (16, 16, 3) and report["steps_run"] >= 1


WRITER = """
import sys
import numpy as np
from deepprior.io import Picture, write_image
from deepprior.report import write_json
a, b = (np.random.default_rng(s).random((512, 512, 3), dtype=np.float32) for s in (1, 2))
while True:
    for pixels, tag in ((b, "b"), (a, "a")):
        write_image(sys.argv[1], Picture(pixels), force=True)
        write_json(sys.argv[2], {"tag": tag, "pad": list(range(20000))})
"""


def test_a_process_killed_while_writing_leaves_the_old_file_or_the_new_one(tmp_path):
    pictures = {
        tag: Picture(np.random.default_rng(seed).random((512, 512, 3), dtype=np.float32))
        for tag, seed in (("a", 1), ("b", 2))
    }
    image, report = tmp_path / "out.png", tmp_path / "out.json"
    expected = {}
    for tag, picture in pictures.items():
        expected[tag] = write_image(tmp_path / f"{tag}.png", picture).read_bytes()
    image.write_bytes(expected["a"])
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(image), str(report)])
        time.sleep(1.5 + float(rng.uniform(0, 1.0)))  # start-up, then mid-way through writes
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        kills += writer.returncode == -signal.SIGKILL
        assert image.read_bytes() in (expected["a"], expected["b"])
        if report.exists():
            assert json.loads(report.read_text())["tag"] in ("a", "b")
    assert kills == 6
    assert read_image(image).pixels.shape == (512, 512, 3)
