"""benchmarks/RESULTS.md and its chart, from the measurements bench.py takes.

Every speed row gives both sides' medians in fp32 and in bf16 (and Glyph's with int8
weights, which plain transformers has no counterpart of), the ratio of each side's
best (its fastest dtype) and the ratios at equal dtype, the physical floor
(benchmarks/floors.py) at Glyph's best dtype, and how far Glyph's best is above it.
A ratio > 1 means Glyph is faster.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from boltons.fileutils import atomic_save

from benchmarks.parts import describe
from benchmarks.workloads import BATCH, DECODE_TOKENS, EARLIER_REPLY

MB = 2 ** 20
# Least best-vs-best speed-up wanted per measure: the random-weight configs' targets (the first benchmark
# issue), and the shipped assistant's shapes' (issue 24). Time to first token 2× is "≤ 0.5× the reference's".
TARGETS = {"default": {"first token": 1.0, "decode": 2.5, "image": 3.0, "image cfg": 5.0, "stage 2": 1.5},
           "smollm2": {"first token": 2.0, "decode": 3.0, "image": None, "image cfg": 5.0, "stage 2": 2.0}}
COLD_START_TARGET = 5.0  # seconds from process start to the first token, after a first run (issue 24)


@dataclass(frozen=True)
class Row:
    measure: str
    unit: str
    glyph: dict[str, float]  # dtype → value
    reference: dict[str, float]
    higher_is_better: bool
    target: float | None  # least best-vs-best ratio wanted
    floor: float | None = None  # the physical limit, in the row's unit, at Glyph's best dtype

    def best(self, side: str) -> tuple[str, float]:
        values = getattr(self, side)
        pick = max if self.higher_is_better else min
        dtype = pick(values, key=values.get)
        return dtype, values[dtype]

    def ratio(self, glyph: float, reference: float) -> float:
        return glyph / reference if self.higher_is_better else reference / glyph

    def best_ratio(self) -> float:
        return self.ratio(self.best("glyph")[1], self.best("reference")[1])

    def over_floor(self) -> float | None:
        if self.floor is None:
            return None
        value = self.best("glyph")[1]
        return self.floor / value if self.higher_is_better else value / self.floor


def speed_rows(result: dict) -> list[Row]:
    inference, floors, machine = result["inference"], result["floors"], result["machine"]
    targets = TARGETS.get(result["config"].name, TARGETS["default"])
    dtypes = list(inference)

    def values(name: str, side: str) -> dict[str, float]:  # the dtypes this side ran (int8: Glyph's alone)
        return {d: inference[d][name][side] for d in dtypes if side in inference[d][name]}

    def decode(side: str) -> dict[str, float]:
        reply = f"reply {DECODE_TOKENS + 1} tokens"
        return {d: DECODE_TOKENS / (inference[d][reply][side] - inference[d]["first token"][side])
                for d in dtypes if side in inference[d][reply]}

    glyph_decode = decode("glyph")
    best_decode_dtype = max(glyph_decode, key=glyph_decode.get)
    rows = [Row("time to first token (with an image)", "s", values("first token", "glyph"),
                values("first token", "reference"), False, targets["first token"]),
            Row("text decode", "tokens/s", glyph_decode, decode("reference"), True, targets["decode"],
                1 / floors[best_decode_dtype]["token"])]
    if "follow-up first token" in inference[dtypes[0]]:  # runs from before the row have no such entry
        rows.insert(1, Row(f"time to first token, follow-up after a {EARLIER_REPLY}-token reply", "s",
                           values("follow-up first token", "glyph"), values("follow-up first token", "reference"),
                           False, None))
    for name in [n for n in inference[dtypes[0]] if n.startswith("image")]:
        glyph = values(name, "glyph")
        best = min(glyph, key=glyph.get)
        rows.append(Row(f"{name.replace(' cfg', '')} tokens, " + ("CFG 4" if name.endswith("cfg") else "no CFG"),
                        "s/image", glyph, values(name, "reference"), False,
                        targets["image cfg" if name.endswith("cfg") else "image"],
                        floors[best][name.replace(" cfg", "")]))
    for stage in (1, 2):
        runs = {d: run for (s, d), run in result["training"].items() if s == stage}
        samples = {side: {d: BATCH / run["step_seconds"][side] for d, run in runs.items()}
                   for side in ("glyph", "reference")}
        best = max(samples["glyph"], key=samples["glyph"].get)
        floor = BATCH / (runs[best]["flops"] / machine["flops"][best])
        length = runs[best]["length"]
        rows.append(Row(f"stage {stage} training, batch {BATCH} × {length}", "samples/s", samples["glyph"],
                        samples["reference"], True, targets["stage 2"] if stage == 2 else None, floor))
    return rows


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def speed_table(rows: list[Row]) -> list[str]:
    header = ("| measure | Glyph fp32 | ref. fp32 | Glyph bf16 | ref. bf16 | Glyph int8 | best vs best | at fp32 | "
              "at bf16 | target | floor | Glyph best ÷ floor |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row.measure} ({row.unit})"]
        for dtype in ("fp32", "bf16"):
            measured = dtype in row.glyph
            cells += [_number(row.glyph[dtype]), _number(row.reference[dtype])] if measured else ["–", "–"]
        cells.append(_number(row.glyph["int8"]) if "int8" in row.glyph else "–")  # no reference int8 to match
        ratio = row.best_ratio()
        met = "" if row.target is None else (" ✓" if ratio >= row.target else " ✗")
        cells += [f"**{ratio:.2f}×**{met}"]
        cells += [f"{row.ratio(row.glyph[d], row.reference[d]):.2f}×" if d in row.glyph else "–"
                  for d in ("fp32", "bf16")]
        cells += [f"≥ {row.target:g}×" if row.target else "–"]
        cells += [_number(row.floor) if row.floor else "–",
                  f"{row.over_floor():.1f}×" if row.floor else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def cold_start_lines(result: dict) -> list[str]:
    if "cold_start" not in result:
        return []
    run = result["cold_start"]
    glyph, reference = run["seconds"]["glyph"], run["seconds"]["reference"]
    met = "✓" if glyph <= COLD_START_TARGET else "✗"
    return ["", f"Cold start, process start to the first token (fp32, warm file cache, median of {run['repeats']} "
            f"after a first run): Glyph **{glyph:.2f} s** {met} (target ≤ {COLD_START_TARGET:g} s), reference "
            f"{reference:.2f} s ({reference / glyph:.2f}×); same first token: {'yes' if run['same_token'] else 'NO'}."]


def memory_table(result: dict) -> list[str]:
    lines = ["| work | dtype | Glyph | reference | Glyph ÷ reference |", "|---|---|---|---|---|"]
    for dtype, sides in result["memory"].items():
        g, r = sides["glyph"], sides["reference"]
        lines.append(f"| drawing 256 tokens with CFG: peak above the loaded model | {dtype} | {g / MB:.0f} MB | "
                     f"{r / MB:.0f} MB | {g / max(r, 1):.2f} |")
    for (stage, dtype), run in result["training"].items():
        g = run["peak_bytes"]["glyph"] + run["state_bytes"]["glyph"]
        r = run["peak_bytes"]["reference"] + run["state_bytes"]["reference"]
        lines.append(f"| stage {stage} step: peak above the loaded model + trainable state | {dtype} | "
                     f"{g / MB:.0f} MB | {r / MB:.0f} MB | {g / max(r, 1):.2f} |")
    return lines


def loss_lines(result: dict) -> list[str]:
    lines = ["| stage | dtype | steps | Glyph loss, first → last | reference loss, first → last |",
             "|---|---|---|---|---|"]
    for (stage, dtype), run in result["training"].items():
        g, r = run["losses"]["glyph"], run["losses"]["reference"]
        lines.append(f"| {stage} | {dtype} | {len(g)} | {g[0]:.4f} → {g[-1]:.4f} | {r[0]:.4f} → {r[-1]:.4f} |")
    return lines


def machine_lines(machine: dict) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    packages = ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "peft", "open_clip_torch"))
    gpu = [f"- GPU: {machine['gpu']} (both sides and the measurements below run on it; the cold start and "
           "int8 decoding are CPU runs' only)"] if machine["device"] == "cuda" else []
    size = machine["matmul_size"]
    return [f"- CPU: {cpu}, {os.cpu_count()} cores, torch threads {machine['threads']}", *gpu,
            (f"- measured: memory read {machine['bandwidth'] / 1e9:.1f} GB/s (sum over {machine['megabytes']} MB); "
             f"matmul peak {machine['flops']['fp32'] / 1e9:.0f} GFLOP/s fp32, "
             f"{machine['flops']['bf16'] / 1e9:.0f} GFLOP/s bf16 ({size}² products)"),
            *([] if machine.get("bf16_native", True) else
              ["- bf16 not measured for inference: this CPU has no bf16 matmul instructions (PyTorch emulates them, "
               "far slower than fp32), so fp32 is both sides' best here; training runs in fp32 too"]),
            f"- Python {platform.python_version()}, {packages}"]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10, check=False).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def write_markdown(results: list[dict], machine: dict, args, path: Path) -> Path:
    run = (f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC at commit {_commit()}, "
           f"`glyph bench --configs {' '.join(args.configs)} --repeats {args.repeats}"
           f"{'' if args.device == 'cpu' else f' --device {args.device}'}`, "
           f"{machine['seconds']:.0f} s in all.")
    method = ("Medians of the timed repetitions after a warm-up, both sides alternating; a ratio > 1 means Glyph "
              "is faster. See benchmarks/README.md for the method.")
    lines = ["# Benchmarks: Glyph against the plain Hugging Face way", "", run, "", *machine_lines(machine), "",
             method, ""]
    for result in results:
        config = result["config"]
        rows = speed_rows(result)
        lines += [f"## {config.name}", "", f"Sizes: `{describe(config)}`", "",
                  "Same greedy tokens from both sides (fp32): " +
                  ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["fairness"].items()) + ".", "",
                  "### Speed", ""] + speed_table(rows) + cold_start_lines(result) + [
                  "", "### Memory", ""] + memory_table(result) + [
                  "", "### Training losses on the same batches from the same weights", ""] + loss_lines(result) + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_save(str(path), text_mode=True) as file:  # a reader sees the old report or the new one
        file.write("\n".join(lines))
    return path


def write_chart(results: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.6), squeeze=False)
    for axis, result in zip(axes[0], results):
        rows = speed_rows(result)
        names = [r.measure.replace(" (with an image)", "").split(", batch ")[0] for r in rows]
        ratios = [r.best_ratio() for r in rows]
        colours = ["#2a9d8f" if r.target is None or q >= r.target else "#e76f51" for r, q in zip(rows, ratios)]
        axis.barh(names, ratios, color=colours)
        for y, row in enumerate(rows):
            if row.target:
                axis.plot([row.target, row.target], [y - 0.4, y + 0.4], color="black", linewidth=2)
            axis.text(ratios[y], y, f" {ratios[y]:.2f}×", va="center", fontsize=8)
        axis.axvline(1.0, color="grey", linestyle=":")
        axis.invert_yaxis()
        axis.set_xlabel("speed-up over the reference, each at its best dtype (black: target)")
        axis.set_title(result["config"].name)
    figure.suptitle("Glyph against LlavaForConditionalGeneration + peft + generate()")
    figure.tight_layout()
    with atomic_save(str(path)) as file:
        figure.savefig(file, dpi=110, format="png")
    plt.close(figure)
    return path
