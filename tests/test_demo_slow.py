"""The full demo, as a user runs it (about 3 minutes on 2 cores): run with ``pytest -m slow``."""

import json

import pytest

from deepprior import cli


@pytest.mark.slow
def test_full_demo_beats_the_noisy_input_by_5_db(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--out", str(tmp_path), "--quiet"])
    assert exit_info.value.code == 0
    metrics = json.loads((tmp_path / "report.json").read_text())["metrics"]
    assert metrics["psnr"] >= metrics["psnr_input"] + 5.0
