"""``deepprior reproduce``: the paper's tables, resumable, from a folder of datasets."""

import json
from dataclasses import replace

import numpy as np
import pytest
from skimage import data, transform

from deepprior.errors import UserError
from deepprior.experiments import reproduce as reproduction
from deepprior.io import Picture, write_image
from deepprior.report import source_commit

SIDE = 64


def _photo(name: str, gray: bool = False) -> np.ndarray:
    pixels = getattr(data, name)()
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    side = min(pixels.shape[:2])
    square = transform.resize(pixels[:side, :side], (SIDE, SIDE), anti_aliasing=True)
    if gray and square.shape[2] == 3:
        square = square @ np.array([[0.299], [0.587], [0.114]])
    return square.astype(np.float32)


@pytest.fixture
def datasets(tmp_path):
    """A folder laid out as ../shared/data, two small images a dataset (one in Set14)."""
    root = tmp_path / "data"
    for folder, names, gray in (
        ("CBM3D", ("astronaut", "coffee"), False),
        ("Set5", ("chelsea", "rocket"), False),
        ("Heide11", ("camera", "astronaut"), True),
        ("Set14", ("coffee",), False),
    ):
        (root / folder).mkdir(parents=True)
        for name in names:
            write_image(root / folder / f"{name}.png", Picture(_photo(name, gray)))
    return root


@pytest.fixture
def tiny_plan(small_presets):
    return replace(
        reproduction.PLANS["quick"],
        crop=None,
        images=2,
        max_steps={"denoise": 12, "sr": 12, "inpaint": 12},
    )


def _keys(out):
    lines = (out / "cells.jsonl").read_text().splitlines()
    return [json.loads(line)["cell"] for line in lines if line.endswith("}")]


def test_an_interrupted_reproduction_resumes_without_recomputing(datasets, tmp_path, tiny_plan):
    out = tmp_path / "out"
    started = []

    def interrupt_at_the_fourth(cell):
        started.append(cell)
        if len(started) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reproduction.reproduce(
            datasets, out, tiny_plan, quiet=True, device="cpu", on_cell=interrupt_at_the_fourth
        )
    done_first = _keys(out)
    assert done_first == started[:3]
    summary = (out / "report.md").read_text()
    assert "cells finished: 3 of" in summary and f"(commit {source_commit()})" in summary
    with (out / "cells.jsonl").open("a") as handle:
        handle.write('{"cell": "inpaint/camera/di')  # a line torn by a kill

    resumed = []
    report = reproduction.reproduce(
        datasets, out, tiny_plan, quiet=True, device="cpu", on_cell=resumed.append
    )
    every = [key for key, *_ in reproduction.cells(_found(datasets, tiny_plan))]
    assert resumed == every[3:]  # the finished cells are not run again
    assert sorted(_keys(out)) == sorted(every)
    text = report.read_text()
    assert f"cells finished: {len(every)} of {len(every)}" in text
    for title in (
        "Denoising, CBM3D",
        "Super-resolution ×4, Set5",
        "Super-resolution ×4, Set14",
        "Inpainting, 50 %",
    ):
        assert f"## {title}" in text
    assert "| paper (9 images, whole, 1800 steps) |  | 29.22 | 30.43 | 31.00 | 30.26 |" in text
    assert "…" not in text  # every figure filled in
    for plot in ("denoise.png", "sr-set5.png", "sr-set14.png", "inpaint.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def _found(datasets, plan):
    return [
        (table, reproduction.load_samples(table.kind, paths, plan, 0))
        for table, paths in reproduction.find_tables(datasets)
    ]


def test_reproduction_figures_are_measured(datasets, tmp_path, tiny_plan):
    out = tmp_path / "out"
    reproduction.reproduce(datasets, out, tiny_plan, quiet=True, device="cpu")
    cells = {}
    for line in (out / "cells.jsonl").read_text().splitlines():
        entry = json.loads(line)
        cells[entry["cell"]] = entry["result"]
    for name in ("astronaut", "coffee"):
        first, second = cells[f"denoise/{name}/dip"], cells[f"denoise/{name}/dip-2"]
        assert first["psnr"] != second["psnr"]  # two seeds, two fits
        assert second["psnr_two_runs"] > min(first["psnr"], second["psnr"])
        assert cells[f"denoise/{name}/nlm"]["psnr"] > first["psnr_input"] + 3
        assert cells[f"denoise/{name}/bm3d"]["psnr"] > first["psnr_input"] + 3
    for name in ("camera", "astronaut"):
        fit = cells[f"inpaint/{name}/dip"]
        assert fit["psnr"] > fit["psnr_input"] + 5  # the holes are filled, not left black
        assert cells[f"inpaint/{name}/biharmonic"]["psnr"] > fit["psnr_input"] + 5
        assert fit["steps_run"] <= 12 and fit["history"]
    assert all(cell["seconds"] > 0 for cell in cells.values())


def test_a_folder_of_other_settings_is_kept(datasets, tmp_path, tiny_plan):
    out = tmp_path / "out"
    reproduction.reproduce(datasets, out, tiny_plan, quiet=True, device="cpu")
    report = (out / "report.md").read_bytes()
    with pytest.raises(UserError, match="other settings"):
        reproduction.reproduce(datasets, out, tiny_plan, seed=1, quiet=True, device="cpu")
    assert (out / "report.md").read_bytes() == report
    started = []
    reproduction.reproduce(
        datasets,
        out,
        tiny_plan,
        seed=1,
        force=True,
        quiet=True,
        device="cpu",
        on_cell=started.append,
    )
    assert len(started) == len(_keys(out))  # started over: every cell computed again


def test_missing_datasets_are_one_clear_error(datasets, tmp_path, tiny_plan):
    with pytest.raises(UserError, match="Heide11/"):
        (datasets / "Heide11" / "camera.png").unlink()
        (datasets / "Heide11" / "astronaut.png").unlink()
        (datasets / "Heide11").rmdir()
        reproduction.reproduce(datasets, tmp_path / "out", tiny_plan, quiet=True)
    empty = datasets / "Heide11"
    empty.mkdir()
    with pytest.raises(UserError, match="no PNG"):
        reproduction.reproduce(datasets, tmp_path / "out", tiny_plan, quiet=True)
    assert not (tmp_path / "out").exists()


def test_reproduce_command(run_cli, datasets, tmp_path, tiny_plan, monkeypatch, capsys):
    monkeypatch.setitem(reproduction.PLANS, "quick", replace(tiny_plan, images=1))
    out = tmp_path / "out"
    argv = ["reproduce", "--data", str(datasets), "--out", str(out), "--device", "cpu"]
    assert run_cli(*argv, "--quiet") == 0
    assert "## Inpainting" in (out / "report.md").read_text()
    assert run_cli(*argv, "--full", "--quiet") == 2  # the folder holds a --quick run
    assert "other settings" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert run_cli("reproduce") == 2  # no --data and no ../shared/data here
    assert "no --data given" in capsys.readouterr().err


def test_the_full_plan_runs_fixed_steps(datasets, tmp_path, small_presets):
    (datasets / "Set14" / "coffee.png").unlink()
    (datasets / "Set14").rmdir()  # Set14 is optional: its table is left out
    plan = replace(
        reproduction.PLANS["full"], images=1, steps={"denoise": 6, "sr": 6, "inpaint": 6}
    )
    out = tmp_path / "out"
    text = reproduction.reproduce(datasets, out, plan, quiet=True, device="cpu").read_text()
    assert "whole images" in text and "denoising 6 steps" in text
    assert "Set14" not in text
    fits = [json.loads(line)["result"] for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [f["steps_run"] for f in fits if "steps_run" in f] == [6] * 4


def test_an_interrupted_command_says_how_to_resume(
    run_cli, datasets, tmp_path, tiny_plan, monkeypatch, capsys
):
    monkeypatch.setitem(reproduction.PLANS, "quick", tiny_plan)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduction, "compute", interrupted)
    out = tmp_path / "out"
    assert run_cli("reproduce", "--data", str(datasets), "--out", str(out), "--quiet") == 130
    err = capsys.readouterr().err
    assert "run the same command to resume" in err and "interrupted" in err
    assert "cells finished: 0 of" in (out / "report.md").read_text()
