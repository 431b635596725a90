"""Every mistake caught before the first step, as one line, with nothing written or changed."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import deepprior
from deepprior.errors import UserError
from deepprior.io import Picture, read_image, write_image


@pytest.fixture(autouse=True)
def _small(small_presets):
    """Every preset on the small test network (conftest)."""


@pytest.fixture
def files(tmp_path, noisy32):
    """A folder with an RGB and an RGBA image, a crafted huge TIFF and a broken one."""
    write_image(tmp_path / "in.png", Picture(noisy32))
    alpha = np.ones((32, 32), np.float32)
    write_image(tmp_path / "rgba.png", Picture(noisy32[:16, :16], alpha=alpha[:16, :16]))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00\x08\x00\x00\x00\x09\x00")
    write_image(tmp_path / "small.tif", Picture(noisy32))
    (tmp_path / "huge.tif").write_bytes(_claim_size((tmp_path / "small.tif").read_bytes(), 200_000))
    (tmp_path / "plain").write_text("a file, not a folder")
    (tmp_path / "empty.png").write_bytes(b"")
    png = (tmp_path / "in.png").read_bytes()
    (tmp_path / "huge.png").write_bytes(_png_claiming(png, 200_000))
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    write_image(tmp_path / "in.jpg", Picture(noisy32))
    jpeg = (tmp_path / "in.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "header.jpg").write_bytes(jpeg[:20])
    (tmp_path / "kernel.png").write_bytes(png[:40])  # a kernel file cut short
    write_image(tmp_path / "wide.png", Picture(np.ones((41, 41, 1), np.float32)))
    return tmp_path


def _png_claiming(png: bytes, side: int) -> bytes:
    """The same PNG with its header (IHDR) claiming side×side pixels, CRC mended."""
    header = png[12:16] + struct.pack(">II", side, side) + png[24:29]
    return png[:12] + header + struct.pack(">I", zlib.crc32(header)) + png[33:]


def _claim_size(tiff: bytes, side: int) -> bytes:
    """The same little-endian TIFF with ImageWidth and ImageLength set to ``side`` (LONG)."""
    data = bytearray(tiff)
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, _, _ = struct.unpack_from("<HHI", data, entry)
        if tag in (256, 257):
            struct.pack_into("<HHII", data, entry, tag, 4, 1, side)
    return bytes(data)


LONG_NAME = "x" * 300 + ".png"

# case -> arguments ({d}: the folder); every one must exit 2 with one line and write nothing.
CATALOGUE = {
    "report is the output": [
        "denoise",
        "{d}/in.png",
        "-o",
        "{d}/out.png",
        "--report",
        "{d}/out.png",
    ],
    "output is the input": ["denoise", "{d}/in.png", "-o", "{d}/in.png", "--force"],
    "report is the input": [
        "denoise",
        "{d}/in.png",
        "-o",
        "{d}/o.png",
        "--report",
        "{d}/in.png",
        "--force",
    ],
    "alpha into a JPEG": [
        "sr",
        "{d}/rgba.png",
        "--scale",
        "2",
        "-o",
        "{d}/o.jpg",
        "--save-every",
        "1",
    ],
    "file name too long": ["denoise", "{d}/in.png", "-o", "{d}/" + LONG_NAME],
    "report name too long": [
        "denoise",
        "{d}/in.png",
        "-o",
        "{d}/o.png",
        "--report",
        "{d}/" + LONG_NAME,
    ],
    "output under a file": ["denoise", "{d}/in.png", "-o", "{d}/plain/o.png"],
    "seed too large": ["denoise", "{d}/in.png", "--seed", str(2**64)],
    "sigma with fixed steps": ["denoise", "{d}/in.png", "--sigma", "25", "--steps", "5"],
    "sigma not a number": ["denoise", "{d}/in.png", "--sigma", "nan"],
    "hole colour of 5 digits": ["inpaint", "{d}/in.png", "--hole-color", "#ff00f"],
    "invert without a mask": ["inpaint", "{d}/in.png", "--drop", "0.5", "--invert-mask"],
    "truncated TIFF": ["denoise", "{d}/broken.tif"],
    "PNG claiming 200000²": ["denoise", "{d}/huge.png"],
    "truncated PNG": ["denoise", "{d}/cut.png"],
    "truncated JPEG": ["denoise", "{d}/cut.jpg"],
    "JPEG header only": ["denoise", "{d}/header.jpg"],
    "empty file": ["denoise", "{d}/empty.png"],
    "folder as input": ["denoise", "{d}"],
    "mask of the wrong size": ["inpaint", "{d}/in.png", "--mask", "{d}/rgba.png"],
    "two ways to mark holes": ["inpaint", "{d}/in.png", "--drop", "0.5", "--boxes", "2"],
    "unknown flag": ["denoise", "{d}/in.png", "--colour"],
    "zero steps": ["denoise", "{d}/in.png", "--steps", "0"],
    "TIFF claiming 200000²": ["denoise", "{d}/huge.tif"],
    "sr result too large": ["sr", "{d}/in.png", "--scale", "8", "-o", "{d}/o.png"],
    "demo under a file": ["demo", "--out", "{d}/plain/demo"],
    "demo on a missing GPU": ["demo", "--out", "{d}/demo", "--device", "cuda"],
    "replay of a missing job": ["run", "{d}/job.json"],
    "degradation that does not parse": ["restore", "{d}/in.png", "--degradation", "blur:2"],
    "bad kernel file": ["restore", "{d}/in.png", "--degradation", "blur:{d}/kernel.png"],
    "kernel larger than the image": [
        "restore",
        "{d}/in.png",
        "--degradation",
        "blur:{d}/wide.png",
    ],
    "unknown Bayer pattern": ["restore", "{d}/in.png", "--degradation", "bayer:rgbg"],
    "Bayer of an RGB image": ["restore", "{d}/in.png", "--degradation", "bayer:rggb"],
    "motion blur without an angle": ["restore", "{d}/in.png", "--degradation", "blur:motion:9"],
    "Gaussian blur without a sigma": ["restore", "{d}/in.png", "--degradation", "blur:gaussian"],
    "flash and no-flash of different sizes": [
        "flash",
        "--flash",
        "{d}/rgba.png",
        "--no-flash",
        "{d}/in.png",
    ],
    "flash without the flash image": ["flash", "--no-flash", "{d}/in.png"],
    "unknown layer": ["invert", "{d}/in.png", "--layer", "conv9", "--weights", "random"],
    "unit out of range": ["maximize", "--unit", "5000", "--weights", "random", "-o", "{d}/u.png"],
    "missing weights file": ["invert", "{d}/in.png", "--weights", "{d}/none.pth"],
    "image too small for the layer": ["invert", "{d}/in.png", "--weights", "random"],
    "time limit that is not a duration": ["denoise", "{d}/in.png", "--time-limit", "5x"],
    "time limit of zero": ["denoise", "{d}/in.png", "--time-limit", "0s"],
    "reproduce from a folder without datasets": ["reproduce", "--data", "{d}", "--out", "{d}/r"],
    "reproduce from a missing folder": ["reproduce", "--data", "{d}/none", "--out", "{d}/r"],
    "architectures without holes": ["experiment", "architectures", "{d}/in.png", "--out", "{d}/a"],
    "architectures with mask and drop": [
        "experiment",
        "architectures",
        "{d}/in.png",
        "--mask",
        "{d}/in.png",
        "--drop",
        "0.5",
        "--out",
        "{d}/a",
    ],
    "architectures mask of the wrong size": [
        "experiment",
        "architectures",
        "{d}/in.png",
        "--mask",
        "{d}/rgba.png",
        "--out",
        "{d}/a",
    ],
}


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_bad_input_catalogue(run_cli, files, capsys, monkeypatch, case):
    if case == "sr result too large":  # a 32² input ×8 is 256²: lower the limit below it
        monkeypatch.setattr("deepprior.runner.MAX_PIXELS", 2000)
    if case == "demo on a missing GPU" and deepprior_has_cuda():
        pytest.fail("this case needs a machine without CUDA")
    before = _snapshot(files)
    capsys.readouterr()
    code = run_cli(*[part.format(d=files) for part in CATALOGUE[case]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("deepprior: error: "), err
    assert _snapshot(files) == before  # nothing created, changed or removed


def deepprior_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _as_unprivileged(argv: list[str]) -> list[str]:
    """Root writes anywhere: drop the capabilities that bypass permissions (setpriv)."""
    command = [sys.executable, "-m", "deepprior", *argv]
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: read-only folders cannot be tested")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]


@pytest.mark.parametrize("which", ["report", "output"])
def test_a_read_only_folder_is_refused_before_the_fit(files, which):
    locked = files / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target = {
        "report": ["-o", str(files / "o.png"), "--report", str(locked / "r.json")],
        "output": ["-o", str(locked / "o.png")],
    }[which]
    before = _snapshot(files)
    done = subprocess.run(
        _as_unprivileged(["denoise", str(files / "in.png"), "--steps", "3000", *target]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "not writable" in done.stderr
    assert _snapshot(files) == before


def test_reports_are_strict_json_with_reasons_for_missing_figures(run_cli, files, capsys):
    report = files / "r.json"
    black = write_image(files / "black.png", Picture(np.zeros((32, 32, 3), np.float32)))
    argv = ["denoise", str(black), "-o", str(files / "o.png"), "--reference", str(black)]
    assert run_cli(*argv, "--report", str(report), "--seed", "0", "-q", "--max-steps", "20") == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a report")

    argv[3] = str(files / "o2.png")
    assert run_cli(*argv, "--report", str(files / "q.json"), "-q", "--steps", "2") == 0
    assert capsys.readouterr().err == ""  # no warnings either
    data = json.loads(report.read_text(), parse_constant=refuse)
    assert data["metrics"]["psnr_input"] is None
    assert "identical" in data["null_reasons"]["metrics.psnr_input"]
    assert data["stopping"]["rule"] == "variance"  # σ of an all-black image is not a number


def test_output_files_follow_the_umask(tmp_path, noisy32):
    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "o.png", Picture(noisy32))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda img: deepprior.denoise(img * 255, device="cpu"), "must lie in \\[0, 1\\]"),
        (lambda img: deepprior.denoise(img[:6, :6], device="cpu"), "at least 16 px"),
        (lambda img: deepprior.denoise(img[:0, :0], device="cpu"), "at least 16 px"),
        (lambda img: deepprior.denoise(img, sigma=-5, device="cpu"), "sigma"),
        (lambda img: deepprior.denoise(img, steps=2.7, device="cpu"), "whole number"),
        (lambda img: deepprior.super_resolve(img, "4", device="cpu"), "whole number"),
        (lambda img: deepprior.denoise(img, colour=True), "unknown argument colour"),
        (lambda img: deepprior.denoise(img, steps=5, stop="variance"), "max_steps"),
        (lambda img: deepprior.denoise(img, max_steps=-1), "max_steps must be a positive"),
        (lambda img: deepprior.super_resolve(img, 2, stop="noise-level"), "stop 'validation'"),
        (lambda img: deepprior.inpaint(img, np.ones(img.shape[:2])), "invert the mask"),
        (lambda img: deepprior.inpaint(img, np.zeros(img.shape[:2])), "invert the mask"),
        (lambda img: deepprior.denoise(img, precision="bf16", device="meta"), "unknown device"),
    ],
    ids=[
        "0-255 floats",
        "6x6",
        "0x0",
        "negative sigma",
        "steps 2.7",
        "scale '4'",
        "unknown",
        "stop with fixed steps",
        "negative max_steps",
        "noise rule for sr",
        "mask with no hole",
        "mask with no known pixel",
        "unknown device",
    ],
)
def test_library_mistakes_raise_the_package_error(noisy32, call, message):
    with pytest.raises(UserError, match=message) as caught:
        call(noisy32.astype(np.float64))
    assert "--" not in str(caught.value), "a Python caller is told of a command-line flag"


def test_masks_count_any_non_zero_value_as_known(noisy32, tmp_path):
    mask = np.ones((32, 32, 3), np.uint8)
    mask[8:16, 8:16] = 0
    _, report = deepprior.inpaint(noisy32, mask, steps=2, seed=0, device="cpu")
    assert report["mask"]["hole_fraction"] == pytest.approx(64 / 1024)
    faint = np.full((32, 32), 1, np.uint16)  # 16-bit, non-zero: known
    faint[:4, :4] = 0
    path = write_image(tmp_path / "mask.png", Picture(faint[:, :, None] / 65535.0, bit_depth=16))
    from deepprior.masks import from_mask_image

    assert from_mask_image(read_image(path).pixels).sum() == 1024 - 16


def test_ctrl_c_before_the_first_step_still_writes_the_report(run_cli, files, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("deepprior.runner.plan_steps", interrupted)
    report = files / "r.json"
    argv = ["denoise", str(files / "in.png"), "-o", str(files / "o.png"), "--report", str(report)]
    assert run_cli(*argv) == 130
    assert json.loads(report.read_text())["interrupted"] is True
    assert not (files / "o.png").exists()
    assert capsys.readouterr().err.strip() == "deepprior: interrupted"


def test_ctrl_c_while_pytorch_loads_is_one_line(files):
    """SIGINT once PyTorch's library is mapped, while ``import torch`` still runs."""
    argv = [sys.executable, "-m", "deepprior", "denoise", str(files / "in.png"), "--steps", "2"]
    # A job started in the background (`&` in a script) inherits SIGINT ignored, and Python
    # keeps it so; the child starts with the default disposition, as from a terminal.
    process = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    maps = Path(f"/proc/{process.pid}/maps")
    while process.poll() is None and "libtorch" not in maps.read_text():
        pass
    process.send_signal(2)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "deepprior: interrupted"
    assert not (files / "in-denoised.png").exists()
