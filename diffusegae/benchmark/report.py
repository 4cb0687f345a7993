"""A sweep's outputs: the terminal table, CSV (perf_analyzer's columns first), JSON, and a PNG plot.

CSV columns in perf_analyzer's names and units (microseconds) come first — `Concurrency` or `Request
Rate`, `Inferences/Second` (images/s), `Server Queue`, `Server Compute Input/Infer/Output`, `p50/p90/p95/p99
latency`, `Avg latency` — so tools that read its `-f` files read these; our own columns follow. Rows are in
level order (perf_analyzer sorts by throughput). The PNG is drawn with Pillow: latency percentiles (left)
and throughput (right) against the levels, evenly spaced.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffusegae.benchmark.server_stats import batch_histogram
from diffusegae.benchmark.stats import PERCENTILES, LevelSummary
from diffusegae.server.specs import DECODE

PA_PHASES = {
    "queue": "Server Queue",
    "compute_input": "Server Compute Input",
    "compute_infer": "Server Compute Infer",
    "compute_output": "Server Compute Output",
}


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _us(value_ms: float | None) -> str:
    return "" if value_ms is None else str(round(value_ms * 1e3))


def table(levels: Sequence[LevelSummary], title: str = "") -> str:
    """The terminal table: one line per level."""
    header = ["level", "sent", "ok", "err", "req/s", "img/s", *(f"p{p}" for p in PERCENTILES)]
    header += ["server", "queue", "infer", "decode batches", "decode samples/tick"]
    several = any("replicas" in (s.server or {}) for s in levels)
    header += ["per replica"] if several else []
    rows = []
    for s in levels:
        server = s.server or {}
        rows.append(
            [
                s.level.label + ("" if s.stable in (None, True) else " (unstable)"),
                *map(str, (s.sent, s.ok, s.errors)),
                f"{s.requests_per_s:.2f}",
                f"{s.images_per_s:.2f}",
                *(_ms(s.latency_ms[f"p{p}"]) for p in PERCENTILES),
                *(_ms(server.get(key)) for key in ("latency_ms", "queue_ms", "compute_infer_ms")),
                batch_histogram(server, DECODE) or "-",
                str(server.get("scheduler", {}).get(DECODE, {}).get("samples_per_tick", "-")),
                *([replica_counts(server) or "-"] if several else []),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)] if rows else []
    lines = [title] if title else []
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [
        "latency ms (p50…p99 over answered requests; server: mean per request, queue/infer summed over",
        "the op's models); decode batches: executions per batch size the server formed; decode samples/tick:"
        " with step batching, the samples each of the decode loop's network calls ran",
    ]
    if several:
        lines.append(
            "per replica: the op's requests each server answered (Triton's statistics), in --server order"
        )
    for s in levels:
        for message, count in s.errors_by_message.items():
            lines.append(f"{s.level.label}: {count} × {message}")
    return "\n".join(lines)


def replica_counts(server: dict) -> str:
    """ "21/19": the requests each replica answered in a level, in address order ("" for one server)."""
    return "/".join(str(n) for n in server.get("replicas", {}).values())


CSV_COLUMNS = [
    "Concurrency",
    "Request Rate",
    "Inferences/Second",
    *PA_PHASES.values(),
    *(f"p{p} latency" for p in PERCENTILES),
    "Avg latency",
    "Requests/Second",
    "Sent",
    "OK",
    "Errors",
    "Duration s",
    "Batch",
    "Distribution",
    "Stable",
    "Server Latency",
    "Decode Batches",
]


def csv_rows(levels: Sequence[LevelSummary]) -> list[dict[str, str]]:
    rows = []
    for s in levels:
        server = s.server or {}
        closed = s.level.mode == "concurrency"
        row = {
            "Concurrency": str(int(s.level.value)) if closed else "",
            "Request Rate": "" if closed else f"{s.level.value:g}",
            "Inferences/Second": f"{s.images_per_s:.4g}",
            **{name: _us(server.get(f"{phase}_ms")) for phase, name in PA_PHASES.items()},
            **{f"p{p} latency": _us(s.latency_ms[f"p{p}"]) for p in PERCENTILES},
            "Avg latency": _us(s.latency_ms["mean"]),
            "Requests/Second": f"{s.requests_per_s:.4g}",
            "Sent": str(s.sent),
            "OK": str(s.ok),
            "Errors": str(s.errors),
            "Duration s": f"{s.duration_s:.3f}",
            "Batch": str(s.batch),
            "Distribution": "" if closed else s.level.distribution,
            "Stable": "" if s.stable is None else str(s.stable).lower(),
            "Server Latency": _us(server.get("latency_ms")),
            "Decode Batches": batch_histogram(server, DECODE),
        }
        rows.append(row)
    return rows


def write_csv(levels: Sequence[LevelSummary], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(levels))
    return path


def write_json(levels: Sequence[LevelSummary], meta: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"meta": meta, "levels": [s.to_json() for s in levels]}, indent=1) + "\n")
    return path


# ---- the PNG (Pillow only) ----
COLORS = {
    "p50": (31, 119, 180),
    "p90": (44, 160, 44),
    "p95": (255, 127, 14),
    "p99": (214, 39, 40),
    "img/s": (31, 119, 180),
    "req/s": (148, 103, 189),
}
PANEL_W, PANEL_H, MARGIN = 520, 360, (70, 40, 20, 60)  # margins: left, top, right, bottom


def _nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above `value` (the top of an axis)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value * (1 - 1e-9))


def _panel(
    draw: Any,
    font: Any,
    x0: int,
    title: str,
    labels: list[str],
    series: dict[str, list[float | None]],
    unit: str,
) -> None:
    left, top, right, bottom = MARGIN
    px0, py0, px1, py1 = x0 + left, top, x0 + PANEL_W - right, PANEL_H - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    ymax = _nice_max(max(values) if values else 1.0)
    draw.text((x0 + left, 10), title, fill="black", font=font)
    for i in range(6):  # horizontal grid and y ticks
        y = py1 - (py1 - py0) * i / 5
        draw.line([(px0, y), (px1, y)], fill=(225, 225, 225))
        draw.text((x0 + 5, y - 6), f"{ymax * i / 5:.4g}", fill="black", font=font)
    draw.rectangle([px0, py0, px1, py1], outline="black")
    draw.text((x0 + 5, 10), unit, fill="black", font=font)
    n = len(labels)
    xs = [px0 + (px1 - px0) * (i + 0.5) / max(n, 1) for i in range(n)]
    for x, label in zip(xs, labels, strict=True):
        draw.line([(x, py1), (x, py1 + 4)], fill="black")
        draw.text((x - 3 * len(label), py1 + 8), label, fill="black", font=font)
    for k, (name, vs) in enumerate(series.items()):
        color = COLORS.get(name, (0, 0, 0))
        points = [(x, py1 - (py1 - py0) * v / ymax) for x, v in zip(xs, vs, strict=True) if v is not None]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        lx, ly = px0 + 8 + 70 * k, PANEL_H - 22  # legend under the axis labels
        draw.line([(lx, ly + 6), (lx + 16, ly + 6)], fill=color, width=3)
        draw.text((lx + 20, ly), name, fill="black", font=font)


def write_png(levels: Sequence[LevelSummary], path: str | Path, title: str = "") -> Path:
    """Latency percentiles and throughput against the levels, side by side."""
    from PIL import Image, ImageDraw, ImageFont

    path = Path(path)
    image = Image.new("RGB", (2 * PANEL_W, PANEL_H + (24 if title else 0)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    labels = [s.level.label for s in levels]
    latency = {f"p{p}": [s.latency_ms[f"p{p}"] for s in levels] for p in PERCENTILES}
    throughput = {"req/s": [s.requests_per_s for s in levels], "img/s": [s.images_per_s for s in levels]}
    if title:
        canvas = Image.new("RGB", (2 * PANEL_W, PANEL_H), "white")
        draw = ImageDraw.Draw(canvas)
    _panel(draw, font, 0, "latency (answered requests)", labels, latency, "ms")
    _panel(draw, font, PANEL_W, "throughput", labels, throughput, "per s")
    if title:
        image.paste(canvas, (0, 24))
        ImageDraw.Draw(image).text((10, 6), title, fill="black", font=font)
    image.save(path, format="PNG")
    return path
