"""Quality levels: one option (``--quality fast|default|best|paper``) that trades time for PSNR.

A level changes the task's preset and how the job runs: the network's width (and its depth
on small images), the learning rate, the code's jitter, the stopping rule's patience, the
number of runs averaged and the self-ensemble. It applies to whichever preset the task picks
(an inpainting mask picks its own), so it is written as changes to a preset, not as a preset.
A job's own ``runs``, ``ensemble``, ``patience`` and ``overrides`` win over its level's. Each
figure below is measured with ``benchmarks/frontier.py`` (see the README's quality section).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .errors import UserError
from .nets.skip import SkipConfig
from .presets import Preset

LEVELS = ("fast", "default", "best", "paper")


@dataclass(frozen=True)
class Quality:
    """One level for one task: what it changes (nothing, by default)."""

    name: str
    contains: str
    width: float = 1.0  # the network's channel counts (down and up) times this
    lr: float | None = None  # None: the preset's
    input_noise: float | None = None  # the code's jitter each step; None: the preset's
    cap: int | None = None  # at most this many steps (the cap of --steps auto); None: the preset's
    # A validation fit may run past its cap while still clearly improving (stopping.MIN_GAIN).
    extend: bool = False
    patience: int | None = None  # None: deepprior.stopping.PATIENCE
    # The noise-level rule (denoising's) stops when the data term falls to this many times σ²:
    # above 1, earlier, with more of the fit's work left to the second pass.
    noise_factor: float = 1.0
    # With a pass: the noise-level rule also keeps the iterate where the data term first fell
    # to this many times σ², the pass refines both it and the final one, and their results
    # are averaged (None: the final iterate alone).
    early_pilot: float | None = None
    # The noise-level rule also stops once its smoothed data term fell by less than this many
    # times σ² over the patience window (None: only at noise_factor·σ² or the cap).
    stall: float | None = None
    # Denoising's pass: the Wiener step's largest group (None: deepprior.wiener.GROUP), and
    # how many reference grids, each a pixel further in, it filters on and averages.
    wiener_group: int | None = None
    wiener_grids: int = 1
    runs: int = 1
    ensemble: bool = False
    # Whether the run ends with the task's classical second pass over the averaged fit
    # (denoising: BM3D's two steps, the second guided by the fit; super-resolution:
    # back-projection onto the input).
    refine: bool = False
    # The presets whose width, lr and steps it changes (those it was measured on); None: all.
    applies_to: tuple[str, ...] | None = None
    # What it contains on any other preset (None: ``contains``).
    elsewhere: str | None = None
    # On an image whose shorter side is under ``shallow_below`` pixels, the skip network keeps,
    # from its top, only the levels that leave its deepest feature map at least ``deepest``
    # pixels on that side (None: all the preset's levels, whatever the size).
    deepest: int | None = None
    shallow_below: int = 0

    def preset(self, preset: Preset, side: int | None = None) -> Preset:
        """``preset`` with this level's width, learning rate, jitter and steps, and its depth
        for an image whose shorter side is ``side`` pixels (a preset it was not measured on
        is kept as it is)."""
        if self.applies_to is not None and preset.name not in self.applies_to:
            return preset
        if self.deepest is not None and side is not None and side < self.shallow_below:
            preset = shallower(preset, levels_for(side, self.deepest, preset))
        if self.lr is not None:
            preset = replace(preset, lr=self.lr)
        if self.input_noise is not None:
            preset = replace(preset, input_noise=self.input_noise)
        if self.cap is not None and self.cap < preset.steps:
            preset = replace(preset, steps=self.cap)
        if self.width == 1.0 or preset.net != "skip":
            return preset
        defaults = SkipConfig()
        options = dict(preset.net_options)
        for key in ("down", "up"):
            channels = options.get(key, getattr(defaults, key))
            options[key] = tuple(max(1, round(c * self.width)) for c in channels)
        return replace(preset, net_options=options)

    def on(self, preset: Preset) -> Quality:
        """This level as it runs ``preset``, saying so: on a preset it was not measured on,
        that preset as it is, with the level's stopping, runs and pass."""
        if self.elsewhere is None or self.applies_to is None or preset.name in self.applies_to:
            return self
        return replace(self, contains=self.elsewhere)

    def held_to_cap(self) -> Quality:
        """This level with no fit running past its cap: for a run that gives the steps or
        the cap, stops by a rule other than validation, or whose task's held-back error
        cannot say that a longer fit gains."""
        return replace(self, extend=False, contains=self.contains.replace(PAST_CAP, ""))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contains": self.contains,
            "width": self.width,
            "lr": self.lr,
            "input_noise": self.input_noise,
            "cap": self.cap,
            "extend": self.extend,
            "patience": self.patience,
            "noise_factor": self.noise_factor,
            "early_pilot": self.early_pilot,
            "stall": self.stall,
            "wiener_group": self.wiener_group,
            "wiener_grids": self.wiener_grids,
            "runs": self.runs,
            "ensemble": self.ensemble,
            "refine": self.refine,
            "applies_to": self.applies_to,
            "deepest": self.deepest,
            "shallow_below": self.shallow_below,
        }


_PER_LEVEL = ("down", "up", "skip", "filter_down", "filter_up", "downsample", "upsample")


def _skip_levels(preset: Preset) -> int:
    return len(preset.net_options.get("down", SkipConfig().down))


def levels_for(side: int, deepest: int, preset: Preset) -> int:
    """How many of ``preset``'s skip levels leave the deepest map at least ``deepest`` pixels
    on a ``side``-pixel side (each level halves it; one level at least)."""
    levels = _skip_levels(preset)
    while levels > 1 and side / 2**levels < deepest:
        levels -= 1
    return levels


def shallower(preset: Preset, levels: int) -> Preset:
    """``preset``'s skip network with only its top ``levels`` levels (any other network, or
    a skip network no deeper, as it is)."""
    if preset.net != "skip" or levels >= _skip_levels(preset):
        return preset
    defaults = SkipConfig()
    options = dict(preset.net_options)
    for key in _PER_LEVEL:
        value = options.get(key, getattr(defaults, key))
        if isinstance(value, (list, tuple)):
            options[key] = tuple(value[:levels])
    return replace(preset, net_options=options)


AS_PRESET = "the preset as it is"
PAST_CAP = ", past the step cap while still clearly improving"
PAPER = Quality("paper", "the preset as it is (the authors' networks)")
# A task without measured levels (restoration, flash/no-flash, the feature tasks) runs its
# preset at every level; at default and best a validation fit may still run past its cap
# while its held-back error falls clearly, as super-resolution's and inpainting's do, except
# where the task says that error cannot tell (blind JPEG restoration, flash/no-flash; README,
# session 23).
_SAME = {
    "fast": Quality("fast", AS_PRESET),
    "default": Quality("default", AS_PRESET + PAST_CAP, extend=True),
    "best": Quality("best", AS_PRESET + PAST_CAP, extend=True),
    "paper": Quality("paper", AS_PRESET),
}

NARROW = 0.25  # 32 channels a level where the authors have 128
FAST_CAP = 800
# Inpainting's fits need more steps (the default's ran 1940-2000 on 128² held-out crops, seed
# 0): 800 lost 0.8 dB to paper there. Since the biharmonic mean (session 26), 1000 steps are
# 0.20 dB under paper on those crops and level with it on 64² crops (Heide-11 and held out) in
# 0.24x its time there; 1200 took 0.29-0.31x that day (README, session 27).
FAST_CAP_INPAINT = 1000
# Denoising's fast level stops when the data term falls to 1.1·σ² (Morozov's discrepancy
# principle with a safety factor) instead of σ²: on 64² and 128² held-out crops (seed 0) that
# cut the steps by 40-46 % and cost 0.6-0.8 dB after the Wiener filter (1.1 before it), still
# within 0.5 dB of paper; 1.15 was 0.77 under paper at 128² (README, session 19). With the
# σ estimate by brightness bands (session 20; it reads higher where noise is clipped), fast
# takes 0.21-0.23x paper's time on the four denoising sets, from +0.22 to -0.25 dB.
FAST_NOISE_FACTOR = 1.1
# Denoising's levels also stop once the data term stalls: its lowest value so far falls by
# under 1 % of σ² over the 300-step patience window (a spike is not a stall: until session 31
# the rule compared the current value, and three of best's four fits on the 1024×768
# photograph stopped at a spike). Replayed on session 29's runs (12 fits from 128² to 512², σ = 25,
# seed 0) it fires on none of them: their data terms fall by 3 % of σ² or more a window
# until σ² is reached. On the 1024×768 photograph, whose data term creeps towards σ² for
# thousands of steps while the pass gains 0.03 dB from step 400 on, the whole default run
# stopped at step 1330 after 24 minutes with 34.53 dB (session 28's run cut at 30 minutes:
# 34.53 at step 2015); before, it needed well over 75. On astronaut's 512² crop it stopped
# the whole run at step 3540 (20 minutes, 30.95 dB; 30.89 at 10 minutes; README, sessions 30
# and 31). The steps a fit spends falling back after a spike still count against it: on that
# photograph best's 3rd and 4th fits stopped 100 and 180 steps after one (session 33).
STALL = 0.01
# Super-resolution's 32-channel fits jitter their code by 0.04 a step where the authors' ×4
# has 0.03: fast +0.48 dB and the default +0.34 on 64² crops of Set5 / astronaut, +0.24 and
# +0.12 on 64² held-out crops, +0.12 and +0.06 at 128², +0.19 and +0.05 on five new 64²
# crops, the default +0.43 on Set5's 128² crops (README, session 27); 0.05 made the default's
# butterfly fit unstable. Measured on ×4 and applied at ×2 and ×3 too: there, on 128² crops,
# fast is +0.14 dB (×2) and -0.05 (×3) against paper in 0.15-0.16x its time, the default +0.55
# and +0.06 in 0.50x and 0.47x (README, session 28).
SR_INPUT_NOISE = 0.04

# Super-resolution's levels drop the skip network's deepest levels on images under 128 px,
# keeping those whose deepest map is 8 px or more on the shorter side: 3 of 5 at 64², where
# the authors' deepest maps are 4×4 and 2×2. On eleven 64² crops ×4 (Set5's bird and
# butterfly, nine scikit-image photographs; seed 0) the default gave +0.04 dB in 0.53x its
# time (steps about a third faster, 17 % fewer), fast +0.29 in 0.81x, best +0.05 in 0.79x on
# three of them. At 128², 4 levels (the same rule) gave -0.02 dB in 0.79x the time on three
# held-out crops but -0.15 in 0.92x on Set5's five: not kept (README, session 32).
DEEPEST = 8
SHALLOW_BELOW = 128

WIENER_PASS = ", then an empirical Wiener filter guided by it and BM3D's first step"
BACK_PROJECTION = ", then back-projected onto the low-resolution input"
BIHARMONIC = ", then averaged with biharmonic interpolation where scattered pixels are missing"


def _levels(
    presets: tuple[str, ...],
    best_runs: int,
    then: str = "",
    fast_cap: int = FAST_CAP,
    fast_noise_factor: float = 1.0,
    extend: bool = False,
    input_noise: float | None = None,
    stall: float | None = None,
    deepest: int | None = None,
) -> dict[str, Quality]:
    """The four levels of a task whose ``presets`` were measured, on 32 channels (and the
    code's jitter ``input_noise``, None: the preset's); fast stops at ``fast_cap``
    steps (and, with a noise-level rule, at ``fast_noise_factor``·σ²); best averages
    ``best_runs`` fits, one per orientation; with a pass (``then`` says which), fast, default
    and best end with the task's classical second pass (see QUALITIES); with ``extend``,
    default's and best's fits go past their cap while their held-back error still falls
    clearly (see deepprior.stopping.MIN_GAIN); with ``stall``, a noise-level rule also stops
    fast's, default's and best's fits once the data term stalls (see STALL); with ``deepest``,
    their networks keep, on images under SHALLOW_BELOW pixels, only the levels whose deepest
    map is that many pixels or more (see DEEPEST)."""
    refine = bool(then)
    past = PAST_CAP if extend else ""
    early = f", stopping at {fast_noise_factor:g}·σ²" if fast_noise_factor != 1.0 else ""
    stalls = ", stopping also once the data term stalls" if stall is not None else ""
    net = "32 channels" + (f", input noise {input_noise:g}" if input_noise is not None else "")
    if deepest is not None:
        net += f", under {SHALLOW_BELOW} px only the levels down to a map of {deepest} px"
    shallow_below = SHALLOW_BELOW if deepest is not None else 0
    fast = f"{net}, at most {fast_cap} steps (more on images over 256²){early}{stalls}{then}"
    averaged = f", {best_runs} runs on {best_runs} orientations averaged"
    return {
        "fast": Quality(
            "fast",
            fast,
            width=NARROW,
            input_noise=input_noise,
            deepest=deepest,
            shallow_below=shallow_below,
            cap=fast_cap,
            noise_factor=fast_noise_factor,
            stall=stall,
            refine=refine,
            applies_to=presets,
            elsewhere=f"{AS_PRESET}{early}{stalls}{then}",
        ),
        "default": Quality(
            "default",
            f"{net}{past}{stalls}{then}",
            width=NARROW,
            input_noise=input_noise,
            deepest=deepest,
            shallow_below=shallow_below,
            extend=extend,
            stall=stall,
            refine=refine,
            applies_to=presets,
            elsewhere=f"{AS_PRESET}{past}{stalls}{then}",
        ),
        "best": Quality(
            "best",
            f"{net}{past}{stalls}{averaged}{then}",
            width=NARROW,
            input_noise=input_noise,
            deepest=deepest,
            shallow_below=shallow_below,
            extend=extend,
            stall=stall,
            runs=best_runs,
            ensemble=True,
            refine=refine,
            applies_to=presets,
            elsewhere=f"{AS_PRESET}{past}{stalls}{averaged}{then}",
        ),
        "paper": PAPER,
    }


# Denoising's best makes its pass on three reference grids, 0, 1 and 2 pixels in, averaged,
# with groups of up to 128 blocks (deepprior.wiener.GROUP: 64). After best's fits (seed 0,
# σ = 25), against one grid of 64: 64² crops +0.01 dB (five CBM3D and scikit-image) and +0.06
# (three held out), 128² +0.02 (nine CBM3D), +0.06 (three held out), +0.14 (five new) and
# +0.01 on five crops no choice had seen (where three grids of 64 gave +0.03: larger groups
# gain on smooth images, up to +0.34 dB, and lose up to 0.04 on text and texture), +0.01 on
# five more cut after the choice (a mostly black one -0.09); best is then above BM3D told σ
# on every set. The pass takes about 5× as long: 3 s at 128², 4 minutes at 1024×768 (README,
# session 35).
BEST_WIENER_GROUP = 128
BEST_WIENER_GRIDS = 3
BEST_PASS = f" (groups of up to {BEST_WIENER_GROUP} blocks, {BEST_WIENER_GRIDS} grids averaged)"


def _stronger_pass(levels: dict[str, Quality]) -> dict[str, Quality]:
    """``levels`` with best's denoising pass enlarged (BEST_WIENER_GROUP, BEST_WIENER_GRIDS)."""
    best = levels["best"]
    stronger = replace(
        best,
        contains=best.contains + BEST_PASS,
        elsewhere=None if best.elsewhere is None else best.elsewhere + BEST_PASS,
        wiener_group=BEST_WIENER_GROUP,
        wiener_grids=BEST_WIENER_GRIDS,
    )
    return levels | {"best": stronger}


# task -> level -> Quality; a task not listed has one level (its preset as it is). Measured on
# 64² and 128² crops (CBM3D, Set5, Heide-11) and scikit-image photographs (README, "Quality
# against time"): 32 channels fit as well as 128 at a third of the cost per step at 128², so
# every level but paper uses them. Denoising's fast and default end with BM3D's two steps, the
# second guided by a mean of the fit and the first (deepprior.wiener), which lifts one fit by
# 0.8-2.8 dB; so does best, after its fits are averaged: the pass alone beat an even mix of it
# and the average (README, session 24). After the pass, the average of 2, 4 or 8 fits gave the
# same PSNR within 0.01 dB on the 64² and 128² CBM3D and held-out crops, 0.01-0.03 dB over the
# default's one fit (README, session 25): best averages 4, at half the time of the 8 it had.
# Super-resolution's fits end with back-projection onto their input (deepprior.backprojection):
# +0.18 dB on 64² held-out crops, +0.13 at 128², +0.14 on Set5's 128² crops, in milliseconds
# (README, session 26). Inpainting's, where scattered pixels are missing, end averaged with
# biharmonic interpolation (deepprior.tasks.inpaint.FIT_SHARE; README, session 26).
QUALITIES: dict[str, dict[str, Quality]] = {
    "denoise": _stronger_pass(
        _levels(
            ("authors", "paper"),
            best_runs=4,
            then=WIENER_PASS,
            fast_noise_factor=FAST_NOISE_FACTOR,
            stall=STALL,
        )
    ),
    "sr": _levels(
        ("x2", "x3", "x4"),
        best_runs=4,
        then=BACK_PROJECTION,
        extend=True,
        input_noise=SR_INPUT_NOISE,
        deepest=DEEPEST,
    ),
    "inpaint": _levels(
        ("pixels",), best_runs=4, then=BIHARMONIC, fast_cap=FAST_CAP_INPAINT, extend=True
    ),
}


def get_quality(task: str, level: str) -> Quality:
    """The level ``level`` of ``task``."""
    if level not in LEVELS:
        raise UserError(f"unknown quality {level!r}; choose one of {', '.join(LEVELS)}")
    return QUALITIES.get(task, _SAME)[level]
