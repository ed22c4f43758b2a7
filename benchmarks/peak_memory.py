"""Peak memory of one benchmark case, measured in a fresh Python process.

torch allocates outside Python's heap, so ``tracemalloc`` sees almost nothing; what counts is the process's
resident set. Each case runs in its own child process (``<script> --memory-case NAME``), which builds the case,
notes its peak RSS (``setup_rss_mib``: imports, data, network), runs the workload and reports the peak again
(``peak_rss_mib``); the difference is what the workload itself added (``workload_rss_mib``).

This module imports nothing heavy (no torch), so a child that only needs the protocol starts in a blink.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process's own memory map. Not
    ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that over from the parent through fork and exec, so a
    child of a big benchmark process would report the parent's size. Elsewhere: ru_maxrss (KiB; bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def memory_case_report(case: str, build: Callable[[], Callable[[], Any]], calls: int = 2) -> None:
    """Child side of :func:`measure_memory`: build the case, note the RSS, run the workload, print one JSON line."""
    workload = build()
    setup = peak_rss_mib()
    for _ in range(calls):
        workload()
    print(json.dumps({"case": case, "setup_rss_mib": round(setup, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}))


def measure_memory(script: Path, cases: Iterable[str], extra_args: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Run ``script --memory-case NAME`` in a fresh Python process per case; return each case's RSS figures
    (or ``{"error": ...}`` with the child's last line when it failed)."""
    results: dict[str, dict[str, Any]] = {}
    for case in cases:
        proc = subprocess.run([sys.executable, str(script), "--memory-case", case, *extra_args],
                              capture_output=True, text=True, check=False, cwd=REPO)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            results[case] = {"error": f"exit {proc.returncode}: {tail[0]}"}
            continue
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        report["workload_rss_mib"] = round(report["peak_rss_mib"] - report["setup_rss_mib"], 1)
        results[case] = report
    return results
