"""The web page and its JSON API (Starlette), over the store and the worker.

    POST /api/jobs                 multipart: task, image, [mask], [no_flash], [reference],
                                   options
    GET  /api/jobs/{id}            state, step, history, error
    GET  /api/jobs/{id}/result     the result (PNG)
    GET  /api/jobs/{id}/preview    the current result while it runs (PNG)
    GET  /api/jobs/{id}/report     the run report (JSON)
    POST /api/jobs/{id}/stop       stop: keep the best result so far

Uploads are checked before anything runs: size in bytes and pixels (413 past the limits),
decodable as an image (400), stored under names of the server's choosing in the job's own
folder. A mistake in a request is a 4xx with ``{"error": message}``; nothing answers with a
traceback.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import UserError
from ..io import READ_FORMATS, read_image
from ..job import Job
from .store import Store
from .worker import Worker, saved_history

TASKS = ("denoise", "sr", "inpaint", "restore", "flash")
FILES = ("image", "mask", "no_flash", "reference")
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif", "WEBP": ".webp"}
JOB_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Limits:
    upload_bytes: int = 25 * 2**20
    pixels: int = 12_000_000


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _whole(form: FormData, name: str, *, low: int = 0) -> int | None:
    text = str(form.get(name, "")).strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < low:
        raise _error(400, f"{name} must be a whole number of at least {low}, got {text!r}")
    return int(text)


def _options(task: str, form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's options and the job's fields from the form (named as the CLI's options)."""
    options: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    steps = str(form.get("steps", "")).strip() or "auto"
    fields["steps"] = steps if steps == "auto" else _whole(form, "steps", low=1)
    seed = _whole(form, "seed")
    if seed is not None:
        fields["seed"] = seed
    for name in ("quality", "preset"):
        value = str(form.get(name, "")).strip()
        if value:
            fields[name] = value
    if task == "sr":
        scale = _whole(form, "scale", low=2)
        if scale is None:
            raise _error(400, "super-resolution needs a scale (2, 3, 4 or 8)")
        options["scale"] = scale
    sigma = str(form.get("sigma", "")).strip()
    if sigma and task == "denoise":
        try:
            options["sigma"] = float(sigma)
        except ValueError:
            message = f"sigma must be a number (8-bit levels, e.g. 25), got {sigma!r}"
            raise _error(400, message) from None
    return options, fields


async def _save_upload(upload: UploadFile, name: str, folder: Path, limits: Limits) -> Path:
    """Check an uploaded file and store it as ``folder/NAME.EXT`` (the client's name unused)."""
    data = await upload.read()
    if len(data) > limits.upload_bytes:
        raise _error(
            413,
            f"the {name} file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.upload_bytes / 2**20:.0f} MB (deepprior serve --max-upload-mb)",
        )
    if not data:
        raise _error(400, f"the {name} file is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, width, height = image.format, image.width, image.height
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise _error(400, f"the {name} file is not an image (PNG, JPEG, TIFF or WebP)") from None
    if fmt not in READ_FORMATS:
        raise _error(400, f"the {name} file is a {fmt} image; send PNG, JPEG, TIFF or WebP")
    if width * height > limits.pixels:
        raise _error(
            413,
            f"the {name} is {width}×{height} ({width * height / 1e6:.1f} MP); the limit is "
            f"{limits.pixels / 1e6:.0f} MP (deepprior serve --max-megapixels)",
        )
    path = folder / f"{name}{SUFFIXES[fmt]}"
    path.write_bytes(data)
    try:
        read_image(path)
    except UserError as error:
        raise _error(400, str(error).replace(str(path), f"the {name} file")) from None
    return path


def create_app(work_dir: Path, limits: Limits | None = None) -> Starlette:
    """The app, with its store in ``work_dir`` and one worker thread (started with the app)."""
    limits = limits or Limits()
    store = Store(work_dir)
    worker = Worker(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.start()
        yield
        worker.close()

    def record_of(request: Request) -> Any:
        job_id = request.path_params["job_id"]
        record = store.get(job_id) if JOB_ID.match(job_id) else None
        if record is None:
            raise _error(404, f"no job {job_id!r}")
        return record

    async def page(request: Request) -> Response:
        text = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(text)

    async def submit(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > 3 * limits.upload_bytes + 2**20:
            raise _error(
                413,
                f"the request is {int(length) / 2**20:.1f} MB; each file may have "
                f"{limits.upload_bytes / 2**20:.0f} MB",
            )
        try:
            form = await request.form(max_files=len(FILES), max_fields=20)
        except Exception as error:  # the multipart parser's own complaint
            raise _error(400, f"could not read the form: {error}") from None
        task = str(form.get("task", "")).strip()
        if task not in TASKS:
            raise _error(400, f"task must be one of {', '.join(TASKS)}, got {task!r}")
        uploads = {name: form.get(name) for name in FILES}
        if not isinstance(uploads["image"], UploadFile):
            raise _error(400, "send the image as the file field 'image'")
        if task == "flash" and not isinstance(uploads["no_flash"], UploadFile):
            raise _error(400, "flash/no-flash needs the no-flash shot as the file field 'no_flash'")
        options, fields = _options(task, form)
        job_id = store.new_id()
        folder = store.folder(job_id)
        folder.mkdir()
        try:
            paths = {
                name: await _save_upload(upload, name, folder, limits)
                for name, upload in uploads.items()
                if isinstance(upload, UploadFile)
            }
            inputs = {"image": str(paths["image"])}
            if task == "inpaint" and "mask" in paths:
                inputs["mask"] = str(paths["mask"])
                if _size(paths["image"]) != _size(paths["mask"]):
                    raise _error(400, "the mask must be the size of the image")
            if task == "flash":
                inputs = {"image": str(paths["no_flash"]), "flash": str(paths["image"])}
            if "reference" in paths:  # the clean image: PSNR live and in the report
                inputs["reference"] = str(paths["reference"])
            job = Job(task=task, inputs=inputs, options=options, **fields)
            from ..runner import prepare

            prepare(job)
        except UserError as error:
            _discard(folder)
            raise _error(400, str(error)) from None
        except HTTPException:
            _discard(folder)
            raise
        store.add(job_id, task, job.to_dict())
        worker.wake.set()
        return JSONResponse(
            {"id": job_id, "state": "queued", "position": store.position(job_id)},
            status_code=201,
        )

    async def status(request: Request) -> Response:
        record = record_of(request)
        live = worker.live.get(record.id)
        history = list(live["history"]) if live else saved_history(store.folder(record.id))
        step = live["step"] if live else (record.steps or 0)
        body: dict[str, Any] = {
            "id": record.id,
            "task": record.task,
            "state": record.state,
            "step": step,
            "history": history,
            "error": record.error,
            "created": record.created,
            "started": record.started,
            "finished": record.finished,
        }
        if record.state == "queued":
            body["position"] = store.position(record.id)
        return JSONResponse(body)

    def file_of(request: Request, name: str, media_type: str) -> Response:
        record = record_of(request)
        path = store.folder(record.id) / name
        if not path.is_file():
            raise _error(404, f"job {record.id} has no {name} yet (state: {record.state})")
        return FileResponse(path, media_type=media_type, filename=f"deepprior-{record.id}-{name}")

    async def result(request: Request) -> Response:
        return file_of(request, "result.png", "image/png")

    async def preview(request: Request) -> Response:
        record = record_of(request)
        folder = store.folder(record.id)
        for name in ("result.png", "preview.png"):
            if (folder / name).is_file():
                return FileResponse(folder / name, media_type="image/png")
        raise _error(404, f"job {record.id} has no preview yet")

    async def report(request: Request) -> Response:
        return file_of(request, "report.json", "application/json")

    async def stop(request: Request) -> Response:
        record = record_of(request)
        state = store.request_stop(record.id)
        worker.stop_job(record.id)
        return JSONResponse({"id": record.id, "state": state})

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    async def internal_error(request: Request, error: Exception) -> Response:
        return JSONResponse(
            {"error": f"internal error ({type(error).__name__}); the server goes on"},
            status_code=500,
        )

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/jobs", submit, methods=["POST"]),
            Route("/api/jobs/{job_id}", status),
            Route("/api/jobs/{job_id}/result", result),
            Route("/api/jobs/{job_id}/preview", preview),
            Route("/api/jobs/{job_id}/report", report),
            Route("/api/jobs/{job_id}/stop", stop, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.worker = worker
    return app


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _discard(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
