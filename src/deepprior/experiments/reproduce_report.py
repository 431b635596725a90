"""``report.md`` of a reproduction: our figures beside the paper's, seconds, and plots."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_write
from ..report import versions

if TYPE_CHECKING:
    from .reproduce import Plan, Sample, Table

# The paper's figures (PSNR, dB): Ulyanov et al., CVPR 2018, Sec. 4 and Table 1.
PAPER: dict[str, dict[str, float]] = {
    "denoise": {
        "dip": 29.22,
        "dip_average": 30.43,
        "dip_two_runs": 31.00,
        "nlm": 30.26,
        "bm3d": 31.42,
    },
    "sr-set5": {"dip": 29.90, "bicubic": 28.43},
    "sr-set14": {"dip": 27.00, "bicubic": 26.05},
    "inpaint": {"dip": 33.48},
}
PAPER_INPAINTING = {  # Table 1, per image
    "barbara": 32.22, "boat": 33.06, "house": 39.16, "lena": 36.16, "peppers": 33.05,
    "cameraman": 29.8, "couple": 32.52, "fingerprint": 32.84, "hill": 32.77, "man": 32.20,
    "montage": 34.54,
}  # fmt: skip
PAPER_SETTING = {
    "denoise": "9 images, whole, 1800 steps",
    "sr-set5": "5 images, whole, 2000 steps",
    "sr-set14": "14 images, whole, 2000 steps",
    "inpaint": "11 images, whole",
}


@dataclass(frozen=True)
class Column:
    """One column of a table: a figure of one method's cell, the paper's, and the seconds."""

    header: str
    method: str  # the cell that holds the figure
    field: str  # the figure's key in that cell
    paper: str | None = None  # key in PAPER
    seconds: tuple[str, ...] = ()  # the cells whose seconds add up to this column's


COLUMNS: dict[str, tuple[Column, ...]] = {
    "denoise": (
        Column("noisy", "dip", "psnr_input"),
        Column("DIP", "dip", "psnr_plain", "dip", ("dip",)),
        Column("DIP averaged", "dip", "psnr", "dip_average", ("dip",)),
        Column("DIP, 2 runs", "dip-2", "psnr_two_runs", "dip_two_runs", ("dip", "dip-2")),
        Column("NLM", "nlm", "psnr", "nlm", ("nlm",)),
        Column("BM3D", "bm3d", "psnr", "bm3d", ("bm3d",)),
    ),
    "sr": (
        Column("bicubic", "bicubic", "psnr", "bicubic", ("bicubic",)),
        Column("DIP", "dip", "psnr", "dip", ("dip",)),
    ),
    "inpaint": (
        Column("input", "dip", "psnr_input"),
        Column("biharmonic", "biharmonic", "psnr", None, ("biharmonic",)),
        Column("DIP", "dip", "psnr", "dip", ("dip",)),
    ),
}
# What a table's DIP is compared with in its gap line: (our column, baseline column).
GAPS = {"denoise": ("DIP averaged", "NLM"), "sr": ("DIP", "bicubic")}
MEASURES = {
    "denoise": "PSNR of the RGB image",
    "sr": f"PSNR of the luma (BT.601) without a {4}-pixel border, the paper's protocol",
    "inpaint": "PSNR of the whole image (the known pixels are the input's)",
}


# What the curves measure: the network's output as the fit goes, not the finished result.
CURVE_LABELS = {
    "denoise": "PSNR (dB)",
    "sr": "PSNR (dB) of the RGB image, border included",
    "inpaint": "PSNR (dB) before the known pixels are put back",
}


def write_report(
    out: Path,
    plan: Plan,
    found: Sequence[tuple[Table, Sequence[Sample]]],
    done: dict[str, dict[str, Any]],
    command: str,
    seconds_now: float,
    *,
    data: str,
    seed: int,
) -> Path:
    """Write ``report.md`` (and a plot per table with a finished fit) into ``out``."""
    from .reproduce import methods

    total = sum(len(samples) * len(methods(table.kind)) for table, samples in found)
    finished = len(done)
    info = versions()
    lines = [
        f"# Reproducing the paper's tables: `{plan.name}`",
        "",
        f"**Plan**: {plan.describe()}.",
        "",
        f"- command: `{command}`" if command else "- command: (library call)",
        f"- deepprior {info['deepprior']} (commit {info['commit']}), torch {info['torch']}, "
        f"Python {info['python']}; {info['platform']}, {info['cpu']}, {os.cpu_count()} CPUs",
        f"- data: {data}; seed {seed}",
        f"- cells finished: {finished} of {total}"
        + ("" if finished >= total else " — run the same command again to resume"),
        f"- compute: {sum(c.get('seconds', 0) for c in done.values()):.0f} s over all cells "
        f"({seconds_now:.0f} s in the last invocation)",
        "",
    ]
    for table, samples in found:
        lines += _table(out, plan, table, samples, done)
    return atomic_write(out / "report.md", lambda path: path.write_text("\n".join(lines)))


def _table(
    out: Path,
    plan: Plan,
    table: Table,
    samples: Sequence[Sample],
    done: dict[str, dict[str, Any]],
) -> list[str]:
    from .reproduce import methods

    present = methods(table.kind)
    columns = [c for c in COLUMNS[table.kind] if c.method in present]
    paper = PAPER.get(table.key, {})
    steps = plan.steps[table.kind]
    how = (
        f"{steps} steps"
        if steps != "auto"
        else "automatic stopping"
        + (f", cap {plan.max_steps[table.kind]}" if plan.max_steps[table.kind] else "")
    )
    lines = [
        f"## {table.title}",
        "",
        f"Preset `{plan.presets[table.kind]}`, {how}; {MEASURES[table.kind]}.",
        "",
    ]
    inpainting = table.kind == "inpaint"
    headers = ["image", *(c.header for c in columns), "steps kept / run"]
    if inpainting:
        headers.append("paper (DIP)")
    lines += ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
    for sample in samples:
        fit = done.get(f"{table.key}/{sample.name}/dip", {})
        row = [sample.name, *(_figure(done, table, sample.name, c) for c in columns)]
        row.append(f"{fit['step_kept']} / {fit['steps_run']}" if fit else "…")
        if inpainting:
            figure = PAPER_INPAINTING.get(sample.name.lower())
            row.append("" if figure is None else f"{figure:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    means = {c.header: _mean(done, table, samples, c) for c in columns}
    lines.append(
        "| **mean** | "
        + " | ".join(_number(means[c.header]) for c in columns)
        + " | |"
        + (" |" if inpainting else "")
    )
    lines.append(
        f"| paper ({PAPER_SETTING[table.key]}) | "
        + " | ".join(_number(paper.get(c.paper)) if c.paper else "" for c in columns)
        + " | |"
        + (" |" if inpainting else "")
    )
    lines.append(
        "| seconds per image | "
        + " | ".join(_seconds(done, table, samples, c) for c in columns)
        + " | |"
        + (" |" if inpainting else "")
    )
    lines.append("")
    if table.kind == "denoise" and "bm3d" not in present:
        lines += ["BM3D: not installed here (`pip install bm3d`, free for non-commercial use).", ""]
    lines += _gap(table, columns, means, paper)
    plotted = _plot(out, table, samples, done)
    if plotted is not None:
        name, image = plotted
        lines += [f"![PSNR against step, {image}]({name})", ""]
    return lines


def _gap(
    table: Table, columns: list[Column], means: dict[str, float | None], paper: dict[str, float]
) -> list[str]:
    """One line: how far the method is above its baseline, ours beside the paper's."""
    gap = GAPS.get(table.kind)
    by_header = {c.header: c for c in columns}
    if gap is None or not all(h in by_header for h in gap):
        return []
    ours_method, ours_base = (means[h] for h in gap)
    paper_method, paper_base = (paper.get(by_header[h].paper or "") for h in gap)
    if ours_method is None or ours_base is None or paper_method is None or paper_base is None:
        return []
    return [
        f"Gap, {gap[0]} − {gap[1]}: ours {ours_method - ours_base:+.2f} dB, "
        f"the paper's {paper_method - paper_base:+.2f} dB.",
        "",
    ]


def _value(done: dict[str, dict[str, Any]], table: Table, image: str, c: Column) -> float | None:
    value = done.get(f"{table.key}/{image}/{c.method}", {}).get(c.field)
    return float(value) if value is not None else None


def _figure(done: dict[str, dict[str, Any]], table: Table, image: str, c: Column) -> str:
    return _number(_value(done, table, image, c))


def _mean(
    done: dict[str, dict[str, Any]], table: Table, samples: Sequence[Sample], c: Column
) -> float | None:
    values = [_value(done, table, s.name, c) for s in samples]
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


def _seconds(
    done: dict[str, dict[str, Any]], table: Table, samples: Sequence[Sample], c: Column
) -> str:
    if not c.seconds:
        return ""
    per_image = []
    for s in samples:
        cells = [done.get(f"{table.key}/{s.name}/{m}") for m in c.seconds]
        if any(cell is None for cell in cells):
            return "…"
        per_image.append(sum(cell["seconds"] for cell in cells if cell is not None))
    if not per_image:
        return "…"
    mean = statistics.fmean(per_image)
    return f"{mean:.2f}" if mean < 10 else f"{mean:.0f}"


def _number(value: float | None) -> str:
    return "…" if value is None else f"{value:.2f}"


def _plot(
    out: Path, table: Table, samples: Sequence[Sample], done: dict[str, dict[str, Any]]
) -> tuple[str, str] | None:
    """PSNR against step for the table's first image whose fit is done: (file, image)."""
    sample = next((s for s in samples if f"{table.key}/{s.name}/dip" in done), None)
    if sample is None:
        return None
    fit = done[f"{table.key}/{sample.name}/dip"]
    history = fit.get("history") or []
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6))
    steps = [row[0] for row in history]
    axes.plot(steps, [row[1] for row in history], label="DIP output")
    if any(row[2] is not None for row in history):
        axes.plot(steps, [row[2] for row in history], label="DIP averaged output")
    axes.axvline(fit["step_kept"], color="gray", linestyle=":", label="step kept")
    if table.kind != "sr":  # SR's table measures luma without a border; the curve is RGB
        for column in COLUMNS[table.kind]:
            baseline = done.get(f"{table.key}/{sample.name}/{column.method}")
            if column.method.startswith("dip") or baseline is None:
                continue
            axes.axhline(baseline["psnr"], linestyle="--", linewidth=1, label=column.header)
    axes.set_xlabel("step")
    axes.set_ylabel(CURVE_LABELS[table.kind], fontsize=8)
    axes.set_title(f"{table.title}: {sample.name}", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    name = f"{table.key}.png"
    atomic_write(out / name, lambda path: figure.savefig(path, format="png", dpi=110))
    plt.close(figure)
    return name, sample.name
