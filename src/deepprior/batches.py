"""Many images: a folder (or a glob) restored into an output folder, resumable.

Every image becomes one job made from a template job (the task's options, the run's
settings); the manifest in the output folder (:mod:`deepprior.manifest`) records each image's
state, so that rerunning the same command skips what is done and retries the rest. The jobs
run in this process, in local workers that share the cores, or on a Ray cluster
(:mod:`deepprior.workers`); only this process writes files: the report, then the result (each
atomically), then the manifest's ``done``. A batch killed between two of those steps is put
right by the next run without writing any result twice.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import atomic_write, default_output
from .job import Job
from .manifest import Entry, Manifest
from .workers import Executor, InProcess, LocalPool, RayCluster, Result

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".mpo"}
MASK_NAMES = ("{stem}", "{stem}_mask", "{stem}-mask", "{stem}.mask")
SUMMARY_COLUMNS = ("name", "state", "seconds", "steps", "psnr", "ssim", "seed", "output", "error")
# Threads one fit uses well, by image size (pixels): a small image's fit cannot keep many
# cores busy, so several run side by side (see the README's batch measurements).
THREADS_BY_SIZE = ((128 * 128, 1), (512 * 512, 2))


@dataclass(frozen=True)
class Planned:
    """One input file as the batch sees it."""

    name: str  # relative to the batch's base folder, with '/'
    path: Path
    output: Path
    report: Path
    mask: Path | None = None
    skip: str | None = None  # not an image: recorded as skipped, not a failure
    problem: str | None = None  # why it cannot run (no mask): a failure until it is fixed


@dataclass(frozen=True)
class BatchSummary:
    """What a batch left: every image's entry, the counts, and where the summary files are."""

    output_dir: Path
    entries: list[Entry]
    ran: int  # images finished (done or failed) in this invocation
    seconds: float  # this invocation's wall time
    csv: Path
    markdown: Path

    def count(self, state: str) -> int:
        return sum(entry.state == state for entry in self.entries)

    @property
    def images_per_minute(self) -> float:
        return 60.0 * self.ran / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every image is done (or skipped as not an image), 1 when any failed or waits."""
        return 0 if self.count("failed") + self.count("pending") == 0 else 1


def find_inputs(
    source: str | os.PathLike[str], exclude: Sequence[Path] = ()
) -> tuple[Path, list[Path]]:
    """The files a batch reads: a folder's (not its subfolders', nor hidden ones), or those a
    glob matches (``**`` recurses); returns their common base folder too."""
    text = os.fspath(source)
    folder = Path(text)
    if folder.is_dir():
        base = folder
        found = [path for path in folder.iterdir() if path.is_file()]
    else:
        if not glob.has_magic(text):
            raise UserError(f"{text}: no such folder; give a folder of images or a glob ('*.jpg')")
        found = [Path(path) for path in glob.glob(text, recursive=True) if Path(path).is_file()]
        base = Path(text)
        while glob.has_magic(str(base)):
            base = base.parent
    skip = [Path(os.path.realpath(path)) for path in exclude]
    kept = sorted(
        path
        for path in found
        if not path.name.startswith(".")
        and not any(Path(os.path.realpath(path)).is_relative_to(folder) for folder in skip)
    )
    if not kept:
        raise UserError(f"{text}: no files to restore there")
    return base, kept


def plan(
    files: Sequence[Path], base: Path, output_dir: Path, tag: str, mask_dir: Path | None
) -> list[Planned]:
    """Each file's name, result and report paths, and mask; names that would clash in the
    output folder (photo.jpg, photo.png) keep their input's extension in the result's name."""
    relative = [path.relative_to(base) for path in files]
    outputs = [default_output(rel, tag) for rel in relative]
    clashes = {out for out in outputs if outputs.count(out) > 1}
    planned = []
    for path, rel, out in zip(files, relative, outputs, strict=True):
        if out in clashes:
            out = default_output(rel.with_name(f"{rel.stem}-{rel.suffix.lstrip('.')}"), tag)
        skip = problem = None
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skip = f"not an image file ({path.suffix or 'no extension'})"
        mask = None
        if mask_dir is not None and skip is None:
            mask = _find_mask(mask_dir / rel.parent, rel.stem)
            if mask is None:
                problem = (
                    f"no mask for it in {mask_dir / rel.parent} (looked for "
                    f"{rel.stem}.png, {rel.stem}_mask.png and the like)"
                )
        planned.append(
            Planned(
                name=rel.as_posix(),
                path=path.absolute(),
                output=(output_dir / out).absolute(),
                report=(output_dir / "reports" / out.with_suffix(".json")).absolute(),
                mask=mask,
                skip=skip,
                problem=problem,
            )
        )
    return planned


def _find_mask(folder: Path, stem: str) -> Path | None:
    for pattern in MASK_NAMES:
        for suffix in sorted(IMAGE_SUFFIXES):
            candidate = folder / (pattern.format(stem=stem) + suffix)
            if candidate.is_file():
                return candidate.absolute()
    return None


def plan_workers(
    *, cores: int, pixels: int, gpus: int, images: int, workers: int | None
) -> tuple[int, int]:
    """How many workers, and how many threads each: one per GPU; on CPU as many as the
    cores allow when each takes the threads an image of this size uses well."""
    if gpus:
        count = workers or gpus
        return max(1, min(count, images)), max(1, cores // max(1, count))
    threads = next((t for limit, t in THREADS_BY_SIZE if pixels <= limit), cores)
    count = workers or max(1, cores // threads)
    count = max(1, min(count, images))
    return count, max(1, cores // count)


def _largest_pixels(planned: Sequence[Planned]) -> int:
    """The largest input's pixel count (header only); 0 when none can be read."""
    from PIL import Image

    largest = 0
    for item in planned:
        if item.skip is None:
            try:
                with Image.open(item.path) as image:
                    largest = max(largest, image.width * image.height)
            except (OSError, ValueError, Image.DecompressionBombError):
                continue
    return largest


def _settings(template: Job, source: str, mask_dir: Path | None) -> dict[str, Any]:
    data = template.to_dict()
    del data["inputs"]
    data["source"] = source
    data["mask_dir"] = str(mask_dir) if mask_dir else None
    return data


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir} is a file; -o needs a folder for the results")
    try:
        (output_dir / "reports").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {output_dir}: {error.strerror or error}") from None


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: temporary.write_bytes(data))


def _recover(manifest: Manifest) -> None:
    """Put right what a killed batch left: a run whose report and result were both written is
    done (its result is not made again); any other cut-off run waits again."""
    for entry in manifest.entries():
        if entry.state != "running":
            continue
        if entry.output.is_file() and entry.report.is_file():
            try:
                manifest.finish(entry.name, json.loads(entry.report.read_text(encoding="utf-8")))
                continue
            except (OSError, ValueError):
                pass
        manifest.release(entry.name)


def _executor(
    ray: str | None, workers: int | None, planned: Sequence[Planned], todo: int, device: str
) -> Executor:
    cores = os.cpu_count() or 1
    gpus = 0
    if device in ("auto", "cuda") or device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    count, threads = plan_workers(
        cores=cores, pixels=_largest_pixels(planned), gpus=gpus, images=todo, workers=workers
    )
    if ray is not None:
        return RayCluster(ray, threads=1 if gpus else threads, gpus=gpus)
    if count == 1 and not gpus:
        return InProcess()
    return LocalPool(count, threads, gpus=min(gpus, count))


def run_batch(
    template: Job,
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    mask_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    ray: str | None = None,
    force: bool = False,
    progress: bool = False,
) -> BatchSummary:
    """Restore every image of ``source`` (a folder or a glob) with ``template``'s settings into
    ``output_dir``; rerun to finish a batch that was cut off. See :func:`batch`."""
    from .runner import prepare

    started = time.perf_counter()
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise UserError(f"workers must be a positive whole number, got {workers!r}")
    checked = prepare(replace(template, inputs={"image": "input.png"}))
    out_dir = Path(output_dir)
    masks = Path(mask_dir) if mask_dir is not None else None
    if masks is not None and not masks.is_dir():
        raise UserError(f"{masks}: no such folder; --mask-dir names a folder of masks")
    if masks is not None and checked.task.name != "inpaint":
        raise UserError("--mask-dir is for inpaint only")
    base, files = find_inputs(source, exclude=[out_dir, *([masks] if masks else [])])
    _check_output_dir(out_dir)
    planned = plan(files, base, out_dir, checked.task.output_tag(checked.options), masks)
    by_name = {item.name: item for item in planned}

    manifest = Manifest(out_dir)
    try:
        manifest.lock()
        manifest.claim(_settings(template, os.path.abspath(source), masks))
        for item in planned:
            seed = template.seed if template.seed is not None else secrets.randbelow(2**31)
            manifest.add(
                item.name,
                input=item.path,
                output=item.output,
                report=item.report,
                seed=seed,
                skipped=item.skip,
            )
        _recover(manifest)
        todo = [
            e for e in manifest.entries() if e.name in by_name and e.state in ("pending", "failed")
        ]
        ready = []
        for entry in todo:
            item = by_name[entry.name]
            if item.problem:
                manifest.fail(entry.name, item.problem)
            elif entry.output.exists() and not force:
                manifest.fail(
                    entry.name,
                    f"{entry.output} exists and this batch did not write it; pass --force to "
                    "overwrite it",
                )
            else:
                ready.append(entry)
        ran = _run_all(manifest, ready, by_name, template, ray, workers, progress)
    finally:  # also when interrupted: the summary says what is done and what waits
        entries = [entry for entry in manifest.entries() if entry.name in by_name]
        manifest.close()
        csv_path, md_path = write_summary(out_dir, entries)
    return BatchSummary(out_dir, entries, ran, time.perf_counter() - started, csv_path, md_path)


def _job_data(template: Job, entry: Entry, item: Planned) -> dict[str, Any]:
    inputs = {"image": str(item.path)} | ({"mask": str(item.mask)} if item.mask else {})
    return replace(template, inputs=inputs, seed=entry.seed).to_dict()


def _run_all(
    manifest: Manifest,
    ready: list[Entry],
    by_name: dict[str, Planned],
    template: Job,
    ray: str | None,
    workers: int | None,
    progress: bool,
) -> int:
    """Run the ready images, keeping the executor busy; returns how many finished."""
    from tqdm.auto import tqdm

    if not ready:
        return 0
    planned = [by_name[entry.name] for entry in ready]
    executor = _executor(ray, workers, planned, len(ready), template.device)
    waiting = list(ready)
    running: dict[str, Entry] = {}
    finished = 0
    bar = tqdm(total=len(ready), unit="image", disable=not progress, dynamic_ncols=True)
    try:
        while waiting or running:
            while waiting and len(running) < executor.capacity:
                entry = waiting.pop(0)
                item = by_name[entry.name]
                job_data = _job_data(template, entry, item)
                manifest.start(entry.name, job_data)
                try:
                    executor.submit(entry.name, job_data, item.output.suffix)
                except OSError as error:
                    manifest.fail(entry.name, f"cannot read it: {error.strerror or error}")
                    bar.update(1)
                    continue
                running[entry.name] = entry
            name, result = executor.next_done()
            entry = running.pop(name)
            if result["state"] == "interrupted":
                manifest.release(name)
                raise KeyboardInterrupt
            _record(manifest, entry, by_name[name], result, bar)
            finished += 1
            bar.update(1)
    except KeyboardInterrupt:
        executor.close(cancel=True)
        for name in running:
            manifest.release(name)
        bar.close()
        raise
    executor.close(cancel=False)
    bar.close()
    return finished


def _record(manifest: Manifest, entry: Entry, item: Planned, result: Result, bar: Any) -> None:
    """Write a finished image's report, then its result, then mark it done (or failed)."""
    if result["state"] != "done":
        manifest.fail(entry.name, result["error"])
        bar.write(f"{entry.name}: failed: {result['error']}", file=sys.stderr)
        return
    report = dict(result["report"])
    report["batch"] = {"name": entry.name, "output": str(item.output)}
    try:
        _write_bytes(item.report, json.dumps(report, indent=2).encode())
        _write_bytes(item.output, result["output"])
    except UserError as error:
        manifest.fail(entry.name, str(error))
        bar.write(f"{entry.name}: failed: {error}", file=sys.stderr)
        return
    manifest.finish(entry.name, report)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_summary(out_dir: Path, entries: Sequence[Entry]) -> tuple[Path, Path]:
    """summary.csv and summary.md in ``out_dir``: one row per image, then the totals."""
    rows = [
        {
            "name": e.name,
            "state": e.state,
            "seconds": e.seconds,
            "steps": e.steps,
            "psnr": e.psnr,
            "ssim": e.ssim,
            "seed": e.seed,
            "output": e.output.name if e.state == "done" else None,
            "error": e.error,
        }
        for e in entries
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    csv_path = atomic_write(out_dir / "summary.csv", lambda t: t.write_text(buffer.getvalue()))
    states = {
        state: sum(e.state == state for e in entries)
        for state in ("done", "failed", "pending", "skipped")
    }
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "---|" * len(SUMMARY_COLUMNS),
        *(
            "| " + " | ".join(_cell(row[c]).replace("|", "\\|") for c in SUMMARY_COLUMNS) + " |"
            for row in rows
        ),
        "",
        ", ".join(f"{count} {state}" for state, count in states.items()) + ".",
    ]
    text = "\n".join(lines) + "\n"
    md_path = atomic_write(out_dir / "summary.md", lambda t: t.write_text(text))
    return csv_path, md_path


def batch(
    task: str,
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    options: dict[str, Any] | None = None,
    preset: str | None = None,
    mask_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    ray: str | None = None,
    force: bool = False,
    progress: bool = False,
    **settings: Any,
) -> BatchSummary:
    """Restore every image of a folder (or a glob) into ``output_dir``; returns the summary.

    ``options`` are the task's (``{"scale": 4}``), ``settings`` the job's other fields
    (``quality="fast"``, ``seed=0``, ``steps=200``...). Masks for inpainting come from
    ``mask_dir``, matched by name (``photo.png`` <- ``photo.png`` or ``photo_mask.png``).
    ``workers`` local processes share the cores (default: from the cores and image sizes);
    ``ray`` is a Ray cluster's address, or ``"local"``. Rerunning with the same arguments
    skips what is done and retries the rest.
    """
    allowed = set(Job.__dataclass_fields__) - {"task", "inputs", "options", "preset"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise UserError(f"batch() takes no setting {', '.join(unknown)}")
    template = Job(task=task, inputs={}, options=dict(options or {}), preset=preset, **settings)
    return run_batch(
        template,
        source,
        output_dir,
        mask_dir=mask_dir,
        workers=workers,
        ray=ray,
        force=force,
        progress=progress,
    )
