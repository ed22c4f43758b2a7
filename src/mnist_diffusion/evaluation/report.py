"""Presenting results: the readable table (metric | value | floor | better) and the metrics JSON file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mnist_diffusion.evaluation.cache import save_json
from mnist_diffusion.evaluation.definitions import SPECS
from mnist_diffusion.evaluation.real_floors import FLOOR_FORMAT


def format_number(value: float | None) -> str:
    """Four significant digits; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def format_mean_std(value: float | None, std: float | None) -> str:
    """``mean ± std`` (or the mean alone when there is no std)."""
    return format_number(value) if std is None else f"{format_number(value)} ± {format_number(std)}"


def metrics_table(result: dict[str, Any]) -> str:
    """The result of :func:`~.api.evaluate` (or :func:`~.api.floors`) as an aligned plain-text table."""
    is_floors = result.get("format") == FLOOR_FORMAT
    header = ["metric", "floor (real train vs test)" if is_floors else "value", "floor (real train vs test)", "better"]
    rows = []
    for key, row in result["metrics"].items():
        label = row.get("label") or (SPECS[key].label if key in SPECS else key)
        if is_floors:
            rows.append([label, format_mean_std(row["value"], row["std"])])
        else:
            rows.append([label, format_mean_std(row["value"], row["std"]), format_mean_std(row["floor"], row["floor_std"]),
                         row["better"]])
    header = header[:2] if is_floors else header
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([_title(result, is_floors), *lines, *(f"note: {n}" for n in result.get("notes", []))])


def _title(result: dict[str, Any], is_floors: bool) -> str:
    n = f"N = {result['n']:,}"
    classifier = f"classifier {result['classifier_sha256'][:16]}"
    if is_floors:
        return f"real-data floors, {n}, mean ± std over {result['sets']} training subsets, {classifier}"
    seeds = [s for s in result["seeds"] if s is not None]
    seed_text = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    sets = f"{result['sets']} sample set{'s' if result['sets'] > 1 else ''}{seed_text}"
    return f"{n}, {sets}, value = mean ± std over sets, {classifier}"


def write_metrics(result: dict[str, Any], path: str | Path) -> Path:
    """Write a result dict as indented JSON (atomically) and return the path."""
    path = Path(path)
    save_json(path, result)
    return path
