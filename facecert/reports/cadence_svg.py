"""The cadence chart: a device's poll gaps against the windows the engine accepts.

The windows are the engine's own (:func:`facecert.core.rules.conversation.cadence_window`
over the contract timing, the time scale, tolerance and network allowance), so the
chart shows exactly what CADENCE-IDLE and CADENCE-TASK judge. The live page draws
the same chart in its script from the windows the control API hands it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

from facecert.core.engine import Engine
from facecert.core.rules.conversation import cadence_window

# The interval key of the contract timing behind each window, and the rule that judges it.
WINDOW_KEYS = {"idle": ("idle_interval_s", "CADENCE-IDLE"), "task": ("task_interval_s", "CADENCE-TASK")}
WIDTH, HEIGHT, MARGIN = 640, 240, 44
COLOURS = {"idle": "#3b82f6", "task": "#f59e0b"}


def cadence_windows(engine: Engine) -> dict[str, dict[str, Any]]:
    """The accepted gap after an idleTime answer and after a task (no busy time: a task's
    window grows by the time until its result, see ``busy_s`` in :func:`cadence_svg`)."""
    cfg = engine.config
    windows: dict[str, dict[str, Any]] = {}
    for kind, (key, rule) in WINDOW_KEYS.items():
        nominal = engine.timing[key] * cfg.time_scale
        low, high = cadence_window(nominal, cfg.tolerance, cfg.allowance_s, 0.0)
        windows[kind] = {"nominal_s": nominal, "low_s": low, "high_s": high, "rule": rule}
    windows["idle"]["after"] = engine.contract.idle_task
    return windows


def gap_kind(after: Any, windows: dict[str, dict[str, Any]]) -> str:
    """Which window a gap is judged against: the idle one after the idle answer, the task one otherwise."""
    return "idle" if after == windows["idle"].get("after") else "task"


def in_window(gap: dict[str, Any], windows: dict[str, dict[str, Any]]) -> bool:
    window = windows[gap_kind(gap.get("after"), windows)]
    return window["low_s"] <= gap["gap_s"] <= window["high_s"] + float(gap.get("busy_s") or 0.0)


def cadence_svg(gaps: Iterable[dict[str, Any]], windows: dict[str, dict[str, Any]], title: str = "poll gaps") -> str:
    """An SVG chart: one point per gap (``{"after": task name, "gap_s": s, "busy_s": s?}``) in poll
    order, over the idle and task bands; a point outside its window is drawn red."""
    items = [g for g in gaps if isinstance(g.get("gap_s"), (int, float))]
    top = max([w["high_s"] for w in windows.values()] + [g["gap_s"] for g in items] + [1e-3]) * 1.15
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def y(seconds: float) -> float:
        return MARGIN + plot_h * (1 - max(0.0, seconds) / top)

    def x(index: int) -> float:
        return MARGIN + plot_w * (index + 0.5) / max(1, len(items))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
    ]
    for kind, window in windows.items():
        y_high, y_low = y(window["high_s"]), y(window["low_s"])
        parts.append(
            f'<rect class="band {kind}" x="{MARGIN}" y="{y_high:.1f}" width="{plot_w}" '
            f'height="{max(1.0, y_low - y_high):.1f}" fill="{COLOURS[kind]}" fill-opacity="0.18">'
            f"<title>{escape(_band_label(kind, window))}</title></rect>"
        )
        parts.append(f'<text x="{WIDTH - MARGIN + 4}" y="{y_high + 10:.1f}" fill="{COLOURS[kind]}">{kind}</text>')
    parts.append(
        f'<line x1="{MARGIN}" y1="{MARGIN + plot_h}" x2="{MARGIN + plot_w}" y2="{MARGIN + plot_h}" stroke="#444"/>'
    )
    parts.append(f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{MARGIN + plot_h}" stroke="#444"/>')
    for tick in (0.0, top / 2, top / 1.15):
        parts.append(f'<text x="{MARGIN - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f} s</text>')
    for index, gap in enumerate(items):
        kind, ok = gap_kind(gap.get("after"), windows), in_window(gap, windows)
        busy = float(gap.get("busy_s") or 0.0)
        if busy > 0:  # the task window of this gap reaches further by the time until its result
            parts.append(
                f'<line class="busy" x1="{x(index):.1f}" y1="{y(windows["task"]["high_s"]):.1f}" '
                f'x2="{x(index):.1f}" y2="{y(windows["task"]["high_s"] + busy):.1f}" '
                f'stroke="{COLOURS["task"]}" stroke-width="3" stroke-opacity="0.5"/>'
            )
        label = f"gap {index + 1}: {gap['gap_s']:.3f} s after {gap.get('after')} ({'accepted' if ok else 'outside'})"
        parts.append(
            f'<circle class="gap {kind} {"ok" if ok else "out"}" cx="{x(index):.1f}" '
            f'cy="{y(gap["gap_s"]):.1f}" r="4" fill="{COLOURS[kind] if ok else "#dc2626"}" stroke="#222">'
            f"<title>{escape(label)}</title></circle>"
        )
    parts.append(f'<text x="{MARGIN}" y="{MARGIN - 14}" font-size="13">{escape(title)}</text>')
    parts.append(
        f'<text x="{MARGIN}" y="{HEIGHT - 12}" fill="#555">{len(items)} gap(s); bands: accepted windows '
        f"({escape(_band_label('idle', windows['idle']))}; {escape(_band_label('task', windows['task']))})"
        "</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _band_label(kind: str, window: dict[str, Any]) -> str:
    return f"{window['rule']} {window['low_s']:.2f}–{window['high_s']:.2f} s"


__all__ = ["cadence_svg", "cadence_windows", "gap_kind", "in_window"]
