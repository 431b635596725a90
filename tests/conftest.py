"""Shared fixtures: small real photographs, their noisy versions, a fast preset, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch
from skimage import data, transform

from deepprior import cli, presets
from deepprior.presets import DENOISE_PRESETS, Preset
from deepprior.synthetic import add_noise

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# A small network and few steps, so that a test fit takes seconds.
FAST = replace(
    DENOISE_PRESETS["authors"],
    name="test",
    steps=40,
    net_options={"down": (16, 16, 16), "up": (16, 16, 16), "skip": (4, 4, 4)},
)


def make_photo(size: int, gray: bool = False) -> np.ndarray:
    """A real photograph (scikit-image's astronaut), resized to size×size, float32 in [0, 1]."""
    image = transform.resize(data.astronaut()[:320, 96:416], (size, size), anti_aliasing=True)
    if gray:
        image = image @ np.array([0.299, 0.587, 0.114])
    return image.astype(np.float32)


def run_command(*argv: str) -> int:
    """Run the ``deepprior`` command in-process; its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    return int(exit_info.value.code or 0)


@pytest.fixture
def photo() -> Callable[..., np.ndarray]:
    """``photo(size, gray=False)``: the astronaut photograph at size×size."""
    return make_photo


@pytest.fixture
def fast() -> Preset:
    """The authors' denoising preset on a small network, 40 steps."""
    return FAST


@pytest.fixture
def run_cli() -> Callable[..., int]:
    """``run_cli(*argv)``: the ``deepprior`` command in-process; returns its exit code."""
    return run_command


@pytest.fixture
def small_presets(fast: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task's presets on the small test network, a few steps each."""
    tables = (
        presets.DENOISE_PRESETS,
        presets.SR_PRESETS,
        presets.INPAINT_PRESETS,
        presets.RESTORE_PRESETS,
        presets.FLASH_PRESETS,
    )
    for table in tables:
        for name, preset in list(table.items()):
            options = {"down": (16, 16, 16), "up": (16, 16, 16), "skip": (4, 4, 4)}
            if preset.net_options.get("skip", (1,))[0] == 0:
                options["skip"] = (0, 0, 0)
            monkeypatch.setitem(table, name, replace(preset, steps=12, net_options=options))


@pytest.fixture
def clean32() -> np.ndarray:
    return make_photo(32)


@pytest.fixture
def noisy32(clean32: np.ndarray) -> np.ndarray:
    return add_noise(clean32, 25, seed=0)
