"""Task settings as plain, frozen data; each says where its values come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

AUTHORS = "DmitryUlyanov/deep-image-prior @042e0d4, denoising.ipynb"


@dataclass(frozen=True)
class Preset:
    """Everything that decides a fit, apart from the image, the seed and the device."""

    name: str
    source: str
    net: str = "skip"
    net_options: dict[str, Any] = field(default_factory=dict)
    code: str = "noise"
    code_channels: int = 32
    code_scale: float = 0.1
    lr: float = 0.01
    steps: int = 3000
    input_noise: float = 1 / 30
    average_decay: float | None = 0.99
    backtrack_db: float | None = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_steps(self, steps: int | None) -> Preset:
        return self if steps is None else replace(self, steps=steps)


DENOISE_PRESETS: dict[str, Preset] = {
    "authors": Preset(
        name="authors",
        source=f"{AUTHORS}: skip 128×5, skip-ch 4, bilinear, lr 0.01, 3000 steps, jitter 1/30, "
        "output EMA 0.99, backtracking at 5 dB",
    ),
    "paper": Preset(
        name="paper",
        source="Ulyanov et al., CVPR 2018, Sec. 4: 1800 steps; otherwise the authors' settings",
        steps=1800,
    ),
}


SR_SOURCE = "DmitryUlyanov/deep-image-prior @042e0d4, super-resolution.ipynb"
SR_PRESETS: dict[str, Preset] = {
    "x4": Preset(
        name="x4",
        source=f"{SR_SOURCE}: skip 128×5, skip-ch 4, bilinear, lr 0.01, 2000 steps, jitter 0.03, "
        "no averaging",
        steps=2000,
        input_noise=0.03,
        average_decay=None,
        backtrack_db=None,
    ),
    "x8": Preset(
        name="x8",
        source=f"{SR_SOURCE}: as ×4 with 4000 steps and jitter 0.05",
        steps=4000,
        input_noise=0.05,
        average_decay=None,
        backtrack_db=None,
    ),
}
# The authors ran ×4 and ×8 only; ×2 and ×3 take the ×4 settings.
SR_PRESETS["x2"] = replace(
    SR_PRESETS["x4"],
    name="x2",
    source=SR_PRESETS["x4"].source + " (×4 settings; the authors ran ×4 and ×8 only)",
)
SR_PRESETS["x3"] = replace(SR_PRESETS["x2"], name="x3")


def get_preset(table: dict[str, Preset], name: str) -> Preset:
    from .errors import UserError

    if name not in table:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(table)}")
    return table[name]
