"""Batches: a folder restored into another, the manifest, resuming, bad files, workers, Ray."""

from __future__ import annotations

import csv
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepprior
from deepprior.batches import find_inputs, plan, plan_workers
from deepprior.errors import UserError
from deepprior.io import read_image

from .conftest import make_photo, run_command

COMMAND = [sys.executable, "-m", "deepprior"]


def make_folder(folder: Path, count: int, size: int = 24) -> list[Path]:
    """``count`` different crops of a real photograph, as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = (make_photo(128) * 255).astype(np.uint8)
    paths = []
    for index in range(count):
        top, left = (index * 7) % (128 - size), (index * 17) % (128 - size)
        crop = photo[top : top + size, left : left + size]
        path = folder / f"img{index:02d}.png"
        Image.fromarray(crop).save(path)
        paths.append(path)
    return paths


def states(out_dir: Path) -> dict[str, str]:
    with sqlite3.connect(out_dir / "manifest.sqlite") as db:
        return dict(db.execute("SELECT name, state FROM images").fetchall())


def test_a_folder_with_bad_files_finishes_the_rest_and_exits_1(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 3)
    (tmp_path / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "in" / "tiny.png")
    (tmp_path / "in" / "notes.txt").write_text("shot list")
    out = tmp_path / "out"

    code = run_command(
        "batch", "denoise", str(tmp_path / "in"), "-o", str(out), "--steps", "5", "--seed", "0",
        "--workers", "1", "-q",
    )  # fmt: skip

    assert code == 1
    assert states(out) == {
        "img00.png": "done",
        "img01.png": "done",
        "img02.png": "done",
        "corrupt.png": "failed",
        "tiny.png": "failed",
        "notes.txt": "skipped",
    }
    for index in range(3):
        assert read_image(out / f"img{index:02d}.denoised.png").width == 24
        assert (out / "reports" / f"img{index:02d}.denoised.json").is_file()
    rows = {row["name"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert "16 px" in rows["tiny.png"]["error"]
    assert "corrupt or truncated" in rows["corrupt.png"]["error"]
    assert rows["img00.png"]["steps"] == "5"
    assert "| tiny.png | failed |" in (out / "summary.md").read_text()
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_a_batch_gives_what_the_one_image_command_gives(tmp_path: Path) -> None:
    [image] = make_folder(tmp_path / "in", 1)
    single = tmp_path / "single.png"
    assert (
        run_command("denoise", str(image), "-o", str(single), "--steps", "8", "--seed", "3", "-q")
        == 0
    )
    summary = deepprior.batch(
        "denoise", tmp_path / "in", tmp_path / "out", steps=8, seed=3, workers=1
    )
    assert summary.exit_code == 0 and summary.count("done") == 1
    batch_result = read_image(tmp_path / "out" / "img00.denoised.png").pixels
    np.testing.assert_array_equal(batch_result, read_image(single).pixels)


def test_a_rerun_skips_what_is_done_and_retries_what_failed(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 2)
    broken = tmp_path / "in" / "late.png"
    broken.write_bytes(b"half a file")
    out = tmp_path / "out"
    first = deepprior.batch("denoise", tmp_path / "in", out, steps=5, seed=0, workers=1)
    assert first.exit_code == 1 and first.count("failed") == 1
    written = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}

    make_folder(tmp_path / "fix", 3)
    os.replace(tmp_path / "fix" / "img02.png", broken)  # the user fixes the file
    second = deepprior.batch("denoise", tmp_path / "in", out, steps=5, seed=0, workers=1)

    assert second.exit_code == 0 and second.ran == 1 and second.count("done") == 3
    for name, mtime in written.items():
        assert (out / name).stat().st_mtime_ns == mtime  # the done ones untouched
    assert (out / "late.denoised.png").is_file()


def test_a_rerun_with_other_settings_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 1)
    deepprior.batch("denoise", tmp_path / "in", tmp_path / "out", steps=5, seed=0, workers=1)
    with pytest.raises(UserError, match=r"other settings \(steps: 5, now 6\)"):
        deepprior.batch("denoise", tmp_path / "in", tmp_path / "out", steps=6, seed=0)


def test_an_output_the_batch_did_not_write_needs_force(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img00.denoised.png").write_bytes(b"the user's own file")
    kept = deepprior.batch("denoise", tmp_path / "in", out, steps=5, seed=0, workers=1)
    assert kept.count("failed") == 1 and "--force" in (kept.entries[0].error or "")
    assert (out / "img00.denoised.png").read_bytes() == b"the user's own file"
    forced = deepprior.batch("denoise", tmp_path / "in", out, steps=5, seed=0, force=True)
    assert forced.count("done") == 1 and read_image(out / "img00.denoised.png").width == 24


def test_masks_are_matched_by_name_and_honoured(tmp_path: Path) -> None:
    images = make_folder(tmp_path / "in", 3)
    masks = tmp_path / "masks"
    masks.mkdir()
    known = np.full((24, 24), 255, np.uint8)
    known[8:16, 8:16] = 0
    Image.fromarray(known).save(masks / "img00.png")
    Image.fromarray(known).save(masks / "img01_mask.png")  # img02 has none

    summary = deepprior.batch(
        "inpaint", tmp_path / "in", tmp_path / "out", mask_dir=masks, steps=5, seed=0, workers=1
    )

    assert states(tmp_path / "out") == {
        "img00.png": "done", "img01.png": "done", "img02.png": "failed",
    }  # fmt: skip
    assert "no mask" in next(e.error or "" for e in summary.entries if e.name == "img02.png")
    for index in (0, 1):
        source = read_image(images[index]).pixels
        result = read_image(tmp_path / "out" / f"img0{index}.inpainted.png").pixels
        np.testing.assert_array_equal(result[known > 0], source[known > 0])
        assert not np.array_equal(result[known == 0], source[known == 0])


def test_inputs_plans_and_workers(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "a.jpg", "b.tif", ".hidden.png"):
        (folder / name).write_bytes(b"")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.png").write_bytes(b"")
    base, files = find_inputs(folder)
    assert base == folder and [f.name for f in files] == ["a.jpg", "a.png", "b.tif"]
    base, files = find_inputs(f"{folder}/**/*.png")
    assert base == folder and [f.name for f in files] == ["a.png", "c.png"]
    with pytest.raises(UserError, match="no such folder"):
        find_inputs(tmp_path / "missing")
    planned = plan(find_inputs(folder)[1], folder, tmp_path / "out", "denoised", None)
    outputs = [p.output.name for p in planned]
    assert outputs == ["a-jpg.denoised.png", "a-png.denoised.png", "b.denoised.tif"]
    assert plan_workers(cores=2, pixels=64 * 64, gpus=0, images=12, workers=None) == (2, 1)
    assert plan_workers(cores=2, pixels=1024 * 768, gpus=0, images=12, workers=None) == (1, 2)
    assert plan_workers(cores=16, pixels=256 * 256, gpus=0, images=3, workers=None) == (3, 5)
    assert plan_workers(cores=16, pixels=1024 * 768, gpus=2, images=9, workers=None) == (2, 8)


def test_a_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(UserError, match="not a deepprior manifest"):
        deepprior.batch("denoise", tmp_path / "in", tmp_path / "out", steps=5)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_batch_killed_halfway_resumes_without_writing_anything_twice(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 20, size=32)
    out = tmp_path / "out"
    argv = [*COMMAND, "batch", "denoise", str(tmp_path / "in"), "-o", str(out), "--steps", "80",
            "--seed", "0", "--workers", "2", "-q"]  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done: set[str] = set()
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (out / "manifest.sqlite").is_file():
            done = {name for name, state in states(out).items() if state == "done"}
            if len(done) >= 6:
                break
    workers = _children(process.pid)
    assert process.poll() is None and len(done) >= 6
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)  # at the same time
    assert second.returncode == 2 and "another batch is writing into" in second.stderr
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for pid in workers:  # they notice and end within a second or two
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker {pid} outlived the killed batch")
    written = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    assert len(written) >= 6

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)

    assert rerun.returncode == 0, rerun.stderr
    assert set(states(out).values()) == {"done"} and len(states(out)) == 20
    assert sorted(p.name for p in out.glob("*.png")) == [
        f"img{i:02d}.denoised.png" for i in range(20)
    ]
    for name, mtime in written.items():
        assert (out / name).stat().st_mtime_ns == mtime
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 20 and {row["state"] for row in rows} == {"done"}
    assert not list(out.glob(".*"))


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 1)
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from deepprior.__main__ import main\n"
        f"main(['batch', 'denoise', {str(tmp_path / 'in')!r}, '-o', {str(tmp_path / 'out')!r}, "
        "'--ray', 'local', '-q'])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "deepprior: error: --ray needs Ray, which is not installed; pip install 'deepprior[ray]'"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_batch_on_a_local_ray_cluster(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 3)
    (tmp_path / "in" / "corrupt.png").write_bytes(b"nope")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Loopback only: Ray otherwise swaps 127.0.0.1 for the machine's address on Linux.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # The cluster's token (Ray's token authentication), shared by head and driver.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    start = [str(ray_bin), "start", "--head", "--num-cpus", "2", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
             "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    try:
        result = subprocess.run(
            [*COMMAND, "batch", "denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
             "--steps", "5", "--seed", "0", "--ray", f"127.0.0.1:{port}", "-q"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert states(tmp_path / "out") == {
        "img00.png": "done", "img01.png": "done", "img02.png": "done", "corrupt.png": "failed",
    }  # fmt: skip
    assert f"{tmp_path / 'in' / 'corrupt.png'} is not an image" in result.stderr
    # Two local workers run one thread each, as the Ray tasks do: the same results, bit for bit.
    local = deepprior.batch(
        "denoise", tmp_path / "in", tmp_path / "here", steps=5, seed=0, workers=2
    )
    assert local.count("done") == 3
    for index in range(3):
        name = f"img{index:02d}.denoised.png"
        np.testing.assert_array_equal(
            read_image(tmp_path / "out" / name).pixels, read_image(tmp_path / "here" / name).pixels
        )


def test_a_worker_killed_for_memory_fails_its_image_and_the_pool_goes_on(tmp_path: Path) -> None:
    from deepprior.job import Job
    from deepprior.workers import LocalPool

    [image] = make_folder(tmp_path / "in", 1)
    job = Job("denoise", {"image": str(image)}, seed=0)
    pool = LocalPool(1, threads=1)
    try:
        pool.submit("long", job.with_seed(0).to_dict() | {"steps": 100_000}, ".png")
        deadline = time.monotonic() + 60
        while not getattr(pool._pool, "_processes", None) and time.monotonic() < deadline:
            time.sleep(0.1)
        [worker] = list(pool._pool._processes)  # type: ignore[attr-defined]
        time.sleep(1.0)
        os.kill(worker, signal.SIGKILL)  # what the kernel's out-of-memory killer does
        name, result = pool.next_done()
        assert name == "long" and result["state"] == "failed"
        assert "worker process died" in result["error"]
        pool.submit("short", job.to_dict() | {"steps": 3}, ".png")
        name, result = pool.next_done()
        assert name == "short" and result["state"] == "done"
        assert result["report"]["steps_run"] == 3
    finally:
        pool.close(cancel=True)


def test_ctrl_c_keeps_what_is_done_and_leaves_the_rest_for_the_next_run(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    argv = [*COMMAND, "batch", "denoise", str(tmp_path / "in"), "-o", str(out), "--seed", "0",
            "--workers", "1", "-q"]  # fmt: skip
    # A run started in the background (`&` in a script) inherits SIGINT ignored, as Python then
    # does; a user's Ctrl-C reaches a process with the default disposition, so the child gets it.
    process = subprocess.Popen(
        [*argv, "--steps", "100000"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _interrupt_and_check(process, out)
    finally:
        process.kill()  # a child that missed the signal must not compute on under the suite
        process.wait()


def _interrupt_and_check(process: subprocess.Popen[str], out: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (out / "manifest.sqlite").is_file() and "running" in states(out).values():
            break
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    # 130, or death by SIGINT after the message (which a shell also reports as 130): now and
    # then (1 run in 5 once, 0 in 12 another day) CPython 3.11 re-kills itself with SIGINT at
    # exit although the interrupt was handled and sys.exit(130) called (cause not confirmed).
    assert process.returncode in (130, -signal.SIGINT) and "interrupted" in stderr
    assert set(states(out).values()) == {"pending"}  # cut off: retried next time
    assert not list(out.glob("*.png")) and (out / "summary.csv").is_file()
