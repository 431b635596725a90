"""Task settings as plain, frozen data; each says where its values come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

AUTHORS = "DmitryUlyanov/deep-image-prior @042e0d4, denoising.ipynb"
# Steps over which the output average warms up (see callbacks.ExponentialAverage); None: the
# authors' average, constant decay from the first output.
AVERAGE_WARMUP = 4


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
    lr_schedule: str = "constant"  # or "cosine": from lr down to lr/10 over the steps (the cap)
    steps: int = 3000
    input_noise: float = 1 / 30
    average_decay: float | None = 0.99
    average_warmup: int | None = AVERAGE_WARMUP
    backtrack_db: float | None = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        """The inverse of :meth:`to_dict` (JSON lists in ``net_options`` become tuples again)."""
        from .errors import UserError

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or not {"name", "source"} <= set(data):
            raise UserError(
                f"a preset needs 'name' and 'source' and takes only {', '.join(sorted(known))}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        options = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in data.get("net_options", {}).items()
        }
        return cls(**{**data, "net_options": options})

    def with_overrides(self, overrides: dict[str, Any]) -> Preset:
        """This preset with some fields replaced (the job's ``overrides``)."""
        from .errors import UserError

        known = {f.name for f in fields(self)} - {"name", "source"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UserError(
                f"cannot override {', '.join(unknown)}; a preset has {', '.join(sorted(known))}"
            )
        return replace(self, **overrides) if overrides else self

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
        source=f"{SR_SOURCE}: skip 128×5, skip-ch 4, bilinear, lr 0.01, 2000 steps, jitter 0.03; "
        "deepprior adds the output average (EMA 0.99) of its denoising",
        steps=2000,
        input_noise=0.03,
        average_decay=0.99,
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


INPAINT_SOURCE = "DmitryUlyanov/deep-image-prior @042e0d4, inpainting.ipynb"
INPAINT_PRESETS: dict[str, Preset] = {
    "hole": Preset(
        name="hole",
        source=f"{INPAINT_SOURCE} (vase): meshgrid code, skip 128×5 without skip connections, "
        "nearest, lr 0.01, 5000 steps, jitter 0.03",
        net_options={"skip": (0,) * 5, "upsample": "nearest"},
        code="meshgrid",
        steps=5000,
        input_noise=0.03,
        average_decay=None,
        backtrack_db=None,
    ),
    "text": Preset(
        name="text",
        source=f"{INPAINT_SOURCE} (kate): skip 128×5, skip-ch 128, nearest, lr 0.01, 6000 steps, "
        "jitter 0.03",
        net_options={"skip": (128,) * 5, "upsample": "nearest"},
        steps=6000,
        input_noise=0.03,
        average_decay=None,
        backtrack_db=None,
    ),
    "region": Preset(
        name="region",
        source=f"{INPAINT_SOURCE} (library): 1-channel code, 6 levels 16–128 without skip "
        "connections, 5×5 down, 3×3 up, nearest, no 1×1 up, lr 0.01, 3000 steps, no jitter",
        net_options={
            "down": (16, 32, 64, 128, 128, 128),
            "up": (16, 32, 64, 128, 128, 128),
            "skip": (0,) * 6,
            "filter_down": 5,
            "upsample": "nearest",
            "conv1x1_up": False,
        },
        code_channels=1,
        steps=3000,
        input_noise=0.0,
        average_decay=None,
        backtrack_db=None,
    ),
    "pixels": Preset(
        name="pixels",
        source="deepprior: the authors' denoising settings (skip 128×5, skip-ch 4, lr 0.01, "
        "jitter 1/30, output EMA 0.99, backtracking), capped at 2000 steps; on a 128² crop of "
        "Heide-11 house with 50 % of pixels dropped: 36.16 dB at 1500 steps, against 35.30 for "
        "the authors' barbara setting at 3000 and 35.40 for biharmonic inpainting",
        steps=2000,
    ),
    "pixels-authors": Preset(
        name="pixels-authors",
        source=f"{INPAINT_SOURCE} (barbara, 50 % of pixels): the denoising net, lr 0.001, "
        "11000 steps, jitter 0.03",
        lr=0.001,
        steps=11000,
        input_noise=0.03,
        average_decay=None,
        backtrack_db=None,
    ),
}


RESTORE_PRESETS: dict[str, Preset] = {
    "jpeg": Preset(
        name="jpeg",
        source=f"{AUTHORS} (snail, JPEG artefacts): 3-channel code, skip [8, 16, 32, 64, 128] "
        "with skip-ch [0, 0, 0, 4, 4], lr 0.01, 2400 steps, jitter 1/30, output EMA 0.99, "
        "backtracking at 5 dB",
        net_options={
            "down": (8, 16, 32, 64, 128),
            "up": (8, 16, 32, 64, 128),
            "skip": (0, 0, 0, 4, 4),
        },
        code_channels=3,
        steps=2400,
    ),
    "authors": replace(
        DENOISE_PRESETS["authors"],
        source=DENOISE_PRESETS["authors"].source
        + " (their denoising settings, for a degradation given by deepprior's operators)",
    ),
}


FLASH_SOURCE = "DmitryUlyanov/deep-image-prior @042e0d4, flash-no-flash.ipynb"
FLASH_PRESETS: dict[str, Preset] = {
    "authors": Preset(
        name="authors",
        source=f"{FLASH_SOURCE} (cave): the flash image as the code, skip 128×5, skip-ch 4, "
        "nearest upsampling at the two finest levels, lr 0.1, 600 steps, no jitter",
        net_options={"upsample": ("nearest", "nearest", "bilinear", "bilinear", "bilinear")},
        code="image",
        lr=0.1,
        steps=600,
        input_noise=0.0,
        average_decay=None,
        backtrack_db=None,
    ),
}


FEATURES_SOURCE = "DmitryUlyanov/deep-image-prior @042e0d4"
_SIX_LEVELS = (16, 32, 64, 128, 128, 128)
# Mahendran & Vedaldi's TV-norm prior, for comparison: the pixels fitted directly with a TV
# penalty (its weight is the task's ``tv_weight``).
_TV = Preset(
    name="tv",
    source="Mahendran & Vedaldi (IJCV 2016), the TV-norm prior: pixels fitted directly with "
    "Adam, lr 0.01, at most 3100 steps (deepprior's settings for their method)",
    net="pixels",
    code_channels=1,
    lr=0.01,
    steps=3100,
    input_noise=0.0,
    average_decay=None,
    backtrack_db=None,
)
INVERT_PRESETS: dict[str, Preset] = {
    "authors": Preset(
        name="authors",
        source=f"{FEATURES_SOURCE}, feature_inversion-AlexNet.ipynb (fc6): 6 levels "
        "16–128, skip-ch 4, filters 7, 7, 5, 5, 3, 3, average pooling, zero padding, lr 0.001, "
        "3100 steps, no jitter",
        net_options={
            "down": _SIX_LEVELS,
            "up": _SIX_LEVELS,
            "skip": (4,) * 6,
            "filter_down": (7, 7, 5, 5, 3, 3),
            "filter_up": (7, 7, 5, 5, 3, 3),
            "downsample": "avg",
            "padding": "zero",
        },
        lr=0.001,
        steps=3100,
        input_noise=0.0,
        average_decay=None,
        backtrack_db=None,
    ),
    "tv": _TV,
}
MAXIMIZE_PRESETS: dict[str, Preset] = {
    "authors": Preset(
        name="authors",
        source=f"{FEATURES_SOURCE}, activation_maximization.ipynb: 6 levels 16–128, "
        "skip-ch [0, 4, 4, 4, 4, 4], average pooling, lr 0.01, 3100 steps, jitter 0.03",
        net_options={
            "down": _SIX_LEVELS,
            "up": _SIX_LEVELS,
            "skip": (0, 4, 4, 4, 4, 4),
            "downsample": "avg",
        },
        lr=0.01,
        steps=3100,
        input_noise=0.03,
        average_decay=None,
        backtrack_db=None,
    ),
    "tv": _TV,
}


def get_preset(table: dict[str, Preset], name: str) -> Preset:
    from .errors import UserError

    if name not in table:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(table)}")
    return table[name]
