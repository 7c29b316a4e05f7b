"""`mi-harness bench --history DIR`: this run's headline numbers beside the last saved run's, then saved.

Each run is kept as `DIR/bench-<UTC time>.json`: the headline (`benchmark.headline`) with the settings
it ran under. A run is compared with the newest saved run of the same settings (device kind, steps,
levels, repeats, ...), since the ratios depend on them; every headline number is higher-is-better, so
a change below zero is a slowdown. `--max-drop` turns a drop larger than that fraction into a failed
command, for CI.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NUMBERS = ("per_core_ratio", "per_machine_ratio", "small_critics_ratio", "training_gflops", "peak_gflops")


def last_run(folder: Path, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
    """The newest run saved in `folder` under the same settings, or None (unreadable files are passed over)."""
    for path in sorted(folder.glob("bench-*.json"), reverse=True):
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and saved.get("settings") == settings:
            return path, saved
    return None


def changes(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per headline number: the last run's value, this run's and the relative change (None where either is
    missing)."""
    out = {}
    for name in NUMBERS:
        before, now = previous.get(name), current.get(name)
        usable = isinstance(before, int | float) and isinstance(now, int | float) and before > 0 and math.isfinite(now)
        out[name] = {"last": before, "now": now, "change": now / before - 1 if usable else None}
    return out


def drops(compared: dict[str, dict[str, float | None]], max_drop: float) -> list[str]:
    """The headline numbers that fell by more than `max_drop` (a fraction), as sentences."""
    return [f"{name} fell {-c['change']:.0%} ({c['last']:.2f} -> {c['now']:.2f})"
            for name, c in compared.items() if c["change"] is not None and c["change"] < -max_drop]


def save(folder: Path, headline: dict[str, Any], settings: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"bench-{stamp}.json"
    path.write_text(json.dumps({**headline, "settings": settings, "saved": stamp}, indent=1))
    return path


def render(compared: dict[str, dict[str, float | None]], path: Path) -> str:
    lines = [f"against the last saved run with these settings ({path.name}):", "",
             "| number | last run | this run | change |", "|---|---|---|---|"]
    for name, c in compared.items():
        cells = ["–" if v is None else f"{v:.2f}" for v in (c["last"], c["now"])]
        change = "–" if c["change"] is None else f"{c['change']:+.1%}"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {change} |")
    return "\n".join(lines)
