"""The paper's experiments as commands."""

import csv

from deepprior.experiments.impedance import steps_to_reach, targets
from deepprior.io import Picture, write_image


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
