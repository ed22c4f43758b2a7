"""Helpers shared by the benchmark scripts: command line, machine state, timing, FLOPs, memory, JSON, tables.

Conventions of every benchmark script (``bench_*.py``):

* Timings are medians over ``--repeats`` repeats. The cases of one script are timed *round robin* (repeat 1 of
  every case, then repeat 2 of every case, ...), so a burst of load from another process slows all cases of that
  round alike and the ratios between cases, which are computed from the same run, stay meaningful.
* Peak memory is the peak resident set size of a *fresh subprocess* per case (see ``peak_memory.py``).
* Other processes: around every timed call, /proc/stat and /proc/self/stat give the share of all CPUs' time
  that *other* processes used. A call during which they took more than 10% is redone after waiting for the
  machine to fall quiet (at most twice); the largest share left in the kept calls is recorded per case
  (``others_busy_max``), beside the load averages and CPU busy fraction before and after the run.
* ``--quick`` shrinks everything (one repeat, tiny batches, no memory subprocesses) so the test suite can check
  in seconds that each script runs and writes valid JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from peak_memory import measure_memory, memory_case_report, peak_rss_mib  # noqa: F401 (re-exported)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
FORMAT = "mnist-diffusion-bench/1"


# --- command line -----------------------------------------------------------------------------------------------

def make_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The options every benchmark script shares; scripts add their own on top."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run (1 repeat, tiny sizes, no memory subprocesses); for tests")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice, the machine's cores; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / default_out, help="JSON file to write")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-case peak-memory subprocesses")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before measuring, wait up to this long for the other processes to leave the CPUs idle")
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)  # internal: one case, fresh process
    return parser


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's intra-op thread count (before any parallel work): ``--threads``, else 1 in quick mode.

    Quick mode uses one thread because it runs inside the test suite, often beside other busy processes, and
    OpenMP threads that wait for each other on an oversubscribed CPU make a step many times slower.
    """
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    if threads is not None:
        torch.set_num_threads(threads)


# --- machine state ----------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else whatever ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_busy_fraction(seconds: float = 1.0) -> float | None:
    """Fraction of all CPUs' time spent busy over the next ``seconds`` (Linux /proc/stat), None elsewhere.

    Call it while this process is idle: then it measures everybody else.
    """
    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields[:8])

    try:
        idle0, total0 = snapshot()
        time.sleep(seconds)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return round(1.0 - (idle1 - idle0) / total, 3) if total > 0 else None


def machine_state(seconds: float = 1.0) -> dict[str, Any]:
    """Load averages (1, 5, 15 min) and the busy fraction of the CPUs over the next ``seconds``."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"loadavg": [round(v, 2) for v in load] if load else None, "cpu_busy": cpu_busy_fraction(seconds)}


def state_before(args: argparse.Namespace) -> dict[str, Any]:
    """The machine's state before measuring: after waiting for quiet if ``--wait-quiet``; a glance in quick mode."""
    if args.wait_quiet:
        return wait_until_quiet(args.wait_quiet)
    return machine_state(0.1 if args.quick else 1.0)


def wait_until_quiet(max_seconds: float, busy_threshold: float = 0.1) -> dict[str, Any]:
    """Poll until the CPUs are busy less than ``busy_threshold`` of the time, or ``max_seconds`` pass."""
    deadline = time.monotonic() + max_seconds
    state = machine_state()
    while (state["cpu_busy"] or 0.0) > busy_threshold and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: CPUs {100 * state['cpu_busy']:.0f}% busy", file=sys.stderr, flush=True)
        time.sleep(5)
        state = machine_state()
    return state


def environment() -> dict[str, Any]:
    """What the numbers were measured on: CPU, threads, software versions."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "platform": platform.platform(),
    }
    try:
        from importlib.metadata import version

        info["diffusers"] = version("diffusers")
    except Exception:  # noqa: BLE001 - not installed: recorded as absent
        info["diffusers"] = None
    return info


# --- timing -----------------------------------------------------------------------------------------------------

def summarise(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements, with the raw values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": [round(v, 6) for v in values]}


def _cpu_counters() -> tuple[int, int, int] | None:
    """(all CPUs' jiffies, their busy jiffies, this process's jiffies) from /proc; None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields)
    return total, total - fields[3] - fields[4], int(own[11]) + int(own[12])  # busy = not idle/iowait; utime+stime


def others_busy(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> float | None:
    """Share of all CPUs' time that *other* processes used between two :func:`_cpu_counters` readings.

    None when unknown or when the interval is too short (< 0.5 CPU-seconds) for jiffy counts to mean much.
    """
    if before is None or after is None or after[0] - before[0] < 50:
        return None
    total, busy, own = (a - b for a, b in zip(after, before))
    return round(max(0.0, (busy - own) / total), 3)


def time_round_robin(cases: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1, *,
                     max_others: float = 0.1, retries: int = 2, wait: float = 120.0
                     ) -> tuple[dict[str, list[float]], dict[str, list[float | None]]]:
    """Seconds per call of each case, ``repeats`` times, cycling through the cases once per repeat.

    Every case is first called ``warmup`` times (untimed) so that lazy initialisation, allocator growth and
    oneDNN kernel selection are not measured. A call during which other processes used more than
    ``max_others`` of the CPUs' time is disturbed: after waiting (up to ``wait`` s) for a quiet machine it is
    redone, at most ``retries`` times. Returns (seconds, others' busy share) per case, one entry per kept call.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    others: dict[str, list[float | None]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            for attempt in range(retries + 1):
                before = _cpu_counters()
                started = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - started
                busy = others_busy(before, _cpu_counters())
                if busy is None or busy <= max_others or attempt == retries:
                    break
                print(f"{name}: other processes took {100 * busy:.0f}% of the CPUs; redoing it", file=sys.stderr)
                wait_until_quiet(wait)
            seconds[name].append(elapsed)
            others[name].append(busy)
    return seconds, others


def warmup_calls(args: argparse.Namespace) -> int:
    """Untimed calls per case before timing: one, none in quick mode."""
    return 0 if args.quick else 1


def time_cases(args: argparse.Namespace, cases: Mapping[str, Callable[[], Any]], repeats: int,
               warmup: int | None = None) -> tuple[dict[str, list[float]], dict[str, float | None]]:
    """:func:`time_round_robin` with the run's settings (quick mode: no warm-up, no redoing disturbed calls).

    Returns the seconds per case and, per case, the largest share of the CPUs other processes took during a kept
    call (None when unknown)."""
    warmup = warmup_calls(args) if warmup is None else warmup
    seconds, others = time_round_robin(cases, repeats, warmup, retries=0 if args.quick else 2)
    worst = {name: max((v for v in values if v is not None), default=None) for name, values in others.items()}
    return seconds, worst


def matmul_peak_call(n: int = 1024) -> tuple[Callable[[], None], float]:
    """A dense fp32 matmul (n x n) @ (n x n) to time, and its FLOPs (2 n^3): the machine's practical peak."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    out = torch.empty(n, n)

    def call() -> None:
        for _ in range(4):
            torch.mm(a, b, out=out)

    return call, 4 * 2.0 * n**3


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as counted by ``torch.utils.flop_counter`` (matmuls and convolutions, 2 per MAC,
    forward and backward); elementwise work, norms and the optimizer are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


# --- output -----------------------------------------------------------------------------------------------------

def payload(benchmark: str, args: argparse.Namespace, settings: dict[str, Any], before: dict[str, Any],
            started: float, **sections: Any) -> dict[str, Any]:
    """The JSON document every script writes."""
    return {
        "format": FORMAT, "benchmark": benchmark, "quick": bool(args.quick),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(), "settings": settings,
        "machine_before": before, "machine_after": machine_state(0.1 if args.quick else 1.0),
        "memory_method": "peak RSS (VmHWM of /proc/self/status; ru_maxrss off Linux) of a fresh subprocess per case",
        **sections, "seconds": round(time.perf_counter() - started, 1),
    }


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as indented JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; numeric columns are right-aligned."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    align = ["---:" if rows and all(_numeric(r[i]) for r in rows) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("x", "").replace("%", "").strip()
    try:
        float(stripped)
    except ValueError:
        return text in ("", "-")
    return True


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with a thousands separator and ``digits`` decimals; '-' for None."""
    return "-" if value is None else f"{value:,.{digits}f}"


def machine_line(document: dict[str, Any]) -> str:
    """One line saying where and under what load a result was measured."""
    env, before = document["environment"], document["machine_before"]
    busy = before.get("cpu_busy")
    busy_text = "?" if busy is None else f"{100 * busy:.0f}%"
    disturbed = [r.get("others_busy_max") for r in document.get("results", [])]
    worst = max((v for v in disturbed if v is not None), default=None)
    worst_text = "" if worst is None else f", other processes' largest share of the CPUs during a timed call {100 * worst:.0f}%"
    return (f"{env['cpu']}, {env['logical_cpus']} logical CPUs, {env['torch_threads']} torch threads, "
            f"torch {env['torch']}; load average before {before.get('loadavg')}, CPUs busy before {busy_text}"
            f"{worst_text}; {document['date']}" + (" (quick mode: not a measurement)" if document.get("quick") else ""))


def run_benchmark(args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict[str, Any]],
                  markdown: Callable[[dict[str, Any]], str], memory_workload: Callable[[], Callable[[], Any]] | None,
                  memory_calls: int = 2) -> dict[str, Any] | None:
    """Every benchmark script's ``main`` after parsing: set the threads, then either run one memory case (child
    process of :func:`measure_memory`) or measure, write the JSON and print the table."""
    threads_before = torch.get_num_threads()
    apply_threads(args)
    try:
        if args.memory_case:
            if memory_workload is None:
                raise SystemExit("this benchmark measures no memory cases")
            memory_case_report(args.memory_case, memory_workload, calls=memory_calls)
            return None
        document = measure(args)
    finally:  # called in-process (the tests), a benchmark must not leave torch on another thread count
        torch.set_num_threads(threads_before)
    write_json(args.out, document)
    print(markdown(document))
    return document


def repeat(fn: Callable[[], None], times: int) -> Callable[[], None]:
    """``fn`` called ``times`` times in a row, as one callable (one timed call of several steps)."""
    def run() -> None:
        for _ in range(times):
            fn()
    return run
