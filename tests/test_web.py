"""`deepprior serve`: the JSON API over a real server process, and the page in a real browser."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .conftest import make_photo

CHROMIUM = os.environ.get("DEEPPRIOR_CHROMIUM", "/usr/bin/chromium")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_png(size: int = 24) -> bytes:
    return png_bytes((make_photo(size) * 255).astype(np.uint8))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A `deepprior serve` process on a free loopback port."""

    def __init__(self, work_dir: Path, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "deepprior", "serve", "--port", str(self.port),
                "--work-dir", str(work_dir), *extra]  # fmt: skip
        self.process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                return
            except OSError:
                assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=headers or {})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def submit(
        self, fields: dict[str, str], files: dict[str, tuple[str, bytes]]
    ) -> tuple[int, Any]:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         f"{value}\r\n".encode())  # fmt: skip
        for name, (filename, data) in files.items():
            disposition = f'form-data; name="{name}"; filename="{filename}"'
            head = (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
            parts.append(head.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        status, payload = self.request("POST", "/api/jobs", body, headers)
        return status, json.loads(payload)

    def job(self, job_id: str) -> dict[str, Any]:
        status, payload = self.request("GET", f"/api/jobs/{job_id}")
        assert status == 200, payload
        return dict(json.loads(payload))

    def wait(self, job_id: str, states: tuple[str, ...] = ("done", "failed", "stopped"),
             timeout: float = 120) -> dict[str, Any]:  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']}")


@contextmanager
def serving(work_dir: Path, *extra: str) -> Iterator[Server]:
    server = Server(work_dir, *extra)
    try:
        yield server
    finally:
        server.stop()


def test_a_job_runs_and_its_result_and_report_are_served(tmp_path: Path) -> None:
    with serving(tmp_path / "work") as server:
        clean = make_photo(24)
        noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
        status, body = server.submit(
            {"task": "denoise", "steps": "12", "seed": "0", "quality": "fast"},
            {"image": ("noisy.png", png_bytes((noisy * 255).astype(np.uint8))),
             "reference": ("clean.png", photo_png())},
        )  # fmt: skip
        assert status == 201 and body["state"] == "queued"
        job = server.wait(body["id"])
        assert job["state"] == "done" and job["step"] == 12 and job["error"] is None
        assert [point["step"] for point in job["history"]][:2] == [1, 10]
        assert all(point["psnr"] > 10 for point in job["history"])
        status, png = server.request("GET", f"/api/jobs/{body['id']}/result")
        assert status == 200 and Image.open(io.BytesIO(png)).size == (24, 24)
        status, report = server.request("GET", f"/api/jobs/{body['id']}/report")
        data = json.loads(report)
        assert data["steps_run"] == 12 and data["job"]["quality"] == "fast"
        assert data["job"]["seed"] == 0 and data["metrics"]["psnr"] > 10


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = [sys.executable, "-m", "deepprior", "serve", "--port", port, "--work-dir",
                str(tmp_path / "work")]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"deepprior: error: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "choose another --port or --host"
    ]


def test_bad_requests_are_refused_with_their_message(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    big_file = png_bytes(noise)  # about 12 kB: over a 10 kB limit
    with serving(
        tmp_path / "work", "--max-upload-mb", "0.01", "--max-megapixels", "0.002"
    ) as server:
        cases = [
            ({"task": "denoise"}, {"image": ("x.png", big_file)}, 413, "limit is 0 MB"),
            ({"task": "denoise"}, {"image": ("x.png", photo_png(48))}, 413, "48×48"),
            ({"task": "denoise"}, {"image": ("x.png", b"plain text")}, 400, "not an image"),
            ({"task": "denoise"}, {"image": ("x.png", b"")}, 400, "empty"),
            ({"task": "paint"}, {"image": ("x.png", photo_png())}, 400, "task must be one of"),
            ({"task": "denoise", "steps": "-3"}, {"image": ("x.png", photo_png())}, 400, "steps"),
            ({"task": "denoise", "quality": "ultra"}, {"image": ("x.png", photo_png())}, 400,
             "ultra"),
            ({"task": "sr"}, {"image": ("x.png", photo_png())}, 400, "needs a scale"),
            ({"task": "denoise"}, {}, 400, "file field 'image'"),
            ({"task": "inpaint"}, {"image": ("x.png", photo_png()),
                                   "mask": ("m.png", photo_png(16))}, 400, "size of the image"),
        ]  # fmt: skip
        for fields, files, status, words in cases:
            got, body = server.submit(fields, files)
            assert (got, words in body.get("error", "")) == (status, True), (fields, body)
            assert "Traceback" not in json.dumps(body)
        status, body = server.submit(
            {"task": "denoise", "steps": "3"},
            {"image": ("../../../escaped.png", photo_png())},  # a hostile file name
        )
        assert status == 201
        assert server.wait(body["id"])["state"] == "done"
        assert not list(tmp_path.rglob("escaped.png"))
        stored = sorted(p.name for p in (tmp_path / "work" / "jobs" / body["id"]).iterdir())
        assert stored[0] == "image.png"
        for path in ("/api/jobs/0123456789abcdef", "/api/jobs/..%2F..%2Fetc/result"):
            status, payload = server.request("GET", path)
            assert status == 404 and "error" in json.loads(payload)
    assert len(list((tmp_path / "work" / "jobs").iterdir())) == 1  # the refused left nothing


def test_jobs_run_in_order_and_the_queue_survives_a_restart(tmp_path: Path) -> None:
    work = tmp_path / "work"
    server = Server(work)
    ids: list[str] = []
    try:
        first = server.submit({"task": "denoise", "steps": "100000", "seed": "0"},
                              {"image": ("a.png", photo_png())})[1]["id"]  # fmt: skip
        results: list[str] = []

        def client(name: str) -> None:
            status, body = server.submit({"task": "denoise", "steps": "20", "seed": "1"},
                                         {"image": (name, photo_png())})  # fmt: skip
            assert status == 201
            results.append(body["id"])

        threads = [threading.Thread(target=client, args=(f"{n}.png",)) for n in "bc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = [first, *results]
        server.wait(first, ("running",))
        assert [server.job(i)["state"] for i in ids[1:]] == ["queued", "queued"]
        assert sorted(server.job(i)["position"] for i in ids[1:]) == [0, 1]
        server.stop(signal.SIGKILL)  # killed mid-queue, the first job running
    finally:
        server.stop()
    with serving(work) as again:
        assert again.wait(first, ("running",))["state"] == "running"  # resumed first
        status, _ = again.request("POST", f"/api/jobs/{first}/stop")
        assert status == 200
        stopped = again.wait(first)
        assert stopped["state"] == "stopped" and stopped["step"] >= 1
        assert again.request("GET", f"/api/jobs/{first}/result")[0] == 200
        done = [again.wait(i) for i in ids[1:]]
        assert [job["state"] for job in done] == ["done", "done"]
        jobs = {i: again.job(i) for i in ids}
        by_start = sorted(ids, key=lambda i: jobs[i]["started"])
        assert by_start == sorted(ids, key=lambda i: jobs[i]["created"])  # order of arrival


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


@pytest.fixture
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DEEPPRIOR_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it (.ci/run): its absence is a failure there
        pytest.skip(message)
    return CHROMIUM


def test_the_page_uploads_paints_runs_and_downloads(tmp_path: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    source = (make_photo(48) * 255).astype(np.uint8)
    image_path = tmp_path / "photo.png"
    Image.fromarray(source).save(image_path)
    with serving(tmp_path / "work") as server, sync_playwright() as playwright:
        browser = _launch(playwright)
        page = browser.new_page(accept_downloads=True)
        page.goto(server.url + "/")
        assert page.locator("#status").inner_text() == "idle"
        page.select_option("#task", "inpaint")
        page.set_input_files("#image", str(image_path))
        page.wait_for_function("document.getElementById('photo').width === 48")
        box = page.locator("#paint").bounding_box()
        assert box is not None
        page.fill("#brush", "12")
        left, top = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5
        page.mouse.move(left, top)
        page.mouse.down()
        page.mouse.move(left + box["width"] * 0.4, top, steps=10)
        page.mouse.up()
        page.fill("#steps", "30")
        page.fill("#preset", "pixels")
        page.select_option("#quality", "fast")
        page.click("#start")
        page.wait_for_function(
            "['done', 'failed'].includes(document.getElementById('status').textContent)",
            timeout=120_000,
        )
        assert page.locator("#status").inner_text() == "done", page.locator("#message").inner_text()
        assert page.locator("#step").inner_text() == "step 30"
        with page.expect_download() as download_info:
            page.click("#download-result")
        downloaded = tmp_path / "downloaded.png"
        download_info.value.save_as(downloaded)
        with page.expect_download() as report_info:
            page.click("#download-report")
        report = json.loads(Path(report_info.value.path()).read_text())
        assert report["settings"]["name"] == "pixels" and report["steps_run"] == 30
        browser.close()
    result = np.asarray(Image.open(downloaded).convert("RGB"))
    assert result.shape == source.shape
    changed = np.any(result != source, axis=2)
    # the painted stroke (a band across the middle) was filled; the rest kept as it was
    assert changed[20:28, 18:30].mean() > 0.5
    assert changed[:8].sum() == 0 and changed[-8:].sum() == 0


def test_stop_ends_every_run_of_a_multi_run_job(fast: Any) -> None:
    from deepprior.job import Job
    from deepprior.runner import run
    from deepprior.web.worker import Live

    stop = threading.Event()
    stop.set()  # Stop pressed: the first step is the last, and no second run starts
    live: dict[str, Any] = {"step": 0, "history": []}
    job = Job("denoise", {"image": make_photo(24)}, preset=fast, runs=3, steps=50, seed=0)
    outcome = run(job, callbacks=[Live(live, stop)])
    assert outcome.interrupted and outcome.report.steps_run == 1 and live["step"] == 1
