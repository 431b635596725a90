"""``deepprior reproduce``: the paper's three tables — denoising (CBM3D, σ = 25),
super-resolution ×4 (Set5, and Set14 when present) and inpainting with half the pixels
missing (Heide-11) — with the classical baselines beside them, in one run that resumes.

Every figure is a *cell*: one table, one image, one method. A finished cell is appended to
``cells.jsonl`` in the output folder at once (a line per cell, flushed to disk), so a run that
is interrupted and started again with the same command computes only the cells it lacks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import (
    bm3d_installed,
    degrade_for_sr,
    denoise_bm3d,
    denoise_nlm,
    inpaint_biharmonic,
    upscale,
)
from ..errors import UserError
from ..fitting import Callback, FitState
from ..io import atomic_write, check_output_folder, read_image
from ..job import Job
from ..masks import random_pixels
from ..metrics import psnr, psnr_y
from ..runner import run
from ..synthetic import add_noise

SIGMA = 25  # denoising noise level, in 0–255 units
SCALE = 4  # super-resolution factor
DROP = 0.5  # inpainting: share of pixels missing
SECOND_RUN = 1000  # the second denoising run's seed offset (as the runner's ``runs``)
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
CONFIG_NAME, CELLS_NAME, REPORT_NAME = "reproduce.json", "cells.jsonl", "report.md"


@dataclass(frozen=True)
class Plan:
    """How a reproduction runs: the paper's setting, or a proxy that fits a CPU."""

    name: str
    note: str
    crop: int | None  # side of the centre crop taken of every image (None: whole images)
    images: int | None  # the first N images of each dataset, by file name (None: all)
    steps: dict[str, int | str]  # kind -> "auto" (the stopping rule) or a fixed count
    max_steps: dict[str, int | None]  # kind -> the cap of "auto" (None: the preset's steps)
    presets: dict[str, str]  # kind -> preset name

    def describe(self) -> str:
        """The plan in words, for the top of the report."""
        kinds = {"denoise": "denoising", "sr": "super-resolution", "inpaint": "inpainting"}
        steps = ", ".join(
            f"{kinds[kind]} "
            + (
                f"{count} steps"
                if count != "auto"
                else "automatic stopping"
                + (f" (cap {self.max_steps[kind]})" if self.max_steps[kind] else "")
            )
            for kind, count in self.steps.items()
        )
        return (
            f"{self.note}: "
            + (f"centre crops of {self.crop}×{self.crop} px" if self.crop else "whole images")
            + (
                f", the first {self.images} images of each dataset by name"
                if self.images
                else ", every image"
            )
            + f"; {steps}"
        )


PLANS = {
    "quick": Plan(
        name="quick",
        note="a CPU proxy of the paper's setting (compare the gaps between methods with the "
        "paper's, not the absolute figures, which are for whole images)",
        crop=96,
        images=3,
        steps={"denoise": "auto", "sr": "auto", "inpaint": "auto"},
        max_steps={"denoise": None, "sr": 1200, "inpaint": 1200},
        presets={"denoise": "authors", "sr": "x4", "inpaint": "pixels"},
    ),
    "full": Plan(
        name="full",
        note="the paper's setting, meant for a GPU (inpainting at the rate of the authors' "
        "notebook, 0.001)",
        crop=None,
        images=None,
        steps={"denoise": 1800, "sr": 2000, "inpaint": 11000},
        max_steps={"denoise": None, "sr": None, "inpaint": None},
        presets={"denoise": "paper", "sr": "x4", "inpaint": "pixels-authors"},
    ),
}


@dataclass(frozen=True)
class Table:
    """One of the paper's tables: a dataset folder and the task run on it."""

    key: str
    kind: str  # "denoise", "sr" or "inpaint"
    folder: str
    title: str
    optional: bool = False


TABLES = (
    Table("denoise", "denoise", "CBM3D", f"Denoising, CBM3D colour images, σ = {SIGMA}"),
    Table("sr-set5", "sr", "Set5", f"Super-resolution ×{SCALE}, Set5"),
    Table("sr-set14", "sr", "Set14", f"Super-resolution ×{SCALE}, Set14", optional=True),
    Table(
        "inpaint",
        "inpaint",
        "Heide11",
        f"Inpainting, {DROP * 100:.0f} % of pixels missing, Heide-11",
    ),
)


def methods(kind: str) -> tuple[str, ...]:
    """The methods of a table: the Deep Image Prior first, then the baselines."""
    if kind == "denoise":
        return ("dip", "dip-2", "nlm", *(("bm3d",) if bm3d_installed() else ()))
    return ("dip", "bicubic") if kind == "sr" else ("dip", "biharmonic")


@dataclass
class Sample:
    """One image of a table: the reference, what the method sees, and the known pixels."""

    name: str
    clean: np.ndarray
    degraded: np.ndarray
    known: np.ndarray | None = None


def find_tables(data: Path) -> list[tuple[Table, list[Path]]]:
    """Each table whose folder ``data`` holds, with its image files (sorted by name)."""
    if not data.is_dir():
        raise UserError(
            f"{data}: no such folder; --data needs the folder that holds CBM3D/, Set5/ and "
            "Heide11/ (and Set14/ if you have it)"
        )
    found = []
    for table in TABLES:
        folder = data / table.folder
        if not folder.is_dir():
            if table.optional:
                continue
            raise UserError(f"{folder}: no such folder; {data} needs {table.folder}/")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"{folder}: no PNG, TIFF or BMP images in it")
        found.append((table, paths))
    return found


def load_samples(kind: str, paths: list[Path], plan: Plan, seed: int) -> list[Sample]:
    """Read the images (all of them now: a bad file stops the run before any fit)."""
    chosen = paths[: plan.images] if plan.images else paths
    return [make_sample(kind, p.stem, crop(read_image(p).pixels, plan.crop), seed) for p in chosen]


def crop(pixels: np.ndarray, side: int | None) -> np.ndarray:
    """The centre side×side of an image (the whole image when side is None or larger)."""
    if side is None:
        return pixels
    h, w = pixels.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return pixels[top : top + side, left : left + side]


def make_sample(kind: str, name: str, clean: np.ndarray, seed: int, scale: int = SCALE) -> Sample:
    """The degraded input of a table's task, drawn from ``seed`` (the same on every run);
    super-resolution's is ``scale`` times smaller."""
    if kind == "denoise":
        return Sample(name, clean, add_noise(clean, SIGMA, seed))
    if kind == "sr":
        hr, lr = degrade_for_sr(clean, scale)
        return Sample(name, hr, lr)
    height, width = clean.shape[:2]
    known = random_pixels(height, width, DROP, seed)
    return Sample(name, clean, clean * known[:, :, None], known)


class CellStore:
    """Finished cells, one JSON line each in ``cells.jsonl``; arrays beside it as ``.npy``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / CELLS_NAME
        self.done: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
                self.done[entry["cell"]] = entry["result"]
                kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill: that cell is computed again
        if self.path.read_text() != "".join(f"{line}\n" for line in kept):
            # drop the torn line, or the next cell's line would be glued onto it
            atomic_write(self.path, lambda path: path.write_text("".join(f"{x}\n" for x in kept)))

    def add(self, cell: str, result: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"cell": cell, "result": result}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.done[cell] = result

    def array_path(self, cell: str) -> Path:
        return self.folder / "outputs" / (cell.replace("/", "-") + ".npy")

    def save_array(self, cell: str, array: np.ndarray) -> None:
        path = self.array_path(cell)
        path.parent.mkdir(exist_ok=True)

        def fill(temporary: Path) -> None:
            with temporary.open("wb") as handle:
                np.save(handle, array)

        atomic_write(path, fill)


class _Steps(Callback):
    """Shows the current fit's step and PSNR on the run's one progress bar."""

    def __init__(self, bar: Any):
        self.bar = bar

    def on_step(self, state: FitState) -> None:
        if (state.step + 1) % 10 == 0:
            shown: dict[str, float] = {"step": state.step + 1}
            if "psnr" in state.metrics:
                shown["psnr"] = round(state.metrics["psnr"], 2)
            self.bar.set_postfix(shown, refresh=False)


@dataclass(frozen=True)
class Context:
    """What every cell of one reproduction shares."""

    plan: Plan
    seed: int
    store: CellStore
    job: dict[str, Any]  # device, precision
    callbacks: tuple[Callback, ...] = ()


def compute(kind: str, method: str, sample: Sample, cell: str, ctx: Context) -> dict[str, Any]:
    """One cell's figures (PSNR and seconds; the fit's steps and history for the method)."""
    started = time.perf_counter()
    if not method.startswith("dip"):
        result = classical(kind, method, sample)
        return {"psnr": score(kind, result, sample), "seconds": time.perf_counter() - started}
    seed = ctx.seed + (SECOND_RUN if method == "dip-2" else 0)
    inputs: dict[str, Any] = {"image": sample.degraded, "reference": sample.clean}
    options: dict[str, Any] = {}
    if kind == "sr":
        options["scale"] = SCALE
    if kind == "inpaint":
        inputs["mask"] = sample.known
    steps = ctx.plan.steps[kind]
    outcome = run(
        Job(
            kind,
            inputs,
            options=options,
            preset=ctx.plan.presets[kind],
            quality="paper",
            steps=steps,
            max_steps=ctx.plan.max_steps[kind] if steps == "auto" else None,
            seed=seed,
            **ctx.job,
        ),
        callbacks=ctx.callbacks,
    )
    if outcome.interrupted:
        raise KeyboardInterrupt
    report, pixels = outcome.report, outcome.picture.pixels
    kept = (report.stopping or {}).get("selected_step") or report.steps_run
    figures: dict[str, Any] = {
        "psnr": score(kind, pixels, sample),
        "seconds": time.perf_counter() - started,
        "steps_run": report.steps_run,
        "step_kept": kept,
        "preset": report.settings.get("name"),
    }
    records = report.history or []
    if kind == "denoise":
        figures["psnr_input"] = psnr(sample.degraded, sample.clean)
        plain = [r["psnr"] for r in records if r["step"] <= kept and "psnr" in r]
        figures["psnr_plain"] = plain[-1] if plain else None
        ctx.store.save_array(cell, outcome.image)
        if method == "dip-2":
            first = ctx.store.array_path(cell.replace("dip-2", "dip"))
            if first.exists():
                both = (np.load(first) + outcome.image) / 2
                figures["psnr_two_runs"] = psnr(both, sample.clean)
    if kind == "inpaint":
        figures["psnr_input"] = psnr(sample.degraded, sample.clean)
    if method == "dip":
        figures["history"] = [
            [r["step"], r.get("psnr"), r.get("psnr_average")] for r in records if "psnr" in r
        ]
    return figures


def classical(kind: str, method: str, sample: Sample, scale: int = SCALE) -> np.ndarray:
    if method == "nlm":
        return denoise_nlm(sample.degraded, SIGMA / 255)
    if method == "bm3d":
        return denoise_bm3d(sample.degraded, SIGMA / 255)
    if method == "bicubic":
        return upscale(sample.degraded, scale, "bicubic")
    if method == "biharmonic" and sample.known is not None:
        return inpaint_biharmonic(sample.degraded, sample.known)
    raise ValueError(f"no method {method!r} for {kind}")


def score(kind: str, pixels: np.ndarray, sample: Sample, scale: int = SCALE) -> float:
    """The paper's measure: luma PSNR without a ``scale``-pixel border for SR (4 at ×4), plain
    PSNR otherwise."""
    if kind == "sr":
        return psnr_y(pixels, sample.clean, shave=scale)
    return psnr(pixels, sample.clean)


def cells(found: list[tuple[Table, list[Sample]]]) -> Iterator[tuple[str, Table, str, Sample]]:
    """Every cell, table by table, image by image: (key, table, method, sample)."""
    for table, samples in found:
        for sample in samples:
            for method in methods(table.kind):
                yield f"{table.key}/{sample.name}/{method}", table, method, sample


def open_folder(out: Path, config: dict[str, Any], *, force: bool) -> CellStore:
    """The output folder's cells: those of an earlier run of the same settings (resumed),
    none when starting afresh. A folder of other settings or files is kept unless ``force``."""
    config_path = out / CONFIG_NAME
    if config_path.exists() and not force:
        try:
            earlier = json.loads(config_path.read_text())
        except ValueError:
            earlier = None
        if earlier != config:
            raise UserError(
                f"{out} holds a reproduction with other settings; give another --out, "
                "or --force to start it over"
            )
        return CellStore(out)
    check_output_folder(out, (REPORT_NAME, CELLS_NAME), force=force)
    out.mkdir(parents=True, exist_ok=True)
    (out / CELLS_NAME).unlink(missing_ok=True)
    for stale in (out / "outputs").glob("*.npy"):
        stale.unlink()
    atomic_write(config_path, lambda path: path.write_text(json.dumps(config, indent=2) + "\n"))
    return CellStore(out)


def reproduce(
    data: Path,
    out: Path,
    plan: Plan,
    *,
    seed: int = 0,
    force: bool = False,
    quiet: bool = False,
    device: str = "auto",
    precision: str = "auto",
    command: str = "",
    on_cell: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) a reproduction; write ``report.md`` and its plots into ``out``.

    An interruption (Ctrl-C) writes the report of the cells done so far and is raised again.
    """
    from tqdm.auto import tqdm

    from ..engine import resolve_device
    from .reproduce_report import write_report

    resolve_device(device)
    found = [
        (table, load_samples(table.kind, paths, plan, seed)) for table, paths in find_tables(data)
    ]
    config = {
        "plan": asdict(plan),
        "seed": seed,
        "data": str(data.resolve()),
        "images": {table.key: [s.name for s in samples] for table, samples in found},
    }
    store = open_folder(out, config, force=force)
    todo = list(cells(found))
    bar = tqdm(
        total=len(todo),
        initial=sum(key in store.done for key, *_ in todo),
        unit="cell",
        disable=quiet,
        dynamic_ncols=True,
    )
    ctx = Context(plan, seed, store, {"device": device, "precision": precision}, (_Steps(bar),))
    started = time.perf_counter()
    try:
        for key, table, method, sample in todo:
            if key in store.done:
                continue
            bar.set_description(key)
            if on_cell is not None:
                on_cell(key)
            store.add(key, compute(table.kind, method, sample, key, ctx))
            bar.update(1)
    finally:
        bar.close()
        elapsed = time.perf_counter() - started
        write_report(
            out, plan, found, store.done, command, elapsed, data=str(data.resolve()), seed=seed
        )
    return out / REPORT_NAME
