"""The paper's experiments as commands."""

import csv

import numpy as np

from deepprior import masks
from deepprior.experiments.architectures import compare
from deepprior.experiments.impedance import steps_to_reach, targets
from deepprior.io import Picture, read_image, write_image


def test_impedance_targets_keep_the_pixels_or_replace_them(photo):
    image = photo(32)
    made = targets(image, seed=0)
    assert list(made) == ["natural image", "image + noise", "shuffled pixels", "white noise"]
    shuffled = made["shuffled pixels"]
    assert not (shuffled == image).all()
    assert sorted(map(tuple, shuffled.reshape(-1, 3))) == sorted(map(tuple, image.reshape(-1, 3)))
    assert steps_to_reach([(10, 0.5), (20, 0.05), (30, 0.01)], 0.05) == 20
    assert steps_to_reach([(10, 0.5)], 0.05) is None


def test_impedance_fits_the_natural_image_first_and_white_noise_last(
    run_cli, tmp_path, photo, small_presets, capsys
):
    write_image(tmp_path / "in.png", Picture(photo(32)))
    out = tmp_path / "results"
    argv = ["experiment", "impedance", str(tmp_path / "in.png"), "--out", str(out)]
    assert run_cli(*argv, "--steps", "40", "--seed", "0") == 0
    with (out / "impedance.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["step", "natural image", "image + noise", "shuffled pixels", "white noise"]
    final = [float(value) for value in rows[-1][1:]]
    assert rows[-1][0] == "40" and final[0] < final[1] and final[0] < final[3]
    assert (out / "impedance.png").read_bytes()[:4] == b"\x89PNG"
    assert "steps to energy" in capsys.readouterr().out
    assert run_cli(*argv, "--steps", "2") == 2  # would overwrite
    assert "pass --force" in capsys.readouterr().err
    (tmp_path / "plain").write_text("a file")
    assert (
        run_cli(
            "experiment", "impedance", str(tmp_path / "in.png"), "--out", str(tmp_path / "plain")
        )
        == 2
    )


def test_architectures_share_the_holes_and_keep_the_known_pixels(photo, small_presets):
    image = photo(32)
    known = masks.random_pixels(32, 32, 0.5, seed=1)
    rows, results = compare(image, known, steps=6, seed=0, device="cpu")
    labels = [row.architecture for row in rows]
    assert labels[-2:] == ["U-Net", "ResNet"] and any("+ skip" in label for label in labels)
    assert len({row.parameters for row in rows}) == len(rows)  # six different networks
    for row in rows:
        result = results[row.architecture]
        assert np.array_equal(result[known], image[known])
        assert not np.array_equal(result[~known], image[~known])
        assert row.steps == 6 and row.psnr > row.psnr_holes


def test_architectures_command_writes_table_and_grid(run_cli, tmp_path, photo, small_presets):
    write_image(tmp_path / "in.png", Picture(photo(32)))
    out = tmp_path / "results"
    argv = ["experiment", "architectures", str(tmp_path / "in.png"), "--out", str(out)]
    assert run_cli(*argv, "--drop", "0.5", "--steps", "4", "--seed", "0", "--quiet") == 0
    with (out / "architectures.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["architecture"] for row in rows][-2:] == ["U-Net", "ResNet"]
    assert all(float(row["psnr"]) > 0 for row in rows)
    table = (out / "architectures.md").read_text()
    assert table.startswith("| architecture |") and table.count("\n| ") == len(rows)
    grid = read_image(out / "architectures.png").pixels
    assert grid.shape[1] > (len(rows) + 1) * 32  # the input and each result side by side
    assert run_cli(*argv, "--drop", "0.5", "--steps", "1") == 2  # would overwrite
